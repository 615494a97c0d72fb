"""A province's morning at one collector (issue 14, "It must show"): 500 devices, each
speaking the real frame protocol (firmware/frame.py: signed frames, nonces from the
device's clock, answers checked by their MAC, acks), each sending a day of ratings (300)
in frames of the firmware's batch (64 records, firmware/sync.py), a new connection a
frame as the firmware posts, from an address of its own, to one `pingjia serve` process
over 127.0.0.1; on SQLite and on PostgreSQL in the same run. Prints ratings/s, p50/p99
sync latency, retries, and checks that nothing is lost or doubled: every device's stored
ratings equal what it sent, its acks cover them, and no record is stored twice.

Concurrency is bounded (at most --inflight requests at once, every device's frames in
order as a device sends them); every request has a deadline and a bounded number of
retries, so the run is bounded in minutes.

    python bench/ingest_scale.py [--devices 500] [--ratings 300] [--inflight 64]
                                 [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pgtemp  # noqa: E402

from firmware import frame, record  # noqa: E402
from host_tools.collector.server import SYNC_PATH  # noqa: E402
from host_tools.collector.store import Collector  # noqa: E402

EPOCH_2000 = 946684800
BATCH = 64  # firmware/sync.py _BATCH: records a frame
LOG_ID = 0x5EED0001
TRIES = 20  # a device sends a frame again after a failure, at most this often here
REQUEST_S = 60.0  # one request's deadline
WINDOWS_PER_HALL = 20


def fw_now() -> int:
    """The wall clock in the firmware's time (seconds since 2000 UTC): `pingjia serve`
    runs on the real clock, so the devices' clocks and rating times follow it."""
    return int(time.time()) - EPOCH_2000


def address(i: int) -> str:
    """The i-th loopback address a device speaks from (never 127.0.0.1): the server's
    per-address limits see a hall of machines, as they would."""
    return f"127.{1 + i // 62500}.{1 + i // 250 % 250}.{1 + i % 250}"


@dataclass
class Device:
    id: str
    key: bytes
    src: str
    index: int
    frames: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # (first, records, body)
    nonce: int = 0
    acked: int = 0
    retries: int = 0
    refused: list[str] = field(default_factory=list)


