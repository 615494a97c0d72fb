"""Rollups: what the office's views count, kept per hall, window, staff slot and
hall-local hour in the same transaction as the frames they count (store.py), so a
year of ten million ratings answers from a few thousand rows.

Four tables, all of the same counters (COLS):
- roll_hour (hall, win, slot, hour): hour = hall-local hours since 2000-01-01, or
  NO_TIME for events whose time is not known (yet). Day views read it.
- roll_day (hall, win, slot, day): hall-local days. Views by day; the days of a long
  view by window or staff that do not fill a month.
- roll_month (hall, win, slot, month): month = year * 12 + month - 1. A year by window
  or staff reads twelve rows a window and slot (a year of 200 windows read from roll_day
  was 100 000 rows, 100 ms on SQLite: half the budget of a year's view).
- roll_hod (hall, win, month, dow, hod): month (year * 12 + month - 1), weekday
  (Monday 0) and hour of the day; long views by hour and the week's heat map.

Hall-local buckets (not UTC hours): a local day, weekday and hour of the day are then
plain integer arithmetic on the bucket, and a zone whose offset is not whole hours
(+05:45) still lines up with its days. The zone they were built in is kept in meta
(rollup_tz_min); changing the hall's tz_min rebuilds them in the same transaction.

Pause and 请稍候 time: the interval from a status change to the next one of the same
device (by seq, as reports.status_time_raw reads it), cut at local hours. A frame that
adds or dates status changes of a device takes the contributions of that device's
intervals from the change before the first one touched, before and after its writes,
and stores the difference: late frames, a second log, an old log's frame arriving after
a newer one's stay correct. The interval still open (the last change) is not rolled up:
the reports add it up to now."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from firmware import record
from firmware.clock import civil

NO_TIME = -1  # roll_hour's bucket of events whose time is unknown
COLS = ("n", "r1", "r2", "r3", "r4", "inv", "nor", "stray", "dropped", "pause_s", "wait_s")
N = len(COLS)
COUNTED = ("rating", "no_rating", "stray", "dropped")  # the event kinds the counters count
TZ_KEY = "rollup_tz_min"
TABLES = ("roll_hour", "roll_day", "roll_month", "roll_hod")
PARTITION_LOCK = 0x706A726F6C6C  # PostgreSQL advisory lock: making roll_hour's partitions
_PAUSE, _WAIT = COLS.index("pause_s"), COLS.index("wait_s")

Key = tuple[str, str, int, int]  # hall, win, slot, local hour (or NO_TIME)


def _table_sql(name: str, keys: str, pk: str, tail: str = "") -> str:
    cols = ", ".join(f"{c} BIGINT NOT NULL DEFAULT 0" for c in COLS)
    return f"CREATE TABLE {name} ({keys}, {cols}, PRIMARY KEY ({pk})){tail}"


def schema(postgres: bool) -> list[str]:
    """The rollup tables and the indexes on events the views and the ingest read by.
    On PostgreSQL roll_hour (the one that grows with time) is partitioned by month;
    partitions are made as months arrive (ensure_months), the rest goes to the default."""
    hour_keys = "hall TEXT NOT NULL, win TEXT NOT NULL, slot INTEGER NOT NULL, hour BIGINT NOT NULL"
    out = [
        _table_sql("roll_hour", hour_keys, "hour, hall, win, slot",
                   " PARTITION BY RANGE (hour)" if postgres else ""),
        _table_sql("roll_day", "hall TEXT NOT NULL, win TEXT NOT NULL, slot INTEGER NOT NULL, "
                   "day BIGINT NOT NULL", "day, hall, win, slot"),
        _table_sql("roll_month", "hall TEXT NOT NULL, win TEXT NOT NULL, slot INTEGER NOT NULL, "
                   "month INTEGER NOT NULL", "month, hall, win, slot"),
        _table_sql("roll_hod", "hall TEXT NOT NULL, win TEXT NOT NULL, month INTEGER NOT NULL, "
                   "dow INTEGER NOT NULL, hod INTEGER NOT NULL", "month, dow, hod, hall, win"),
        # a staff's rows (a slot of a window) without a scan of every window's
        "CREATE INDEX roll_hour_slot ON roll_hour (win, slot, hour)",
        "CREATE INDEX roll_day_slot ON roll_day (win, slot, day)",
        "CREATE INDEX roll_month_slot ON roll_month (win, slot, month)",
        # a device's status changes with a known time: the intervals the ingest
        # recomputes, and the one still open that the reports add
        "CREATE INDEX events_status ON events (device, seq) WHERE kind = 'status' "
        "AND t IS NOT NULL",
        # the 差评 list and pages in their order, without a sort (a small index: 差评 only)
        "CREATE INDEX events_bad ON events (t, device, seq) WHERE kind = 'rating' AND level = 4",
        "CREATE INDEX events_bad_win ON events (win, t) WHERE kind = 'rating' AND level = 4",
    ]
    if postgres:
        out.append("CREATE TABLE roll_hour_default PARTITION OF roll_hour DEFAULT")
    return out


# ---- buckets ---------------------------------------------------------------------
def hour_of(t: int | None, tz_min: int) -> int:
    return NO_TIME if t is None else (t + tz_min * 60) // 3600


def month_of_day(day: int) -> int:
    y, m, _d = civil(day)
    return y * 12 + m - 1


def dow_of_day(day: int) -> int:
    return (day + 5) % 7  # 2000-01-01 was a Saturday; Monday is 0


def counters(kind: str, level: int | None, mode: int | None, count: int | None) -> list[int]:
    v = [0] * N
    if kind == "rating":
        v[0] = 1
        if level in (1, 2, 3, 4):
            v[level] = 1
        if mode == 0:
            v[5] = 1
    elif kind == "no_rating":
        v[6] = 1
    elif kind == "stray":
        v[7] = count or 0
    elif kind == "dropped":
        v[8] = count or 0
    return v


def split_hours(a: int, b: int, tz_min: int) -> Iterable[tuple[int, int]]:
    """[a, b) in seconds since 2000 UTC -> (local hour, seconds in it)."""
    off = tz_min * 60
    while a < b:
        h = (a + off) // 3600
        end = min(b, (h + 1) * 3600 - off)
        yield h, end - a
        a = end


def add(acc: dict[Key, list[int]], key: Key, vals: list[int], sign: int = 1) -> None:
    cur = acc.get(key)
    if cur is None:
        cur = acc[key] = [0] * N
    for i, x in enumerate(vals):
        if x:
            cur[i] += sign * x


# ---- status intervals ------------------------------------------------------------
def status_from(db: Any, device: str, first_seq: int) -> int | None:
    """The seq the recompute of a device's intervals starts at: its last status change
    with a known time before first_seq (its interval ends at the first one touched)."""
    v = db.value("SELECT MAX(seq) FROM events WHERE kind = 'status' AND t IS NOT NULL "
                 "AND device = ? AND seq < ?", (device, first_seq))
    return first_seq if v is None else int(v)


def status_contrib(db: Any, device: str, hall: str, start_seq: int,
                   tz_min: int) -> dict[Key, list[int]]:
    """The closed intervals of a device's status changes from start_seq on."""
    rows = db.all("SELECT win, slot, to_state, t FROM events WHERE kind = 'status' "
                  "AND t IS NOT NULL AND device = ? AND seq >= ? ORDER BY seq",
                  (device, start_seq))
    acc: dict[Key, list[int]] = {}
    for (win, slot, state, t), nxt in zip(rows, rows[1:], strict=False):
        intervals(acc, hall, win, slot, state, t, nxt[3], tz_min)
    return acc


