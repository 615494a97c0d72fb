"""Limits that hold under abuse (host_tools/collector/limits.py): idle, slow and garbage
connections, on 127.0.0.1 only (the attackers speak from other loopback addresses,
127.0.x.y, as a crowd of machines would). Every wait here is bounded."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import select
import socket
import time
from pathlib import Path

import pytest

from firmware import frame, record
from host_tools.collector.limits import Limits, RateLimited
from host_tools.collector.server import SYNC_PATH


def connect(port: int, src: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s


def closed_by_server(s: socket.socket) -> bool:
    """The server closed (or reset) it; what it sent first is read and dropped."""
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset


def wait_until(what, seconds: float, step: float = 0.1) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if what():
            return True
        time.sleep(step)
    return what()


def proc_stats(pid: int) -> tuple[int, int]:
    """(resident KB, open files) of a process."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def test_a_thousand_idle_and_slow_connections(tmp_path, serve_proc, sim_proc):
    """1 000 connections hold the server (idle, a head dripping, a body dripping) while a
    virtual device syncs and a viewer loads the dashboard: both answer within 2 s; the
    server's memory and open files stay bounded, its log small, and it sheds the
    slow ones by their deadlines."""
    db = str(tmp_path / "hall.db")
    from host_tools.collector.store import Collector

    c = Collector(db)
    token = c.users.add("viewer-1", "viewer")
    c.db.close()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:  # the test itself holds the 1 000
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    srv = serve_proc(db)
    held: list[socket.socket] = []
    try:
        sim = sim_proc(db, "--collector", f"http://127.0.0.1:{srv.port}", "--device",
                       "lim-1")
        assert sim.say("badge 0A1B2C3D")[0].startswith("ok")
        for lvl in (1, 2, 4):
            assert sim.say("invite")[0].startswith("ok")
            assert sim.say(f"key {lvl}")[0].startswith("ok")
        assert srv.get("/?day=2026-11-23", token)[0] == 200
        base_rss, base_files = proc_stats(srv.proc.pid)
        kinds = ("idle", "head", "body", "body")
        for i in range(1000):
            s = connect(srv.port, f"127.0.{1 + i % 40}.{1 + i // 40 % 200}")
            kind = kinds[i % 4]
            if kind == "head":
                s.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            elif kind == "body":
                s.send(b"POST /api/v1/sync HTTP/1.1\r\nHost: x\r\nContent-Length: 14000\r\n\r\nPJ")
            held.append(s)
        held_at = time.monotonic()
        time.sleep(0.5)
        rss, files = proc_stats(srv.proc.pid)
        assert files >= base_files + 950, (base_files, files)  # it holds them all
        # the device and the viewer, while the crowd drips
        for s in held[1::4] + held[2::4]:
            with contextlib.suppress(OSError):
                s.send(b"x")
        out, took = sim.say("sync")
        assert out.startswith("ok: sent") and took < 2, (out, took)
        status, took = srv.get("/?day=2026-11-23", token)
        assert status == 200 and took < 2, took
        status, took = srv.get("/api/v1/report?day=2026-11-23", token)
        assert status == 200 and took < 2, took
        assert rss - base_rss < 100 * 1024, (base_rss, rss)  # KB: bounded, not per byte sent
        # the head deadline (10 s) sheds the idle and dripping heads, the body one (15 s)
        # the bodies, however steadily they drip
        while time.monotonic() - held_at < 16.5:
            for s in held[2::4] + held[3::4]:
                with contextlib.suppress(OSError):
                    s.send(b"x")
            time.sleep(1)
        shed = wait_until(lambda: all(closed_by_server(s) for s in held), 5)
        assert shed, sum(not closed_by_server(s) for s in held)
        assert wait_until(lambda: proc_stats(srv.proc.pid)[1] < base_files + 20, 5)
        out, took = sim.say("sync")
        assert out.startswith("ok") and took < 2, (out, took)
    finally:
        for s in held:
            s.close()
        sim_proc.stop_all()
        srv.stop()
    log = srv.log.read_bytes()
    assert len(log) < 8 * 1024, log[-2000:]
    from host_tools.collector.store import Collector

    c = Collector(db)
    assert c.db.value("SELECT COUNT(*) FROM events WHERE kind = 'rating'") == 3
    c.db.close()


def test_at_the_open_file_limit(tmp_path, serve_proc):
    """With 256 files, a crowd of 400 connections from ten addresses: the server keeps
    below the limit (no failed accept, no flood in its log), and a newcomer still gets
    in."""
    db = str(tmp_path / "f.db")
    from host_tools.collector.store import Collector

    c = Collector(db)
    token = c.users.add("v", "viewer")
    c.db.close()
    srv = serve_proc(db, nofile=256)
    held = []
    try:
        for i in range(400):
            try:
                held.append(connect(srv.port, f"127.0.9.{1 + i % 10}"))
            except OSError:
                pass
        time.sleep(0.5)
        _rss, files = proc_stats(srv.proc.pid)
        assert files < 256 - 32, files
        status, took = srv.get("/api/v1/report", token)
        assert status == 200 and took < 2
    finally:
        for s in held:
            s.close()
        srv.stop()
    log = srv.log.read_text()
    assert "accept" not in log and len(log) < 4096, log[-2000:]


