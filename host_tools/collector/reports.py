"""Reports from the stored events: ratings per level, 满意率, 差评率, 参评率, the
satisfaction index, 差评 with reasons and tickets, pause and 请稍候 time per staff,
stray presses; by window, staff, day or hour (in the hall's time zone)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from firmware import record
from firmware.clock import civil, days_from_civil, iso
from firmware.logview import LEVEL_NAMES, REASON_NAMES
from host_tools.collector import rollups
from host_tools.collector.db import Database

BAD_KEPT = 20  # 差评 a summary row lists (its newest); the rest page through ratings_page
BAD_SCAN = 1000  # the filter's newest 差评 the rows' lists are taken from
BAD_TABLE = 20  # 差评 the text report prints (the newest), after their count
INDEX_POINTS = {1: 100.0, 2: 66.7, 3: 33.3, 4: 0.0}  # design.md section 6
BY = ("window", "staff", "day", "hour")


def day_range(day: str, tz_min: int) -> tuple[int, int]:
    """'YYYY-MM-DD' in the hall's zone -> [start, end) in seconds since 2000 UTC."""
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            raise ValueError
        y, m, d = (int(x) for x in day.split("-"))
        days = days_from_civil(y, m, d)
        if civil(days) != (y, m, d):  # 2026-02-30, month 13
            raise ValueError
    except (ValueError, TypeError):
        raise ValueError(f"bad day {day!r}: use YYYY-MM-DD, a date of the calendar") from None
    start = days * 86400 - tz_min * 60
    return start, start + 86400


def local_day(t: int, tz_min: int) -> str:
    return iso(t, tz_min)[:10]


@dataclass
class Filter:
    """Which events a report or list covers (design.md section 6: by hall, window, staff
    and dates). day: one day; since/until: first and last day (inclusive), YYYY-MM-DD
    in the hall's time zone. Events whose time is unknown are in no date range."""

    day: str | None = None
    since: str | None = None
    until: str | None = None
    hall: str | None = None
    window: str | None = None
    staff: str | None = None

    def span(self, tz_min: int) -> tuple[int, int] | None:
        if self.day and (self.since or self.until):  # one would silently win over the other
            raise ValueError("give one day (--day) or a range of days (--from/--to), "
                             "not both")
        if self.day:
            return day_range(self.day, tz_min)
        if not self.since and not self.until:
            return None
        start = day_range(self.since, tz_min)[0] if self.since else -(1 << 62)
        end = day_range(self.until, tz_min)[1] if self.until else 1 << 62
        if end <= start:
            raise ValueError(f"the dates run backwards: from {self.since} to {self.until}")
        return start, end

    def check(self, db: Database) -> None:
        """ValueError (a message a user can act on) for a hall, window or staff the
        collector does not know, a date that does not parse or dates that run backwards."""
        self.span(0)  # the dates parse and run forwards
        if self.hall and not db.one("SELECT 1 FROM devices WHERE hall = ? LIMIT 1",
                                    (self.hall,)):
            raise ValueError(f"no hall {self.hall!r} (pingjia device add ID --window W "
                             "--hall H names one)")
        if self.window and not db.one(
                "SELECT 1 FROM devices WHERE win = ? UNION ALL SELECT 1 FROM window_slots "
                "WHERE win = ? LIMIT 1", (self.window, self.window)):
            raise ValueError(f"no window {self.window!r}")
        if self.staff and not db.one(
                "SELECT 1 FROM staff WHERE staff_no = ? UNION ALL SELECT 1 FROM window_slots "
                "WHERE staff_no = ? LIMIT 1", (self.staff, self.staff)):
            raise ValueError(f"no staff {self.staff!r} in the roster")

    def where(self, db: Database, alias: str = "e", hall_column: bool = False,
              by_staff: bool = True) -> tuple[str, list]:
        """SQL conditions (each starting with AND) on rows `alias` with device (or hall,
        with hall_column), win and slot columns: events, cases, rollups. The staff's rows
        are those of the staff's slots (by_staff False: no staff condition, for a table
        without slots): an event's staff_no is its slot's at ingest, and a slot keeps its
        staff (the 差评 of one staff over a year walked the whole 差评 index, 1.1 s at ten
        million ratings, by COALESCE(staff_no, the slot's))."""
        sql, params = "", []
        if self.hall:
            sql += (f" AND {alias}.hall = ?" if hall_column else
                    f" AND {alias}.device IN (SELECT id FROM devices WHERE hall = ?)")
            params.append(self.hall)
        if self.window:
            sql += f" AND {alias}.win = ?"
            params.append(self.window)
        if self.staff and by_staff:
            more, p = staff_slots_where(db, self.staff, alias)
            sql += more
            params += p
        return sql, params


def _staff_names(db: Database) -> dict[str, str]:
    return {no: name for no, name in db.all("SELECT staff_no, name FROM staff")}