def intervals(acc: dict[Key, list[int]], hall: str, win: str, slot: int, state: int,
              a: int, b: int, tz_min: int) -> None:
    if state not in (record.PAUSED, record.WAIT):
        return
    col = _PAUSE if state == record.PAUSED else _WAIT
    for h, s in split_hours(a, b, tz_min):
        v = [0] * N
        v[col] = s
        add(acc, (hall, win, slot, h), v)


def diff(new: dict[Key, list[int]], old: dict[Key, list[int]]) -> dict[Key, list[int]]:
    out = {k: list(v) for k, v in new.items()}
    for k, v in old.items():
        add(out, k, v, -1)
    return out


# ---- writing ---------------------------------------------------------------------
def _upsert(db: Any, table: str, keys: tuple[str, ...], rows: list[tuple]) -> None:
    cols = keys + COLS
    upd = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in COLS)
    db.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                   f"({', '.join('?' for _ in cols)}) ON CONFLICT ({', '.join(keys)}) "
                   f"DO UPDATE SET {upd}", rows)


def apply(db: Any, acc: dict[Key, list[int]]) -> None:
    """Add the hourly deltas to the four tables (sorted: two transactions of several
    serve processes take the rows they share in the same order, no deadlock)."""
    acc = {k: v for k, v in acc.items() if any(v)}
    if not acc:
        return
    days: dict[tuple, list[int]] = {}
    months: dict[tuple, list[int]] = {}
    hods: dict[tuple, list[int]] = {}
    for (hall, win, slot, h), v in acc.items():
        if h == NO_TIME:
            continue
        d = h // 24
        m = month_of_day(d)
        add(days, (hall, win, slot, d), v)
        add(months, (hall, win, slot, m), v)
        add(hods, (hall, win, m, dow_of_day(d), h % 24), v)
    ensure_months(db, {h for _hall, _w, _s, h in acc})
    _upsert(db, "roll_hour", ("hall", "win", "slot", "hour"),
            [k + tuple(v) for k, v in sorted(acc.items(), key=lambda kv: kv[0][3:] + kv[0][:3])])
    _upsert(db, "roll_day", ("hall", "win", "slot", "day"),
            [k + tuple(v) for k, v in sorted(days.items(), key=lambda kv: kv[0][3:] + kv[0][:3])])
    _upsert(db, "roll_month", ("hall", "win", "slot", "month"),
            [k + tuple(v) for k, v in sorted(months.items(),
                                             key=lambda kv: kv[0][3:] + kv[0][:3])])
    _upsert(db, "roll_hod", ("hall", "win", "month", "dow", "hod"),
            [k + tuple(v) for k, v in sorted(hods.items(), key=lambda kv: kv[0][2:] + kv[0][:2])])


