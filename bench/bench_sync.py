"""Sync budgets (design.md section 8): bytes on the air per rating, ratings/s
ingested over HTTP against a naive one-request-per-rating JSON baseline run in
the same process on the same storage, 200 devices syncing at once, and a device's
sync latency (p50, p99) with 1 000 slow connections held open against the same
server idle, in the same run (issue 12). Everything runs on 127.0.0.1 (the crowd and
the devices speak from other loopback addresses, as machines of a hall would); every
loop is bounded. Prints figures and ratios.

    python bench/bench_sync.py [--frames 200] [--naive 2000] [--devices 200]
                               [--slow 1000] [--syncs 300]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starlette.applications import Starlette  # noqa: E402
from starlette.concurrency import run_in_threadpool  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from firmware import frame, record  # noqa: E402
from firmware.clock import parse_iso  # noqa: E402
from host_tools.collector.server import SYNC_PATH, ServerThread  # noqa: E402
from host_tools.collector.store import Collector  # noqa: E402

T0 = parse_iso("2026-11-23T09:00:00+08:00")
NOW = T0 + 3600  # the collectors' clock here; the devices' nonces follow it
AIR_BUDGET = 20  # bytes a rating
HEADER_BUDGET = 64
RATE_BUDGET = 20_000
RATIO_BUDGET = 10


def ratings(first: int, n: int) -> bytes:
    return b"".join(record.pack(first + i, record.RATING, 1 + i % 4, 0, 1, T0 + first + i)
                    for i in range(n))


def air() -> dict:
    out = {}
    for batch in (64, 256):
        body = frame.request(b"k" * 16, "hall1-B1", 7, 7, 1, ratings(1, batch), 3, 2, 1)
        header = len(body) - batch * record.SIZE
        out[batch] = (header, (len(body) - header) / batch, len(body) / batch)
    return out


class Poster:
    """One keep-alive HTTP connection."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, path: str, body: bytes, ctype: str) -> tuple[int, bytes]:
        self.conn.request("POST", path, body, {"Content-Type": ctype})
        r = self.conn.getresponse()
        return r.status, r.read()


def bench_frames(port: int, devices: list[tuple[str, bytes]], frames: int, per: int,
                 threads: int = 4) -> float:
    """ratings/s: frames of `per` ratings, spread over devices and threads."""
    jobs: list[list[bytes]] = [[] for _ in range(threads)]
    seqs = {d: 0 for d, _k in devices}
    nonces = {d: 0 for d, _k in devices}
    for i in range(frames):
        dev, key = devices[i % len(devices)]
        first = seqs[dev] + 1
        seqs[dev] += per
        nonces[dev] = frame.next_nonce(NOW, nonces[dev], b"")  # as a device makes them
        jobs[i % threads].append(frame.request(key, dev, 7, 1, first, ratings(first, per), 0, 0,
                                               nonces[dev]))
    errors: list[str] = []

    def run(bodies: list[bytes]) -> None:
        p = Poster(port)
        for b in bodies:
            s, text = p.post(SYNC_PATH, b, "application/octet-stream")
            if s != 200:
                errors.append(f"{s} {text[:80]!r}")

    ts = [threading.Thread(target=run, args=(j,)) for j in jobs]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"bench: frames refused: {errors[:3]}")
    return frames * per / dt


