# A double of MicroPython's `bluetooth` module (the C binding of NimBLE or BTstack), the
# part aioble's peripheral and GATT server use, for the unix port, which has none. Its
# controller is the bumble radio of host_tools/device/ble_radio.py, reached over TCP at
# $PINGJIA_BLE_RADIO (host:port); the message format is described there.
#
# Faithful where the firmware can tell: names and arguments, IRQ numbers and their data
# tuples, characteristic buffers of 20 bytes unless gatts_set_buffer() says otherwise
# (a remote write longer than the buffer is cut to it), notifications cut to MTU - 3,
# gatts_notify() raising OSError(ENOMEM) while the stack's transmit buffers are full, and
# active(True) raising OSError when there is no controller.
import asyncio
import errno
import json
import os
import socket
import struct

from micropython import const

FLAG_READ = const(0x0002)
FLAG_WRITE_NO_RESPONSE = const(0x0004)
FLAG_WRITE = const(0x0008)
FLAG_NOTIFY = const(0x0010)
FLAG_INDICATE = const(0x0020)

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)

_DEFAULT_ATTR_LEN = const(20)  # MP_BLUETOOTH_DEFAULT_ATTR_LEN
_TX_SLOTS = const(8)  # notifications the stack holds before ENOMEM (NimBLE's ACL mbufs)
_DEFAULT_MTU = const(23)


class UUID:
    def __init__(self, value):
        if isinstance(value, UUID):
            self._b = value._b
        elif isinstance(value, int):
            if not 0 <= value <= 0xFFFF:
                raise ValueError("invalid UUID")
            self._b = struct.pack("<H", value)
        elif isinstance(value, str):
            h = value.replace("-", "")
            if len(h) not in (4, 32):
                raise ValueError("invalid UUID")
            self._b = bytes(reversed(bytes.fromhex(h)))  # little-endian, as on the air
        else:
            b = bytes(value)
            if len(b) not in (2, 4, 16):
                raise ValueError("invalid UUID")
            self._b = b

    def __bytes__(self):
        return self._b

    def __iter__(self):  # bytes(uuid): the real one lends its buffer, which a class cannot
        return iter(self._b)

    def __len__(self):
        return len(self._b)

    def __eq__(self, other):
        return isinstance(other, UUID) and self._b == other._b

    def __hash__(self):
        return hash(self._b)

    def __str__(self):
        h = bytes(reversed(self._b)).hex()
        if len(h) == 32:
            h = "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])
        return h

    def __repr__(self):
        return "UUID(%s)" % ("0x" + str(self) if len(self._b) == 2 else "'%s'" % self)


