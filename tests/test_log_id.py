"""The log id (design.md section 4): on the device's flash, in every frame, and the
collector idempotent on (device, log id, seq), with acks that cover only what it stored."""

from __future__ import annotations

import sqlite3
import struct

from firmware import frame, record
from host_tools.collector import db as dbmod
from host_tools.collector import export, reports
from host_tools.collector.store import Collector


def test_log_id_lives_in_the_record_files_names(mp_pass, shm_dir):
    out = mp_pass("logid.py", str(shm_dir / "logid.img"))
    ids = out.split("log ids ")[1].split()[:3]
    assert len(set(ids)) == 3  # a new id on a blank flash, on an upgrade, after a wipe


def test_header_fits_the_budget():
    body = frame.request(b"k" * 16, "a" * frame.ID_MAX, 0xFFFFFFFF, 70000, 1, b"")
    assert len(body) == 64  # header + MAC of the longest device id
    q = frame.parse_request(body, lambda d: b"k" * 16)
    assert (q.log_id, q.boot, q.first, q.count) == (0xFFFFFFFF, 70000 & 0xFFFF, 1, 0)


def test_two_logs_of_one_device_are_one_history(collector, clock, device_log, t0):
    clock.t += 3600
    d = device_log(collector)
    d.add(record.BOOT, 1, time=t0)
    for i in range(3):
        d.rating(1 + i, t0 + 60 * i)
    assert d.send()[0] == 4
    # wiped and set up again with the same id and key: a new log, seqs from 1
    d.log_id, d.seq, d.log = 0x0BADF00D, 0, []
    d.add(record.BOOT, 1, time=t0 + 600)
    for i in range(3):
        d.rating(4 - i, t0 + 660 + 60 * i)
    assert d.send()[0] == 4  # not taken for a replay of the old log's 1-4
    assert d.send()[0] == 4  # and a replay of this one stores nothing twice
    rows = reports.ratings(collector.db, 480)
    assert [r["level"] for r in rows] == [1, 2, 3, 4, 3, 2]
    assert [(r["log"], r["seq"]) for r in rows] == [(0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4)]
    assert export.to_csv(rows).count("\n") == 7
    assert collector.db.value("SELECT COUNT(*) FROM records") == 8
    assert collector.devices()[0]["last_seq"] == 4 and collector.devices()[0]["log"] == 1


def test_an_ack_covers_only_stored_records(collector, clock, device_log, t0):
    clock.t += 3600
    d = device_log(collector)
    for i in range(4):
        d.rating(1 + i, t0 + i)
    d.send(1, 3)  # the collector holds 1, 2, 3
    recs = d.log[0] + d.log[1] + d.log[3]  # the device lost 3 (a bad CRC): sends 1, 2, 4
    d.nonce += 1
    body = frame.request(d.key, d.id, d.log_id, d.boot, 1, recs, 0, 0, d.nonce)
    ack = frame.parse_answer(collector.ingest(body), frame.Hmac(d.key), body[-32:])[0]
    assert ack == 4
    stored = [r[0] for r in collector.db.all("SELECT seq FROM records ORDER BY seq")]
    assert stored == [1, 2, 3, 4]  # 4 is stored, not merely counted


