"""Rollups (host_tools/collector/rollups.py), on SQLite and PostgreSQL: kept by the ingest
they equal a rebuild from the raw rows after a random mix of frames (out of order, late
across logs, repeated, dated later by a clock set), every view answers what the raw rows
answer, a database from before the rollups gets them built by its migration, and a
filter naming what the collector does not know is refused with a clear message."""

from __future__ import annotations

import http.client
import json
import random

import pytest
from conftest import run_migration

from firmware import record
from host_tools.collector import db as db_mod
from host_tools.collector import reports, rollups
from host_tools.collector.reports import Filter
from host_tools.collector.server import ServerThread
from host_tools.collector.store import Collector

TZ = 480
STATES = (record.SERVING, record.WAIT, record.PAUSED, record.CLOSED)
ROLL_TABLES = rollups.TABLES


def _records(d, rng: random.Random, t0: int, n: int) -> None:
    """n random records of a device: ratings of every level and mode, no ratings, strays
    and drops, status changes across midnights, a boot whose clock comes later."""
    t = t0 - 2 * 86400 + rng.randrange(3600)
    state = record.SERVING
    d.add(record.BOOT, d.boot, time=t)
    for _ in range(n):
        t += rng.choice((30, 200, 900, 3000, 7 * 3600))
        slot = rng.choice((1, 1, 2, 0, 7))  # 7: a slot no roster gave
        roll = rng.random()
        when = t
        if roll < 0.04:  # a power cut: the clock unknown until a clock set
            d.boot += 1
            d.add(record.BOOT, d.boot, time=record.REL | 0)
            up = 0
            for _ in range(rng.randrange(1, 6)):
                up += rng.randrange(20, 400)
                if rng.random() < 0.5:
                    d.rating(rng.randrange(1, 5), record.REL | up, staff=slot)
                else:
                    to = rng.choice(STATES)
                    d.add(record.STATUS, to | state << 4, record.WHY_KEY, slot, record.REL | up)
                    state = to
            up += 5
            d.add(record.CLOCK_SET, up & 0xFF, up >> 8 & 0xFF, up >> 16, t + up)
            t += up
        elif roll < 0.55:
            d.rating(rng.randrange(1, 5), when, staff=slot, mode=rng.choice((0, 0, 1)))
        elif roll < 0.62:
            d.add(record.NO_RATING, 0, rng.randrange(2), slot, when)
        elif roll < 0.68:
            kind = rng.choice((record.STRAY, record.DROPPED))
            c = rng.randrange(1, 300)
            d.add(kind, c & 0xFF, c >> 8, slot, when - when % 3600)
        else:
            to = rng.choice(STATES)
            d.add(record.STATUS, to | state << 4, record.WHY_KEY, slot, when)
            state = to


def _send_shuffled(d, rng: random.Random, lo: int, hi: int) -> None:
    """Records lo..hi in frames of random size, in random order, one frame twice."""
    cuts = sorted({lo, hi + 1, *(rng.randrange(lo, hi + 1) for _ in range(6))})
    frames = list(zip(cuts, cuts[1:], strict=False))
    rng.shuffle(frames)
    for a, b in frames + frames[:1]:
        d.send(a, b - 1)


def _mix(c: Collector, device_log, t0: int, seed: int) -> None:
    rng = random.Random(seed)
    a = device_log(c, "dev-a", "B01")
    b = device_log(c, "dev-b", "B02")
    # a second hall (no command moves a device between halls; set before its first frame)
    c.db.execute("UPDATE devices SET hall = 'east' WHERE id = 'dev-b'")
    for d in (a, b):
        _records(d, rng, t0, 120)
        _send_shuffled(d, rng, 1, d.seq)
    # dev-a's flash replaced: a second log; the old one's last records arrive after it
    _records(a, rng, t0 + 3600, 30)
    old = (a.log_id, a.log, a.seq)
    a.log_id, a.log, a.seq = 0x5EED0002, [], 0
    _records(a, rng, t0 + 86400, 60)
    _send_shuffled(a, rng, 1, a.seq)
    new = (a.log_id, a.log, a.seq)
    a.log_id, a.log, a.seq = old
    _send_shuffled(a, rng, old[2] - 29, old[2])
    a.log_id, a.log, a.seq = new


