"""Sync budgets (design.md section 8): bytes on the air per rating, ratings/s
ingested over HTTP against a naive one-request-per-rating JSON baseline run in
the same process on the same storage, and 200 devices syncing at once.
Everything runs on 127.0.0.1; every loop is bounded. Prints figures and ratios.

    python bench/bench_sync.py [--frames 200] [--naive 2000] [--devices 200]
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
        body = frame.request(b"k" * 16, "hall1-B01x", 7, 7, 1, ratings(1, batch), 3, 2, 1)
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
    for i in range(frames):
        dev, key = devices[i % len(devices)]
        first = seqs[dev] + 1
        seqs[dev] += per
        jobs[i % threads].append(frame.request(key, dev, 7, 1, first, ratings(first, per), 0, 0, i))
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


async def one_device(port: int, dev: str, key: bytes, frames: int, per: int) -> int:
    """A device syncing: a new connection per frame, as the firmware does."""
    acked = 0
    for i in range(frames):
        first = acked + 1
        body = frame.request(key, dev, 7, 1, first, ratings(first, per), 0, 0, i)
        for _attempt in range(5):  # bounded retries, as the device backs off
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
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
    return await asyncio.gather(*(one_device(port, d, k, frames, per) for d, k in devs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200, help="frames of 256 ratings to ingest")
    ap.add_argument("--naive", type=int, default=2000, help="baseline requests")
    ap.add_argument("--devices", type=int, default=200)
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
    print("bench_sync:", "all budgets met" if ok else "BUDGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