def naive_app(c: Collector) -> Starlette:
    """The baseline: one rating per request, JSON, one transaction each."""

    def store(d: dict) -> None:
        with c.db.transaction():
            c.db.execute("INSERT INTO records (device, seq, kind, val, arg, staff, time, boot, "
                         "received) VALUES (?, ?, ?, ?, 0, ?, ?, 1, ?) "
                         "ON CONFLICT (device, seq) DO NOTHING",
                         (d["device"], d["seq"], record.RATING, d["level"], d["staff"], d["time"],
                          d["time"]))
            c.db.execute("INSERT INTO events (device, seq, kind, win, slot, level, mode, boot, t) "
                         "VALUES (?, ?, 'rating', 'N01', ?, ?, 0, 1, ?) "
                         "ON CONFLICT (device, seq) DO NOTHING",
                         (d["device"], d["seq"], d["staff"], d["level"], d["time"]))

    async def rating(request: Request) -> JSONResponse:
        d = json.loads(await request.body())
        await run_in_threadpool(store, d)
        return JSONResponse({"ok": True, "seq": d["seq"]})

    return Starlette(routes=[Route("/naive/rating", rating, methods=["POST"])])


def bench_naive(port: int, n: int, threads: int = 4) -> float:
    def run(k: int) -> None:
        p = Poster(port)
        for i in range(k, n, threads):
            body = json.dumps({"device": "naive-1", "seq": i + 1, "level": 1 + i % 4,
                               "staff": 1, "time": T0 + i}).encode()
            s, _ = p.post("/naive/rating", body, "application/json")
            assert s == 200

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return n / (time.perf_counter() - t0)


def address(i: int) -> str:
    """The i-th loopback address a machine of the hall speaks from (never 127.0.0.1)."""
    return f"127.{1 + i // 62500}.{1 + i // 250 % 250}.{1 + i % 250}"


async def one_device(port: int, dev: str, key: bytes, frames: int, per: int,
                     src: str = "127.0.0.1") -> int:
    """A device syncing: a new connection per frame, as the firmware does."""
    acked = 0
    nonce = 0
    for _i in range(frames):
        first = acked + 1
        nonce = frame.next_nonce(NOW, nonce, b"")
        body = frame.request(key, dev, 7, 1, first, ratings(first, per), 0, 0, nonce)
        for _attempt in range(5):  # bounded retries, as the device backs off
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(src, 0)), 30)
                w.write(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                        b"Connection: close\r\n\r\n" % (SYNC_PATH.encode(), len(body)) + body)
                await w.drain()
                data = await asyncio.wait_for(r.read(), 60)
                w.close()
                head, _, ans = data.partition(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise OSError(head[:40])
                acked = frame.parse_answer(ans, frame.Hmac(key), body[-32:])[0]
                break
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.2)
    return acked


async def many_devices(port: int, devs: list[tuple[str, bytes]], frames: int, per: int) -> list:
    # each device from an address of its own, as on the hall's network
    return await asyncio.gather(*(one_device(port, d, k, frames, per, address(i))
                                  for i, (d, k) in enumerate(devs)))


class Crowd:
    """`n` slow connections held open from 40 addresses: a third idle, a third dripping
    a request head, a third dripping a sync body; one thread drips a byte into each every
    second and opens a new one for each the server sheds (its deadlines)."""

    def __init__(self, port: int, n: int):
        import socket

        self.port, self.n, self.socket = port, n, socket
        self.conns: list = [None] * n
        self.opened = self.shed = 0
        self.stop = threading.Event()
        for i in range(n):
            self._open(i)
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()

    def _open(self, i: int) -> None:
        s = self.socket.socket()
        s.bind((f"127.0.{1 + i % 40}.{1 + i // 40 % 250}", 0))
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", self.port))
            kind = i % 3
            if kind == 1:
                s.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            elif kind == 2:
                s.send(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 14000\r\n\r\nPJ"
                       % SYNC_PATH.encode())
            s.setblocking(False)
        except OSError:
            s.close()
            s = None
        self.conns[i] = s
        self.opened += 1

    def _drip(self) -> None:
        while not self.stop.wait(1.0):
            for i, s in enumerate(self.conns):
                if self.stop.is_set():
                    return
                alive = s is not None
                if alive:
                    try:
                        if s.recv(1024) == b"":
                            alive = False
                    except BlockingIOError:
                        pass
                    except OSError:
                        alive = False
                if alive and i % 3:
                    try:
                        s.send(b"x")
                    except OSError:
                        alive = False
                if not alive:
                    if s is not None:
                        s.close()
                        self.shed += 1
                    self._open(i)

    def held(self) -> int:
        return sum(s is not None for s in self.conns)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        for s in self.conns:
            if s is not None:
                s.close()


