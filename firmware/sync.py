# The device's Wi-Fi link to the collector: one supervisor task owns the
# connection, posts signed frames (firmware/frame.py) to /api/v1/sync in
# batches after a rating burst and every sync_s seconds, backs off on failure,
# and applies what the answer brings (ack, time, newer settings and roster).
#
# Scheduling waits go through the timebase (virtual on the unix port); network
# waits are real time and every one has a timeout. One frame buffer is made
# once and reused, so a sync allocates little. Failures are OSError (network,
# collector), FrameError (an answer that fails its checks) or ValueError (a
# pushed config that fails validation). What an answer brings is applied
# through the app (App.set_time, App.push_config), which owns those files.
import asyncio
import errno
import gc
import os
import socket
from time import ticks_diff, ticks_ms

from firmware import frame, record
from firmware.const import const

_BATCH = const(64)  # records a frame: 0.9 KB of buffer, 14.9 bytes a record on the air
_TIMEOUT_MS = const(10000)  # each network step
_WIFI_MS = const(15000)  # to join the network
_WIFI_POLL_MS = const(100)
_BACKOFF_MIN_MS = const(5000)
_BACKOFF_MAX_MS = const(600000)
_QUIET_MS = const(5000)  # a burst of ratings is over when the log rests this long
_POLL_MS = const(2000)
_NET_POLL_MS = const(5)
_IDLE_POLL_MS = const(10)  # sync_now waiting for a sync in flight to end
_FAILING_MS = const(86_400_000)  # syncs failing this long: a technician alert on the sign
# alerts a sync that works ends: it brings the settings and roster back, proves the
# identity, and the collector holds the records the log's state had lost track of
_SYNC_CURES = ("sync_failing", "settings_corrupt", "roster_corrupt", "identity_corrupt",
               "log_damaged")
_MORE_FRAMES = const(3)  # frames a sync may take beyond the unsynced records' batches
# ESP32 WLAN status 2xx: why joining failed (no AP, wrong password, association
# failed...): no use waiting longer
_STAT_FAILED_MIN = const(200)
_STAT_FAILED_END = const(300)
_HTTP = const("http://")
_HTTP_PORT = const(80)
_CONTENT_LENGTH = const(b"content-length:")
_ERROR_CHARS = const(120)  # of a refusal's body, in the error
# a non-blocking socket's "not yet" (118, 119: the ESP32's EINPROGRESS and EALREADY)
_BUSY = (errno.EAGAIN, errno.EINPROGRESS, errno.EALREADY, errno.ETIMEDOUT, 118, 119)


async def _io(sock, data, write=True):
    """Write all of data, or read once into data (0: the peer closed), on a
    non-blocking socket; OSError when it makes no progress for _TIMEOUT_MS."""
    t = ticks_ms()
    done = 0
    mv = memoryview(data)
    while True:
        try:
            n = sock.write(mv[done:]) if write else sock.readinto(mv)
        except OSError as e:
            if e.errno not in _BUSY:
                raise
            n = None
        if n is not None:
            if not write:
                return n
            done += n
            if done == len(mv):
                return done
            t = ticks_ms()
        if ticks_diff(ticks_ms(), t) > _TIMEOUT_MS:
            raise OSError(errno.ETIMEDOUT)
        await asyncio.sleep_ms(_NET_POLL_MS)


