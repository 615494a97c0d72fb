"""差评 cases at a province's year (design.md section 8: any view over a year of 200
windows, 10 million ratings, within 200 ms): the case list's pages, its filters and
cursor, and the counts of `cases.summary`, on a database filled straight through SQL
(events as ingest writes them, a case for each 不满意, most of the old ones closed).
The baseline, in the same run: the open cases asked of the events table itself (a 差评
list joined with the cases, as without the cases' own indexes).

    .venv/bin/python bench/bench_cases.py [--ratings 10000000] [--db URL]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware.clock import days_from_civil  # noqa: E402
from host_tools.collector import cases, reports  # noqa: E402
from host_tools.collector.store import Collector  # noqa: E402

WINDOWS = 200
HALLS = 10
BAD_SHARE = 0.05  # one rating in twenty a 不满意
YEAR_START = days_from_civil(2025, 12, 1) * 86400
YEAR_S = 365 * 86400
NOW = YEAR_START + YEAR_S
BUDGET_MS = 200.0
BATCH = 20_000


def fill(c: Collector, n: int, seed: int = 7) -> int:
    """n ratings over a year from WINDOWS windows (one device each) in HALLS halls; the
    number of 差评 (each with its case)."""
    rnd = random.Random(seed)
    db = c.db
    with db.transaction():
        for w in range(WINDOWS):
            db.execute("INSERT INTO devices (id, key, win, created, hall) VALUES (?, ?, ?, 0, ?)",
                       (f"d{w:03d}", "00" * 16, f"W{w:03d}", f"hall{w % HALLS}"))
            for slot in (1, 2):
                db.execute("INSERT INTO window_slots (win, slot, staff_no, active) "
                           "VALUES (?, ?, ?, 1)", (f"W{w:03d}", slot, f"S{w:03d}{slot}"))
                db.execute("INSERT INTO staff (staff_no, badge_uid, name) VALUES (?, ?, ?)",
                           (f"S{w:03d}{slot}", f"{w:04X}{slot:04X}", f"员工{w}-{slot}"))
    per = n // WINDOWS
    step = YEAR_S / per
    bad = 0
    events, case_rows = [], []

    def flush() -> None:
        with db.transaction():
            db.executemany("INSERT INTO events (device, seq, kind, win, slot, staff_no, level, "
                           "mode, reason, ticket, boot, t) VALUES (?, ?, 'rating', ?, ?, NULL, "
                           "?, 0, ?, ?, 1, ?)", events)
            db.executemany("INSERT INTO cases (device, seq, win, slot, staff_no, t, since, "
                           "state, closed) VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?)", case_rows)
        events.clear()
        case_rows.clear()

    for seq in range(1, per + 1):
        for w in range(WINDOWS):
            t = YEAR_START + int(seq * step) + w
            slot = 1 + (seq + w) % 2
            level = 4 if rnd.random() < BAD_SHARE else rnd.choice((1, 1, 1, 2, 2, 3))
            events.append((f"d{w:03d}", seq, f"W{w:03d}", slot, level,
                           rnd.randint(1, 4) if level == 4 else None,
                           f"T{seq}" if level == 4 else None, t))
            if level == 4:
                bad += 1
                state = _state(rnd, NOW - t)
                case_rows.append((f"d{w:03d}", seq, f"W{w:03d}", slot, t, t, state,
                                  1 if state in cases.CLOSED else 0))
        if len(events) >= BATCH:
            flush()
    flush()
    return bad


def _state(rnd: random.Random, age: int) -> str:
    """Old cases are mostly closed; the last days' are still being worked on."""
    if age > 10 * 86400:
        return rnd.choices(("rectified", "upheld", "open", "called_back"),
                           (95, 3, 1, 1))[0]
    return rnd.choices(("open", "called_back", "appealed", "rectified"), (5, 3, 1, 1))[0]