def _v1_frame(key: bytes, dev: str, first: int, recs: bytes, nonce: int) -> bytes:
    head = b"PJ" + bytes((1, len(dev))) + dev.encode()
    head += struct.pack("<IIHHHI", 1, first, len(recs) // record.SIZE, 0, 0, nonce)
    body = head + recs
    return body + frame.Hmac(key).digest(body)


def test_a_database_from_before_log_ids_migrates(tmp_path, clock, t0):
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for v, stmts in enumerate(dbmod.MIGRATIONS[:4], 1):
        for s in stmts:
            conn.execute(s)
        conn.execute("INSERT INTO schema_version VALUES (?)", (v,))
    conn.commit()
    conn.close()
    clock.t += 3600
    c = Collector(path, clock)
    key = bytes.fromhex(c.add_device("old-1", "B01"))
    recs = [bytes(record.pack(s, record.RATING, 1 + s % 4, 0, 1, t0 + s)) for s in range(1, 6)]
    c.ingest(_v1_frame(key, "old-1", 1, b"".join(recs[:3]), 1))  # the first firmware synced 1-3
    c.db.close()
    # the install as it was before log ids: no logs table; then the log ids' migration,
    # run by hand (the features' migrations after it cannot run twice)
    mine = next(m for m in dbmod.MIGRATIONS if any("CREATE TABLE logs" in s for s in m))
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE logs")
    for s in mine:
        conn.execute(s)
    conn.commit()
    conn.close()
    c = Collector(path, clock)
    assert c.db.all("SELECT device, idx, log_id FROM logs") == [("old-1", 0, None)]
    # the upgraded device names its log and goes on from 4: the same log
    # (a nonce is the device's: seen once per device, whatever its log)
    body = frame.request(key, "old-1", 0x600D1D, 2, 4, b"".join(recs[3:]), 0, 0, 2)
    assert frame.parse_answer(c.ingest(body), frame.Hmac(key), body[-32:])[0] == 5
    assert c.db.all("SELECT idx, log_id FROM logs") == [(0, 0x600D1D)]
    # then wiped: a new id from seq 1 is a new log, not a replay
    body = frame.request(key, "old-1", 0x2, 1, 1, b"".join(recs[:2]), 0, 0, 3)
    assert frame.parse_answer(c.ingest(body), frame.Hmac(key), body[-32:])[0] == 2
    assert c.db.value("SELECT COUNT(*) FROM events WHERE kind = 'rating'") == 7
    assert sorted(r[0] for r in c.db.all("SELECT idx FROM logs")) == [0, 1]
    c.db.close()


def test_why_a_device_booted_reaches_a_report(collector, clock, device_log, t0):
    clock.t += 3600
    d = device_log(collector)
    d.add(record.BOOT, 1, time=t0)
    d.add(record.BOOT_WHY, record.BOOT_POWER_ON, time=t0)
    d.add(record.BOOT, 2, time=record.REL | 5)
    d.add(record.BOOT_WHY, record.BOOT_SAFE_CRASHES, time=record.REL | 5)
    d.send()
    got = reports.boots(collector.db, 480)
    assert [(b["seq"], b["why"]) for b in got] == [(2, "power_on"), (4, "safe_mode_crashes")]
    assert got[0]["time"].startswith("2026-11-23T09:00") and got[1]["time"] is None


def test_a_wiped_board_set_up_again_syncs_and_pulls_every_rating_once(tmp_path, pingjia_sim,
                                                                      cli, db_url):
    db = db_url
    old = pingjia_sim("--serial", "--db", db, "--sign", "text", "--flash", tmp_path / "a.img")
    old.send("badge 0A1B2C3D", "invite U1", "key 1", "invite U2", "key 2", "sleep 30", "sync")
    assert old.answers(7)[-1].startswith("ok: sent")
    old.send("quit")
    old.end()
    # the same device id and key on a wiped flash, set up an hour later (its nonces are
    # its clock: frame.next_nonce): seqs start again at 1 in a new log
    new = pingjia_sim("--serial", "--db", db, "--sign", "text", "--flash", tmp_path / "b.img",
                      "--start", "2026-11-23T10:00:00+08:00")
    new.send("badge 0A1B2C3D", "invite U3", "key 3", "sleep 30", "sync")
    assert new.answers(5)[-1].startswith("ok: sent")
    p = cli("pull", "--usb", new.port, "--db", db)  # the same log over USB: nothing twice
    assert p.returncode == 0, p.stderr
    rows = cli("export", "--db", db, "--format", "csv").stdout.splitlines()[1:]
    assert [r.split(",")[5] for r in rows] == ["U1", "U2", "U3"], rows
