"""The dashboard's view (dashboard.view: everything GET /api/v1/dashboard answers and the
page shows) over a year of 200 windows and over one day (design.md section 8: a year's
view within 200 ms, a day's within 50 ms), on a database filled straight through SQL as
bench_cases.py fills it (events as ingest writes them, a case for each 不满意), with the
rollups built from it. The baseline, in the same run: the same views with the rollups
set aside (reports then read the raw rows, as the dashboard did before them).

    .venv/bin/python bench/bench_dashboard.py [--ratings 1000000] [--db URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_cases import NOW, YEAR_START, fill  # noqa: E402

from firmware.clock import iso  # noqa: E402
from host_tools.collector import dashboard, reports, rollups  # noqa: E402
from host_tools.collector.store import Collector  # noqa: E402

RUNS = 5


def best_ms(fn, runs: int = RUNS) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def views(c: Collector) -> dict[str, reports.Filter]:
    tz = c.hall_tz_min()
    first, last = iso(YEAR_START, tz)[:10], iso(NOW - 1, tz)[:10]
    return {"year": reports.Filter(since=first, until=last),
            "year_hall": reports.Filter(since=first, until=last, hall="hall3"),
            "day": reports.Filter(day=iso(NOW - 86400, tz)[:10]),
            "day_window": reports.Filter(day=iso(NOW - 86400, tz)[:10], window="W042")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ratings", type=int, default=1_000_000)
    ap.add_argument("--db", help="a postgresql:// URL (default: a SQLite file in a temp dir)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        c = Collector(a.db or str(Path(tmp) / "dash.db"), lambda: NOW)
        t = time.perf_counter()
        bad = fill(c, a.ratings)
        tz = c.hall_tz_min()
        with c.db.transaction():
            rollups.rebuild(c.db, tz)
        # the planner's statistics, as a database in use has them (PostgreSQL's autovacuum;
        # SQLite's only from ANALYZE: without them SQLite picks worse plans for several
        # views, see the README)
        # the planner's statistics: SQLite's as the collector makes them (at open,
        # hourly), PostgreSQL's at once (autovacuum's would come in a while)
        if c.db.postgres:
            c.db.execute("ANALYZE")
        else:
            c.db.analyze()
        print(f"filled {a.ratings} ratings ({bad} 差评) and their rollups in "
              f"{time.perf_counter() - t:.0f} s ({'PostgreSQL' if c.db.postgres else 'SQLite'})")
        rolled = {name: best_ms(lambda f=f: dashboard.view(c, f)) for name, f in views(c).items()}
        # the rollups set aside: reports read the raw rows (reports._rolled_up)
        with c.db.transaction():
            c.db.execute("UPDATE meta SET value = ? WHERE key = ?", (str(tz + 1), rollups.TZ_KEY))
        raw = {name: best_ms(lambda f=f: dashboard.view(c, f), runs=1)
               for name, f in views(c).items()}
        for name in rolled:
            budget = 50 if name.startswith("day") else 200
            print(f"dashboard {name:11s} {rolled[name]:8.1f} ms (budget {budget}), raw rows "
                  f"{raw[name]:8.1f} ms, x{raw[name] / max(rolled[name], 0.01):.1f}")
        c.db.close()


if __name__ == "__main__":
    main()