# slots never change staff, so records stored before the roster still resolve
_EVENTS = ("SELECT e.device, e.seq, e.kind, e.win, e.slot, COALESCE(e.staff_no, ws.staff_no), "
           "e.level, e.mode, e.reason, e.ticket, e.from_state, e.to_state, e.why, e.flagged, "
           "e.count, e.t FROM events e LEFT JOIN window_slots ws ON ws.win = e.win "
           "AND ws.slot = e.slot WHERE ")


def _events(db: Database, kinds: tuple[str, ...], span: tuple[int, int] | None,
            flt: Filter | None = None) -> list[tuple]:
    ph = ", ".join("?" for _ in kinds)
    sql = _EVENTS + f"e.kind IN ({ph})"
    params: list[Any] = list(kinds)
    if span:
        sql += " AND e.t >= ? AND e.t < ?"
        params += list(span)
    if flt:
        more, p = flt.where(db)
        sql += more
        params += p
    return db.all(sql + " ORDER BY e.device, e.seq", params)


def _key(by: str, win: str, staff_no: str | None, t: int | None, tz_min: int) -> str:
    if by == "window":
        return win
    if by == "staff":
        return staff_no or "-"
    if t is None:
        return "unknown"
    s = iso(t, tz_min)
    return s[:10] if by == "day" else s[11:13] + ":00"


def _new_row() -> dict[str, Any]:
    return {"ratings": 0, "levels": {1: 0, 2: 0, 3: 0, 4: 0}, "no_rating": 0,
            "invite_ratings": 0, "stray": 0, "dropped": 0, "pause_s": 0, "wait_s": 0,
            "bad": []}


def finish(row: dict[str, Any]) -> dict[str, Any]:
    """Add the rates (None where there is nothing to divide by)."""
    n = row["ratings"]
    lv = row["levels"]
    inv = row["invite_ratings"] + row["no_rating"]
    row["invitations"] = inv
    row["satisfied_rate"] = (lv[1] + lv[2] + lv[3]) / n if n else None  # 满意率
    row["bad_rate"] = lv[4] / n if n else None  # 差评率
    row["participation_rate"] = row["invite_ratings"] / inv if inv else None  # 参评率
    row["index"] = (sum(INDEX_POINTS[k] * c for k, c in lv.items()) / n) if n else None
    return row


def summary(db: Database, tz_min: int, day: str | None = None, by: str = "window",
            now: int | None = None, flt: Filter | None = None,
            bad_lists: bool = True) -> list[dict[str, Any]]:
    """One row per window, staff, day or hour (of the events flt lets through), from the
    rollups (rollups.py). Each row's `bad` is a bounded list: at most BAD_KEPT of its
    newest 差评 (among the filter's newest BAD_SCAN; empty without bad_lists, for views
    that show the 差评 apart); `bad_count` counts them all, and ratings_page(level=4)
    (/api/v1/bad) pages through every one."""
    flt = _merged(flt, day)
    _check_by(by)
    flt.check(db)
    if not _rolled_up(db, tz_min):
        return summary_raw(db, tz_min, None, by, now, flt)
    span = flt.span(tz_min)
    names = _staff_names(db)
    rows: dict[str, dict[str, Any]] = defaultdict(_new_row)
    for key, v in _rolled(db, tz_min, span, by, flt).items():
        if any(v):
            _add_counters(rows[key], v)
    for key, (pause, wait) in _open_status(db, tz_min, span, by, now, flt).items():
        rows[key]["pause_s"] += pause
        rows[key]["wait_s"] += wait
    if bad_lists:
        _attach_bad(db, tz_min, rows, by, flt, span, names)
    return _rows_out(rows, by, names)


def summary_raw(db: Database, tz_min: int, day: str | None = None, by: str = "window",
                now: int | None = None, flt: Filter | None = None) -> list[dict[str, Any]]:
    """summary() from the raw events (every one read): the yardstick of the rollups in
    tests and bench/views.py, and the answer when they were built in another zone."""
    flt = _merged(flt, day)
    _check_by(by)
    span = flt.span(tz_min)
    names = _staff_names(db)
    rows: dict[str, dict[str, Any]] = defaultdict(_new_row)
    for (_dev, _seq, kind, win, _slot, staff_no, level, mode, _reason, _ticket, _f, _to, _why,
         _fl, count, t) in _events(db, ("rating", "no_rating", "stray", "dropped"), span, flt):
        row = rows[_key(by, win, staff_no, t, tz_min)]
        if kind == "rating":
            row["ratings"] += 1
            if level in row["levels"]:
                row["levels"][level] += 1
            if mode == 0:
                row["invite_ratings"] += 1
        elif kind == "no_rating":
            row["no_rating"] += 1
        else:
            row[kind] += count or 0
    for key, (pause, wait) in status_time_raw(db, tz_min, span, by, now, flt).items():
        rows[key]["pause_s"] += pause
        rows[key]["wait_s"] += wait
    _attach_bad(db, tz_min, rows, by, flt, span, names)
    return _rows_out(rows, by, names)