def timed(fn, repeat: int = 5) -> tuple[float, object]:
    """The best of `repeat` runs, in ms, and what the last returned."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, (time.perf_counter() - t) * 1000)
    return best, out


def naive_open_page(c: Collector, limit: int = 100) -> list:
    """The baseline: open cases found from the 差评 in events (no case indexes used)."""
    return c.db.all("SELECT e.device, e.seq, e.t FROM events e LEFT JOIN cases c "
                    "ON c.device = e.device AND c.seq = e.seq WHERE e.kind = 'rating' "
                    "AND e.level = 4 AND (c.closed IS NULL OR c.closed = 0) "
                    "ORDER BY e.t, e.device, e.seq LIMIT ?", (limit,))


def ingest_s(tmp: Path, name: str, frames: int = 300, per: int = 100) -> float:
    """Seconds to ingest `frames` frames of `per` ratings (one in twenty a 不满意) from
    one device, straight into the collector (no HTTP)."""
    from firmware import frame, record

    t0 = NOW - YEAR_S // 2
    c = Collector(str(tmp / name), lambda: t0 + 3600)
    key = bytes.fromhex(c.add_device("ing-1", "W001"))
    rnd = random.Random(3)
    bodies, seq = [], 0
    for n in range(frames):
        recs = []
        for _ in range(per):
            seq += 1
            level = 4 if rnd.random() < BAD_SHARE else 1
            recs.append(record.pack(seq, record.RATING, level, 0, 0, t0 + seq))
        bodies.append(frame.request(key, "ing-1", 7, 1, seq - per + 1, b"".join(recs),
                                    nonce=n + 1))
    start = time.perf_counter()
    for b in bodies:
        c.ingest(b)
    took = time.perf_counter() - start
    c.db.close()
    return took


def ingest_cost() -> None:
    """What making the cases costs ingest: the same frames with open_cases and with it
    doing nothing, in this run."""
    real = cases.open_cases
    with tempfile.TemporaryDirectory() as tmp:
        with_cases = ingest_s(Path(tmp), "with.db")
        cases.open_cases = lambda *a, **k: None
        try:
            without = ingest_s(Path(tmp), "without.db")
        finally:
            cases.open_cases = real
    n = 300 * 100
    print(f"  ingest, {n:,} ratings in 300 frames: {n / with_cases:,.0f} ratings/s with cases, "
          f"{n / without:,.0f} without ({with_cases / without:.2f}x the time)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ratings", type=int, default=10_000_000)
    ap.add_argument("--db", help="a postgresql:// URL of an empty database (default: SQLite "
                                 "in a temporary directory)")
    ap.add_argument("--keep", metavar="FILE",
                    help="a SQLite file kept between runs: filled once, then reused")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        c = Collector(a.db or a.keep or str(Path(tmp) / "cases.db"), lambda: NOW)
        t = time.perf_counter()
        bad = int(c.db.value("SELECT COUNT(*) FROM cases", (), 0))
        if not bad:
            bad = fill(c, a.ratings)
            # the planner's statistics: SQLite's as the collector makes them (at open,
            # hourly), PostgreSQL's at once (autovacuum's would come in a while)
            if c.db.postgres:
                c.db.execute("ANALYZE")
            else:
                c.db.analyze()
        a.ratings = int(c.db.value("SELECT COUNT(*) FROM events", (), 0))
        print(f"== 差评 cases at {a.ratings:,} ratings ({bad:,} cases, {WINDOWS} windows, "
              f"a year) on {'PostgreSQL' if c.db.postgres else 'SQLite'}: filled in "
              f"{time.perf_counter() - t:.0f} s")
        every = reports.Filter()
        page = cases.list_cases(c, every, "all", "", 100)
        deep = page.next
        for _ in range(50):  # fifty pages in: the cursor walks the index from there
            deep = cases.list_cases(c, every, "all", deep or "", 100).next
        questions = {
            "list all, first page": lambda: cases.list_cases(c, every, "all"),
            "list all, page 51 (cursor)": lambda: cases.list_cases(c, every, "all", deep),
            "list open": lambda: cases.list_cases(c, every, "open"),
            "list overdue": lambda: cases.list_cases(c, every, "overdue"),
            "list closed": lambda: cases.list_cases(c, every, "closed"),
            "list open, one window": lambda: cases.list_cases(
                c, reports.Filter(window="W123"), "open"),
            "list all, one staff": lambda: cases.list_cases(
                c, reports.Filter(staff="S1231"), "all"),
            "list open, one hall": lambda: cases.list_cases(
                c, reports.Filter(hall="hall3"), "open"),
            "list all, one day": lambda: cases.list_cases(
                c, reports.Filter(day="2026-06-01"), "all"),
            "summary, the year": lambda: cases.summary(c.db, every, NOW),
            "summary, one window": lambda: cases.summary(c.db, reports.Filter(window="W123"),
                                                         NOW),
            "summary, one day": lambda: cases.summary(c.db, reports.Filter(day="2026-06-01"),
                                                      NOW),
            "summary, one hall": lambda: cases.summary(c.db, reports.Filter(hall="hall3"),
                                                       NOW),
            "summary, one staff": lambda: cases.summary(c.db, reports.Filter(staff="S1231"),
                                                        NOW),
        }
        base_ms, _ = timed(lambda: naive_open_page(c), repeat=2)
        ok = True
        for name, fn in questions.items():
            ms, _out = timed(fn)
            ok &= ms < BUDGET_MS
            print(f"  {name:<28} {ms:8.1f} ms   {ms / base_ms:6.3f}x the baseline")
        print(f"  baseline: open cases from the events table  {base_ms:8.1f} ms")
        print(f"  every view within {BUDGET_MS:.0f} ms: {'yes' if ok else 'NO'}")
        ingest_cost()
        c.db.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