_NONCES: dict[str, int] = {}  # the last nonce of each device, across calls


def sync_latencies(port: int, dev: str, key: bytes, n: int, first: int) -> list[float]:
    """Seconds for each of n syncs of 64 ratings (a new connection each, as the device
    posts), one after the other, from the device's own address."""
    import socket

    out = []
    for i in range(n):
        f = first + i * 64
        nonce = _NONCES[dev] = frame.next_nonce(NOW, _NONCES.get(dev, 0), b"")
        body = frame.request(key, dev, 7, 1, f, ratings(f, 64), 0, 0, nonce)
        t = time.perf_counter()
        s = socket.socket()
        s.bind(("127.0.250.1", 0))
        s.settimeout(30)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(b"POST %s HTTP/1.0\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                      % (SYNC_PATH.encode(), len(body)) + body)
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
        finally:
            s.close()
        out.append(time.perf_counter() - t)
        head, _, ans = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"bench: sync refused: {head[:60]!r}")
        frame.parse_answer(ans, frame.Hmac(key), body[-32:])
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


LATENCY_BUDGET = 2.0  # s: a sync answers within this with the crowd there (issue 12)


def latency(tmp: Path, slow: int, syncs: int) -> bool:
    """One server, as pingjia serve runs it: the same device's syncs idle, then with
    `slow` slow connections held open."""
    from host_tools.collector.limits import Limits, raise_open_files

    c = Collector(str(tmp / "latency.db"), lambda: NOW)
    key = bytes.fromhex(c.add_device("lat-1", "B01"))
    srv = ServerThread(c, limits=Limits(max_connections=raise_open_files()))
    try:
        sync_latencies(srv.port, "lat-1", key, 20, 1)  # warm up
        idle = sync_latencies(srv.port, "lat-1", key, syncs, 1 + 20 * 64)
        crowd = Crowd(srv.port, slow)
        try:
            time.sleep(1.0)
            held = crowd.held()
            counted = srv.limits.counts.total
            busy = sync_latencies(srv.port, "lat-1", key, syncs, 1 + (20 + syncs) * 64)
            held_after = crowd.held()
        finally:
            crowd.close()
    finally:
        srv.stop()
    want = (20 + 2 * syncs) * 64
    got = c.db.value("SELECT COUNT(*) FROM events WHERE device = 'lat-1'")
    good = got == want and pct(busy, 0.99) < LATENCY_BUDGET and counted >= slow * 0.95
    print(f"== sync latency: one device, {syncs} syncs of 64 ratings each (a connection a "
          "sync), the same server")
    print(f"idle server:              p50 {pct(idle, 0.5) * 1000:6.1f} ms, "
          f"p99 {pct(idle, 0.99) * 1000:6.1f} ms")
    print(f"{slow} slow connections open: p50 {pct(busy, 0.5) * 1000:6.1f} ms, "
          f"p99 {pct(busy, 0.99) * 1000:6.1f} ms ({pct(busy, 0.5) / pct(idle, 0.5):.2f}x, "
          f"{pct(busy, 0.99) / pct(idle, 0.99):.2f}x); held {held} then {held_after}, the "
          f"server counted {counted}; budget p99 < {LATENCY_BUDGET:g} s, stored {got} of "
          f"{want}: {'OK' if good else 'MISSED'}")
    return good


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200, help="frames of 256 ratings to ingest")
    ap.add_argument("--naive", type=int, default=2000, help="baseline requests")
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--slow", type=int, default=1000, help="slow connections held open")
    ap.add_argument("--syncs", type=int, default=300, help="syncs timed, idle and crowded")
    ap.add_argument("--dir", help="where the databases go (default: the system temp dir)")
    a = ap.parse_args()
    ok = True
    print("== air: bytes a rating in a sync batch (HTTP head not counted)")
    for batch, (header, per, total) in air().items():
        good = per <= AIR_BUDGET and header <= HEADER_BUDGET
        ok &= good
        print(f"batch {batch:3d}: header+MAC {header} B (budget {HEADER_BUDGET}), "
              f"{per:.1f} B a rating (budget {AIR_BUDGET}), {total:.2f} B a rating all in "
              f"{'OK' if good else 'OVER'}")
    with tempfile.TemporaryDirectory(prefix="pingjia-bench-", dir=a.dir) as tmp:
        c = Collector(str(Path(tmp) / "bench.db"), lambda: T0 + 3600)
        devs = [(f"b{i:03d}", bytes.fromhex(c.add_device(f"b{i:03d}", "B01")))
                for i in range(8)]
        srv = ServerThread(c)
        try:
            rate = bench_frames(srv.port, devs, a.frames, 256)
        finally:
            srv.stop()
        c2 = Collector(str(Path(tmp) / "naive.db"), lambda: T0 + 3600)
        import uvicorn

        from host_tools.collector import server

        class NaiveThread(server.ServerThread):
            def __init__(self) -> None:
                self.collector = c2
                import socket

                self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
                self.sock.bind(("127.0.0.1", 0))
                self.host, self.port = self.sock.getsockname()[:2]
                self.server = uvicorn.Server(uvicorn.Config(
                    naive_app(c2), log_level="warning", access_log=False, lifespan="off"))
                self.thread = threading.Thread(target=self._run, daemon=True)
                self.thread.start()
                for _ in range(500):
                    if self.server.started:
                        break
                    time.sleep(0.01)

        nsrv = NaiveThread()
        try:
            base = bench_naive(nsrv.port, a.naive)
        finally:
            nsrv.stop()
        stored = c.db.value("SELECT COUNT(*) FROM events WHERE kind = 'rating'")
        assert stored == a.frames * 256, stored
        ratio = rate / base
        good = rate >= RATE_BUDGET and ratio >= RATIO_BUDGET
        ok &= good
        print("== ingest over HTTP (127.0.0.1, SQLite, synchronous=FULL, 4 client threads)")
        print(f"batched frames: {rate:,.0f} ratings/s ({a.frames} frames of 256)")
        print(f"naive baseline: {base:,.0f} ratings/s (one JSON request and commit a rating)")
        print(f"ratio {ratio:.1f}x (budget >= {RATIO_BUDGET}x), "
              f"rate budget >= {RATE_BUDGET:,}/s: {'OK' if good else 'UNDER'}")

        c3 = Collector(str(Path(tmp) / "many.db"), lambda: T0 + 3600)
        many = [(f"m{i:03d}", bytes.fromhex(c3.add_device(f"m{i:03d}", f"W{i % 50:02d}")))
                for i in range(a.devices)]
        srv3 = ServerThread(c3)
        try:
            t0 = time.perf_counter()
            acks = asyncio.run(many_devices(srv3.port, many, 3, 50))
            dt = time.perf_counter() - t0
        finally:
            srv3.stop()
        got = c3.db.value("SELECT COUNT(*) FROM events WHERE kind = 'rating'")
        want = a.devices * 150
        lost = want - got
        good = lost == 0 and all(x == 150 for x in acks)
        ok &= good
        print(f"== {a.devices} devices syncing at once (3 frames of 50 each, a connection "
              f"a frame)")
        print(f"stored {got} of {want} ratings, lost {lost}, every device acked: "
              f"{all(x == 150 for x in acks)}, {dt:.1f} s: {'OK' if good else 'LOST'}")
        ok &= latency(Path(tmp), a.slow, a.syncs)
    print("bench_sync:", "all budgets met" if ok else "BUDGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
