# The device's Wi-Fi link to the collector: one supervisor task owns the
# connection, posts signed frames (firmware/frame.py) to /api/v1/sync in
# batches after a rating burst and every sync_s seconds, backs off on failure,
# and applies what the answer brings (ack, time, newer settings and roster).
#
# Scheduling waits go through the timebase (virtual on the unix port); network
# waits are real time and every one has a timeout. One frame buffer is made
# once and reused, so a sync allocates little on a 128 KB heap.
import asyncio
import json
import os

from firmware import frame as F
from firmware import record as R
from firmware import roster as roster_mod
from firmware import settings as settings_mod
from firmware.record import const

BATCH = const(64)  # records a frame: 0.9 KB of buffer, 14.9 bytes a record on the air
TIMEOUT_MS = const(10000)  # each network step
WIFI_MS = const(15000)  # to join the network
BACKOFF_MIN_MS = const(5000)
BACKOFF_MAX_MS = const(600000)
QUIET_MS = const(5000)  # a burst of ratings is over when the log rests this long
POLL_MS = const(2000)
_HEAD_LINES = const(32)


class SyncError(Exception):
    pass


def parse_url(url):
    """'http://host:port/path' -> (host, port, path); ValueError if not plain http."""
    if not url.startswith("http://"):
        raise ValueError("sync_url must start with http://")
    rest = url[7:]
    i = rest.find("/")
    hostport, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    host, _, port = hostport.partition(":")
    if not host:
        raise ValueError("sync_url has no host")
    return host, int(port) if port else 80, path


