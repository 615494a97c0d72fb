"""Alerts and webhooks, measured (not part of `make bench`; run it alone):

    .venv/bin/python bench/bench_alerts.py [--db postgresql://...]

- the alert scan over freshly ingested ratings (5% 不满意), against the ingest of the same
  frames in the same run: what a scan adds to the work of a sync;
- webhook deliveries per second to a receiver on 127.0.0.1 (signed, claimed and recorded
  in the database), against plain POSTs of the same bodies from as many threads (no
  database, no signature) in the same run."""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware import frame, record  # noqa: E402
from host_tools.collector import alerts, webhooks  # noqa: E402
from host_tools.collector.store import Collector  # noqa: E402

DEVICES = 20
FRAMES = 10  # per device
PER_FRAME = 500
T0 = 848700000  # 2026-11-23 06:00 +08:00, in seconds since 2000


class Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True


def frames(key: bytes, dev: str) -> list[bytes]:
    out, seq = [], 0
    for f in range(FRAMES):  # one log, frames in order
        recs = b""
        first = seq + 1
        for _i in range(PER_FRAME):
            seq += 1
            level = 4 if seq % 20 == 0 else 1 + seq % 3
            recs += bytes(record.pack(seq, record.RATING, level, 0, 1, T0 + seq * 7))
        out.append(frame.request(key, dev, 0x5EED0001, 1, first, recs, 0, 0, T0 + seq + f))
    return out


def bench_scan(db: str) -> None:
    c = Collector(db, lambda: T0 + 86400)
    todo = [frames(bytes.fromhex(c.add_device(f"d{i}", f"W{i:02d}")), f"d{i}")
            for i in range(DEVICES)]
    t = time.perf_counter()
    for device_frames in todo:
        for body in device_frames:
            c.ingest(body)
    ingest_s = time.perf_counter() - t
    t = time.perf_counter()
    raised = alerts.scan_new(c)
    scan_s = time.perf_counter() - t
    t = time.perf_counter()
    alerts.scan_time(c)
    timed_s = time.perf_counter() - t
    n = DEVICES * FRAMES * PER_FRAME
    print(f"ingest {n} ratings: {ingest_s:.2f} s ({n / ingest_s:.0f}/s)")
    print(f"alert scan of them: {scan_s:.3f} s, {len(raised)} alerts raised "
          f"({scan_s / ingest_s:.1%} of the ingest)")
    print(f"time-based scan of {DEVICES} devices: {timed_s * 1000:.1f} ms")
    c.db.close()


def bench_delivery(db: str, n: int = 400) -> None:
    srv = Server(("127.0.0.1", 0), Sink)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/hook"
    c = Collector(db, lambda: T0 + 86400)
    c.add_device("dv", "B01") if not c.db.one("SELECT 1 FROM devices WHERE id = 'dv'") else None
    webhooks.add(c, "main", url)
    with c.db.transaction():
        for i in range(n):
            alerts.raise_alert(c, alerts.Finding("dissatisfied", f"bench:{i}", "main", "B01",
                                                 "dv", "B01 窗口收到一条不满意评价"))
    w = webhooks.Deliverer(c)
    t = time.perf_counter()
    for _ in range(n):  # bounded
        if w.run_once() == 0:
            break
    sent_s = time.perf_counter() - t
    done = c.db.value("SELECT COUNT(*) FROM outbox WHERE state = 'done'")
    body = b'{"id":"1-1","alert":{"text":"B01 \xe7\xaa\x97"}}' * 4

    def plain(_i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
        conn.request("POST", "/hook", body, {"Content-Type": "application/json"})
        conn.getresponse().read()
        conn.close()

    t = time.perf_counter()
    with ThreadPoolExecutor(webhooks.SENDERS) as pool:
        list(pool.map(plain, range(n)))
    plain_s = time.perf_counter() - t
    print(f"webhook deliveries: {done}/{n} in {sent_s:.2f} s ({done / sent_s:.0f}/s); plain "
          f"POSTs {n / plain_s:.0f}/s; ratio {(done / sent_s) / (n / plain_s):.2f}")
    srv.shutdown()
    srv.server_close()
    c.db.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--db", help="a postgresql:// URL of an empty database (default: SQLite)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        for name, db in (("scan", args.db or f"{d}/scan.db"),
                         ("delivery", args.db or f"{d}/delivery.db")):
            print(f"-- {name} on {'PostgreSQL' if args.db else 'SQLite'}")
            (bench_scan if name == "scan" else bench_delivery)(db)


if __name__ == "__main__":
    main()