class BLE:
    _single = None

    def __new__(cls):  # one radio, as bluetooth.BLE() is a singleton
        if BLE._single is None:
            BLE._single = object.__new__(cls)
            BLE._single._init()
        return BLE._single

    def _init(self):
        self._sock = None
        self._irq = None
        self._values = {}  # value handle -> bytearray (the attribute's buffer)
        self._append = {}  # value handle -> append mode (gatts_set_buffer)
        self._cap = {}  # value handle -> buffer size set by gatts_set_buffer
        self._txbuf = bytearray(7 + 517)  # one notification message, the largest MTU
        self._mtu = {}  # conn handle -> ATT MTU
        self._tx = 0  # notifications the radio has not sent yet
        self._pump_task = None
        self._config = {"mtu": _DEFAULT_MTU, "gap_name": b"MPY BTSTACK"}

    # ---- radio ---------------------------------------------------------------------
    def active(self, on=None):
        if on is None:
            return self._sock is not None
        if on and self._sock is None:
            where = os.getenv("PINGJIA_BLE_RADIO")
            if not where:
                raise OSError(errno.ENODEV)  # no controller fitted
            host, _, port = where.rpartition(":")
            s = socket.socket()
            try:
                s.connect(socket.getaddrinfo(host, int(port))[0][-1])
            except OSError:
                s.close()
                raise
            try:  # TCP_NODELAY: a notification must not wait 40 ms for Nagle's delayed ACK
                s.setsockopt(6, 1, 1)
            except OSError:
                pass
            self._sock = s
            self._ensure_pump()  # the controller's events flow from the start, as NimBLE's do
        elif not on and self._sock is not None:
            if self._pump_task:
                self._pump_task.cancel()
                self._pump_task = None
            self._sock.close()
            self._sock = None
            self._values = {}
        return self._sock is not None

    def _send(self, op, payload=b""):
        if self._sock is None:
            raise OSError(errno.EPERM)  # not active
        self._write(memoryview(struct.pack("<HB", len(payload) + 1, op) + payload))

    def _write(self, mv):
        while mv:
            try:
                n = self._sock.write(mv)
            except OSError as e:  # the pump made the socket non-blocking
                if e.errno != errno.EAGAIN:
                    raise
                n = 0
            mv = mv[n or 0:]

    def _ensure_pump(self):
        if self._pump_task is None and self._sock is not None:
            self._pump_task = asyncio.create_task(self._pump())

    async def _pump(self):
        """The controller's events, delivered as the stack's IRQs are."""
        r = asyncio.StreamReader(self._sock)
        while True:
            head = await r.readexactly(3)
            n, op = struct.unpack("<HB", head)
            body = await r.readexactly(n - 1) if n > 1 else b""
            self._event(op, body)

    def _event(self, op, body):
        if op == 0x43:  # C: a central connected
            conn, at = struct.unpack_from("<HB", body)
            self._mtu[conn] = _DEFAULT_MTU
            self._call(_IRQ_CENTRAL_CONNECT, (conn, at, memoryview(body[3:9])))
        elif op == 0x58:  # X
            (conn,) = struct.unpack_from("<H", body)
            self._mtu.pop(conn, None)
            self._tx = 0  # its queued notifications died with the link
            self._call(_IRQ_CENTRAL_DISCONNECT, (conn, 0, memoryview(bytes(6))))
        elif op == 0x77:  # w: a central wrote a value
            conn, h = struct.unpack_from("<HH", body)
            buf = self._values.get(h)
            if buf is None:
                return
            data = body[4:]
            if self._append.get(h):
                room = self._append[h] - len(buf)
                buf.extend(data[:max(room, 0)])
            else:
                cap = max(len(buf), self._cap.get(h, _DEFAULT_ATTR_LEN))
                buf[:] = data[:cap]
            self._call(_IRQ_GATTS_WRITE, (conn, h))
        elif op == 0x4D:  # M
            conn, mtu = struct.unpack_from("<HH", body)
            self._mtu[conn] = min(mtu, max(self._config["mtu"], _DEFAULT_MTU))
            self._call(_IRQ_MTU_EXCHANGED, (conn, self._mtu[conn]))
        elif op == 0x6E:  # n: transmit slots free again
            (k,) = struct.unpack_from("<H", body)
            self._tx = max(0, self._tx - k)

    def _call(self, event, data):
        if self._irq:
            self._irq(event, data)

    def irq(self, handler):
        self._irq = handler

    def config(self, *names, **kw):
        if names:
            if names[0] == "mac":
                return (0, bytes.fromhex("F0F1F2F3F4F5")[::-1])
            if names[0] not in self._config:
                raise ValueError("unknown config param")
            return self._config[names[0]]
        for k, v in kw.items():
            if k not in self._config:
                raise ValueError("unknown config param")
            if k == "mtu" and not 23 <= v <= 517:
                raise ValueError("invalid MTU")
            self._config[k] = v

    # ---- GAP -----------------------------------------------------------------------
    def gap_advertise(self, interval_us, adv_data=None, resp_data=None, connectable=True):
        if self._sock is None:
            raise OSError(errno.EPERM)
        self._ensure_pump()
        if interval_us is None:
            self._send(0x61)  # a
            return
        if len(adv_data or b"") > 31 or len(resp_data or b"") > 31:
            raise OSError(errno.EINVAL)
        self._send(0x41, json.dumps({"interval_us": interval_us,
                                     "adv": bytes(adv_data or b"").hex(),
                                     "resp": bytes(resp_data or b"").hex(),
                                     "connectable": bool(connectable)}).encode())

    def gap_disconnect(self, conn_handle):
        if conn_handle not in self._mtu:
            return False
        self._send(0x44, struct.pack("<H", conn_handle))
        return True

    def gattc_exchange_mtu(self, conn_handle):
        raise OSError(errno.EOPNOTSUPP)  # a peripheral here: the central asks for the MTU

    # ---- GATT server ---------------------------------------------------------------
    def gatts_register_services(self, services):
        if self._sock is None:
            raise OSError(errno.EPERM)
        self._values = {}
        self._append = {}
        self._cap = {}
        handle = 1
        out = []
        desc = []
        for suuid, chars in services:
            handle += 1  # the service declaration
            hs = []
            made = []
            for c in chars:
                cuuid, flags = c[0], c[1]
                handle += 2  # characteristic declaration, then its value
                hs.append(handle)
                self._values[handle] = bytearray()
                made.append([str(cuuid), flags, handle])
                if flags & (FLAG_NOTIFY | FLAG_INDICATE):
                    handle += 1  # the CCCD
                for d in (c[2] if len(c) > 2 else ()):
                    handle += 1
                    hs.append(handle)
                    self._values[handle] = bytearray()
            out.append(tuple(hs))
            desc.append([str(suuid), made])
        self._send(0x52, json.dumps(desc).encode())
        return tuple(out)

    def gatts_read(self, value_handle):
        buf = self._values.get(value_handle)
        if buf is None:
            raise OSError(errno.EINVAL)
        return bytes(buf)

    def gatts_write(self, value_handle, data, send_update=False):
        buf = self._values.get(value_handle)
        if buf is None:
            raise OSError(errno.EINVAL)
        buf[:] = bytes(data)  # a local write grows the buffer as needed
        self._send(0x57, struct.pack("<H", value_handle) + bytes(data))
        if send_update:
            for conn in list(self._mtu):
                self.gatts_notify(conn, value_handle)

    def gatts_set_buffer(self, value_handle, length, append=False):
        if value_handle not in self._values:
            raise OSError(errno.EINVAL)
        self._cap[value_handle] = length
        if append:
            self._append[value_handle] = length

    def gatts_notify(self, conn_handle, value_handle, data=None):
        if conn_handle not in self._mtu:
            raise OSError(errno.ENOTCONN)
        if self._tx >= _TX_SLOTS:
            raise OSError(errno.ENOMEM)  # the stack's buffers are full: try again soon
        self._ensure_pump()
        value = self._values[value_handle] if data is None else data
        n = min(len(value), self._mtu[conn_handle] - 3)
        # the message built in one buffer made once: NimBLE copies a notification into its
        # own mbufs, outside the GC heap, so the double allocates nothing per notification
        tx = self._txbuf
        struct.pack_into("<HBHH", tx, 0, n + 5, 0x4E, conn_handle, value_handle)
        tx[7 : 7 + n] = value[:n] if isinstance(value, memoryview) else memoryview(value)[:n]
        self._tx += 1
        self._write(memoryview(tx)[: 7 + n])