class Link:
    def __init__(self, app, wlan, batch=BATCH, auto=True):
        self.app = app
        self.wlan = wlan  # network.WLAN(STA_IF) on the board; hw/net_sim.SimWLAN on unix
        self.tb = app.tb
        self.auto = auto  # sync on its own (after bursts, on the timer); else only sync_now()
        self.batch = batch
        # an Event, not a ThreadSafeFlag: one more flag in the unix port's poller
        # slows every loop turn (nothing sets it from an IRQ)
        self.kick = asyncio.Event()
        self.busy = False  # one sync at a time (a flag: asyncio.Lock costs heap)
        dev = app.device
        self.error = None  # why this device cannot sync at all (not provisioned)
        try:
            self.dev_id = F.check_id(dev.get("id") or "")
            self.hm = F.Hmac(bytes.fromhex(dev.get("key") or ""))
            if not dev.get("key"):
                raise ValueError("no key")
        except Exception as e:
            self.dev_id = b"?"
            self.hm = None
            self.error = "device not provisioned (device.json id and key): %s" % e
        self.buf = bytearray(F.frame_size(len(self.dev_id), batch))
        # counters (mqtt_as style): what happened, for the status line and tests
        self.ok = 0
        self.fails = 0
        self.frames = 0
        self.sent = 0  # records sent
        self.refused = 0  # answers or config pushes that failed their checks
        self.backoff_ms = 0
        self.retry_at = 0
        self.last_error = None
        self.next_at = 0  # mono ms of the next timed sync
        self._seen_seq = -1
        self._seen_at = 0

    # ---- the supervisor task ----------------------------------------------
    def notify(self):
        """Records were written (a rating): the link syncs once the burst is over."""
        self.kick.set()

    async def run(self):
        tb = self.tb
        while True:
            now = tb.mono_ms()
            await tb.wait(self.kick, now + POLL_MS if self.auto else None)
            self.kick.clear()
            if not self.auto or self.error or not self.app.settings["sync_url"]:
                continue
            now = tb.mono_ms()
            log = self.app.log
            if log.seq != self._seen_seq:
                self._seen_seq = log.seq
                self._seen_at = now
            if now < self.retry_at:
                continue
            burst_over = log.seq > log.acked and now - self._seen_at >= QUIET_MS
            if burst_over or now >= self.next_at:
                await self.sync_now()

    # ---- one sync: as many frames as needed --------------------------------
    async def sync_now(self):
        """Sync everything now; returns a one-line summary."""
        if self.error:
            return "error: " + self.error
        if not self.app.settings["sync_url"]:
            return "error: no sync_url in the settings (the collector's /api/v1/sync URL)"
        for _ in range(TIMEOUT_MS * 3 // 10):  # bounded: a sync in flight ends by its timeouts
            if not self.busy:
                break
            await asyncio.sleep_ms(10)
        if self.busy:
            return "error: a sync is still running"
        self.busy = True
        try:
            return await self._sync_all()
        finally:
            self.busy = False

    async def _sync_all(self):
        log = self.app.log
        sent = frames = 0
        clock = cfg = ""
        err = None
        # bounded: every frame acks at least one record or the loop ends; one more
        # frame carries what the answer itself logged (clock set, new config)
        limit = log.unsynced() // self.batch + 3
        try:
            while frames < limit:
                n, set_clock, what = await self._exchange()
                frames += 1
                sent += n
                if set_clock:
                    clock = ", clock set"
                cfg += what
                if n == 0 or log.seq <= log.acked:
                    break
        except Exception as e:  # any failure: count it, back off, keep the records
            err = e
        now = self.tb.mono_ms()
        if err is None:
            self.ok += 1
            self.backoff_ms = 0
            self.retry_at = 0
            self.last_error = None
            self.next_at = now + self.app.settings["sync_s"] * 1000
            return "ok: sent %d records in %d frame%s, acked up to seq %d%s%s" % (
                sent, frames, "" if frames == 1 else "s", log.acked, clock, cfg)
        self.fails += 1
        self.backoff_ms = min(max(self.backoff_ms * 2, BACKOFF_MIN_MS), BACKOFF_MAX_MS)
        self.retry_at = now + self.backoff_ms
        self.last_error = "%s: %s" % (type(err).__name__, err)
        return "error: sync failed after %d records (%s); acked up to seq %d, retry in %d s" % (
            sent, self.last_error, log.acked, self.backoff_ms // 1000)

    async def _exchange(self):
        """One frame out, one answer back and applied: (records sent, clock set, config)."""
        app = self.app
        log = app.log
        host, port, path = parse_url(app.settings["sync_url"])
        await self._join()
        buf = self.buf
        hs = F.header_size(len(self.dev_id))
        n = 0
        first = log.acked + 1
        last = log.acked
        for r in log.records(log.acked):
            if n == 0:
                first = r[0]
            R.pack_into(buf, hs + n * R.SIZE, r[0], r[1], r[2], r[3], r[4], r[5])
            last = r[0]
            n += 1
            if n >= self.batch:
                break
        nonce = int.from_bytes(os.urandom(4), "little")
        size = F.seal_request(buf, self.hm, self.dev_id, log.boot, first, n,
                              app.settings["version"], app.roster.version, nonce)
        mac = bytes(buf[size - F.MAC_LEN : size])
        body = await self._post(host, port, path, memoryview(buf)[:size])
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
        set_clock = False
        if t:
            known = app.clock.known
            app.core.set_time(t)
            set_clock = not known
        what = self._configure(s, ro)
        app.wake.set()  # the core's deadlines may have moved (clock, settings)
        return n, set_clock, what

    # ---- settings and roster from the collector ------------------------------
    def _configure(self, s, ro):
        """Check both, store both (each file replaced atomically), then apply.
        A bad or failed push changes nothing."""
        if s is None and ro is None:
            return ""
        app = self.app
        try:
            new_s = settings_mod.validate(json.loads(s)) if s is not None else None
            if new_s is not None and not new_s["sync_url"]:
                new_s["sync_url"] = app.settings["sync_url"]  # never cut our own link
            new_r = roster_mod.Roster(ro) if ro is not None else None
        except Exception as e:
            self.refused += 1
            raise SyncError("pushed settings or roster rejected: %s" % e)
        # write both new files first; renames come last so a failure leaves the old ones
        staged = []
        try:
            if new_r is not None:
                staged.append(_stage(app.paths["roster"], ro))
            if new_s is not None:
                staged.append(_stage(app.paths["settings"], json.dumps(new_s)))
        except Exception:
            for tmp, _p in staged:
                _remove(tmp)
            raise
        for tmp, path in staged:
            os.rename(tmp, path)
        if new_s is not None:
            app.settings = new_s
        if new_r is not None:
            app.roster = new_r
        app.core.apply_settings(app.settings, new_r)
        out = ""
        if new_s is not None:
            out += ", settings v%d" % new_s["version"]
        if new_r is not None:
            out += ", roster v%d" % new_r.version
        return out

    # ---- network ----------------------------------------------------------------
    async def _join(self):
        w = self.wlan
        if w is None:
            raise SyncError("no network interface")
        if w.isconnected():
            return
        dev = self.app.device
        w.active(True)
        w.connect(dev.get("ssid"), dev.get("password"))
        for _ in range(WIFI_MS // 100):  # bounded wait for the access point
            if w.isconnected():
                return
            if 200 <= w.status() < 300:  # ESP32: no AP, wrong password, assoc failed
                break
            await asyncio.sleep_ms(100)
        raise SyncError("wifi not connected (status %d)" % w.status())

    async def _post(self, host, port, path, body):
        """HTTP/1.1 POST with Connection: close; returns the answer body."""
        wait = asyncio.wait_for_ms
        reader, writer = await wait(asyncio.open_connection(host, port), TIMEOUT_MS)
        try:
            writer.write(b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: "
                         b"application/octet-stream\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n" % (path.encode(), host.encode(), port,
                                                         len(body)))
            writer.write(body)
            await wait(writer.drain(), TIMEOUT_MS)
            line = await wait(reader.readline(), TIMEOUT_MS)
            parts = line.split()
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
                raise SyncError("no HTTP answer")
            status = int(parts[1])
            length = None
            for _ in range(_HEAD_LINES):
                h = await wait(reader.readline(), TIMEOUT_MS)
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v.strip())
            if length is None or length > F.ANSWER_MAX:
                raise SyncError("answer without a usable Content-Length")
            data = await wait(reader.readexactly(length), TIMEOUT_MS) if length else b""
        finally:
            writer.close()
            try:
                await wait(writer.wait_closed(), TIMEOUT_MS)
            except Exception:
                pass
        if status != 200:
            raise SyncError("collector said %d %s" % (status, data[:120].decode()))
        return data


def _stage(path, data):
    tmp = path + ".new"
    with open(tmp, "wb") as f:
        f.write(data if isinstance(data, (bytes, bytearray)) else data.encode())
    return tmp, path


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
