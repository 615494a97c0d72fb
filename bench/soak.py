"""A bounded soak in compressed time (issue 14, "It must show"): an hour of a hall's
traffic against one `pingjia serve` process over 127.0.0.1, the devices' clocks running
--speed times faster than real time, while the server is stopped and started again twice
(once SIGTERM, once SIGKILL, mid-traffic). Each device behaves as firmware/sync.py does:
a sync after a burst of ratings goes quiet (5 s), one every sync_s (300 s) besides, its
unsynced records from its last ack in frames of 64, and after a failure it backs off
(5 s, doubling, at most 600 s, in its own time) and sends the same records again with a
new nonce. Every rating carries a ticket (a TICKET record before it, as an invitation
gives), so a rating stored twice or lost shows in the tickets too. At the end every
device syncs what is left, and the check: every device's ratings stored once each, its
ack at its last seq. Prints the figures.

    python bench/soak.py [--devices 20] [--seconds 60] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest_scale  # noqa: E402
import pgtemp  # noqa: E402

from firmware import frame, record  # noqa: E402
from host_tools.collector.store import Collector  # noqa: E402

EPOCH_2000 = 946684800
HOUR = 3600
BATCH = 64  # firmware/sync.py _BATCH
QUIET_S = 5  # firmware/sync.py _QUIET_MS: a burst is over
SYNC_S = 300  # firmware/settings.py sync_s
BACKOFF_MIN_S, BACKOFF_MAX_S = 5, 600  # firmware/sync.py _BACKOFF_MIN_MS, _BACKOFF_MAX_MS
REQUEST_S = 10.0  # firmware/sync.py _TIMEOUT_MS, real seconds (the network is real)
RATINGS_AN_HOUR = 30  # a busy window: one every two minutes
LOG_ID = 0x5EED0001
START_S = 60  # real seconds a serve process may take to listen
END_S = 60  # real seconds the devices have to sync what is left after the hour


def fw_now() -> float:
    return time.time() - EPOCH_2000


class Clock:
    """Virtual time (firmware seconds) running `speed` times real time, ending at the real
    now + a little: `pingjia serve` checks times against the real clock, so the hour is
    the one that just went by."""

    def __init__(self, speed: float, span: float = HOUR):
        self.speed = speed
        self.r0 = time.monotonic()
        self.v0 = fw_now() - span

    def v(self) -> float:
        return self.v0 + (time.monotonic() - self.r0) * self.speed

    async def until(self, v: float) -> None:
        wait = (v - self.v()) / self.speed
        if wait > 0:
            await asyncio.sleep(wait)


@dataclass
class Device:
    id: str
    key: bytes
    index: int
    log: list[bytes] = field(default_factory=list)  # record i is seq i + 1
    tickets: list[str] = field(default_factory=list)
    acked: int = 0
    nonce: int = 0
    syncs: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)

    def rate(self, now: int, rng: random.Random) -> None:
        ticket = f"{self.id}-{len(self.tickets) + 1}"
        self.tickets.append(ticket)
        for chunk in record.ticket_chunks(ticket):
            self.log.append(bytes(record.pack(len(self.log) + 1, record.TICKET, *chunk)))
        self.log.append(bytes(record.pack(len(self.log) + 1, record.RATING, rng.randint(1, 4),
                                          0, 1, now)))

    def frame(self, now: int) -> tuple[int, bytes]:
        """The next frame: up to BATCH records from the last ack, a new nonce."""
        first = self.acked + 1
        recs = b"".join(self.log[first - 1:first - 1 + BATCH])
        self.nonce = frame.next_nonce(now, self.nonce, b"")
        return first, frame.request(self.key, self.id, LOG_ID, 1, first, recs, 0, 0,
                                    self.nonce)


IN_FLIGHT = [0]  # syncs under way now (the restarts signal while there is one)


async def post(port: int, src: str, body: bytes) -> tuple[bytes, bytes]:
    IN_FLIGHT[0] += 1
    try:
        return await ingest_scale.post(port, src, body)  # as the firmware posts it
    finally:
        IN_FLIGHT[0] -= 1


async def sync(d: Device, port: int, clock: Clock) -> bool:
    """Send every unsynced record, frame by frame; False at the first failure."""
    while d.acked < len(d.log):
        _first, body = d.frame(int(clock.v()))
        t = time.perf_counter()
        d.syncs += 1
        try:
            head, answer = await asyncio.wait_for(post(port, f"127.0.9.{1 + d.index}", body),
                                                  REQUEST_S)
        except (OSError, asyncio.TimeoutError):
            head, answer = b"", b""
        if not head.startswith(b"HTTP/1.1 200"):
            if head and not head.startswith(b"HTTP/1.1 503"):
                raise SystemExit(f"soak: {d.id} refused: {head[:80]!r}")
            d.failures += 1
            return False
        d.latencies.append(time.perf_counter() - t)
        d.acked = frame.parse_answer(answer, frame.Hmac(d.key), body[-32:])[0]
    return True


async def device_hour(d: Device, port: int, clock: Clock, end_v: float, seed: int) -> None:
    rng = random.Random(seed)
    next_rating = clock.v() + rng.expovariate(RATINGS_AN_HOUR / HOUR)
    next_sync = clock.v() + SYNC_S * rng.random()  # the devices' timers do not tick as one
    backoff = 0.0
    while True:
        now = min(next_rating, next_sync)
        if now >= end_v:
            return
        await clock.until(now)
        if next_rating <= next_sync:
            d.rate(int(clock.v()), rng)
            next_rating = clock.v() + rng.expovariate(RATINGS_AN_HOUR / HOUR)
            if backoff == 0:  # a burst: sync once it has gone quiet (not while backing off)
                next_sync = min(next_sync, clock.v() + QUIET_S)
            continue
        if await sync(d, port, clock):
            backoff = 0.0
            next_sync = clock.v() + SYNC_S
        else:
            backoff = min(BACKOFF_MAX_S, max(BACKOFF_MIN_S, backoff * 2))
            next_sync = clock.v() + backoff


async def last_syncs(devs: list[Device], port: int, clock: Clock) -> None:
    """After the hour: every device sends what is left, retrying (bounded in real time)."""
    async def one(d: Device) -> None:
        end = time.monotonic() + END_S
        while not await sync(d, port, clock) and time.monotonic() < end:
            await asyncio.sleep(0.2)

    await asyncio.gather(*(one(d) for d in devs))


class Server:
    """`pingjia serve` as a process on a fixed port, stopped and started again."""

    def __init__(self, db: str, cwd: str):
        self.db, self.cwd = db, cwd
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen | None = None
        self.down_s: list[float] = []

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "serve", "--db",
                                      self.db, "--port", str(self.port)], cwd=self.cwd,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + START_S
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise SystemExit(f"soak: pingjia serve exited {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise SystemExit(f"soak: pingjia serve did not listen within {START_S} s")

    def stop(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def restart(self, sig: int) -> None:
        t = time.monotonic()
        self.stop(sig)
        self.start()
        self.down_s.append(time.monotonic() - t)


async def restarts(server: Server, seconds: float) -> list[str]:
    """SIGTERM a third of the way in, SIGKILL at two thirds, each while a sync is in
    flight (waiting a few seconds for one at most); each started again at once. What
    was signalled, and how many syncs were in flight then."""
    t0 = time.monotonic()
    done = []
    for frac, sig in ((1 / 3, signal.SIGTERM), (2 / 3, signal.SIGKILL)):
        await asyncio.sleep(max(0.0, t0 + seconds * frac - time.monotonic()))
        end = time.monotonic() + 5
        while IN_FLIGHT[0] == 0 and time.monotonic() < end:
            await asyncio.sleep(0.001)
        caught = IN_FLIGHT[0]
        await asyncio.to_thread(server.restart, sig)
        done.append(f"{signal.Signals(sig).name} ({caught} in flight)")
    return done


@dataclass
class Result:
    backend: str
    devices: int
    ratings: int
    syncs: int
    failures: int
    down_s: list[float]
    signals: list[str]
    p50: float
    p99: float
    lost: int
    doubled: int
    unacked: int
    seconds: float

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.unacked) and len(self.signals) == 2


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def check(db: str, devs: list[Device]) -> tuple[int, int, int]:
    """(lost, doubled, devices not acked to their last seq) read back from the database:
    a rating is known by its ticket, so one stored twice or lost shows whatever its seq."""
    c = Collector(db)
    try:
        got: dict[str, list[str]] = {}
        for dev, ticket in c.db.all("SELECT device, ticket FROM events WHERE kind = 'rating'"):
            got.setdefault(dev, []).append(ticket)
        recs = dict(c.db.all("SELECT device, COUNT(*) FROM records GROUP BY device"))
    finally:
        c.db.close()
    lost = doubled = 0
    for d in devs:
        mine = got.get(d.id, [])
        lost += len(set(d.tickets) - set(mine))
        doubled += len(mine) - len(set(mine)) + max(0, recs.get(d.id, 0) - len(d.log))
    return lost, doubled, sum(d.acked != len(d.log) for d in devs)


def soak(backend: str, db: str, tmp: str, devices: int, seconds: float) -> Result:
    c = Collector(db)
    try:
        devs = [Device(f"s{i:03d}", bytes.fromhex(c.add_device(f"s{i:03d}", f"S{i:02d}")), i)
                for i in range(devices)]
    finally:
        c.db.close()
    server = Server(db, tmp)
    server.start()
    t0 = time.monotonic()
    try:
        clock = Clock(HOUR / seconds)
        end_v = clock.v() + HOUR

        async def hour() -> list[str]:
            killer = asyncio.create_task(restarts(server, seconds))
            await asyncio.gather(*(device_hour(d, server.port, clock, end_v, i)
                                   for i, d in enumerate(devs)))
            signals = await killer
            await last_syncs(devs, server.port, clock)
            return signals

        signals = asyncio.run(hour())
    finally:
        server.stop(signal.SIGTERM)
    took = time.monotonic() - t0
    lost, doubled, unacked = check(db, devs)
    lat = [x for d in devs for x in d.latencies]
    return Result(backend, devices, sum(len(d.tickets) for d in devs), sum(d.syncs for d in devs),
                  sum(d.failures for d in devs), server.down_s, signals, pct(lat, 0.5),
                  pct(lat, 0.99), lost, doubled, unacked, took)


def report(r: Result, seconds: float) -> None:
    down = ", ".join(f"{s} {t:.1f} s" for s, t in zip(r.signals, r.down_s, strict=False))
    print(f"{r.backend:10}  {r.devices} devices, {r.ratings} ratings in an hour run in "
          f"{seconds:g} s ({HOUR / seconds:.0f}x), {r.seconds:.1f} s "
          f"in all; stopped and started again: {down or 'NOT'}")
    print(f"{'':10}  {r.syncs} frames sent, {r.failures} failed and sent again "
          f"({r.failures / max(r.syncs, 1):.1%}); sync latency p50 {r.p50 * 1000:.1f} ms, "
          f"p99 {r.p99 * 1000:.1f} ms")
    print(f"{'':10}  lost {r.lost}, doubled {r.doubled}, devices not acked to their last "
          f"seq {r.unacked}: {'OK' if r.ok else 'FAILED'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=20, help="a hall's windows")
    ap.add_argument("--seconds", type=float, default=60, help="real seconds for the hour")
    ap.add_argument("--backends", default="sqlite,postgresql")
    a = ap.parse_args()
    backends = a.backends.split(",")
    print("== soak: an hour of a hall in compressed time, `pingjia serve` stopped twice "
          "(SIGTERM, then SIGKILL) and started again; devices retry as the firmware does")
    results = []
    with tempfile.TemporaryDirectory(prefix="pingjia-soak-") as tmp:
        if "sqlite" in backends:
            results.append(soak("sqlite", os.path.join(tmp, "soak.db"), tmp, a.devices,
                                a.seconds))
            report(results[-1], a.seconds)
        if "postgresql" in backends and pgtemp.available():
            with pgtemp.PgServer() as pg:
                results.append(soak("postgresql", pg.database("soak"), tmp, a.devices,
                                    a.seconds))
            report(results[-1], a.seconds)
    ok = all(r.ok for r in results)
    print("soak:", "nothing lost or doubled" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
