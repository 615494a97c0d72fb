"""The periodic evaluation (issue 14): a year's ranking of one hall, and its PDF, over
ratings ingested through the collector's own frames; against a baseline run in the same
process on the same database: the same figures asked window by window and staff member by
staff member (one reports.summary each, as a per-window loop would). Prints figures and
the ratio. The evaluation's own speed follows reports.summary's: the rollups make both fast.

    python bench/bench_evaluation.py [--windows 200] [--ratings 500] [--db URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware import frame, record  # noqa: E402
from firmware.clock import parse_iso  # noqa: E402
from host_tools.collector import evaluation, pdf, reports  # noqa: E402
from host_tools.collector.store import Collector  # noqa: E402

YEAR_START = parse_iso("2026-01-01T09:00:00+08:00")
NOW = parse_iso("2026-12-31T18:00:00+08:00")
PER_FRAME = 1000


def fill(c: Collector, windows: int, per_window: int) -> int:
    """Each window's device rates per_window times over the year, the keys in a pattern
    that differs per window (so the ranking has work); one staff member a window."""
    c.import_roster_bytes(("badge_uid,staff_no,name,department,windows\n" + "".join(
        f"{i:08X},S{i:04d},员工{i},综合,W{i:03d}\n" for i in range(1, windows + 1))).encode())
    step = (NOW - YEAR_START - 86400) // per_window
    for w in range(1, windows + 1):
        dev = f"b{w:03d}"
        key = bytes.fromhex(c.add_device(dev, f"W{w:03d}"))
        recs = [bytes(record.pack(1, record.BOOT, 1, 0, 0, YEAR_START))]
        for n in range(per_window):
            level = 1 + (n * w // 7 + n) % 4 if n % (3 + w % 5) else 4
            recs.append(bytes(record.pack(len(recs) + 1, record.RATING, level, 0, 1,
                                          YEAR_START + n * step)))
        for first in range(0, len(recs), PER_FRAME):
            part = recs[first:first + PER_FRAME]
            c.ingest(frame.request(key, dev, 7, 1, first + 1, b"".join(part),
                                   nonce=YEAR_START + first))
    return windows * per_window


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def per_row_baseline(c: Collector, period: evaluation.Period) -> None:
    """The same figures, one summary per window and per staff member."""
    tz, now = c.hall_tz_min(), c.now()
    for (win,) in c.db.all("SELECT DISTINCT win FROM devices"):
        reports.summary(c.db, tz, None, "window", now, period.filter("main", window=win))
    for (no,) in c.db.all("SELECT staff_no FROM staff"):
        reports.summary(c.db, tz, None, "staff", now, period.filter("main", staff=no))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=200)
    ap.add_argument("--ratings", type=int, default=500, help="per window over the year")
    ap.add_argument("--db", help="a postgresql:// URL of an empty database (default SQLite)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        c = Collector(args.db or str(Path(d) / "bench.db"), lambda: NOW)
        t = time.perf_counter()
        n = fill(c, args.windows, args.ratings)
        print(f"ingested {n} ratings of {args.windows} windows in "
              f"{time.perf_counter() - t:.1f} s")
        year = evaluation.parse_period("2026")
        ev = evaluation.evaluate(c, year, hall="main")
        ranked = ev["halls"][0]["windows"]["ranked"]
        assert len(ranked) == args.windows, "every window has enough ratings to be ranked"
        ours = best_of(3, lambda: evaluation.evaluate(c, year, hall="main"))
        base = best_of(1, lambda: per_row_baseline(c, year))
        print(f"evaluation of the year, hall main: {ours * 1000:.0f} ms; the same figures "
              f"row by row: {base * 1000:.0f} ms; ratio {base / ours:.1f}x")
        month = evaluation.parse_period("2026-11")
        m = best_of(3, lambda: evaluation.evaluate(c, month, hall="main"))
        print(f"evaluation of 2026-11: {m * 1000:.0f} ms")
        data = pdf.render(ev)
        made = best_of(2, lambda: pdf.render(ev))
        print(f"PDF of the year ({args.windows} windows, {args.windows} staff): "
              f"{made * 1000:.0f} ms, {len(data) / 1024:.0f} KB")
        c.db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
