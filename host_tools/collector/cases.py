"""差评 handling: every 不满意 rating opens a case (the national 好差评 rules: every 差评
is called back (回访) and rectified (整改); a malicious one may be appealed (申诉) and the
office decides). The rating itself is never changed or deleted: a case is a row of its
own beside it, and every action is appended to the case's log with who did it.

States and the actions that move them (any other is refused, naming what comes first):

    open 待回访 --callback--> called_back 已回访 --rectify--> rectified 已整改 (closed)
                                           \\--appeal--> appealed 申诉中 --decide upheld-->
                                                upheld 申诉成立 (closed: a malicious 差评)
                                              --decide overturned--> overturned 申诉驳回
                                                --rectify--> rectified 已整改 (closed)

A note (备注) may be added in any state. One appeal a case. The callback is due within
`callback_days` of the rating (per hall, default 3); a case still 待回访 past that is
overdue. A case whose appeal was upheld is a malicious 差评: it stays stored and listed,
and `discount_malicious` takes it out of the 差评率 and the rating counts of a report,
shown apart as `malicious` (a 差评 found malicious on appeal is not held against the
window or the staff member).

Cases are made in the ingest transaction (`open_cases`, called by store.py), and the
migration gave the 差评 stored before this feature theirs. Lists page by (since, device,
seq) on the cases table's indexes, so a page costs the same at ten million ratings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from firmware import frame
from firmware.clock import iso
from firmware.logview import REASON_NAMES
from host_tools.collector import reports
from host_tools.collector.access import check_name
from host_tools.collector.db import Database
from host_tools.collector.store import LOG_SHIFT, Collector, CollectorError, check_label

STATES = {"open": "待回访", "called_back": "已回访", "appealed": "申诉中",
          "overturned": "申诉驳回，待整改", "rectified": "已整改", "upheld": "申诉成立（恶意差评）"}
CLOSED = ("rectified", "upheld")
ACTIONS = {"callback": "回访", "note": "备注", "rectify": "整改", "appeal": "申诉",
           "decide": "申诉决定"}
DECISIONS = {"upheld": "申诉成立", "overturned": "申诉驳回"}
# (action, state) -> the state after it; decide goes to its decision
_NEXT = {("callback", "open"): "called_back", ("rectify", "called_back"): "rectified",
         ("rectify", "overturned"): "rectified", ("appeal", "called_back"): "appealed",
         ("decide", "appealed"): None}
FILTER_STATES = ("all", "open", "overdue", "closed")  # open: every state not closed
CALLBACK_DAYS = 3  # the default: days from the rating to its callback
DAYS_MAX = 60
TEXT_MAX = 500
DAY_S = 86400
_ALL_HALLS = ""  # case_rules' row for every hall without its own
_SEQ_MASK = (1 << LOG_SHIFT) - 1


class CaseError(CollectorError):
    """A case request refused; status: the HTTP answer (400 bad input, 404 no such case,
    409 an action the case's state does not take)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


# ---- ids ----------------------------------------------------------------------------
def case_id(device: str, stored_seq: int) -> str:
    """A case's id, safe in a URL path: device-log-seq (the device's own seq in its log)."""
    return f"{device}-{stored_seq >> LOG_SHIFT}-{stored_seq & _SEQ_MASK}"


def parse_id(text: str) -> tuple[str, int]:
    """(device, stored seq) of a case id; CaseError (400) if it is no case id."""
    parts = str(text).rsplit("-", 2)
    bad = CaseError(f"case id {text!r}: want DEVICE-LOG-SEQ, as `pingjia case list` shows it")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise bad
    try:
        frame.check_id(parts[0])
    except frame.FrameError:
        raise bad from None
    log, seq = int(parts[1]), int(parts[2])
    if log >= 1 << 31 or not 0 < seq <= _SEQ_MASK:
        raise bad
    return parts[0], log << LOG_SHIFT | seq


# ---- made at ingest -----------------------------------------------------------------
def open_cases(db: Database, device: str, bad_seqs: list[int], clock_learned: bool,
               now: int) -> None:
    """In the ingest transaction: a case for each 不满意 the frame stored (stored seqs),
    and, when the frame taught a boot its clock, the rating time for the device's cases
    stored while it was unknown (the events of that boot just got theirs)."""
    if bad_seqs:
        db.execute("INSERT INTO cases (device, seq, win, slot, staff_no, t, since, state) "
                   "SELECT device, seq, win, slot, staff_no, t, COALESCE(t, ?), 'open' "
                   "FROM events WHERE device = ? AND seq >= ? AND seq <= ? "
                   "AND kind = 'rating' AND level = 4 ON CONFLICT (device, seq) DO NOTHING",
                   (now, device, bad_seqs[0], bad_seqs[-1]))
    if clock_learned:
        timed = ("(SELECT e.t FROM events e WHERE e.device = cases.device "
                 "AND e.seq = cases.seq)")
        db.execute(f"UPDATE cases SET t = {timed}, since = {timed} WHERE device = ? "
                   f"AND t IS NULL AND {timed} IS NOT NULL", (device,))


# ---- the callback's due date, per hall ------------------------------------------------
def callback_days(db: Database) -> dict[str, int]:
    """{hall: days} of the halls with their own, and '' for every other hall."""
    out = {_ALL_HALLS: CALLBACK_DAYS}
    out.update({h: int(d) for h, d in db.all("SELECT hall, callback_days FROM case_rules")})
    return out


def set_callback_days(c: Collector, days: int, hall: str | None = None) -> None:
    """The callback is due `days` after the rating: in one hall, or every hall without
    its own. Moves overdue cases, so the dashboard is told."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= DAYS_MAX:
        raise CaseError(f"callback days {days!r}: a whole number from 1 to {DAYS_MAX}")
    key = _ALL_HALLS if hall is None else check_label("hall", hall, 32)
    if hall is not None and not c.db.one("SELECT 1 FROM devices WHERE hall = ?", (hall,)):
        raise CaseError(f"no hall {hall!r} (pingjia device list shows the halls)")
    with c.db.transaction():
        c.db.execute(c.db.upsert_sql("case_rules", ("hall", "callback_days"), ("hall",)),
                     (key, days))
        c.note_change()


# ---- reading cases --------------------------------------------------------------------
@dataclass
class Page:
    cases: list[dict[str, Any]]
    next: str | None


_SELECT = ("SELECT c.device, c.seq, c.win, COALESCE(c.staff_no, ws.staff_no), c.t, c.since, "
           "c.state, d.hall, e.ticket, e.reason, s.name, "
           "COALESCE(r.callback_days, a.callback_days, ?) "
           "FROM cases c LEFT JOIN window_slots ws ON ws.win = c.win AND ws.slot = c.slot "
           "LEFT JOIN devices d ON d.id = c.device "
           "LEFT JOIN events e ON e.device = c.device AND e.seq = c.seq "
           "LEFT JOIN staff s ON s.staff_no = COALESCE(c.staff_no, ws.staff_no) "
           "LEFT JOIN case_rules r ON r.hall = d.hall "
           "LEFT JOIN case_rules a ON a.hall = '' WHERE 1 = 1")


def check_filter(db: Database, flt: reports.Filter, tz_min: int) -> tuple[int, int] | None:
    """The filter's span; CaseError naming a hall, window or staff member no one knows
    (a typo would list nothing and look like no 差评)."""
    for day in (flt.day, flt.since, flt.until):
        try:  # a day that does not exist (2026-13-01) is refused, not rolled over
            if day is not None and date.fromisoformat(day).isoformat() != day:
                raise ValueError
        except ValueError:
            raise CaseError(f"bad day {day!r}: use YYYY-MM-DD") from None
    try:
        span = flt.span(tz_min)
    except ValueError as e:
        raise CaseError(str(e)) from None
    if flt.hall and not db.one("SELECT 1 FROM devices WHERE hall = ?", (flt.hall,)):
        raise CaseError(f"no hall {flt.hall!r} (pingjia device list shows the halls)")
    if flt.window and not db.one("SELECT 1 FROM devices WHERE win = ?", (flt.window,)) \
            and not db.one("SELECT 1 FROM cases WHERE win = ?", (flt.window,)):
        raise CaseError(f"no window {flt.window!r} (pingjia device list shows the windows)")
    if flt.staff and not db.one("SELECT 1 FROM staff WHERE staff_no = ?", (flt.staff,)) \
            and not db.one("SELECT 1 FROM window_slots WHERE staff_no = ?", (flt.staff,)):
        raise CaseError(f"no staff member {flt.staff!r} (the roster's staff_no, 工号)")
    return span


def _where(db: Database, flt: reports.Filter,
           span: tuple[int, int] | None) -> tuple[str, list[Any]]:
    """Conditions on cases c for the filter."""
    sql, params = flt.where(db, "c")
    if span:  # a rating whose time is unknown is in no date range (as in the reports)
        sql += " AND c.since >= ? AND c.since < ? AND c.t IS NOT NULL"
        params += list(span)
    return sql, params


def _state_where(state: str, now: int, days: dict[str, int]) -> tuple[str, list[Any]]:
    if state not in FILTER_STATES:
        raise CaseError(f"state {state!r}: one of {', '.join(FILTER_STATES)}")
    if state == "open":
        return " AND c.closed = 0", []
    if state == "closed":
        return " AND c.closed = 1", []
    if state == "overdue":  # the index range: older than the shortest due; then each hall's
        return (" AND c.state = 'open' AND c.since <= ? AND c.since + ? * "
                "COALESCE(r.callback_days, a.callback_days, ?) <= ?",
                [now - min(days.values()) * DAY_S, DAY_S, CALLBACK_DAYS, now])
    return "", []


def _cursor(after: str) -> tuple[int, str, int] | None:
    if not after:
        return None
    try:
        since, dev, seq = after.split("|")
        return int(since), dev, int(seq)
    except ValueError:
        raise CaseError(f"after {after!r}: use the 'next' of the page before") from None


def list_cases(c: Collector, flt: reports.Filter, state: str = "all", after: str = "",
               limit: int = 100) -> Page:
    """One page of cases, oldest first (by the rating's time, or when it was received
    while that is unknown); `next` is the cursor of the page after, or None."""
    if not 1 <= limit <= 1000:  # as every other list: a page of 0 has no last row to go on from
        raise CaseError("limit must be a whole number from 1 to 1000")
    db = c.db
    now = c.now()
    tz = c.hall_tz_min()
    span = check_filter(db, flt, tz)
    days = callback_days(db)
    sql, params = _SELECT, [CALLBACK_DAYS]
    more, p = _state_where(state, now, days)
    sql += more
    params += p
    more, p = _where(db, flt, span)
    sql += more
    params += p
    cur = _cursor(after)
    if cur:  # the range first, so the index is walked from the cursor
        sql += (" AND c.since >= ? AND (c.since > ? OR (c.since = ? AND (c.device > ? "
                "OR (c.device = ? AND c.seq > ?))))")
        params += [cur[0], cur[0], cur[0], cur[1], cur[1], cur[2]]
    order = "c.closed, c.since" if state in ("open", "closed") else "c.since"
    rows = db.all(sql + f" ORDER BY {order}, c.device, c.seq LIMIT ?", [*params, limit])
    cases = [_case(r, now, tz) for r in rows]
    _add_actions(db, cases, tz)
    nxt = None
    if len(rows) == limit:
        last = rows[-1]
        nxt = f"{last[5]}|{last[0]}|{last[1]}"
    return Page(cases, nxt)


def get_case(c: Collector, cid: str) -> dict[str, Any]:
    """One case by its id; CaseError 404 if there is none."""
    device, seq = parse_id(cid)
    tz = c.hall_tz_min()
    row = c.db.one(_SELECT + " AND c.device = ? AND c.seq = ?", (CALLBACK_DAYS, device, seq))
    if row is None:
        raise CaseError(f"no case {cid} (no 不满意 rating of device {device} with that seq)",
                        404)
    case = _case(row, c.now(), tz)
    _add_actions(c.db, [case], tz)
    return case


def _case(row: tuple, now: int, tz: int) -> dict[str, Any]:
    (dev, seq, win, staff_no, t, since, state, hall, ticket, reason, staff_name,
     days) = row
    due = since + int(days) * DAY_S
    return {"id": case_id(dev, seq), "device": dev, "log": seq >> LOG_SHIFT,
            "seq": seq & _SEQ_MASK, "time": iso(t, tz) if t is not None else None,
            "hall": hall, "window": win, "staff_no": staff_no, "staff_name": staff_name,
            "ticket": ticket, "reason_text": REASON_NAMES[reason] if reason and 0 < reason < 5
            else None, "state": state, "state_name": STATES.get(state, state),
            "closed": state in CLOSED, "malicious": state == "upheld", "due": iso(due, tz),
            "overdue": state == "open" and now >= due, "actions": []}


def _add_actions(db: Database, cases: list[dict[str, Any]], tz: int) -> None:
    """Each case's log, in order (one query for the page)."""
    if not cases:
        return
    keys = {(k["device"], k["log"] << LOG_SHIFT | k["seq"]): k for k in cases}
    cond = " OR ".join("(device = ? AND seq = ?)" for _ in keys)
    params = [x for key in keys for x in key]
    for dev, seq, action, text, decision, by, at in db.all(
            "SELECT device, seq, action, text, decision, by_name, at FROM case_actions "
            f"WHERE {cond} ORDER BY device, seq, n", params):
        keys[(dev, seq)]["actions"].append({
            "action": action, "action_name": ACTIONS.get(action, action), "text": text,
            "decision": decision, "by": by, "at": iso(at, tz)})


# ---- acting on a case -------------------------------------------------------------------
def _refusal(cid: str, action: str, state: str) -> CaseError:
    zh = f"{STATES.get(state, state)} ({state})"
    if state in CLOSED:
        hint = "the case is closed (a note may still be added)"
    elif action == "callback":
        hint = "it was called back already (add a note instead)"
    elif state == "open":
        hint = "record the callback (回访) first"
    elif action == "decide":
        hint = "a decision needs an appeal (申诉) first" if state != "overturned" else \
            "the appeal was decided already"
    elif action == "appeal":
        hint = "one appeal a case: it was appealed already"
    else:  # rectify while appealed
        hint = "the office decides the appeal first"
    return CaseError(f"case {cid} is {zh}: cannot {action} ({ACTIONS[action]}): {hint}", 409)


def _check_text(text: Any) -> str:
    if not isinstance(text, str) or not text.strip() or len(text) > TEXT_MAX or any(
            not ch.isprintable() and ch != "\n" for ch in text):
        raise CaseError(f"text: 1 to {TEXT_MAX} characters saying what was done "
                        "(no control characters but line breaks)")
    return text.strip()


def act(c: Collector, cid: str, action: str, text: Any, by: str,
        decision: str | None = None) -> dict[str, Any]:
    """Append one action to a case's log (and move its state); returns the case.
    CaseError with what to do instead if the case's state does not take it."""
    if not isinstance(action, str) or action not in ACTIONS:  # a JSON list is unhashable
        raise CaseError(f"action {action!r}: one of {', '.join(ACTIONS)}")
    if action == "decide" and (not isinstance(decision, str) or decision not in DECISIONS):
        raise CaseError(f"decision {decision!r}: upheld (申诉成立: a malicious 差评) or "
                        "overturned (申诉驳回: the 差评 stands, to be rectified)")
    if action != "decide" and decision is not None:
        raise CaseError("a decision goes only with the action decide")
    text = _check_text(text)
    try:
        by = check_name(by)
    except ValueError as e:
        raise CaseError(f"by: {e}") from None
    device, seq = parse_id(cid)
    with c.db.transaction():
        state = c.db.value("SELECT state FROM cases WHERE device = ? AND seq = ?",
                           (device, seq))
        if state is None:
            raise CaseError(f"no case {cid} (no 不满意 rating of device {device} with "
                            "that seq)", 404)
        if action == "note":
            new = state
        elif (action, state) in _NEXT:
            new = _NEXT[(action, state)] or decision
        else:
            raise _refusal(cid, action, state)
        n = int(c.db.value("SELECT MAX(n) FROM case_actions WHERE device = ? AND seq = ?",
                           (device, seq), 0)) + 1
        c.db.execute("INSERT INTO case_actions (device, seq, n, action, text, decision, "
                     "by_name, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (device, seq, n, action, text, decision, by, c.now()))
        if new != state:
            c.db.execute("UPDATE cases SET state = ?, closed = ? WHERE device = ? AND seq = ?",
                         (new, 1 if new in CLOSED else 0, device, seq))
        c.note_change()
    return get_case(c, cid)


# ---- counts for reports and the dashboard --------------------------------------------------
_PLAIN = " FROM cases c WHERE 1 = 1"  # no joins: the counts stay on the indexes


def summary(db: Database, flt: reports.Filter | None, now: int,
            tz_min: int | None = None) -> dict[str, int]:
    """Counts of the filter's cases: open (not closed), awaiting_callback (待回访), overdue,
    appealed (申诉中), closed, malicious (appeal upheld), total (the filter's 差评)."""
    flt = flt or reports.Filter()
    if tz_min is None:
        tz_min = _tz_min(db)
    out = work_counts(db, flt, now, tz_min)
    out["malicious"] = malicious_count(db, flt, tz_min)
    more, params = _where(db, flt, check_filter(db, flt, tz_min))
    out["total"] = int(db.value("SELECT COUNT(*)" + _PLAIN + more, params, 0))
    out["closed"] = out["total"] - out["open"]
    return out


def malicious_count(db: Database, flt: reports.Filter, tz_min: int) -> int:
    """The filter's 差评 found malicious on appeal (申诉成立): a range of cases_state."""
    more, params = _where(db, flt, check_filter(db, flt, tz_min))
    return int(db.value("SELECT COUNT(*)" + _PLAIN + " AND c.state = 'upheld'" + more,
                        params, 0))


def work_counts(db: Database, flt: reports.Filter, now: int, tz_min: int) -> dict[str, int]:
    """The cases that need work: open (not closed), awaiting_callback (待回访), overdue,
    appealed (申诉中); what the dashboard shows. Index ranges of the few open cases, not a
    count of every case."""
    more, params = _where(db, flt, check_filter(db, flt, tz_min))
    by_state = {}
    for state in STATES:  # a count a state, each a range of cases_state (state, since):
        if state not in CLOSED:  # one GROUP BY walked every case's entry for the open ones
            by_state[state] = int(db.value("SELECT COUNT(*)" + _PLAIN + " AND c.state = ?"
                                           + more, [state, *params], 0))
    days = callback_days(db)
    if len(set(days.values())) == 1:  # one rule for every hall: an index range, no joins
        overdue = int(db.value("SELECT COUNT(*)" + _PLAIN + " AND c.state = 'open' AND "
                               "c.since <= ?" + more, [now - days[_ALL_HALLS] * DAY_S, *params],
                               0))
    else:
        over, p = _state_where("overdue", now, days)  # each hall's days: joins
        overdue = int(db.value("SELECT COUNT(*) FROM cases c LEFT JOIN devices d ON d.id = "
                               "c.device LEFT JOIN case_rules r ON r.hall = d.hall LEFT JOIN "
                               "case_rules a ON a.hall = '' WHERE 1 = 1" + over + more,
                               [*p, *params], 0))
    return {"open": sum(by_state.values()), "awaiting_callback": by_state["open"],
            "overdue": overdue, "appealed": by_state["appealed"]}


# the cases of a filter, with what summary() joins for the overdue count (the hall's
# callback days) and the slot's staff: counted per window or staff in one grouped query
_BY_SQL = ("SELECT {key}, COUNT(*) FROM cases c LEFT JOIN window_slots ws ON ws.win = c.win "
           "AND ws.slot = c.slot LEFT JOIN devices d ON d.id = c.device "
           "LEFT JOIN case_rules r ON r.hall = d.hall "
           "LEFT JOIN case_rules a ON a.hall = '' WHERE 1 = 1{cond} GROUP BY {key}")
_BY_KEY = {"window": "c.win", "staff": "COALESCE(c.staff_no, ws.staff_no, '-')"}


def open_overdue_by(db: Database, flt: reports.Filter, now: int, by: str, tz_min: int
                    ) -> dict[str, tuple[int, int]]:
    """The filter's cases open now and overdue now, per window or staff ("-": no staff
    on duty, as reports.summary keys it): {key: (open, overdue)}."""
    more, params = _where(db, flt, flt.span(tz_min))
    over, over_params = _state_where("overdue", now, callback_days(db))
    out: dict[str, list[int]] = {}
    for i, (cond, ps) in enumerate(((" AND c.closed = 0", []), (over, over_params))):
        sql = _BY_SQL.format(key=_BY_KEY[by], cond=cond + more)
        for key, n in db.all(sql, [*ps, *params]):
            out.setdefault(key, [0, 0])[i] = int(n)
    return {k: (v[0], v[1]) for k, v in out.items()}


def report_line(db: Database, flt: reports.Filter | None, now: int,
                tz_min: int | None = None) -> str:
    """The line `pingjia report` prints under its table."""
    s = summary(db, flt, now, tz_min)
    return (f"差评 cases: {s['open']} open ({s['awaiting_callback']} awaiting callback, "
            f"{s['overdue']} overdue, {s['appealed']} appealed), {s['closed']} closed, "
            f"{s['malicious']} malicious (appeal upheld, not counted in 差评率)")


def _tz_min(db: Database) -> int:
    from firmware import settings as settings_mod

    v = db.value("SELECT value FROM settings WHERE scope = 'hall' AND key = 'tz_min'")
    return int(json.loads(v)) if v is not None else int(settings_mod.DEFAULTS["tz_min"])


# ---- malicious 差评 in the reports ----------------------------------------------------------
def malicious_counts(db: Database, tz_min: int, by: str,
                     flt: reports.Filter | None = None) -> dict[str, int]:
    """Malicious 差评 (appeal upheld) of the filter, per report key (window, staff, day
    or hour, as reports.summary keys its rows). Few rows: an index range on the state."""
    flt = flt or reports.Filter()
    more, params = _where(db, flt, flt.span(tz_min))
    out: dict[str, int] = {}
    for win, staff_no, t in db.all(
            "SELECT c.win, COALESCE(c.staff_no, ws.staff_no), c.t FROM cases c "
            "LEFT JOIN window_slots ws ON ws.win = c.win AND ws.slot = c.slot "
            "WHERE c.state = 'upheld'" + more, params):
        if by == "window":
            key = win
        elif by == "staff":
            key = staff_no or "-"
        elif t is None:
            key = "unknown"
        else:
            s = iso(t, tz_min)
            key = s[:10] if by == "day" else s[11:13] + ":00"
        out[key] = out.get(key, 0) + 1
    return out


def discount_malicious(db: Database, rows: list[dict[str, Any]], by: str, tz_min: int,
                       flt: reports.Filter | None = None) -> list[dict[str, Any]]:
    """Take malicious 差评 out of report rows (reports.summary's): each row's ratings and
    level-4 count lose them, its rates are made again, and `malicious` says how many were
    taken out. Its 差评 list keeps them, each marked `malicious`. Returns the rows."""
    counts = malicious_counts(db, tz_min, by, flt)
    marked = _malicious_keys(db, flt, tz_min) if counts else set()
    for row in rows:
        n = counts.get(str(row.get(by)), 0)
        row["malicious"] = n
        for b in row.get("bad", []):
            b["malicious"] = (b["device"], b["log"] << LOG_SHIFT | b["seq"]) in marked
        if n:
            row["ratings"] -= n
            row["levels"][4] -= n
            if row.get("invite_ratings", 0) >= n:
                row["invite_ratings"] -= n
            reports.finish(row)
    return rows


def _malicious_keys(db: Database, flt: reports.Filter | None, tz_min: int) -> set[tuple]:
    flt = flt or reports.Filter()
    more, params = _where(db, flt, flt.span(tz_min))
    return {(d, s) for d, s in db.all(
        "SELECT c.device, c.seq FROM cases c LEFT JOIN window_slots ws ON ws.win = c.win "
        "AND ws.slot = c.slot WHERE c.state = 'upheld'" + more, params)}


# ---- the API ----------------------------------------------------------------------------------
def routes(collector: Collector) -> list:
    """GET /api/v1/cases (viewer), GET /api/v1/cases/{case_id} (viewer), POST
    /api/v1/cases/{case_id} (admin): JSON; bad input a 4xx {"error": ...}."""
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from host_tools.collector import server
    from host_tools.collector.access import require
    from host_tools.collector.db import StorageUnavailable

    c = collector

    async def answer(fn: Any, *args: Any) -> Response:
        try:
            return JSONResponse(await server._call(fn, *args))
        except StorageUnavailable as e:
            return server._unavailable(e)
        except CaseError as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
        except ValueError as e:  # a paging argument, a CollectorError
            return JSONResponse({"error": str(e)}, status_code=400)

    @require("viewer")
    async def case_list(request: Request) -> Response:
        def run() -> dict[str, Any]:
            after, limit = server._page_args(request)
            state = request.query_params.get("state") or "all"
            page = list_cases(c, server._filter(request), state, after, limit)
            return {"cases": page.cases, "next": page.next}

        return await answer(run)

    @require("viewer")
    async def case_show(request: Request) -> Response:
        return await answer(get_case, c, request.path_params["case_id"])

    @require("admin")
    async def case_act(request: Request) -> Response:
        try:
            body = json.loads(await server.read_body(request, server.FORM_MAX))
            if not isinstance(body, dict):
                raise ValueError
        except server.BodyTooLarge:
            return JSONResponse({"error": "the body is too large"}, status_code=413)
        except (ValueError, UnicodeDecodeError, ClientDisconnect):
            return JSONResponse({"error": 'the body must be a JSON object {"action": '
                                 '"callback|note|rectify|appeal|decide", "text": "...", '
                                 '"decision": "upheld|overturned"}'}, status_code=400)
        return await answer(act, c, request.path_params["case_id"], body.get("action"),
                            body.get("text"), request.user.display_name, body.get("decision"))

    return [Route("/api/v1/cases", case_list, methods=["GET"]),
            Route("/api/v1/cases/{case_id}", case_show, methods=["GET"]),
            Route("/api/v1/cases/{case_id}", case_act, methods=["POST"])]
