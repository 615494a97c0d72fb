# The device's Wi-Fi link to the collector: one supervisor task owns the
# connection, posts signed frames (firmware/frame.py) to /api/v1/sync in
# batches after a rating burst and every sync_s seconds, backs off on failure,
# and applies what the answer brings (ack, time, newer settings and roster).
#
# Scheduling waits go through the timebase (virtual on the unix port); network
# waits are real time and every one has a timeout. One frame buffer is made
# once and reused, so a sync allocates little on a 128 KB heap. Failures are
# OSError (network, collector), FrameError (an answer that fails its checks)
# or ValueError (a pushed config that fails validation).
import asyncio
import errno
import gc
import json
import os
import socket
from time import ticks_diff, ticks_ms

from firmware import frame as F
from firmware import record as R
from firmware import roster as roster_mod
from firmware import settings as settings_mod
from firmware import storage
from firmware.record import const

_BATCH = const(64)  # records a frame: 0.9 KB of buffer, 14.9 bytes a record on the air
_TIMEOUT_MS = const(10000)  # each network step
_WIFI_MS = const(15000)  # to join the network
_BACKOFF_MIN_MS = const(5000)
_BACKOFF_MAX_MS = const(600000)
_QUIET_MS = const(5000)  # a burst of ratings is over when the log rests this long
_POLL_MS = const(2000)
_NET_POLL_MS = const(5)
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
    # counters (mqtt_as style): what happened, for the status line and tests
    ok = fails = frames = sent = 0  # syncs, failed syncs, frames, records sent
    refused = 0  # answers or config pushes that failed their checks
    backoff_ms = retry_at = next_at = 0  # next_at: mono ms of the next timed sync
    last_error = None
    error = None  # why this device cannot sync at all (not provisioned)
    busy = False  # one sync at a time (a flag: asyncio.Lock costs heap)
    nonce = 0  # the last request's nonce (frame.next_nonce)
    _seen_seq = -1  # the log's seq when last looked, and since when (mono ms)
    _seen_at = 0

    def __init__(self, app, wlan, auto=True):
        self.app = app
        self.wlan = wlan  # network.WLAN(STA_IF) on the board; hw/net_sim.SimWLAN on unix
        self.auto = auto  # sync on its own (after bursts, on the timer); else only sync_now()
        # an Event, not a ThreadSafeFlag: one more flag in the unix port's poller
        # slows every loop turn (nothing sets it from an IRQ)
        self.kick = asyncio.Event()
        # records were written (a rating): the link syncs once the burst is over
        self.notify = self.kick.set
        dev = app.device
        try:
            key = bytes.fromhex(dev["key"])
            self.hm = F.Hmac(key)
            self.dev_id = F.check_id(dev["id"])
            if not key:
                raise ValueError("empty key")
        except Exception as e:
            self.dev_id = b"?"
            self.error = "not provisioned (device.json id, key): %s" % e
        self.buf = bytearray(F.frame_size(len(self.dev_id), _BATCH))

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
        for _ in range(_TIMEOUT_MS * 3 // 10):  # bounded: a sync in flight ends by its timeouts
            if not self.busy:
                break
            await asyncio.sleep_ms(10)
        else:
            return "error: a sync is still running"
        self.busy = True
        gc.collect()
        log = app.log
        sent = frames = 0
        notes = ""  # what the answers brought: clock set, new settings or roster
        # bounded: every frame acks at least one record or the loop ends; one more
        # frame carries what the answer itself logged (clock set, new config)
        limit = log.unsynced() // _BATCH + 3
        try:
            while frames < limit:
                n, note = await self._exchange()
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
            self.backoff_ms = self.retry_at = 0
            self.last_error = None
            self.next_at = now + app.settings["sync_s"] * 1000
            return "ok: sent %d records in %d frame%s, acked up to seq %d%s" % (
                sent, frames, "" if frames == 1 else "s", log.acked, notes)
        self.fails += 1
        self.backoff_ms = min(max(self.backoff_ms * 2, _BACKOFF_MIN_MS), _BACKOFF_MAX_MS)
        self.retry_at = now + self.backoff_ms
        self.last_error = "%s: %s" % (type(err).__name__, err)
        return "error: sync failed (%s); acked up to seq %d, retry in %d s" % (
            self.last_error, log.acked, self.backoff_ms // 1000)

    async def _exchange(self):
        """One frame out, one answer back and applied: (records sent, what it brought)."""
        app = self.app
        log = app.log
        buf = self.buf
        hs = F.HEAD_FIXED + len(self.dev_id)
        n = 0
        last = log.acked
        first = last + 1
        for r in log.records(last):
            if n == 0:
                first = r[0]
            last = r[0]
            R.pack_into(buf, hs + n * R.SIZE, last, r[1], r[2], r[3], r[4], r[5])
            n += 1
            if n >= _BATCH:
                break
        # the nonce: the clock, so the collector can refuse an old frame replayed
        self.nonce = F.next_nonce(app.clock.wall(), self.nonce, os.urandom(4))
        size = F.seal_request(buf, self.hm, self.dev_id, log.boot, first, n,
                              app.settings["version"], app.roster.version, self.nonce)
        mac = bytes(buf[size - F.MAC_LEN : size])
        body = memoryview(buf)[:size]
        # the POST (inline: a method of its own costs heap): join the network if
        # need be, then POST body to sync_url; the answer's body
        w = self.wlan
        if not w.isconnected():
            dev = app.device
            w.active(True)
            w.connect(dev.get("ssid"), dev.get("password"))
            for _ in range(_WIFI_MS // 100):  # bounded wait for the access point
                # ESP32 status 2xx: no AP, wrong password, association failed
                if w.isconnected() or 200 <= w.status() < 300:
                    break
                await asyncio.sleep_ms(100)
            if not w.isconnected():
                raise OSError("wifi not connected (status %d)" % w.status())
        url = app.settings["sync_url"]  # http://host[:port]/path
        if not url.startswith("http://"):
            raise ValueError("sync_url is not http://")
        host, _, path = url[7:].partition("/")
        host, _, port = host.partition(":")
        port = int(port or 80)
        # the POST on a non-blocking socket polled every few ms, as mqtt_as does:
        # no stream objects or timeout tasks on the heap, and the answer's head
        # is read into the frame buffer (the request in it is sent by then)
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
            await _io(sock, b"POST /%s HTTP/1.0\r\nHost: %s:%d\r\nContent-Length: %d\r\n\r\n"
                      % (path.encode(), host.encode(), port, len(body)))
            await _io(sock, body)
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
            head = lines[0].split(None, 2)  # HTTP/1.1 200 OK
            size = -1
            for h in lines:
                if h.lower().startswith(b"content-length:"):
                    size = int(h[15:])
            lines = None
            got -= end + 4  # body bytes read with the head
            if len(head) < 2 or not head[0].startswith(b"HTTP/") or not got <= size <= F.ANSWER_MAX:
                raise OSError("no HTTP answer with a usable Content-Length")
            # one allocation of the answer's size (a 128 KB heap has few big holes)
            body = bytearray(size)
            body[:got] = mv[end + 4 : end + 4 + got]
            mv = memoryview(body)
            while got < size:
                k = await _io(sock, mv[got:], False)
                if not k:
                    raise OSError("HTTP answer cut short")
                got += k
            mv = None
        finally:
            sock.close()
        if head[1] != b"200":
            raise OSError("collector said %s %s" % (head[1].decode(), body[:120].decode()))
        self.frames += 1
        self.sent += n
        try:
            ack, t, s, ro = F.parse_answer(body, self.hm, mac)
        except F.FrameError:
            self.refused += 1
            raise
        body = None
        if n and ack >= first:
            log.ack(min(ack, last))  # only records this frame carried
        note = ""
        if t:
            if not app.clock.known:
                note = ", clock set"
            app.core.set_time(t)
        if s is not None or ro is not None:
            # settings and roster from the collector: check both, store both (each
            # file replaced atomically), then apply. A bad or failed push changes nothing.
            try:
                if s is not None:
                    s = settings_mod.validate(json.loads(s))
                    if not s["sync_url"]:
                        s["sync_url"] = app.settings["sync_url"]  # never cut our own link
                new_r = roster_mod.Roster(ro) if ro is not None else None
            except Exception as e:
                self.refused += 1
                raise ValueError("pushed config rejected: %s" % e)
            # write both new files first; renames come last so a failure leaves the old ones
            staged = []
            try:
                for name, data in (("roster", ro), ("settings", s)):
                    if data is not None:
                        path = app.paths[name]
                        staged.append(path)
                        with open(path + ".new", "wb") as f:
                            f.write(data if name == "roster" else json.dumps(data).encode())
            except Exception:
                for path in staged:
                    storage.remove(path + ".new")
                raise
            for path in staged:
                os.rename(path + ".new", path)
            if s is not None:
                app.settings = s
                note += ", settings v%d" % s["version"]
            if new_r is not None:
                app.roster = new_r
                note += ", roster v%d" % new_r.version
            app.core.apply_settings(app.settings, new_r)
        app.wake.set()  # the core's deadlines may have moved (clock, settings)
        return n, note