def _merged(flt: Filter | None, day: str | None) -> Filter:
    return Filter(**dict(vars(flt or Filter()), day=day or (flt.day if flt else None)))


def _check_by(by: str) -> None:
    if by not in BY:
        raise ValueError(f"--by must be one of {', '.join(BY)}")


def _add_counters(row: dict[str, Any], v: list[int]) -> None:
    n, r1, r2, r3, r4, inv, nor, stray, dropped, pause, wait = v
    row["ratings"] += n
    for lv, c in ((1, r1), (2, r2), (3, r3), (4, r4)):
        row["levels"][lv] += c
    row["invite_ratings"] += inv
    row["no_rating"] += nor
    row["stray"] += stray
    row["dropped"] += dropped
    row["pause_s"] += pause
    row["wait_s"] += wait


def _rows_out(rows: dict[str, dict[str, Any]], by: str,
              names: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for key in sorted(rows):
        r = finish(rows[key])
        r[by] = key
        r["bad_count"] = r["levels"][4]
        if by == "staff":
            r["staff_name"] = names.get(key)
        out.append(r)
    return out


def _attach_bad(db: Database, tz_min: int, rows: dict[str, dict[str, Any]], by: str,
                flt: Filter, span: tuple[int, int] | None, names: dict[str, str]) -> None:
    """Each row's newest 差评 (at most BAD_KEPT, oldest first), from the filter's newest
    BAD_SCAN: one query down an index, whatever the span."""
    if not any(r["levels"][4] for r in rows.values()):
        return
    sql = _EVENTS + "e.kind = 'rating' AND e.level = 4 AND e.t IS NOT NULL"
    params: list[Any] = []
    if span:
        sql += " AND e.t >= ? AND e.t < ?"
        params += list(span)
    more, p = flt.where(db)
    found = db.all(sql + more + " ORDER BY e.t DESC, e.device DESC, e.seq DESC LIMIT ?",
                   [*params, *p, BAD_SCAN])
    for (dev, seq, _k, win, _slot, staff_no, _lv, _m, reason, ticket, _f, _to, _why, _fl, _c,
         t) in found:
        row = rows.get(_key(by, win, staff_no, t, tz_min))
        if row is None or len(row["bad"]) >= BAD_KEPT:
            continue
        row["bad"].insert(0, {
            "time": iso(t, tz_min), "window": win, "device": dev, "log": seq >> 32,
            "seq": seq & 0xFFFFFFFF, "staff_no": staff_no,
            "staff_name": names.get(staff_no or ""), "ticket": ticket,
            "reason": reason, "reason_text": _reason(reason)})


def _reason(reason: int | None) -> str | None:
    return REASON_NAMES[reason] if reason and 0 < reason < 5 else None


# ---- reading the rollups --------------------------------------------------------------
DAY_MAX = 200_000  # days since 2000 a span is clipped to (an open end runs to 2547)


def _rolled_up(db: Database, tz_min: int) -> bool:
    """The rollups answer for this zone (they are built in the hall's)."""
    return rollups.built_tz(db) == tz_min


def _days(span: tuple[int, int] | None, tz_min: int) -> tuple[int, int] | None:
    if span is None:
        return None
    off = tz_min * 60
    return (min(max((span[0] + off) // 86400, 0), DAY_MAX),
            min(max((span[1] + off) // 86400, 0), DAY_MAX))


def staff_slots_where(db: Database, staff_no: str, alias: str) -> tuple[str, list[Any]]:
    """A condition on rows with (win, slot) columns: the staff member's. A slot keeps its
    staff for good, so the staff's few slots are read first and each is then a range of a
    (win, slot, time) index (a join on window_slots scanned the table: 0.7 s a year)."""
    slots = db.all("SELECT win, slot FROM window_slots WHERE staff_no = ?", (staff_no,))
    alts = " OR ".join(f"({alias}.win = ? AND {alias}.slot = ?)" for _ in slots)
    return f" AND ({alts or '1 = 0'})", [x for ws in slots for x in ws]


_SUMS = ", ".join(f"SUM(r.{c})" for c in rollups.COLS)
# what a row of each table is grouped by for each view, and how the group becomes a key
_HOD = "r.hour - r.hour / 24 * 24"  # hour % 24 ('%' is psycopg's placeholder)
_DOW = "(r.hour / 24 + 5) - (r.hour / 24 + 5) / 7 * 7"
_GROUP = {
    ("roll_day", "window"): "r.win", ("roll_day", "staff"): "r.win, r.slot",
    ("roll_day", "day"): "r.day",
    ("roll_month", "window"): "r.win", ("roll_month", "staff"): "r.win, r.slot",
    ("roll_hour", "window"): "r.win", ("roll_hour", "staff"): "r.win, r.slot",
    ("roll_hour", "day"): "r.hour / 24", ("roll_hour", "hour"): _HOD,
    ("roll_hour", "week"): f"{_DOW}, {_HOD}",
    ("roll_hod", "hour"): "r.hod", ("roll_hod", "week"): "r.dow, r.hod",
    ("roll_hour", "heat"): f"r.win, {_HOD}",
}
_TIME_COL = {"roll_day": "day", "roll_hour": "hour", "roll_month": "month", "roll_hod": "month"}


def _query(db: Database, table: str, view: str, lo: int | None, hi: int | None,
           flt: Filter, acc: dict[Any, list[int]], names: Any = None) -> None:
    """Sum one table's rows in [lo, hi) of its time column (None: every known time;
    lo = hi = NO_TIME: the unknown hour) into acc, by the view's key."""
    group = _GROUP[(table, view)]
    col = "r." + _TIME_COL[table]
    if lo == rollups.NO_TIME:
        cond, params = f"{col} = ?", [rollups.NO_TIME]
    elif lo is None:
        cond, params = f"{col} >= 0", []
    else:
        cond, params = f"{col} >= ? AND {col} < ?", [lo, hi]
    more, p = flt.where(db, "r", hall_column=True, by_staff=table != "roll_hod")
    ng = group.count(",") + 1
    for r in db.all(f"SELECT {group}, {_SUMS} FROM {table} r WHERE {cond}{more} "
                    f"GROUP BY {group}", [*params, *p]):
        key = r[0] if ng == 1 else tuple(r[:ng])
        cur = acc.get(key)
        if cur is None:
            cur = acc[key] = [0] * rollups.N
        for i, x in enumerate(r[ng:]):
            cur[i] += int(x or 0)


def _month_start(m: int) -> int:
    return days_from_civil(m // 12, m % 12 + 1, 1)


def _month_split(d0: int, d1: int) -> tuple[tuple[int, int] | None, list[tuple[int, int]]]:
    """Days [d0, d1) as the whole months in them ([m_lo, m_hi), or None) and the day
    ranges around those months."""
    m0 = rollups.month_of_day(d0)
    m_lo = m0 if _month_start(m0) == d0 else m0 + 1
    m_hi = rollups.month_of_day(d1) if d1 > d0 else m_lo
    if m_lo < m_hi:
        return (m_lo, m_hi), [(d0, _month_start(m_lo)), (_month_start(m_hi), d1)]
    return None, [(d0, d1)]


def _by_months(db: Database, view: str, days: tuple[int, int] | None, flt: Filter,
               acc: dict[Any, list[int]]) -> None:
    """A view by hour of the day or weekday over days [d0, d1): whole months from
    roll_hod, the days around them from roll_hour (a staff filter: roll_hour only, it
    keeps the slot)."""
    if flt.staff:
        lo, hi = (None, None) if days is None else (days[0] * 24, days[1] * 24)
        _query(db, "roll_hour", view, lo, hi, flt, acc)
    elif days is None:
        _query(db, "roll_hod", view, None, None, flt, acc)
    else:
        _months_then_days(db, view, days, flt, acc, ("roll_hod", "roll_hour", 24))


def _by_window_or_staff(db: Database, by: str, days: tuple[int, int] | None, flt: Filter,
                        acc: dict[Any, list[int]]) -> None:
    """Whole months from roll_month, the days around them from roll_day."""
    if days is None:
        _query(db, "roll_month", by, None, None, flt, acc)
    else:
        _months_then_days(db, by, days, flt, acc, ("roll_month", "roll_day", 1))


def _months_then_days(db: Database, view: str, days: tuple[int, int], flt: Filter,
                      acc: dict[Any, list[int]], tables: tuple[str, str, int]) -> None:
    """Days [d0, d1) of a view: the whole months in them from tables[0], the days around
    those from tables[1], whose time column counts tables[2] buckets a day."""
    by_month, by_day, per_day = tables
    months, parts = _month_split(*days)
    if months:
        _query(db, by_month, view, months[0], months[1], flt, acc)
    for a, b in parts:
        if a < b:
            _query(db, by_day, view, a * per_day, b * per_day, flt, acc)


def _rolled(db: Database, tz_min: int, span: tuple[int, int] | None, by: str,
            flt: Filter) -> dict[str, list[int]]:
    """The counters of a summary from the rollups, by the summary's key."""
    days = _days(span, tz_min)
    acc: dict[Any, list[int]] = {}
    if by == "hour":
        _by_months(db, "hour", days, flt, acc)
    elif by in ("window", "staff"):
        _by_window_or_staff(db, by, days, flt, acc)
    elif days is None:
        _query(db, "roll_day", by, None, None, flt, acc)
    else:
        _query(db, "roll_day", by, days[0], days[1], flt, acc)
    unknown: dict[Any, list[int]] = {}
    if span is None:
        _query(db, "roll_hour", "window" if by in ("day", "hour") else by, rollups.NO_TIME,
               rollups.NO_TIME, flt, unknown)
    slots = _slot_staff(db) if by == "staff" else {}
    out: dict[str, list[int]] = {}

    def put(key: str, v: list[int]) -> None:
        cur = out.setdefault(key, [0] * rollups.N)
        for i, x in enumerate(v):
            cur[i] += x

    for k, v in acc.items():
        put(_roll_key(by, k, slots, tz_min), v)
    for k, v in unknown.items():
        put("unknown" if by in ("day", "hour") else _roll_key(by, k, slots, tz_min), v)
    return out


def _slot_staff(db: Database) -> dict[tuple[str, int], str]:
    return {(w, s): no for w, s, no in db.all("SELECT win, slot, staff_no FROM window_slots")}


def _roll_key(by: str, k: Any, slots: dict[tuple[str, int], str], tz_min: int) -> str:
    if by == "window":
        return str(k)
    if by == "staff":
        return slots.get((k[0], int(k[1]))) or "-"
    if by == "day":
        return local_day(int(k) * 86400 - tz_min * 60, tz_min)
    return f"{int(k):02d}:00"


def _time_split(a: int, b: int, by: str, tz_min: int) -> dict[str | None, int]:
    """[a, b) cut by the summary's time key (local day or hour of the day): seconds a
    key. By window or staff one piece (key None). Whole days at once, so an interval
    of months costs no more than one of a day."""
    if by in ("window", "staff"):
        return {None: b - a}
    off = tz_min * 60
    out: dict[str | None, int] = defaultdict(int)
    if by == "day":
        while a < b:
            d = (a + off) // 86400
            end = min(b, (d + 1) * 86400 - off)
            out[local_day(a, tz_min)] += end - a
            a = end
        return out
    head_end = min(b, ((a + off) // 86400 + 1) * 86400 - off)
    whole = (b - head_end) // 86400
    tail = head_end + whole * 86400
    for h, s in [*rollups.split_hours(a, head_end, tz_min),
                 *rollups.split_hours(tail, b, tz_min)]:
        out[f"{h % 24:02d}:00"] += s
    if whole:
        for h in range(24):
            out[f"{h:02d}:00"] += whole * 3600
    return out


def _interval(out: dict[str, list[int]], by: str, win: str, staff_no: str | None,
              to_state: int, a: int, b: int, span: tuple[int, int] | None,
              tz_min: int) -> None:
    if to_state not in (record.PAUSED, record.WAIT):
        return
    if span:
        a, b = max(a, span[0]), min(b, span[1])
    if b <= a:
        return
    col = 0 if to_state == record.PAUSED else 1
    for tkey, secs in _time_split(a, b, by, tz_min).items():
        key = tkey if tkey is not None else _key(by, win, staff_no, a, tz_min)
        out[key][col] += secs


def status_time(db: Database, tz_min: int, span: tuple[int, int] | None, by: str,
                now: int | None, flt: Filter | None = None) -> dict[str, tuple[int, int]]:
    """Seconds paused and in 请稍候, from each status change to the next one of the
    same device (the last one runs until now), clipped to the span, cut at the key's
    days or hours: the closed intervals from the rollups, the open one added here."""
    flt = flt or Filter()
    if not _rolled_up(db, tz_min):
        return status_time_raw(db, tz_min, span, by, now, flt)
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for key, v in _rolled(db, tz_min, span, by, flt).items():
        if v[9] or v[10]:
            out[key][0] += v[9]
            out[key][1] += v[10]
    for key, (pause, wait) in _open_status(db, tz_min, span, by, now, flt).items():
        out[key][0] += pause
        out[key][1] += wait
    return {k: (v[0], v[1]) for k, v in out.items()}


def _open_status(db: Database, tz_min: int, span: tuple[int, int] | None, by: str,
                 now: int | None, flt: Filter) -> dict[str, tuple[int, int]]:
    """The pause or 请稍候 each device is in now (its last status change with a known
    time), up to now: one index lookup a device."""
    if now is None:
        return {}
    more, params = flt.where(db)
    rows = db.all("SELECT e.win, COALESCE(e.staff_no, ws.staff_no), e.to_state, e.t "
                  "FROM devices d JOIN events e ON e.device = d.id AND e.seq = "
                  "(SELECT x.seq FROM events x WHERE x.device = d.id AND x.kind = 'status' "
                  "AND x.t IS NOT NULL ORDER BY x.seq DESC LIMIT 1) LEFT JOIN window_slots ws "
                  "ON ws.win = e.win AND ws.slot = e.slot WHERE e.to_state IN (?, ?)" + more,
                  [record.PAUSED, record.WAIT, *params])
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for win, staff_no, to_state, t in rows:
        _interval(out, by, win, staff_no, to_state, t, max(now, t), span, tz_min)
    return {k: (v[0], v[1]) for k, v in out.items()}


def status_time_raw(db: Database, tz_min: int, span: tuple[int, int] | None, by: str,
                    now: int | None, flt: Filter | None = None) -> dict[str, tuple[int, int]]:
    """status_time() from every status change stored (the rollups' yardstick)."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    flt = flt or Filter()
    # an interval ends at the device's next change, whoever made it: the staff filter
    # picks intervals, not the changes they are read from
    more, params = Filter(hall=flt.hall, window=flt.window).where(db)
    rows = db.all("SELECT e.device, e.seq, e.win, COALESCE(e.staff_no, ws.staff_no), "
                  "e.to_state, e.t FROM events e LEFT JOIN window_slots ws ON ws.win = e.win "
                  "AND ws.slot = e.slot WHERE e.kind = 'status' AND e.t IS NOT NULL" + more
                  + " ORDER BY e.device, e.seq", params)
    for i, (dev, _seq, win, staff_no, to_state, t) in enumerate(rows):
        if i + 1 < len(rows) and rows[i + 1][0] == dev:
            end = rows[i + 1][5]
        elif now is not None:
            end = max(now, t)
        else:
            continue
        if not flt.staff or staff_no == flt.staff:
            _interval(out, by, win, staff_no, to_state, t, end, span, tz_min)
    return {k: (v[0], v[1]) for k, v in out.items()}


def _rating_row(row: tuple, names: dict[str, str], tz_min: int) -> dict[str, Any]:
    (dev, seq, _k, win, _slot, staff_no, level, mode, reason, ticket, _f, _to, _why, _fl,
     _c, t) = row
    return {
        "time": iso(t, tz_min) if t is not None else "", "t": t, "window": win,
        # a device's logs are one history: stored seqs are log << 32 | seq
        "device": dev, "log": seq >> 32, "seq": seq & 0xFFFFFFFF, "staff_no": staff_no or "",
        "staff_name": names.get(staff_no or "", ""), "ticket": ticket or "",
        "level": level, "level_name": LEVEL_NAMES[level] if 0 < level < 5 else "",
        "reason": _reason(reason) or "", "mode": "free" if mode == 1 else "invite"}


def ratings(db: Database, tz_min: int, day: str | None = None,
            flt: Filter | None = None) -> list[dict[str, Any]]:
    """Every rating, oldest first; those whose time is still unknown come last."""
    flt = _merged(flt, day)
    flt.check(db)
    names = _staff_names(db)
    out = [_rating_row(r, names, tz_min)
           for r in _events(db, ("rating",), flt.span(tz_min), flt)]
    out.sort(key=lambda r: (r["t"] is None, r["t"] or 0, r["device"], r["log"], r["seq"]))
    return out


def boots(db: Database, tz_min: int, device: str | None = None) -> list[dict[str, Any]]:
    """Every boot a device recorded why it happened (power_on, watchdog,
    failed_start, safe_mode_key, safe_mode_crashes, reset), oldest first."""
    sql = ("SELECT device, seq, level, t FROM events WHERE kind = 'boot'"
           + (" AND device = ?" if device else "") + " ORDER BY device, seq")
    return [{"device": dev, "log": seq >> 32, "seq": seq & 0xFFFFFFFF,
             "time": iso(t, tz_min) if t is not None else None,
             "why": record.BOOT_NAMES[why] if 0 < why < len(record.BOOT_NAMES) else str(why)}
            for dev, seq, why, t in db.all(sql, (device,) if device else ())]


def ratings_page(db: Database, tz_min: int, flt: Filter, after: str = "", limit: int = 100,
                 level: int | None = None) -> dict[str, Any]:
    """One page of the ratings (of one level, e.g. 4 for the 差评), in export order:
    known times oldest first, then those whose time is unknown. `after` is the page's
    `next` from the page before ("" for the first); {"rows": [...], "next": str | None}.
    The database does the ordering and the cut, so a page costs the same on day one and
    after ten million ratings."""
    cur = _cursor(after)
    flt.check(db)
    span = flt.span(tz_min)
    base = _EVENTS + "e.kind = 'rating'"
    params: list[Any] = []
    if level is not None:  # a literal: PostgreSQL then takes the 差评's partial index
        base += f" AND e.level = {int(level)}"
    more, p = flt.where(db)
    base += more
    params += p
    rows: list[tuple] = []
    if cur is None or cur[0] is not None:  # the known times, unless the cursor is past them
        sql, ps = base + " AND e.t IS NOT NULL", list(params)
        if span:
            sql += " AND e.t >= ? AND e.t < ?"
            ps += list(span)
        if cur is not None:
            t, dev, seq = cur
            sql += (" AND (e.t > ? OR (e.t = ? AND (e.device > ? OR (e.device = ? "
                    "AND e.seq > ?))))")
            ps += [t, t, dev, dev, seq]
        rows = db.all(sql + " ORDER BY e.t, e.device, e.seq LIMIT ?", [*ps, limit])
    if len(rows) < limit and not span:
        sql, ps = base + " AND e.t IS NULL", list(params)
        if cur is not None and cur[0] is None:
            _t, dev, seq = cur
            sql += " AND (e.device > ? OR (e.device = ? AND e.seq > ?))"
            ps += [dev, dev, seq]
        rows += db.all(sql + " ORDER BY e.device, e.seq LIMIT ?", [*ps, limit - len(rows)])
    names = _staff_names(db)
    out = [_rating_row(r, names, tz_min) for r in rows]
    nxt = None
    if len(out) == limit:
        last = out[-1]
        stored = last["log"] << 32 | last["seq"]  # the cursor walks the stored seqs
        nxt = f"{'-' if last['t'] is None else last['t']}|{last['device']}|{stored}"
    return {"rows": out, "next": nxt}


def _cursor(after: str) -> tuple[int | None, str, int] | None:
    if not after:
        return None
    try:
        t, dev, seq = after.split("|")
        return (None if t == "-" else int(t)), dev, int(seq)
    except ValueError:
        raise ValueError(f"after {after!r}: use the 'next' of the page before") from None


def technician(db: Database, tz_min: int) -> list[dict[str, Any]]:
    """Per device what a technician or the office should see: alerts open now (the
    last raise or clear of each), overlong 请稍候 flags, pauses with no badge in
    working hours, ratings kept as counts while the log was full, unknown badges
    (each by its tag, 6 hex digits keyed with the device key: the same badge, the
    same tag, and no UID ever leaves the device; firmware/core.py)."""
    out: dict[str, dict[str, Any]] = {}

    def row(dev: str, win: str) -> dict[str, Any]:
        return out.setdefault(dev, {"device": dev, "window": win, "alerts": {}, "wait_overlong": 0,
                                    "pause_no_badge": 0, "full_log_counted": 0,
                                    "unknown_badges": []})

    for dev, _seq, kind, win, level, mode, flagged, count, t in db.all(
            "SELECT device, seq, kind, win, level, mode, flagged, count, t FROM events "
            "WHERE kind IN ('alert', 'flag', 'status', 'overflow', 'unknown_badge') "
            "ORDER BY device, seq"):
        r = row(dev, win)
        if kind == "alert":
            name = record.ALERT_NAMES[level] if 0 < level < len(record.ALERT_NAMES) else str(level)
            r["alerts"][name] = bool(mode)
        elif kind == "flag" and level == record.FLAG_WAIT_LONG:
            r["wait_overlong"] += 1
        elif kind == "status" and flagged:
            r["pause_no_badge"] += 1
        elif kind == "overflow" and level != 0xFF:
            r["full_log_counted"] += count or 0
        elif kind == "unknown_badge":
            r["unknown_badges"].append({"tag": "%06X" % (count or 0),
                                        "time": iso(t, tz_min) if t is not None else None})
    for r in out.values():
        r["alerts"] = sorted(k for k, on in r["alerts"].items() if on)
    return [out[d] for d in sorted(out)]


def window_status(db: Database, tz_min: int,
                  flt: Filter | None = None) -> dict[str, dict[str, Any]]:
    """Each window's latest status change (what its sign shows now, as far as synced)."""
    names = _staff_names(db)
    out: dict[str, dict[str, Any]] = {}
    flt = Filter(hall=flt.hall, window=flt.window) if flt else Filter()
    flt.check(db)
    more, params = flt.where(db)
    # each device's last status change: one index lookup a device, not a scan of them all
    rows = db.all("SELECT e.device, e.win, COALESCE(e.staff_no, ws.staff_no), e.to_state, e.t, "
                  "e.seq FROM devices d JOIN events e ON e.device = d.id AND e.seq = "
                  "(SELECT x.seq FROM events x WHERE x.kind = 'status' AND x.device = d.id "
                  "ORDER BY x.seq DESC LIMIT 1) LEFT JOIN window_slots ws ON ws.win = e.win "
                  "AND ws.slot = e.slot WHERE 1 = 1" + more, params)
    for dev, win, staff_no, to_state, t, _seq in rows:
        cur = out.get(win)
        if cur is None or (t or 0) >= (cur["t"] or 0):
            out[win] = {"device": dev, "state": record.STATE_NAMES[to_state]
                        if to_state < len(record.STATE_NAMES) else str(to_state),
                        "staff_no": staff_no, "staff_name": names.get(staff_no or ""),
                        "since": iso(t, tz_min) if t is not None else None, "t": t}
    dsql, dparams = "SELECT id, win, last_seen FROM devices WHERE 1 = 1", []
    if flt.hall:
        dsql += " AND hall = ?"
        dparams.append(flt.hall)
    if flt.window:
        dsql += " AND win = ?"
        dparams.append(flt.window)
    for dev, win, last_seen in db.all(dsql, dparams):
        out.setdefault(win, {"device": dev, "state": None, "staff_no": None,
                             "staff_name": None, "since": None, "t": None})
        out[win]["last_seen"] = iso(last_seen, tz_min) if last_seen is not None else None
    return out


def heat(db: Database, tz_min: int, day: str, flt: Filter | None = None) -> dict[str, list[int]]:
    """Ratings per window and hour of the day (0-23)."""
    flt = flt or Filter()
    flt.check(db)
    if not _rolled_up(db, tz_min):
        return heat_raw(db, tz_min, day, flt)
    d = (day_range(day, tz_min)[0] + tz_min * 60) // 86400
    acc: dict[Any, list[int]] = {}
    _query(db, "roll_hour", "heat", d * 24, d * 24 + 24, flt, acc)
    out: dict[str, list[int]] = defaultdict(lambda: [0] * 24)
    for (win, h), v in acc.items():
        if v[0]:
            out[win][int(h)] += v[0]
    return dict(out)


def heat_raw(db: Database, tz_min: int, day: str,
             flt: Filter | None = None) -> dict[str, list[int]]:
    """heat() from the raw events."""
    span = day_range(day, tz_min)
    out: dict[str, list[int]] = defaultdict(lambda: [0] * 24)
    more, params = (flt or Filter()).where(db)
    for win, t in db.all("SELECT e.win, e.t FROM events e LEFT JOIN window_slots ws "
                         "ON ws.win = e.win AND ws.slot = e.slot WHERE e.kind = 'rating' "
                         "AND e.t >= ? AND e.t < ?" + more, [*span, *params]):
        out[win][(t + tz_min * 60) % 86400 // 3600] += 1
    return dict(out)


def heat_week(db: Database, tz_min: int, flt: Filter | None = None) -> list[list[int]]:
    """Ratings by weekday (7 rows, Monday first) and hall-local hour (24 columns) over
    the filter's dates (all of them: every rating with a known time)."""
    flt = flt or Filter()
    flt.check(db)
    if not _rolled_up(db, tz_min):
        return heat_week_raw(db, tz_min, flt)
    acc: dict[Any, list[int]] = {}
    _by_months(db, "week", _days(flt.span(tz_min), tz_min), flt, acc)
    out = [[0] * 24 for _ in range(7)]
    for (dow, h), v in acc.items():
        out[int(dow)][int(h)] += v[0]
    return out


def heat_week_raw(db: Database, tz_min: int, flt: Filter | None = None) -> list[list[int]]:
    """heat_week() from the raw events."""
    flt = flt or Filter()
    out = [[0] * 24 for _ in range(7)]
    for t, in _events_t(db, flt.span(tz_min), flt):
        lt = t + tz_min * 60
        out[rollups.dow_of_day(lt // 86400)][lt % 86400 // 3600] += 1
    return out


def _events_t(db: Database, span: tuple[int, int] | None, flt: Filter) -> list[tuple]:
    sql = ("SELECT e.t FROM events e LEFT JOIN window_slots ws ON ws.win = e.win "
           "AND ws.slot = e.slot WHERE e.kind = 'rating' AND e.t IS NOT NULL")
    params: list[Any] = []
    if span:
        sql += " AND e.t >= ? AND e.t < ?"
        params += list(span)
    more, p = flt.where(db)
    return db.all(sql + more, [*params, *p])


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def num(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def hms(s: int) -> str:
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def table(rows: list[dict[str, Any]], by: str) -> str:
    """The report as a plain text table (CJK characters count two columns)."""
    head = [by, "ratings", "1", "2", "3", "4", "满意率", "差评率", "参评率", "index",
            "no_rating", "stray", "pause", "wait"]
    body = []
    for r in rows:
        label = r[by] if by != "staff" else f"{r[by]} {r.get('staff_name') or ''}".strip()
        lv = r["levels"]
        body.append([label, str(r["ratings"]), str(lv[1]), str(lv[2]), str(lv[3]), str(lv[4]),
                     pct(r["satisfied_rate"]), pct(r["bad_rate"]),
                     pct(r["participation_rate"]), num(r["index"]), str(r["no_rating"]),
                     str(r["stray"]), hms(r["pause_s"]), hms(r["wait_s"])])
    widths = [max(_w(x) for x in col) for col in zip(head, *body, strict=False)]
    lines = []
    for cells in [head, *body]:
        lines.append("  ".join(c + " " * (w - _w(c)) for c, w in zip(cells, widths, strict=False)).rstrip())
    total = sum(r["bad_count"] for r in rows)
    bad = sorted((b for r in rows for b in r["bad"]), key=lambda b: b["time"])[-BAD_TABLE:]
    if total:
        lines.append("")
        lines.append(f"差评 (不满意): {total} 条" + (f", 最新 {len(bad)} 条如下" if len(bad) < total
                                                    else ""))
        for b in bad:
            lines.append(f"  {b['time'] or '(time unknown)'}  {b['window']}  "
                         f"{b['staff_no'] or '-'} {b['staff_name'] or ''}  "
                         f"ticket {b['ticket'] or '-'}  reason {b['reason_text'] or '-'}")
        if len(bad) < total:
            lines.append("  全部差评: pingjia export --format csv (with the same filters), "
                         "or GET /api/v1/bad (paged)")
    return "\n".join(lines)


def _w(s: str) -> int:
    return sum(2 if ord(c) > 0x2E80 else 1 for c in s)
