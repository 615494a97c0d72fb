"""Reports from the stored events: ratings per level, 满意率, 差评率, 参评率, the
satisfaction index, 差评 with reasons and tickets, pause and 请稍候 time per staff,
stray presses; by window, staff, day or hour (in the hall's time zone)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from firmware import record
from firmware.clock import days_from_civil, iso
from firmware.logview import LEVEL_NAMES, REASON_NAMES
from host_tools.collector.db import Database

INDEX_POINTS = {1: 100.0, 2: 66.7, 3: 33.3, 4: 0.0}  # design.md section 6
BY = ("window", "staff", "day", "hour")


def day_range(day: str, tz_min: int) -> tuple[int, int]:
    """'YYYY-MM-DD' in the hall's zone -> [start, end) in seconds since 2000 UTC."""
    try:
        y, m, d = (int(x) for x in day.split("-"))
        start = days_from_civil(y, m, d) * 86400 - tz_min * 60
    except ValueError:
        raise ValueError(f"bad day {day!r}: use YYYY-MM-DD") from None
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
        if self.day:
            return day_range(self.day, tz_min)
        if not self.since and not self.until:
            return None
        start = day_range(self.since, tz_min)[0] if self.since else -(1 << 62)
        end = day_range(self.until, tz_min)[1] if self.until else 1 << 62
        if end <= start:
            raise ValueError(f"the dates run backwards: from {self.since} to {self.until}")
        return start, end

    def where(self, staff_sql: str = "COALESCE(e.staff_no, ws.staff_no)") -> tuple[str, list]:
        """SQL conditions (each starting with AND) on events e, and their parameters."""
        sql, params = "", []
        if self.hall:
            sql += " AND e.device IN (SELECT id FROM devices WHERE hall = ?)"
            params.append(self.hall)
        if self.window:
            sql += " AND e.win = ?"
            params.append(self.window)
        if self.staff:
            sql += f" AND {staff_sql} = ?"
            params.append(self.staff)
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
        more, p = flt.where()
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
            now: int | None = None, flt: Filter | None = None) -> list[dict[str, Any]]:
    """One row per window, staff, day or hour (of the events flt lets through)."""
    if by not in BY:
        raise ValueError(f"--by must be one of {', '.join(BY)}")
    flt = Filter(**dict(vars(flt or Filter()), day=day or (flt.day if flt else None)))
    span = flt.span(tz_min)
    names = _staff_names(db)
    rows: dict[str, dict[str, Any]] = defaultdict(_new_row)
    for (dev, seq, kind, win, _slot, staff_no, level, mode, reason, ticket, _f, _to, _why,
         _fl, count, t) in _events(db, ("rating", "no_rating", "stray", "dropped"), span, flt):
        row = rows[_key(by, win, staff_no, t, tz_min)]
        if kind == "rating":
            row["ratings"] += 1
            if level in row["levels"]:
                row["levels"][level] += 1
            if mode == 0:
                row["invite_ratings"] += 1
            if level == 4:
                row["bad"].append({
                    "time": iso(t, tz_min) if t is not None else None, "window": win,
                    "device": dev, "log": seq >> 32, "seq": seq & 0xFFFFFFFF,
                    "staff_no": staff_no,
                    "staff_name": names.get(staff_no or ""), "ticket": ticket,
                    "reason": reason, "reason_text": _reason(reason)})
        elif kind == "no_rating":
            row["no_rating"] += 1
        else:
            row[kind] += count or 0
    for key, (pause, wait) in status_time(db, tz_min, span, by, now, flt).items():
        rows[key]["pause_s"] += pause
        rows[key]["wait_s"] += wait
    out = []
    for key in sorted(rows):
        r = finish(rows[key])
        r[by] = key
        if by == "staff":
            r["staff_name"] = names.get(key)
        out.append(r)
    return out


def _reason(reason: int | None) -> str | None:
    return REASON_NAMES[reason] if reason and 0 < reason < 5 else None


def status_time(db: Database, tz_min: int, span: tuple[int, int] | None, by: str,
                now: int | None, flt: Filter | None = None) -> dict[str, tuple[int, int]]:
    """Seconds paused and in 请稍候, from each status change to the next one of the
    same device (the last one runs until now), clipped to the span."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    more, params = (flt or Filter()).where()
    rows = db.all("SELECT e.device, e.seq, e.win, COALESCE(e.staff_no, ws.staff_no), "
                  "e.to_state, e.t FROM events e LEFT JOIN window_slots ws ON ws.win = e.win "
                  "AND ws.slot = e.slot WHERE e.kind = 'status' AND e.t IS NOT NULL" + more
                  + " ORDER BY e.device, e.seq", params)
    for i, (dev, _seq, win, staff_no, to_state, t) in enumerate(rows):
        if to_state not in (record.PAUSED, record.WAIT):
            continue
        if i + 1 < len(rows) and rows[i + 1][0] == dev:
            end = rows[i + 1][5]
        elif now is not None:
            end = max(now, t)
        else:
            continue
        a, b = t, end
        if span:
            a, b = max(a, span[0]), min(b, span[1])
        if b <= a:
            continue
        key = _key(by, win, staff_no, a, tz_min)
        out[key][0 if to_state == record.PAUSED else 1] += b - a
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
    flt = Filter(**dict(vars(flt or Filter()), day=day or (flt.day if flt else None)))
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
    span = flt.span(tz_min)
    base = _EVENTS + "e.kind = 'rating'"
    params: list[Any] = []
    if level is not None:
        base += " AND e.level = ?"
        params.append(level)
    more, p = flt.where()
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
    more, params = flt.where()
    rows = db.all("SELECT e.device, e.win, COALESCE(e.staff_no, ws.staff_no), e.to_state, e.t, "
                  "e.seq FROM events e LEFT JOIN window_slots ws ON ws.win = e.win "
                  "AND ws.slot = e.slot JOIN (SELECT device, MAX(seq) AS m FROM events WHERE kind = 'status' "
                  "GROUP BY device) l ON l.device = e.device AND l.m = e.seq WHERE 1 = 1" + more,
                  params)
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
    span = day_range(day, tz_min)
    out: dict[str, list[int]] = defaultdict(lambda: [0] * 24)
    more, params = (flt or Filter()).where()
    for win, t in db.all("SELECT e.win, e.t FROM events e LEFT JOIN window_slots ws "
                         "ON ws.win = e.win AND ws.slot = e.slot WHERE e.kind = 'rating' "
                         "AND e.t >= ? AND e.t < ?" + more, [*span, *params]):
        out[win][(t + tz_min * 60) % 86400 // 3600] += 1
    return dict(out)


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
    bad = [b for r in rows for b in r["bad"]]
    if bad:
        lines.append("")
        lines.append("差评 (不满意):")
        for b in bad:
            lines.append(f"  {b['time'] or '(time unknown)'}  {b['window']}  "
                         f"{b['staff_no'] or '-'} {b['staff_name'] or ''}  "
                         f"ticket {b['ticket'] or '-'}  reason {b['reason_text'] or '-'}")
    return "\n".join(lines)


def _w(s: str) -> int:
    return sum(2 if ord(c) > 0x2E80 else 1 for c in s)