def ensure_months(db: Any, hours: Iterable[int]) -> None:
    """PostgreSQL: a partition of roll_hour for every month these hours fall in (a row
    in the default partition would keep its month's partition from being made)."""
    if not db.postgres:
        return
    known = db.__dict__.setdefault("_roll_months", set())
    new = sorted({month_of_day(h // 24) for h in hours if h != NO_TIME} - known)
    if new:  # another serve process may be making the same month's partition: its CREATE
        # waits for this lock, then sees the other's committed table (IF NOT EXISTS alone
        # raced: "relation already exists", a 500 to the device)
        db.execute("SELECT pg_advisory_xact_lock(?)", (PARTITION_LOCK,))
    for m in new:
        lo, hi = month_hours(m)
        db.execute(f"CREATE TABLE IF NOT EXISTS roll_hour_m{m} PARTITION OF roll_hour "
                   f"FOR VALUES FROM ({lo}) TO ({hi})")
        known.add(m)


def month_hours(m: int) -> tuple[int, int]:
    """[first, end) local hours of month m (year * 12 + month - 1)."""
    from firmware.clock import days_from_civil

    y, mo = divmod(m, 12)
    ny, nm = divmod(m + 1, 12)
    return days_from_civil(y, mo + 1, 1) * 24, days_from_civil(ny, nm + 1, 1) * 24


# ---- rebuilding from the raw rows ----------------------------------------------------
def rebuild(db: Any, tz_min: int) -> None:
    """The rollups from every stored event (a migration, a new tz_min): the counters in
    one GROUP BY on the database, the status intervals here; inside the caller's
    transaction."""
    for t in TABLES:
        db.execute(f"DELETE FROM {t}")
    off = tz_min * 60
    sums = ", ".join([
        "SUM(CASE WHEN e.kind = 'rating' THEN 1 ELSE 0 END)",
        *(f"SUM(CASE WHEN e.kind = 'rating' AND e.level = {lv} THEN 1 ELSE 0 END)"
          for lv in (1, 2, 3, 4)),
        "SUM(CASE WHEN e.kind = 'rating' AND e.mode = 0 THEN 1 ELSE 0 END)",
        "SUM(CASE WHEN e.kind = 'no_rating' THEN 1 ELSE 0 END)",
        "SUM(CASE WHEN e.kind = 'stray' THEN COALESCE(e.count, 0) ELSE 0 END)",
        "SUM(CASE WHEN e.kind = 'dropped' THEN COALESCE(e.count, 0) ELSE 0 END)"])
    rows = db.all(
        f"SELECT COALESCE(d.hall, 'main'), e.win, e.slot, CASE WHEN e.t IS NULL THEN {NO_TIME} "
        f"ELSE (e.t + {off}) / 3600 END, {sums} FROM events e LEFT JOIN devices d "
        "ON d.id = e.device WHERE e.kind IN ('rating', 'no_rating', 'stray', 'dropped') "
        "GROUP BY 1, 2, 3, 4")
    acc: dict[Key, list[int]] = {}
    for r in rows:
        add(acc, (r[0], r[1], int(r[2]), int(r[3])), [int(x or 0) for x in r[4:]] + [0, 0])
    _rebuild_status(db, tz_min, acc)
    apply(db, acc)
    db.execute(db.upsert_sql("meta", ("key", "value"), ("key",)), (TZ_KEY, str(tz_min)))


def _rebuild_status(db: Any, tz_min: int, acc: dict[Key, list[int]]) -> None:
    halls = {d: h for d, h in db.all("SELECT id, hall FROM devices")}
    prev: tuple | None = None
    for dev, win, slot, state, t in db.all(
            "SELECT device, win, slot, to_state, t FROM events WHERE kind = 'status' "
            "AND t IS NOT NULL ORDER BY device, seq"):
        if prev is not None and prev[0] == dev:
            intervals(acc, halls.get(dev, "main"), prev[1], prev[2], prev[3], prev[4], t,
                      tz_min)
        prev = (dev, win, slot, state, t)


def built_tz(db: Any) -> int | None:
    v = db.value("SELECT value FROM meta WHERE key = ?", (TZ_KEY,))
    return None if v is None else int(v)
