"""The office's views at province scale (design.md section 8: a year of 200 windows, ten
million ratings, under 200 ms; one day under 50 ms), on SQLite and on PostgreSQL.

The fill: 200 windows (4 halls, 3 staff each, two of them a day) over the working days of
2026, PINGJIA_VIEWS_RATINGS ratings (default 10 000 000) with no ratings, strays and six
status changes a window and day, written straight into `events` in bulk (the ingest's
frames would take hours of this machine's two cores; bench_sync.py measures that path),
then the rollups made by rollups.rebuild, the function the migration of an existing
database runs. tests/test_rollups.py shows the ingest keeps the same rollups a rebuild
makes.

Then each question twice in the same run: from the rollups (reports.py, as the API and
the CLI ask it; the median of 3) and from the raw rows (once: the same counts as one
GROUP BY of `events` on the database, the way a report would be written without rollups;
pause and 请稍候 time and the day views by reports' own *_raw functions)."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware import record  # noqa: E402
from firmware.clock import days_from_civil  # noqa: E402
from host_tools.collector import dashboard, reports, rollups  # noqa: E402
from host_tools.collector.reports import Filter  # noqa: E402
from host_tools.collector.store import Collector  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from pgtemp import PgServer  # noqa: E402

RATINGS = int(os.environ.get("PINGJIA_VIEWS_RATINGS", "10000000"))
WINDOWS = 200
HALLS = 4
TZ = 480
YEAR = Filter(since="2026-01-01", until="2026-12-31")
DAY = "2026-11-24"  # a Tuesday
BUDGET_YEAR_MS, BUDGET_DAY_MS = 200.0, 50.0
NOW = days_from_civil(2026, 11, 24) * 86400 + 7 * 3600  # 15:00 in the hall
CHUNK = 200_000
STATUS_DAY = ((9 * 3600, record.SERVING), (12 * 3600, record.PAUSED),
              (13 * 3600, record.SERVING), (15 * 3600, record.WAIT),
              (15 * 3600 + 600, record.SERVING), (17 * 3600, record.CLOSED))
EVENT_COLS = ("device", "seq", "kind", "win", "slot", "staff_no", "level", "mode", "reason",
              "ticket", "from_state", "to_state", "why", "flagged", "count", "boot", "uptime",
              "t")
LEVELS = (1,) * 12 + (2,) * 5 + (3,) * 2 + (4,)  # 5 % 差评


def workdays() -> list[int]:
    first, last = days_from_civil(2026, 1, 1), days_from_civil(2026, 12, 31)
    return [d for d in range(first, last + 1) if rollups.dow_of_day(d) < 5]


def win_name(w: int) -> str:
    return f"W{w:03d}"


def events() -> Iterator[tuple]:
    """Every window's year: ratings spread over 9:00-17:00, level by a fixed pattern."""
    days = workdays()
    per_day = max(RATINGS // (WINDOWS * len(days)), 1)
    off = TZ * 60
    for w in range(WINDOWS):
        dev, win = f"dev-{w:03d}", win_name(w)
        seq = 0
        for i, d in enumerate(days):
            start = d * 86400 - off
            am, pm = (w + i) % 3 + 1, (w + i + 1) % 3 + 1
            state = record.CLOSED
            for s, to in STATUS_DAY:
                seq += 1
                slot = am if s < 13 * 3600 else pm
                yield (dev, seq, "status", win, slot, None, None, None, None, None, state, to,
                       1, 0, None, 1, None, start + s)
                state = to
            for k in range(per_day):
                seq += 1
                s = 9 * 3600 + k * 8 * 3600 // per_day
                slot = am if s < 13 * 3600 else pm
                yield (dev, seq, "rating", win, slot, None, LEVELS[(k * 7 + w + i) % 20],
                       1 if k % 10 == 9 else 0, 1 if k % 3 == 0 else None, f"T{k}", None,
                       None, None, None, None, 1, None, start + s)
                if k % 40 == 0:
                    seq += 1
                    yield (dev, seq, "no_rating", win, slot, None, 0, 0, None, None, None,
                           None, None, None, None, 1, None, start + s + 30)
            for h in range(9, 17, 4):
                seq += 1
                yield (dev, seq, "stray", win, am, None, None, None, None, None, None, None,
                       None, None, 2, 1, None, start + h * 3600)


# ---- the fill -----------------------------------------------------------------------
_EVENT_INDEXES = ("events_t", "events_kind", "events_status", "events_bad", "events_bad_win")


def fill(c: Collector) -> dict[str, float]:
    """Devices, staff and slots, the events in bulk (secondary indexes made after), the
    rollups rebuilt; seconds of each step."""
    db = c.db
    out: dict[str, float] = {}
    with db.transaction():
        for w in range(WINDOWS):
            db.execute("INSERT INTO devices (id, key, win, created, hall) VALUES "
                       "(?, ?, ?, 0, ?)", (f"dev-{w:03d}", "00" * 16, win_name(w),
                                            f"hall-{w % HALLS + 1}"))
            for slot in (1, 2, 3):
                no = f"S{w:03d}{slot}"
                db.execute("INSERT INTO staff (staff_no, badge_uid, name, department) "
                           "VALUES (?, ?, ?, '')", (no, f"{w:06X}{slot:02X}", f"员工{no}"))
                db.execute("INSERT INTO window_slots (win, slot, staff_no, active) "
                           "VALUES (?, ?, ?, 1)", (win_name(w), slot, no))
    defs = {n: s for n, s in db.all(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events'")} \
        if db.postgres else {n: s for n, s in db.all(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
            "AND sql IS NOT NULL")}
    t = time.perf_counter()
    for name in _EVENT_INDEXES:
        db.execute(f"DROP INDEX {name}")
    n = _load(db)
    out["load_s"] = time.perf_counter() - t
    out["events"] = n
    t = time.perf_counter()
    for name in _EVENT_INDEXES:
        db.execute(defs[name])
    out["index_s"] = time.perf_counter() - t
    with db.transaction():  # a case for each 不满意, most of the old ones closed
        db.execute("INSERT INTO cases (device, seq, win, slot, staff_no, t, since, state, "
                   "closed) SELECT device, seq, win, slot, staff_no, t, t, CASE WHEN seq % 20 "
                   "= 0 OR t > ? THEN 'open' ELSE 'rectified' END, CASE WHEN seq % 20 = 0 OR "
                   "t > ? THEN 0 ELSE 1 END FROM events WHERE kind = 'rating' AND level = 4",
                   (NOW - 10 * 86400, NOW - 10 * 86400))
    t = time.perf_counter()
    with db.transaction():
        rollups.rebuild(db, TZ)
    out["rebuild_s"] = time.perf_counter() - t
    # a database in use: SQLite's statistics as the collector makes them (at open,
    # hourly); on PostgreSQL what autovacuum does in a while (the visibility map lets
    # the case counts read only the index; statistics), now
    if db.postgres:
        with db.pool.connection() as conn:  # autocommit: VACUUM runs outside a transaction
            conn.execute("VACUUM ANALYZE")
    else:
        db.analyze()
    return out


def _load(db) -> int:
    n = 0
    if db.postgres:
        with db.pool.connection() as conn, conn.cursor() as cur, cur.copy(
                f"COPY events ({', '.join(EVENT_COLS)}) FROM STDIN") as cp:
            for row in events():
                cp.write_row(row)
                n += 1
        return n
    batch: list[tuple] = []
    sql = (f"INSERT INTO events ({', '.join(EVENT_COLS)}) VALUES "
           f"({', '.join('?' for _ in EVENT_COLS)})")
    with db.transaction():
        for row in events():
            batch.append(row)
            if len(batch) == CHUNK:
                db.executemany(sql, batch)
                n += len(batch)
                batch = []
        db.executemany(sql, batch)
    return n + len(batch)


# ---- the raw rows' answers -------------------------------------------------------------
_RAW_SUMS = ("COUNT(CASE WHEN e.kind = 'rating' THEN 1 END), "
             + ", ".join(f"COUNT(CASE WHEN e.kind = 'rating' AND e.level = {lv} THEN 1 END)"
                         for lv in (1, 2, 3, 4))
             + ", COUNT(CASE WHEN e.kind = 'rating' AND e.mode = 0 THEN 1 END)"
             ", COUNT(CASE WHEN e.kind = 'no_rating' THEN 1 END)"
             ", SUM(CASE WHEN e.kind = 'stray' THEN e.count ELSE 0 END)"
             ", SUM(CASE WHEN e.kind = 'dropped' THEN e.count ELSE 0 END)")
_OFF = TZ * 60
_RAW_KEY = {"window": "e.win", "staff": "COALESCE(e.staff_no, ws.staff_no)",
            "day": f"(e.t + {_OFF}) / 86400",
            "hour": f"(e.t + {_OFF}) / 3600 - (e.t + {_OFF}) / 86400 * 24",
            "week": f"((e.t + {_OFF}) / 86400 + 5) - ((e.t + {_OFF}) / 86400 + 5) / 7 * 7, "
                    f"(e.t + {_OFF}) / 3600 - (e.t + {_OFF}) / 86400 * 24"}


def raw_summary(db, flt: Filter, by: str, now: int) -> int:
    """The summary's counts in one GROUP BY over the raw events, its pause and 請稍候
    time from every status change (status_time_raw): what reports did before rollups,
    without their Python loop over every row."""
    span = flt.span(TZ)
    key = _RAW_KEY[by]
    rows = db.all(f"SELECT {key}, {_RAW_SUMS} FROM events e LEFT JOIN window_slots ws "
                  "ON ws.win = e.win AND ws.slot = e.slot WHERE e.kind IN ('rating', "
                  "'no_rating', 'stray', 'dropped') AND e.t >= ? AND e.t < ? GROUP BY "
                  f"{key}", list(span))
    if by != "week":
        reports.status_time_raw(db, TZ, span, by, now, flt)
    return len(rows)


def raw_view(c: Collector, flt: Filter) -> object:
    """The dashboard with the rollups set aside: a zone they were not built in makes
    reports read the raw rows (reports._rolled_up), as the dashboard did before them."""
    with c.db.transaction():
        c.db.execute("UPDATE meta SET value = ? WHERE key = ?", (str(TZ + 1), rollups.TZ_KEY))
    try:
        return dashboard.view(c, flt)
    finally:
        with c.db.transaction():
            c.db.execute("UPDATE meta SET value = ? WHERE key = ?", (str(TZ), rollups.TZ_KEY))


def raw_status(db, flt: Filter, now: int) -> int:
    return len(reports.status_time_raw(db, TZ, flt.span(TZ), "window", now, flt))


# ---- timing -----------------------------------------------------------------------------
def ms(fn: Callable[[], object], times: int) -> float:
    got = []
    for _ in range(times):
        t = time.perf_counter()
        fn()
        got.append((time.perf_counter() - t) * 1000)
    return statistics.median(got)


def questions(c: Collector, now: int) -> list[tuple[str, str, Callable, Callable | None]]:
    """(span, name, the rollups' answer, the raw rows' answer)."""
    db = c.db
    day = Filter(day=DAY)
    out: list[tuple[str, str, Callable, Callable | None]] = []
    for by in reports.BY:
        out.append(("year", f"summary by {by}",
                    lambda by=by: reports.summary(db, TZ, None, by, now, YEAR),
                    lambda by=by: raw_summary(db, YEAR, by, now)))
    out += [
        ("year", "summary by window, one hall",
         lambda: reports.summary(db, TZ, None, "window", now, Filter(**{**vars(YEAR),
                                                                        "hall": "hall-2"})),
         lambda: raw_summary(db, Filter(**{**vars(YEAR), "hall": "hall-2"}), "window", now)),
        ("year", "summary by day, one staff",
         lambda: reports.summary(db, TZ, None, "day", now, Filter(**{**vars(YEAR),
                                                                     "staff": "S0071"})),
         lambda: reports.summary_raw(db, TZ, None, "day", now,
                                     Filter(**{**vars(YEAR), "staff": "S0071"}))),
        ("year", "heat_week", lambda: reports.heat_week(db, TZ, YEAR),
         lambda: raw_summary(db, YEAR, "week", now)),
        ("year", "status_time by window",
         lambda: reports.status_time(db, TZ, YEAR.span(TZ), "window", now, YEAR),
         lambda: raw_status(db, YEAR, now)),
        ("year", "dashboard (GET /api/v1/dashboard)", lambda: dashboard.view(c, YEAR),
         lambda: raw_view(c, YEAR)),
        ("year", "ratings_page, first 100", lambda: reports.ratings_page(db, TZ, YEAR),
         None),
        ("year", "差评 page (/api/v1/bad), one window",
         lambda: reports.ratings_page(db, TZ, Filter(**{**vars(YEAR), "window": "W123"}),
                                      level=4), None),
    ]
    for by in ("window", "staff", "hour"):
        out.append(("day", f"summary by {by}",
                    lambda by=by: reports.summary(db, TZ, DAY, by, now),
                    lambda by=by: reports.summary_raw(db, TZ, DAY, by, now)))
    out += [
        ("day", "heat", lambda: reports.heat(db, TZ, DAY),
         lambda: reports.heat_raw(db, TZ, DAY)),
        ("day", "status_time by staff",
         lambda: reports.status_time(db, TZ, day.span(TZ), "staff", now, day),
         lambda: reports.status_time_raw(db, TZ, day.span(TZ), "staff", now, day)),
        ("day", "ratings_page, first 100", lambda: reports.ratings_page(db, TZ, day), None),
        ("day", "dashboard (GET /api/v1/dashboard)", lambda: dashboard.view(c, day),
         lambda: raw_view(c, day)),
    ]
    return out


def run(name: str, url: str) -> bool:
    now = NOW
    c = Collector(url, lambda: now)
    try:
        t = time.perf_counter()
        f = fill(c)
        fill_s = time.perf_counter() - t
        sizes = {tb: c.db.value(f"SELECT COUNT(*) FROM {tb}") for tb in
                 rollups.TABLES}
        ratings = c.db.value("SELECT SUM(n) FROM roll_day")
        print(f"-- {name}: {ratings} ratings ({f['events']:.0f} events) from {WINDOWS} windows "
              f"over 2026's working days; fill {fill_s:.0f} s (bulk load {f['load_s']:.0f} s, "
              f"indexes {f['index_s']:.0f} s, rollups.rebuild {f['rebuild_s']:.0f} s); rollup "
              f"rows: hour {sizes['roll_hour']}, day {sizes['roll_day']}, month {sizes['roll_month']}, "
              f"month x weekday x hour {sizes['roll_hod']}")
        print(f"   {'question':44}{'rollups':>10}{'raw rows':>11}{'raw/rollups':>13}"
              f"{'budget':>9}  verdict")
        met = True
        for span, q, fast, slow in questions(c, now):
            fast()  # warm: the first read of a table's pages is the disk's, not the query's
            a = ms(fast, 3)
            b = ms(slow, 1) if slow else None
            budget = BUDGET_YEAR_MS if span == "year" else BUDGET_DAY_MS
            ok = a < budget
            met &= ok
            raw = f"{b:9.0f} ms" if b is not None else f"{'-':>12}"
            ratio = f"{b / a:11.0f}x" if b is not None and a > 0 else f"{'-':>12}"
            print(f"   {span + ': ' + q:44}{a:7.1f} ms{raw}{ratio} {budget:5.0f} ms  "
                  f"{'met' if ok else 'MISSED'}")
            sys.stdout.flush()
        return met
    finally:
        c.db.close()


def main() -> int:
    print(f"== office views over {RATINGS} ratings (design.md section 8: a year < "
          f"{BUDGET_YEAR_MS:.0f} ms, a day < {BUDGET_DAY_MS:.0f} ms)")
    sys.stdout.flush()
    met = True
    with tempfile.TemporaryDirectory(prefix="pingjia-views-") as d:
        met &= run("SQLite", os.path.join(d, "views.db"))
        # a bulk load's settings: this server holds nothing worth a crash's recovery
        with PgServer("-F -c shared_buffers=1GB -c max_wal_size=8GB "
                      "-c maintenance_work_mem=512MB -c work_mem=64MB") as pg:
            met &= run("PostgreSQL", pg.database("views"))
    print(f"   budgets: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
