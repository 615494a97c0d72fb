# The device's BLE link: a GATT peripheral on aioble's public API (the real aioble on the
# board or on a MicroPython build with `bluetooth`; the double of tests/ble on the unix
# port), advertising pingjia-<window>. The same signed frames as the Wi-Fi link
# (firmware/frame.py): a host (`pingjia pull --ble`) reads the status, asks for records
# after a seq, receives each frame as notifications in MTU-sized chunks, gives it to the
# collector, and writes the collector's signed answer back; the device checks it against
# the request it made (MAC, nonce), then acks the records that frame carried and sets its
# clock, as after a Wi-Fi sync. One task owns the link; every await has a timeout; the
# task yields after each notification, so the keypad answers during a transfer.
#
# Service 8d7e0001-…; characteristics:
#   status  (read)   "PS", version u8, id length u8, id, boot u32, seq u32, acked u32,
#                    control size u16, clock known u8, state u8
#   control (write)  "R" since u32, max u16   a frame of the records after since
#                    "A" length u16           an answer of length bytes follows, then
#                    "a" chunk                its pieces, each at most control size - 1
#   data (notify)    messages: type u8, length u16, body; one spans as many
#                    notifications of MTU - 3 bytes as it takes
#                    "F" frame   "P" u16 answer bytes taken so far (every 8 pieces: the
#                    host writes no more before it, aioble's write queue holds 10)
#                    "K" acked u32, seq u32, clock known u8   "E" reason text
# Settings and roster that the answer brings are applied as after a Wi-Fi sync.
import asyncio
import errno
import struct

import aioble
import bluetooth

from firmware import frame
from firmware.const import const

_SERVICE = bluetooth.UUID("8d7e0001-5a1b-4c3e-9f20-706a6a696101")
_STATUS = bluetooth.UUID("8d7e0002-5a1b-4c3e-9f20-706a6a696101")
_CONTROL = bluetooth.UUID("8d7e0003-5a1b-4c3e-9f20-706a6a696101")
_DATA = bluetooth.UUID("8d7e0004-5a1b-4c3e-9f20-706a6a696101")

_ADV_US = const(250000)
_ADV_MS = const(60000)  # one advertise() await; then it starts again
_IDLE_MS = const(30000)  # a central that writes nothing this long is let go
_NOTIFY_MS = const(5000)  # no free transmit buffer this long: the link is dead
_RETRY_MS = const(3)  # the stack's buffers are full (ENOMEM): wait this, try again
_BATCH = const(64)  # records a frame, as the Wi-Fi link sends
_CTRL_MAX = const(128)  # control buffer: the largest write the host may make
_WINDOW = const(8)  # answer pieces between two "P" messages
_MSG_HEAD = const(3)
# the name goes in the advertising packet itself, beside the flags (3 bytes + 2 of its own
# header < 31): a passive scan sees it, and so does bumble's virtual link, whose
# controller answers a scan request with the advertising data. Not the service UUID
# (18 bytes more would push the name into the scan response): the host finds the device
# by name and the service once connected.
_NAME_MAX = const(25)
_VERSION = const(1)
_MTU = const(247)  # the largest ATT MTU we accept: a 251-byte LE data packet carries it


def adv_name(window):
    """pingjia-<window> as bytes, cut at a character to fit the scan response."""
    b = ("pingjia-" + window).encode()
    if len(b) > _NAME_MAX:
        b = b[:_NAME_MAX]
        while b and b[-1] & 0xC0 == 0x80:  # a cut inside a UTF-8 character
            b = b[:-1]
        if b and b[-1] & 0xC0 == 0xC0:
            b = b[:-1]
    return b


