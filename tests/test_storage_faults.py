"""Storage under its faults (host_tools/collector/db.py): SQLite locked by another program
answers 503 with Retry-After within a second while reads go on, and the device's retry
stores everything once; a COMMIT that fails is rolled back and the next request works;
PostgreSQL restarted under load fails requests fast while it is down and takes them
after, nothing lost or doubled."""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
import time

from firmware import frame, record
from firmware.clock import days_from_civil
from host_tools.collector.db import StorageUnavailable
from host_tools.collector.server import SYNC_PATH, ServerThread
from host_tools.collector.store import Collector

T = days_from_civil(2026, 11, 23) * 86400 + 2 * 3600  # 10:00 +08:00

HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")  # the write lock, as a backup tool or a second collector
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def post(port: int, body: bytes, timeout: float = 10) -> tuple[int, dict, bytes, float]:
    t = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", SYNC_PATH, body)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read(), time.monotonic() - t
    finally:
        conn.close()


def test_sqlite_locked_by_another_program(tmp_path, serve_proc, sim_proc):
    db = str(tmp_path / "hall.db")
    c = Collector(db)
    token = c.users.add("v", "viewer")
    key = bytes.fromhex(c.add_device("lock-2", "B02"))
    c.db.close()
    srv = serve_proc(db)
    sim = sim_proc(db, "--collector", f"http://127.0.0.1:{srv.port}", "--device", "lock-1")
    assert sim.say("badge 0A1B2C3D")[0].startswith("ok")
    for lvl in (1, 4, 2):
        assert sim.say("invite")[0].startswith("ok")
        assert sim.say(f"key {lvl}")[0].startswith("ok")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, db], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout and holder.stdout.readline().strip() == "locked"
        out, took = sim.say("sync")
        assert out.startswith("error") and "503" in out and "busy" in out, out
        assert took < 1.5, took
        now = int(time.time()) - 946684800
        body = frame.request(key, "lock-2", 7, 1, 1, record.pack(1, record.RATING, 1, 0, 0, now), nonce=now)
        status, headers, text, took = post(srv.port, body)
        assert status == 503 and headers.get("retry-after") == "1" and took < 1, (status, took)
        assert text.startswith(b"unavailable: the database is busy")
        # readers do not wait behind the writer that holds the lock
        status, took = srv.get("/api/v1/report", token)
        assert status == 200 and took < 0.5, took
        status, took = srv.get("/", token)
        assert status == 200 and took < 0.5, took
    finally:
        holder.communicate("\n", timeout=30)
    out, _took = sim.say("sync")  # the device tries again: everything, once
    assert out.startswith("ok: sent"), out
    status, _h, _t, _took = post(srv.port, frame.request(
        key, "lock-2", 7, 1, 1, record.pack(1, record.RATING, 1, 0, 0, now), nonce=now + 1))
    assert status == 200
    status_line, _t = sim.say("status")
    c = Collector(db)
    try:
        seq = int(status_line.split('"seq": ')[1].split(",")[0].rstrip("}"))
        assert c.db.value("SELECT COUNT(*) FROM records WHERE device = 'lock-1'") == seq
        assert c.db.value("SELECT COUNT(*) FROM events WHERE kind = 'rating'") == 4
    finally:
        c.db.close()


FAIL_AT_COMMIT_SQLITE = [
    "PRAGMA foreign_keys=ON",
    "CREATE TABLE fault_parent (id INTEGER PRIMARY KEY)",
    "CREATE TABLE fault_child (pid INTEGER REFERENCES fault_parent (id) "
    "DEFERRABLE INITIALLY DEFERRED)",
    # every stored record leaves a dangling row that only COMMIT finds
    "CREATE TRIGGER fault AFTER INSERT ON records BEGIN INSERT INTO fault_child VALUES (-1); END",
]
FAIL_AT_COMMIT_PG = [
    "CREATE FUNCTION fault() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk on fire'; "
    "END $$ LANGUAGE plpgsql",
    "CREATE CONSTRAINT TRIGGER fault AFTER INSERT ON records DEFERRABLE INITIALLY DEFERRED "
    "FOR EACH ROW EXECUTE FUNCTION fault()",
]