def test_per_address_caps(served_with):
    srv = served_with(Limits(per_client_connections=8, per_client_in_flight=3, head_s=30))
    held = [connect(srv.port, "127.0.5.1") for _ in range(12)]
    try:
        assert wait_until(lambda: sum(closed_by_server(s) for s in held) >= 4, 3)
        assert sum(closed_by_server(s) for s in held) == 4  # the 4 past the 8
        assert srv.server.limits.counts.refused >= 4
        # requests at once from one address: three bodies pending, the fourth is 503
        for s in held:
            s.close()
        time.sleep(0.2)
        slow = [connect(srv.port, "127.0.5.2") for _ in range(4)]
        for s in slow:
            s.send(b"POST /api/v1/sync HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nPJ")
        time.sleep(0.3)
        answers = []
        for s in slow:
            r, _w, _x = select.select([s], [], [], 0.5)
            answers.append(s.recv(200) if r else b"")
        busy = [a for a in answers if a]
        assert len(busy) == 1 and busy[0].startswith(b"HTTP/1.1 503"), answers
        assert b"retry-after: 1" in busy[0].lower()
        for s in slow:
            s.close()
        # another address is not held up by that one
        assert srv.call("GET", "/login")[0] == 200
    finally:
        for s in held:
            s.close()


def test_deadlines_and_body_caps(served_with):
    srv = served_with(Limits(head_s=1, body_s=1.5, keep_alive_s=1))
    idle = connect(srv.port, "127.0.6.1")
    drip = connect(srv.port, "127.0.6.2")
    body = connect(srv.port, "127.0.6.3")
    drip.send(b"GET /login HTTP/1.1\r\nHost: x\r\n")
    body.send(b"POST /api/v1/sync HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nPJ")
    t = time.monotonic()
    for _ in range(4):  # a byte every half second keeps no deadline off
        time.sleep(0.5)
        for s in (drip, body):
            with contextlib.suppress(OSError):
                s.send(b"x")
    assert wait_until(lambda: closed_by_server(idle) and closed_by_server(drip), 2)
    r, _w, _x = select.select([body], [], [], 2)
    assert r and body.recv(300).startswith(b"HTTP/1.1 408")
    assert time.monotonic() - t < 4
    for s in (idle, drip, body):
        s.close()
    # a body over the route's cap: refused from its Content-Length, before it is read
    s, _h, text = srv.call("POST", SYNC_PATH, b"", headers={"Content-Length": "999999999"})
    assert s == 413 and b"oversized" in text
    s, _h, text = srv.call("POST", "/login", b"x" * 70000)
    assert s == 413
    # a head over 16 KB, whole (431) or trickling in (400 from h11), and the server goes on
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as c:
        c.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        assert c.recv(100).startswith(b"HTTP/1.1 431")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as c:
        c.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for _ in range(5):
            c.sendall(b"a" * 4000)
            time.sleep(0.05)
        assert c.recv(100).startswith(b"HTTP/1.1 400")
    assert srv.call("GET", "/login")[0] == 200


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_garbage_is_logged_once_a_minute(served_with):
    srv = served_with()  # its loggers rate-limited, as pingjia serve's are
    got = Lines()
    log = logging.getLogger("uvicorn.error")
    log.addHandler(got)
    try:
        for _ in range(50):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as c:
                c.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
                with contextlib.suppress(OSError):
                    c.recv(100)
    finally:
        log.removeHandler(got)
    lines = [m for m in got.lines if "Invalid HTTP" in m]
    assert len(lines) == 1, got.lines
    assert srv.call("GET", "/login")[0] == 200


def test_rate_limited_filter_counts_what_it_left_out():
    now = [0.0]
    f = RateLimited(every_s=60, clock=lambda: now[0])
    rec = lambda: logging.LogRecord("uvicorn.error", logging.WARNING, "", 0,  # noqa: E731
                                    "Invalid HTTP request received.", (), None)
    assert f.filter(rec()) and not f.filter(rec()) and not f.filter(rec())
    now[0] = 61
    r = rec()
    assert f.filter(r) and "2 more like it not logged" in r.getMessage()
    other = logging.LogRecord("uvicorn.error", logging.WARNING, "", 0, "else", (), None)
    assert f.filter(other)


def test_lists_are_paged(served):
    c = served.collector
    key = bytes.fromhex(c.add_device("pg-1", "B01"))
    recs = b"".join(record.pack(i, record.RATING, 1 + i % 4, 0, 0, served.t - 500 + i)
                    for i in range(1, 251))
    recs += record.pack(251, record.BOOT, 2, 0, 0, record.REL) + record.pack(252, record.RATING, 4, 0, 0, record.REL | 9)
    assert served.call("POST", SYNC_PATH, frame.request(key, "pg-1", 7, 1, 1, recs,
                                                    nonce=served.t))[0] == 200
    import json

    token = served.tokens["viewer"]
    seen, after, pages = [], "", 0
    while True:
        s, _h, body = served.call("GET", f"/api/v1/ratings?limit=60&after={after}", token=token)
        assert s == 200
        page = json.loads(body)
        seen += [r["seq"] for r in page["rows"]]
        pages += 1
        if not page["next"]:
            break
        after = page["next"]
        assert pages < 10
    assert seen == [*range(1, 251), 252] and pages == 5  # in order, once each, unknown last
    s, _h, body = served.call("GET", "/api/v1/bad?limit=1000", token=token)
    bad = json.loads(body)["rows"]
    assert [r["seq"] for r in bad] == [*range(3, 251, 4), 252] and json.loads(body)["next"] is None
    assert served.call("GET", "/api/v1/ratings?limit=1001", token=token)[0] == 400
    assert served.call("GET", "/api/v1/ratings?after=zz", token=token)[0] == 400
    s, _h, body = served.call("GET", "/api/v1/devices?limit=1", token=token)
    assert json.loads(body)["next"] == "pg-1"


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    for name in ("uvicorn.error", "uvicorn.access", "asyncio", "pingjia"):
        logging.getLogger(name).filters.clear()