class Link:
    def __init__(self, app, wlan, auto=True):
        self.app = app
        self.wlan = wlan  # network.WLAN(STA_IF) on the board; hw/sim/network.SimWLAN on unix
        self.auto = auto  # sync on its own (after bursts, on the timer); else only sync_now()
        # counters (mqtt_as style): what happened, for the status line and tests
        self.ok = 0  # syncs that ended well
        self.fails = 0  # syncs that failed
        self.frames = 0  # frames answered
        self.sent = 0  # records in them
        self.refused = 0  # answers or config pushes that failed their checks
        self.backoff_ms = 0
        self.retry_at = 0  # mono ms: no sync before (backing off)
        self.next_at = 0  # mono ms of the next timed sync
        self.last_error = None
        self.failing_since = None  # mono ms of the first failed sync since one worked
        self.busy = False  # one sync at a time: sync_now waits for the one in flight
        self._seen_seq = -1  # the log's seq when last looked, and since when (mono ms)
        self._seen_at = 0
        self.nonce = 0  # the last request's nonce (frame.next_nonce)
        # an Event, not a ThreadSafeFlag: one more flag in the unix port's poller
        # slows every loop turn (nothing sets it from an IRQ)
        self.kick = asyncio.Event()
        # records were written (a rating): the link syncs once the burst is over
        self.notify = self.kick.set
        self.error = None  # why this device cannot sync at all (not provisioned)
        dev = app.device
        try:
            key = bytes.fromhex(dev["key"])
            self.hm = frame.Hmac(key)
            self.dev_id = frame.check_id(dev["id"])
            if not key:
                raise ValueError("empty key")
        except Exception as e:
            self.dev_id = b"?"
            self.error = "not provisioned (device.json id, key): %s" % e
        self.buf = bytearray(frame.frame_size(len(self.dev_id), _BATCH))

    async def run(self):
        """The supervisor task."""
        tb = self.app.tb
        while True:
            await tb.wait(self.kick, tb.mono_ms() + _POLL_MS if self.auto else None)
            self.kick.clear()
            if not self.auto or self.error or not self.app.settings["sync_url"]:
                continue
            now = tb.mono_ms()
            log = self.app.log
            if log.seq != self._seen_seq:
                self._seen_seq = log.seq
                self._seen_at = now
            if now >= self.retry_at and (
                    now >= self.next_at or log.seq > log.acked and now - self._seen_at >= _QUIET_MS):
                await self.sync_now()

    async def sync_now(self):
        """Sync everything now (as many frames as it takes); a one-line summary."""
        if self.error:
            return "error: " + self.error
        app = self.app
        if not app.settings["sync_url"]:
            return "error: no sync_url in the settings"
        # bounded: a sync in flight ends by its timeouts
        for _ in range(3 * _TIMEOUT_MS // _IDLE_POLL_MS):
            if not self.busy:
                break
            await asyncio.sleep_ms(_IDLE_POLL_MS)
        else:
            return "error: a sync is still running"
        self.busy = True
        gc.collect()
        log = app.log
        sent = frames = 0
        notes = ""  # what the answers brought: clock set, new settings or roster
        # bounded: every frame acks at least one record or the loop ends; one more
        # frame carries what the answer itself logged (clock set, new config)
        limit = log.unsynced() // _BATCH + _MORE_FRAMES
        try:
            while frames < limit:
                n, note = await self._exchange()
                if not frames:  # the link works: the alerts it cures go, and their
                    for name in _SYNC_CURES:  # records go in this sync's next frame
                        app.core.clear_alert(name)
                frames += 1
                sent += n
                notes += note
                if n == 0 or log.seq <= log.acked:
                    break
            err = None
        except Exception as e:  # any failure: count it, back off, keep the records
            err = e
        finally:
            self.busy = False
        now = app.tb.mono_ms()
        if err is None:
            self.ok += 1
            self.failing_since = None
            self.backoff_ms = self.retry_at = 0
            self.last_error = None
            self.next_at = now + app.settings["sync_s"] * 1000
            return "ok: sent %d records in %d frame%s, acked up to seq %d%s" % (
                sent, frames, "" if frames == 1 else "s", log.acked, notes)
        self.fails += 1
        if self.failing_since is None:
            self.failing_since = now
        elif now - self.failing_since >= _FAILING_MS:
            app.core.add_alert("sync_failing")
        self.backoff_ms = min(max(self.backoff_ms * 2, _BACKOFF_MIN_MS), _BACKOFF_MAX_MS)
        self.retry_at = now + self.backoff_ms
        self.last_error = "%s: %s" % (type(err).__name__, err)
        return "error: sync failed (%s); acked up to seq %d, retry in %d s" % (
            self.last_error, log.acked, self.backoff_ms // 1000)

    async def _exchange(self):
        """One frame out, one answer back and applied: (records sent, what it brought)."""
        n, first, last, size = self._pack()
        mac = bytes(self.buf[size - frame.MAC_LEN : size])
        await self._join()
        status, body = await self._post(memoryview(self.buf)[:size])
        if status != b"200":
            raise OSError("collector said %s %s" % (status.decode(), body[:_ERROR_CHARS].decode()))
        self.frames += 1
        self.sent += n
        return n, self._apply(body, mac, n, first, last)

    def _pack(self, since=None, most=_BATCH):
        """The records after since (default: the unsynced ones), up to most, sealed
        into the frame buffer: (count, first seq, last seq, the frame's length). The
        BLE link's frames are made here too."""
        app = self.app
        log = app.log
        buf = self.buf
        at = frame.HEAD_FIXED + len(self.dev_id)  # where the records start
        n = 0
        last = log.acked if since is None else since
        first = last + 1
        for r in log.records(last):
            if n == 0:
                first = r[0]
            last = r[0]
            record.pack_into(buf, at + n * record.SIZE, last, r[1], r[2], r[3], r[4], r[5])
            n += 1
            if n >= most:
                break
        # the nonce: the clock, so the collector can refuse an old frame replayed
        self.nonce = frame.next_nonce(app.clock.wall(), self.nonce, os.urandom(4))
        size = frame.seal_request(buf, self.hm, self.dev_id, log.log_id, log.boot, first, n,
                                  app.settings["version"], app.roster.version, self.nonce)
        return n, first, last, size

    async def _join(self):
        """Join the Wi-Fi network with device.json's ssid and password, unless joined."""
        w = self.wlan
        if w.isconnected():
            return
        dev = self.app.device
        w.active(True)
        w.connect(dev.get("ssid"), dev.get("password"))
        for _ in range(_WIFI_MS // _WIFI_POLL_MS):  # bounded wait for the access point
            if w.isconnected() or _STAT_FAILED_MIN <= w.status() < _STAT_FAILED_END:
                break
            await asyncio.sleep_ms(_WIFI_POLL_MS)
        if not w.isconnected():
            raise OSError("wifi not connected (status %d)" % w.status())

    async def _post(self, body):
        """POST body to sync_url: (the answer's status code, its body). HTTP/1.0 on
        a non-blocking socket polled every few ms, as mqtt_as does: no stream
        objects or timeout tasks on the heap, and the answer's head is read into
        the frame buffer (the request in it is sent by then)."""
        host, port, path = _split_url(self.app.settings["sync_url"])
        sock = socket.socket()
        try:
            sock.setblocking(False)
            try:
                sock.connect(socket.getaddrinfo(host, port)[0][-1])
            except OSError as e:
                if e.errno not in _BUSY:
                    raise
            # HTTP/1.0: the server closes after its answer. No Content-Type:
            # application/octet-stream is what a body without one is.
            await _io(sock, b"POST /%s HTTP/1.0\r\nHost: %s:%d\r\nContent-Length: %d\r\n"
                      % (path.encode(), host.encode(), port, len(body)))
            queue = self.app.queue  # where the queue system's invitations reach us
            await _io(sock, b"X-Pingjia-Invite: %d\r\n\r\n" % queue.port if queue else b"\r\n")
            await _io(sock, body)
            status, start, got, size = await self._read_head(sock)
            # one allocation of the answer's size (a small heap has few big holes)
            answer = bytearray(size)
            answer[:got] = memoryview(self.buf)[start : start + got]
            mv = memoryview(answer)
            while got < size:
                k = await _io(sock, mv[got:], False)
                if not k:
                    raise OSError("HTTP answer cut short")
                got += k
        finally:
            sock.close()
        return status, answer

    async def _read_head(self, sock):
        """Read the answer's head into the frame buffer: (status code, where the
        body starts in the buffer, body bytes read with the head, Content-Length)."""
        buf = self.buf
        mv = memoryview(buf)
        got = 0
        end = -1
        while end < 0:  # until the blank line that ends the head
            if got == len(buf):
                raise OSError("HTTP answer head over %d bytes" % got)
            k = await _io(sock, mv[got:], False)
            if not k:
                raise OSError("no HTTP answer head")
            got += k
            end = buf.find(b"\r\n\r\n", 0, got)
        lines = bytes(mv[:end]).split(b"\r\n")
        status = lines[0].split(None, 2)  # HTTP/1.1 200 OK
        size = -1
        for h in lines:
            if h.lower().startswith(_CONTENT_LENGTH):
                size = int(h[len(_CONTENT_LENGTH):])
        start = end + 4  # after the blank line
        got -= start
        if len(status) < 2 or not status[0].startswith(b"HTTP/") or not got <= size <= frame.ANSWER_MAX:
            raise OSError("no HTTP answer with a usable Content-Length")
        return status[1], start, got, size

    def _apply(self, body, mac, n, first, last):
        """Check the answer to the frame whose MAC is mac and apply it through the
        app: the ack (of records first..last only), the time, settings and
        roster. What it brought, for the summary."""
        app = self.app
        try:
            ack, wall_s, settings_json, roster_text = frame.parse_answer(body, self.hm, mac)
        except frame.FrameError:
            self.refused += 1
            raise
        body = None
        if n and ack >= first:
            app.log.ack(min(ack, last))  # only records this frame carried
        note = ""
        if wall_s:
            if not app.clock.known:
                note = ", clock set"
            app.set_time(wall_s)
        if settings_json is not None or roster_text is not None:
            try:
                app.push_config(settings_json, roster_text)
            except ValueError:
                self.refused += 1
                raise
            if settings_json is not None:
                note += ", settings v%d" % app.settings["version"]
            if roster_text is not None:
                note += ", roster v%d" % app.roster.version
        return note


def _split_url(url):
    """http://host[:port]/path -> (host, port, path)."""
    if not url.startswith(_HTTP):
        raise ValueError("sync_url is not http://")
    host, _, path = url[len(_HTTP):].partition("/")
    host, _, port = host.partition(":")
    return host, int(port or _HTTP_PORT), path