def _failed_commit(c: Collector, inject: list[str], heal: list[str]) -> None:
    clock_now = c.now()
    key = bytes.fromhex(c.add_device("cm-1", "B01"))
    recs = b"".join(record.pack(i, record.RATING, 1 + i % 4, 0, 0, clock_now - 100 + i)
                    for i in range(1, 6))
    for stmt in inject:
        if stmt.startswith("PRAGMA"):
            c.db.writer.execute(stmt)  # the writer's own connection: where COMMIT runs
        else:
            c.db.execute(stmt)
    before = [c.db.all(f"SELECT * FROM {t} ORDER BY 1") for t in ("records", "events",
                                                                 "nonces", "devices")]
    body = frame.request(key, "cm-1", 7, 1, 1, recs, nonce=clock_now)
    try:
        c.ingest_network(body)
        raise AssertionError("the COMMIT should have failed")
    except StorageUnavailable as e:
        assert "could not commit" in str(e) and "nothing of it was stored" in str(e)
    assert [c.db.all(f"SELECT * FROM {t} ORDER BY 1") for t in ("records", "events",
                                                               "nonces", "devices")] == before
    for stmt in heal:
        c.db.execute(stmt)
    # the connection is clean: the same records (a new attempt, a new nonce) go in once
    ans = c.ingest_network(frame.request(key, "cm-1", 7, 1, 1, recs, nonce=clock_now + 1))
    assert frame.parse_answer(ans, frame.Hmac(key), frame.request(key, "cm-1", 7, 1, 1, recs,
                                                      nonce=clock_now + 1)[-32:])[0] == 5
    assert c.db.value("SELECT COUNT(*) FROM events WHERE device = 'cm-1'") == 5


def test_a_failed_commit_rolls_back_sqlite(tmp_path):
    c = Collector(str(tmp_path / "c.db"), lambda: T)
    try:
        _failed_commit(c, FAIL_AT_COMMIT_SQLITE, ["DROP TRIGGER fault"])
    finally:
        c.db.close()


def test_a_failed_commit_rolls_back_postgres(pg_cluster):
    c = Collector(pg_cluster.url, lambda: T)
    try:
        _failed_commit(c, FAIL_AT_COMMIT_PG, ["DROP TRIGGER fault ON records"])
    finally:
        c.db.close()


def test_postgres_restarted_under_load(pg_cluster):
    c = Collector(pg_cluster.url, lambda: T)
    devices = {f"pl-{i}": bytes.fromhex(c.add_device(f"pl-{i}", "B01")) for i in range(4)}
    srv = ServerThread(c)
    frames_each, per = 30, 5
    delivered = {d: 0 for d in devices}
    failures: list[tuple[str, float]] = []  # (what, seconds it took)
    lock = threading.Lock()
    stop_at = time.monotonic() + 90

    def device(dev: str, key: bytes) -> None:
        nonce = 0
        seq = 0
        while delivered[dev] < frames_each and time.monotonic() < stop_at:
            first = seq + 1
            recs = b"".join(record.pack(first + i, record.RATING, 1 + i % 4, 0, 0, T - 600 + first + i)
                            for i in range(per))
            nonce = frame.next_nonce(T, nonce, b"\0" * 4)
            body = frame.request(key, dev, 7, 1, first, recs, nonce=nonce)
            try:
                status, _h, ans, took = post(srv.port, body, timeout=10)
            except OSError as e:
                with lock:
                    failures.append((type(e).__name__, 0.0))
                time.sleep(0.2)
                continue
            if status == 200:
                assert frame.parse_answer(ans, frame.Hmac(key), body[-32:])[0] == first + per - 1
                seq += per
                delivered[dev] += 1
                time.sleep(0.02)
            else:
                assert status == 503 and ans.startswith(b"unavailable: "), (status, ans)
                with lock:
                    failures.append((ans[:60].decode(), took))
                time.sleep(0.2)  # as a device backs off (shorter here)

    threads = [threading.Thread(target=device, args=item) for item in devices.items()]
    try:
        for t in threads:
            t.start()
        assert _wait(lambda: sum(delivered.values()) >= 20, 30)
        pg_cluster.stop("fast")  # every pooled connection dies with the server
        down = time.monotonic()
        time.sleep(2.5)
        during = len(failures)
        pg_cluster.start()
        up = time.monotonic()
        for t in threads:
            t.join(timeout=max(1, stop_at - time.monotonic()))
        assert all(n == frames_each for n in delivered.values()), delivered
        assert during >= 2, failures  # the outage was seen
        assert all(took < 2.5 for _w, took in failures), failures  # and failed fast
        assert up - down < 10
    finally:
        stop_at = 0
        for t in threads:
            t.join(timeout=30)
        srv.stop()
    for dev in devices:  # nothing lost, nothing twice
        seqs = [r[0] for r in c.db.all("SELECT seq FROM records WHERE device = ? ORDER BY seq",
                                       (dev,))]
        assert seqs == list(range(1, frames_each * per + 1)), dev
    assert c.db.value("SELECT COUNT(*) FROM events") == len(devices) * frames_each * per
    c.db.close()


def _wait(what, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not what():
        time.sleep(0.05)
    return what()