def _rolls(db) -> list[list[tuple]]:
    """The rollup tables, rows of only zeros left out (a moved count leaves one)."""
    out = []
    for t in ROLL_TABLES:
        rows = db.all(f"SELECT * FROM {t}")
        out.append(sorted(tuple(r) for r in rows if any(r[-rollups.N:])))
    return out


def _diff(got: list[dict], want: list[dict]) -> list:
    """What differs between two summaries, row by row and field by field."""
    if len(got) != len(want):
        return [len(got), len(want)]
    return [(i, k, a.get(k), b.get(k)) for i, (a, b) in enumerate(zip(got, want, strict=True))
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _same_views(c: Collector, now: int) -> None:
    db = c.db
    filters = [Filter(), Filter(day="2026-11-21"), Filter(day="2026-11-24"),
               Filter(since="2026-11-20", until="2026-11-23"), Filter(since="2026-10-01"),
               Filter(until="2026-11-22"), Filter(hall="east"), Filter(window="B01"),
               Filter(staff="SB0101"), Filter(staff="SB0102", since="2026-11-21")]
    for flt in filters:
        for by in reports.BY:
            got = reports.summary(db, TZ, None, by, now, flt)
            want = reports.summary_raw(db, TZ, None, by, now, flt)
            assert got == want, (by, flt, _diff(got, want))
            span = flt.span(TZ)
            assert reports.status_time(db, TZ, span, by, now, flt) == \
                reports.status_time_raw(db, TZ, span, by, now, flt), (by, flt)
        assert reports.heat_week(db, TZ, flt) == reports.heat_week_raw(db, TZ, flt), flt
    for day in ("2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24"):
        for flt in (Filter(), Filter(window="B02"), Filter(staff="SB0101")):
            assert reports.heat(db, TZ, day, flt) == reports.heat_raw(db, TZ, day, flt)


def _rebuilt(db) -> list[list[tuple]]:
    """The rollups a rebuild from the raw rows makes (undone afterwards)."""
    class Undo(Exception):
        pass

    got: list[list[tuple]] = []
    with pytest.raises(Undo), db.transaction():
        rollups.rebuild(db, TZ)
        got = _rolls(db)
        raise Undo
    return got


@pytest.mark.parametrize("seed", [1, 2])
def test_rollups_equal_raw_rows(db_url, clock, device_log, roster_csv, t0, seed):
    clock.t = t0 + 2 * 86400
    c = Collector(db_url, clock)
    try:
        c.import_roster(roster_csv)
        _mix(c, device_log, t0, seed)
        assert c.db.value("SELECT SUM(n) FROM roll_hour") == c.db.value(
            "SELECT COUNT(*) FROM events WHERE kind = 'rating'")
        assert c.db.value("SELECT SUM(n) FROM roll_hour WHERE hour = ?", (rollups.NO_TIME,),
                          0) == c.db.value("SELECT COUNT(*) FROM events WHERE kind = 'rating' "
                                           "AND t IS NULL")
        assert _rolls(c.db) == _rebuilt(c.db)
        _same_views(c, int(clock()))
        # the bounded 差评 lists: each row's newest, and the count of all of them
        rows = reports.summary(c.db, TZ, None, "window", int(clock()))
        for r in rows:  # listed: those with a known time; counted: all
            dated = c.db.value("SELECT COUNT(*) FROM events WHERE kind = 'rating' AND "
                               "level = 4 AND t IS NOT NULL AND win = ?", (r["window"],))
            assert r["bad_count"] == r["levels"][4] >= dated
            assert len(r["bad"]) == min(dated, reports.BAD_KEPT)
            assert [b["time"] for b in r["bad"]] == sorted(b["time"] for b in r["bad"])
    finally:
        c.db.close()


def test_undated_then_dated(db_url, clock, device_log, roster_csv, t0):
    """Ratings and a pause of a boot whose clock is not known yet count in the unknown
    hour, then move to theirs when a later frame brings the clock."""
    c = Collector(db_url, clock)
    try:
        c.import_roster(roster_csv)
        d = device_log(c)
        d.add(record.BOOT, 1, time=record.REL | 0)
        d.rating(1, record.REL | 100)
        d.add(record.STATUS, record.PAUSED | record.SERVING << 4, record.WHY_KEY, 1,
              record.REL | 200)
        d.add(record.STATUS, record.SERVING | record.PAUSED << 4, record.WHY_KEY, 1,
              record.REL | 500)
        d.send()
        [row] = reports.summary(c.db, TZ, None, "day")
        assert row["day"] == "unknown" and row["ratings"] == 1 and row["pause_s"] == 0
        d.add(record.CLOCK_SET, 0x58, 0x02, 0, t0 + 600)  # 600 s after boot: t0
        d.send(d.seq)
        [row] = reports.summary(c.db, TZ, None, "day")
        assert row["day"] == "2026-11-23" and row["ratings"] == 1 and row["pause_s"] == 300
        assert _rolls(c.db) == _rebuilt(c.db)
    finally:
        c.db.close()


def test_migration_builds_rollups(db_url, clock, device_log, roster_csv, t0):
    """A database from before the rollups (their tables, indexes and version taken away
    from one that has them) gets them built from its rows when the collector opens it."""
    clock.t = t0 + 2 * 86400
    c = Collector(db_url, clock)
    c.import_roster(roster_csv)
    _mix(c, device_log, t0, 3)
    kept = _rolls(c.db)
    # the rollups' migration, run by hand: later features' migrations cannot run twice
    with c.db.transaction():
        for t in ROLL_TABLES:
            c.db.execute(f"DROP TABLE {t}")
        for i in ("events_status", "events_bad", "events_bad_win"):
            c.db.execute(f"DROP INDEX {i}")
        c.db.execute("DELETE FROM meta WHERE key = ?", (rollups.TZ_KEY,))
    run_migration(c.db, None)
    c.db.close()
    c = Collector(db_url, clock)
    try:
        assert _rolls(c.db) == kept
        _same_views(c, int(clock()))
    finally:
        c.db.close()


def test_zone_change_rebuilds(db_url, clock, device_log, roster_csv, t0):
    c = Collector(db_url, clock)
    try:
        c.import_roster(roster_csv)
        d = device_log(c)
        d.rating(2, t0 - 9 * 3600 + 60)  # 00:01 on the 23rd in +08:00, the 22nd in UTC
        d.send()
        assert [r["day"] for r in reports.summary(c.db, TZ, None, "day")] == ["2026-11-23"]
        c.set_setting("tz_min", 0)
        assert rollups.built_tz(c.db) == 0
        assert [r["day"] for r in reports.summary(c.db, 0, None, "day")] == ["2026-11-22"]
        assert reports.summary(c.db, 0, None, "hour") == reports.summary_raw(c.db, 0, None,
                                                                              "hour")
        # asked in a zone they were not built in: the raw rows answer, the same
        assert reports.summary(c.db, TZ, None, "day")[0]["day"] == "2026-11-23"
    finally:
        c.db.close()


BAD = [(Filter(window="B99"), "no window 'B99'"), (Filter(hall="west"), "no hall 'west'"),
       (Filter(staff="SB9999"), "no staff 'SB9999'"), (Filter(day="2026-02-30"), "bad day"),
       (Filter(day="23/11/2026"), "bad day"), (Filter(since="2026-11-1"), "bad day"),
       (Filter(since="2026-11-23", until="2026-11-01"), "run backwards"),
       (Filter(day="2026-11-23", since="2026-11-01"), "not both"),
       (Filter(day="2026-11-23", until="2026-11-30"), "not both")]


@pytest.mark.parametrize("flt,words", BAD)
def test_bad_filters(db_url, clock, device_log, roster_csv, t0, flt, words):
    c = Collector(db_url, clock)
    try:
        c.import_roster(roster_csv)
        d = device_log(c)
        d.rating(1, t0)
        d.send()
        calls = [lambda: reports.summary(c.db, TZ, None, "window", None, flt),
                 lambda: reports.heat_week(c.db, TZ, flt),
                 lambda: reports.ratings_page(c.db, TZ, flt),
                 lambda: reports.ratings(c.db, TZ, None, flt)]
        for call in calls:
            with pytest.raises(ValueError, match=words.replace("(", r"\(")):
                call()
    finally:
        c.db.close()


def test_bad_filters_cli_and_api(tmp_path, cli, clock, device_log, roster_csv, t0):
    db = str(tmp_path / "c.db")
    c = Collector(db, clock)
    c.import_roster(roster_csv)
    d = device_log(c)
    d.rating(4, t0)
    d.send()
    token = c.users.add("v", "viewer")
    srv = ServerThread(c)
    try:
        for q, words in (("window=B99", "no window"), ("hall=west", "no hall"),
                         ("from=2026-11-23&to=2026-11-01", "backwards")):
            for path in ("/api/v1/report", "/api/v1/bad"):
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
                try:
                    conn.request("GET", f"{path}?{q}",
                                 headers={"Authorization": f"Bearer {token}"})
                    r = conn.getresponse()
                    status, body = r.status, json.loads(r.read())
                finally:
                    conn.close()
                assert status == 400 and words in body["error"], (path, q, body)
    finally:
        srv.stop()
        c.db.close()
    for args, words in ((("--window", "B99"), "no window 'B99'"),
                        (("--staff", "SB9999"), "no staff"),
                        (("--from", "2026-13-01"), "bad day")):
        r = cli("report", *args, "--db", db)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = cli("report", "--db", db)
    assert r.returncode == 0 and "差评 (不满意): 1 条" in r.stdout



def test_sqlite_gets_the_planners_statistics_as_the_rows_grow(tmp_path, clock, device_log, t0,
                                                               monkeypatch):
    """SQLite plans the views 10-1000x slower without sqlite_stat1 (bench/views.py): the
    collector runs ANALYZE when it opens a database whose events have doubled since the
    last one (and serve every hour), not at every open."""
    monkeypatch.setattr(db_mod, "ANALYZE_MIN_ROWS", 20)
    path = str(tmp_path / "stats.db")
    c = Collector(path, clock)
    d = device_log(c)
    for i in range(10):
        d.rating(1 + i % 4, t0 + 60 * i)
    d.send()
    c.db.close()
    c = Collector(path, clock)  # 10 events: too few to matter
    assert not c.db.value("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")
    d.c = c
    for i in range(10, 30):
        d.rating(1 + i % 4, t0 + 60 * i)
    d.send(11)
    c.db.close()
    c = Collector(path, clock)
    try:
        tables = {t for (t,) in c.db.all("SELECT DISTINCT tbl FROM sqlite_stat1")}
        assert {"events", "records", "roll_hour", "roll_day", "roll_month", "cases"} <= tables
        assert c.db._analyzed_rows() == 30
        with c.db.transaction():  # an older statistic: the next open does not redo it
            c.db.execute("UPDATE sqlite_stat1 SET stat = '16 1' WHERE idx = 'events_t'")
        c.db.analyze()
        assert c.db._analyzed_rows() == 16
        with c.db.transaction():
            c.db.execute("UPDATE sqlite_stat1 SET stat = '14 1' WHERE idx = 'events_t'")
        c.db.analyze()  # 30 events, 14 then: grown more than twice
        assert c.db._analyzed_rows() == 30
    finally:
        c.db.close()