class BleLink:
    # counters: what happened, for the status line and tests
    connections = frames = sent = acks = refused = drops = 0
    last_error = None

    def __init__(self, app):
        self.app = app
        # frames are made by the Wi-Fi link's packer, in its buffer, with its key and
        # nonce counter (the two take turns through its busy flag); a board with no
        # network gets a link of its own that never syncs, for that
        link = app.link
        if link is None:
            from firmware.sync import Link

            link = Link(app, None, auto=False)
        self.link = link
        self._mac = None  # the MAC of the frame whose answer is awaited
        self._first = self._last = 0
        self._count = 0
        self._answer = None
        self._got = 0
        self._head = bytearray(_MSG_HEAD)
        self.service = None

    def _register(self):
        s = aioble.Service(_SERVICE)
        self.status_char = aioble.Characteristic(s, _STATUS, read=True)
        self.control = aioble.BufferedCharacteristic(s, _CONTROL, write=True, capture=True,
                                                     max_len=_CTRL_MAX)
        self.data = aioble.Characteristic(s, _DATA, notify=True)
        aioble.register_services(s)
        aioble.config(mtu=_MTU)  # the central's wish, up to this (NimBLE's default is 23)
        self.service = s

    def status_bytes(self):
        app = self.app
        log = app.log
        dev_id = self.link.dev_id
        return (struct.pack("<2sBB", b"PS", _VERSION, len(dev_id)) + dev_id
                + struct.pack("<IIIHBB", log.boot, log.seq, log.acked, _CTRL_MAX,
                              1 if app.clock.known else 0, app.core.state))

    async def run(self):
        """The supervisor task: advertise, serve one central, again."""
        if self.service is None:
            self._register()
        while True:
            self.status_char.write(self.status_bytes())
            try:
                conn = await aioble.advertise(_ADV_US, name=adv_name(self.app.settings["window"]),
                                              timeout_ms=_ADV_MS)
            except asyncio.TimeoutError:
                continue
            self.connections += 1
            try:
                await self._serve(conn)
            except aioble.DeviceDisconnectedError:
                self.drops += 1
            except OSError as e:  # the link failed under a notification
                self.drops += 1
                self.last_error = repr(e)
            self._mac = None  # an answer is only taken on the link that asked for it
            self._answer = None
            if conn.is_connected():
                try:
                    await conn.disconnect()
                except asyncio.TimeoutError:
                    pass
            # the connection, its device and its ended task are garbage now, not held
            # through the next advertise() (about 1 KB while nobody is connected)
            conn = None

    async def _serve(self, conn):
        while conn.is_connected():
            try:
                with conn.timeout(_IDLE_MS):
                    _c, data = await self.control.written()
            except asyncio.TimeoutError:
                return  # an idle central: let it go, advertise again
            if not data:
                continue
            op = data[0]
            if op == 0x52 and len(data) >= 7:  # R
                since, most = struct.unpack_from("<IH", data, 1)
                await self._send_frame(conn, since, most)
            elif op == 0x41 and len(data) >= 3:  # A
                (n,) = struct.unpack_from("<H", data, 1)
                if self._mac is None or not 0 < n <= frame.ANSWER_MAX:
                    await self._send(conn, b"E", b"no frame awaits an answer")
                    continue
                self._answer = bytearray(n)
                self._got = 0
                self._pieces = 0
            elif op == 0x61 and self._answer is not None:  # a
                await self._take_piece(conn, data)
            else:
                await self._send(conn, b"E", b"bad command")

    async def _send_frame(self, conn, since, most):
        link = self.link
        if link.error:
            await self._send(conn, b"E", b"not provisioned")
            return
        for _ in range(_NOTIFY_MS // 10):  # bounded: a Wi-Fi sync ends by its timeouts
            if not link.busy:
                break
            await asyncio.sleep_ms(10)
        else:
            await self._send(conn, b"E", b"busy")
            return
        link.busy = True  # the frame buffer is ours until the frame is out
        try:
            n, self._first, self._last, size = link._pack(since, min(most or _BATCH, _BATCH))
            self._count = n
            self._mac = bytes(link.buf[size - frame.MAC_LEN : size])
            self._answer = None
            struct.pack_into("<BH", self._head, 0, 0x46, size)  # F, its own notification
            await self._notify_all(conn, memoryview(self._head))
            await self._notify_all(conn, memoryview(link.buf)[:size])
        finally:
            link.busy = False
        self.frames += 1
        self.sent += n

    async def _take_piece(self, conn, data):
        piece = memoryview(data)[1:]
        end = self._got + len(piece)
        ans = self._answer
        if end > len(ans):
            self._answer = None
            await self._send(conn, b"E", b"answer longer than announced")
            return
        ans[self._got : end] = piece
        self._got = end
        self._pieces += 1
        if end < len(ans):
            if self._pieces % _WINDOW == 0:
                await self._send(conn, b"P", struct.pack("<H", end))
            return
        self._answer = None
        app = self.app
        log = app.log
        try:
            ack, t, settings_json, roster_text = frame.parse_answer(ans, self.link.hm, self._mac)
        except frame.FrameError as e:
            self.refused += 1
            await self._send(conn, b"E", e.reason.encode())
            return
        ans = None
        self._mac = None  # an answer is taken once
        if self._count and ack >= self._first:
            log.ack(min(ack, self._last))  # only records this frame carried
        if t:
            app.set_time(t)
        if settings_json is not None or roster_text is not None:
            try:  # as after a Wi-Fi sync: both checked, both stored, or neither
                app.push_config(settings_json, roster_text)
            except (ValueError, OSError) as e:
                self.refused += 1
                await self._send(conn, b"E", ("config refused: %s" % e).encode()[:120])
                return
        self.acks += 1
        self.status_char.write(self.status_bytes())
        await self._send(conn, b"K", struct.pack("<IIB", log.acked, log.seq,
                                                 1 if app.clock.known else 0))

    async def _send(self, conn, kind, body):
        msg = bytearray(_MSG_HEAD + len(body))
        struct.pack_into("<BH", msg, 0, kind[0], len(body))
        msg[_MSG_HEAD:] = body
        await self._notify_all(conn, memoryview(msg))

    async def _notify_all(self, conn, mv):
        """mv as notifications of MTU - 3 bytes; yields after each one."""
        step = (conn.mtu or 23) - 3
        for i in range(0, len(mv), step):
            await self._notify(conn, mv[i : i + step])
            await asyncio.sleep_ms(0)  # the keypad's turn

    async def _notify(self, conn, chunk):
        waited = 0
        while True:
            try:
                self.data.notify(conn, chunk)
                return
            except OSError as e:
                if e.errno != errno.ENOMEM or waited >= _NOTIFY_MS:
                    raise
            if not conn.is_connected():
                raise aioble.DeviceDisconnectedError()
            await asyncio.sleep_ms(_RETRY_MS)  # transmit buffers full: they drain
            waited += _RETRY_MS