def make_devices(c: Collector, n: int, per: int, batch: int) -> list[Device]:
    """Register n devices in halls of WINDOWS_PER_HALL windows and build each one's day:
    `per` ratings spread over the last 8 hours, in signed frames of `batch` records with
    nonces from its clock, as firmware/sync.py sends a backlog."""
    now = fw_now()
    devs = []
    for i in range(n):
        hall, win = divmod(i, WINDOWS_PER_HALL)
        dev_id = f"d{i:04d}"
        key = bytes.fromhex(c.add_device(dev_id, f"H{hall:02d}-W{win:02d}", None,
                                         f"hall{hall:02d}"))
        d = Device(dev_id, key, address(i), i)
        for first in range(1, per + 1, batch):
            last = min(per, first + batch - 1)
            recs = b"".join(record.pack(s, record.RATING, 1 + (s + i) % 4, 0, 1,
                                        now - 8 * 3600 + s * (8 * 3600 // per))
                            for s in range(first, last + 1))
            d.nonce = frame.next_nonce(now, d.nonce, b"")
            d.frames.append((first, recs, frame.request(key, dev_id, LOG_ID, 1, first, recs,
                                                        0, 0, d.nonce)))
        devs.append(d)
    return devs


async def post(port: int, src: str, body: bytes) -> tuple[bytes, bytes]:
    """One sync as the firmware posts it: a connection of its own, Connection: close."""
    r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
    try:
        w.write(b"POST %s HTTP/1.1\r\nHost: collector\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n" % (SYNC_PATH.encode(), len(body)) + body)
        await w.drain()
        data = await r.read()
    finally:
        w.close()
    head, _, answer = data.partition(b"\r\n\r\n")
    return head, answer


async def run_device(ports: list[int], d: Device, gate: asyncio.Semaphore,
                     latencies: list[float]) -> None:
    """The device's frames in order; a frame that fails (503, a cut connection) is sent
    again after a backoff, with the same records and a new nonce, as the firmware does.
    With several serve processes, each frame and attempt goes to the next one, as a
    round-robin proxy in front would send them."""
    turn = d.index
    for first, recs, body in d.frames:
        for attempt in range(TRIES):
            turn += 1
            port = ports[turn % len(ports)]
            if attempt:  # a new attempt is a new request: a new nonce, a new MAC
                d.nonce = frame.next_nonce(fw_now(), d.nonce, b"")
                body = frame.request(d.key, d.id, LOG_ID, 1, first, recs, 0, 0, d.nonce)
            async with gate:
                t = time.perf_counter()
                try:
                    head, answer = await asyncio.wait_for(post(port, d.src, body), REQUEST_S)
                except (OSError, asyncio.TimeoutError) as e:
                    head, answer = f"HTTP/1.1 000 {type(e).__name__}".encode(), b""
                dt = time.perf_counter() - t
            if head.startswith(b"HTTP/1.1 200"):
                latencies.append(dt)
                d.acked = frame.parse_answer(answer, frame.Hmac(d.key), body[-32:])[0]
                break
            d.retries += 1
            if not head.startswith((b"HTTP/1.1 503", b"HTTP/1.1 000")):
                d.refused.append(head.split(b"\r\n")[0].decode(errors="replace"))
                break  # refused for good: the check below reports it
            await asyncio.sleep(min(2.0, 0.1 * 2 ** attempt))


async def run_all(ports: list[int], devs: list[Device], inflight: int) -> list[float]:
    gate = asyncio.Semaphore(inflight)
    latencies: list[float] = []
    await asyncio.gather(*(run_device(ports, d, gate, latencies) for d in devs))
    return latencies


def serve(db: str, cwd: str) -> tuple[subprocess.Popen, int]:
    """`pingjia serve --db DB` as a process, once it listens."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "serve", "--db", db,
                          "--port", str(port)], cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if p.poll() is not None:
            raise SystemExit(f"pingjia serve exited {p.returncode}: {p.stderr.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p, port
        except OSError:
            time.sleep(0.1)
    p.kill()
    raise SystemExit("pingjia serve did not listen within 60 s")


def stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=10)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


@dataclass
class Result:
    backend: str
    rate: float
    seconds: float
    p50: float
    p99: float
    syncs: int
    retries: int
    lost: int
    doubled: int
    bad_acks: int
    refused: list[str]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.bad_acks or self.refused)


def check(db: str, devs: list[Device], per: int) -> tuple[int, int, int]:
    """(lost, doubled, devices whose ack does not cover their day) read back from the
    database once the server has stopped."""
    c = Collector(db)
    try:
        got = dict(c.db.all("SELECT device, COUNT(*) FROM events WHERE kind = 'rating' "
                            "GROUP BY device"))
        recs = dict(c.db.all("SELECT device, COUNT(*) FROM records GROUP BY device"))
    finally:
        c.db.close()
    lost = sum(max(0, per - got.get(d.id, 0)) for d in devs)
    # (device, seq) is the records' key, so a double would show as more rows than sent
    doubled = sum(max(0, got.get(d.id, 0) - per) + max(0, recs.get(d.id, 0) - per)
                  for d in devs)
    bad_acks = sum(d.acked != per for d in devs)
    return lost, doubled, bad_acks


def run_backend(backend: str, db: str, tmp: str, a: argparse.Namespace,
                serves: int = 1) -> Result:
    c = Collector(db)
    try:
        devs = make_devices(c, a.devices, a.ratings, BATCH)
    finally:
        c.db.close()
    procs = []
    try:
        for _ in range(serves):
            procs.append(serve(db, tmp))
        t0 = time.perf_counter()
        lat = asyncio.run(run_all([port for _p, port in procs], devs, a.inflight))
        dt = time.perf_counter() - t0
    finally:
        for p, _port in procs:
            stop(p)
    lost, doubled, bad_acks = check(db, devs, a.ratings)
    return Result(backend, a.devices * a.ratings / dt, dt, pct(lat, 0.5), pct(lat, 0.99),
                  len(lat), sum(d.retries for d in devs), lost, doubled, bad_acks,
                  [f"{d.id}: {r}" for d in devs for r in d.refused][:5])


def report(results: list[Result], a: argparse.Namespace) -> None:
    base = results[0]
    print(f"== ingest at scale: {a.devices} devices x {a.ratings} ratings, frames of {BATCH} "
          f"records, a connection a frame, at most {a.inflight} requests in flight, one "
          f"`pingjia serve` process on 127.0.0.1 (and {a.serves} on one PostgreSQL database, "
          "each frame to the next as a round-robin proxy sends them)")
    for r in results:
        vs = "" if r is base else f" ({r.rate / base.rate:.2f}x {base.backend}'s)"
        print(f"{r.backend:12}  {r.rate:9,.0f} ratings/s{vs} in {r.seconds:.1f} s; "
              f"sync latency p50 {r.p50 * 1000:.1f} ms, p99 {r.p99 * 1000:.1f} ms over "
              f"{r.syncs} syncs; retries {r.retries}")
        print(f"{'':12}  lost {r.lost}, doubled {r.doubled}, devices whose acks do not cover "
              f"their day {r.bad_acks}{', refused: ' + '; '.join(r.refused) if r.refused else ''}"
              f": {'OK' if r.ok else 'FAILED'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--ratings", type=int, default=300, help="a device's day")
    ap.add_argument("--inflight", type=int, default=64, help="requests at once, at most")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--serves", type=int, default=2,
                    help="PostgreSQL also with this many serve processes (1: not)")
    a = ap.parse_args()
    backends = a.backends.split(",")
    results = []
    with tempfile.TemporaryDirectory(prefix="pingjia-scale-") as tmp:
        if "sqlite" in backends:
            results.append(run_backend("sqlite", os.path.join(tmp, "scale.db"), tmp, a))
        if "postgresql" in backends:
            if not pgtemp.available():
                print("ingest_scale: no PostgreSQL server binaries: PostgreSQL skipped")
            else:
                with pgtemp.PgServer() as pg:
                    results.append(run_backend("postgresql", pg.database("scale"), tmp, a))
                    if a.serves > 1:  # the path to a province: several processes, one database
                        results.append(run_backend(f"pg, {a.serves} serve", pg.database(
                            "scale2"), tmp, a, a.serves))
    report(results, a)
    ok = all(r.ok for r in results)
    print("ingest_scale:", "nothing lost or doubled" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
