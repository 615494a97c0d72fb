"""The office's alerts (issue 14): a 不满意 arrives, a window's 差评率 over a threshold in
the last hour, a pause sign left out too long, a device silent for a day, a device's log
full or, by estimate, nearly full, and the technician alerts the device itself records.

Raised once: every alert has a stable key (its kind, the device or window, the event or the
period) unique in the database, so two serve processes on one PostgreSQL, a restart or a
re-scan never raise it twice. New rows are found after ingest by a scan over each device's
events past a cursor kept in the database (`scan_new`); the time-based ones (pause, silence,
log fill) by a periodic scan (`scan_time`). Both run in `Watcher`, a thread of `pingjia
serve`, poked after every stored frame, so a sync's answer never waits for them. Raising an
alert also queues it for every webhook of its hall (webhooks.py), in the same transaction.

Times are the collector's: seconds since 2000-01-01 UTC; events carry the device's time."""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from firmware import record, texts
from firmware.clock import iso
from host_tools.collector.db import StorageUnavailable
from host_tools.collector.store import DEFAULT_HALL, LOG_SHIFT, Collector, CollectorError
from host_tools.collector.worker import Worker

log = logging.getLogger("pingjia.alerts")

KINDS = ("dissatisfied", "bad_rate", "pause_long", "silent", "log_full", "log_nearly_full",
         "device_alert", "refused")
# a signed frame refused for what its records hold (checks.py): the device sends the same
# records again at every sync, so nothing after them arrives until someone looks
REFUSED_REASONS = ("bad_field", "seq_jump")
STATES = ("open", "closed", "all")
ALL_HALLS = "*"  # the settings row that holds an install's own defaults for every hall
# thresholds per hall: the built-in default and the values an admin may set
SETTINGS: dict[str, tuple[int, int, int, str]] = {
    "bad_rate_pct": (20, 1, 100, "差评率 over this percent in the last hour raises an alert"),
    "bad_rate_min": (5, 1, 1000, "... with at least this many ratings in that hour"),
    "pause_max_min": (30, 1, 1440, "a window in 暂停服务 longer than this many minutes"),
    "silent_h": (24, 1, 720, "a device not heard from for this many hours"),
    "log_fill_pct": (80, 10, 99, "a device's log estimated this percent full"),
}
HOUR_S = 3600
DAY_S = 86400
# What a device's log holds before it is full (design.md section 8: >= 100 000 ratings
# in the 1.5 MB partition; firmware/log.py keeps records until they are acked, so the
# records made since the last sync are what fills it).
LOG_RECORDS = 100_000
FILL_HISTORY_S = DAY_S  # a log's rate is only estimated over at least this much history
BATCH = 5000  # events read a device a scan step (bounded memory, short transactions)
PAGE = 100
PAGE_MAX = 1000
SCAN_S = 60.0  # the periodic scan (silence, pause, fill); new rows are scanned on a poke
ANALYZE_S = 3600.0  # how often serve looks whether the planner's statistics are due (Database.analyze)
# device alerts the office hears of otherwise: sync_failing is raised and cleared by the
# same sync (the collector's own silence alert tells of it while it lasts)
_OWN_NEWS = ("sync_failing",)
_DISSATISFIED = 4


# ---- settings -----------------------------------------------------------------------
def known_halls(c: Collector) -> set[str]:
    return {DEFAULT_HALL} | {r[0] for r in c.db.all("SELECT DISTINCT hall FROM devices")}


def check_hall(c: Collector, hall: str) -> str:
    if hall not in known_halls(c):
        raise CollectorError(f"no hall {hall!r}: no device serves there (pingjia device add ID "
                             f"--window W --hall {hall})")
    return hall


def thresholds(c: Collector, hall: str) -> dict[str, int]:
    """A hall's thresholds: the built-in defaults, the install's, then the hall's own."""
    out = {k: v[0] for k, v in SETTINGS.items()}
    rows = c.db.all("SELECT hall, key, value FROM alert_settings WHERE hall IN (?, ?)",
                    (ALL_HALLS, hall))
    for h in (ALL_HALLS, hall):
        out.update({k: int(v) for hh, k, v in rows if hh == h and k in SETTINGS})
    return out


def check_setting(key: str, value: Any) -> int:
    if key not in SETTINGS:
        raise CollectorError(f"unknown alert setting {key!r}; known: {', '.join(SETTINGS)}")
    _default, lo, hi, _help = SETTINGS[key]
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise CollectorError(f"{key} must be a whole number from {lo} to {hi} "
                             f"(got {json.dumps(value, ensure_ascii=False)})")
    return value


def set_setting(c: Collector, key: str, value: Any, hall: str | None = None) -> dict[str, int]:
    """Set one threshold for a hall (None: every hall without its own); the hall's
    thresholds after it. Bad keys, values or halls change nothing."""
    value = check_setting(key, value)
    scope = ALL_HALLS if hall is None else check_hall(c, hall)
    with c.db.transaction():
        c.db.execute(c.db.upsert_sql("alert_settings", ("hall", "key", "value"),
                                     ("hall", "key")), (scope, key, value))
    return thresholds(c, hall or DEFAULT_HALL)


# ---- raising ------------------------------------------------------------------------
@dataclass
class Finding:
    """An alert to raise, unless its key is raised already."""

    kind: str
    key: str
    hall: str
    window: str | None
    device: str | None
    text: str
    at: int | None = None  # the event's or the period's time (bad_rate: its rating's)


def _next_id(c: Collector, counter: str, n: int = 1) -> int:
    """The last of the next n numbers of a counter in meta. The UPDATE locks the row on
    PostgreSQL, so two processes never take the same numbers."""
    c.db.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + ? AS TEXT) "
                 "WHERE key = ?", (n, counter))
    return int(c.db.value("SELECT value FROM meta WHERE key = ?", (counter,)))


def _lock_scans(c: Collector) -> None:
    """Inside a transaction: scans run one at a time across processes (a row lock on
    PostgreSQL; SQLite's write transactions are one at a time anyway)."""
    c.db.execute("UPDATE meta SET value = value WHERE key = 'alert_scan'")


def raise_alert(c: Collector, f: Finding) -> int | None:
    """raise_alerts() for one: its id, or None when its key was raised before."""
    ids = raise_alerts(c, [f])
    return ids[0] if ids else None


def raise_alerts(c: Collector, found: list[Finding]) -> list[int]:
    """Store the alerts whose keys are new and queue them for their halls' webhooks,
    inside the caller's transaction, in a few statements however many; their ids."""
    from host_tools.collector import webhooks

    fresh: dict[str, Finding] = {}
    for f in found:
        fresh.setdefault(f.key, f)
    keys = list(fresh)
    for i in range(0, len(keys), 500):  # bounded statements: 500 keys at a time
        part = keys[i:i + 500]
        for (k,) in c.db.all("SELECT akey FROM alerts WHERE akey IN "
                             f"({', '.join('?' for _ in part)})", part):
            del fresh[k]
    if not fresh:
        return []
    last = _next_id(c, "alert_seq", len(fresh))
    now = c.now()
    rows = [(last - len(fresh) + 1 + i, f) for i, f in enumerate(fresh.values())]
    c.db.executemany("INSERT INTO alerts (id, akey, kind, hall, win, device, message, "
                     "period_t, raised, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')",
                     [(i, f.key, f.kind, f.hall, f.window, f.device, f.text, f.at, now)
                      for i, f in rows])
    webhooks.enqueue(c, [(i, f.hall) for i, f in rows], now)
    c.note_change()
    return [i for i, _f in rows]


def refused(c: Collector, device: str, detail: str) -> int | None:
    """The office hears once of a device whose signed frame was refused for its records
    (REFUSED_REASONS): its sync stays stuck on them. The key holds the detail (the
    record's seq and field), so a new fault is a new alert."""
    row = c.db.one("SELECT win, hall FROM devices WHERE id = ?", (device,))
    if row is None:
        return None
    win, hall = row
    text = f"{win} 窗口设备 {device} 的记录被拒收，其后的记录无法同步：{detail}"
    with c.db.transaction():
        return raise_alert(c, Finding("refused", f"refused:{device}:{detail}"[:200], hall,
                                      win, device, text, c.now()))


# ---- new rows after ingest ------------------------------------------------------------
def _behind(c: Collector) -> list[tuple[str, str, int, int]]:
    """(device, hall, last stored seq, cursor) of devices with events past their cursor."""
    rows = c.db.all("SELECT d.id, d.hall, d.last_seq, COALESCE(a.seq, -1) FROM devices d "
                    "LEFT JOIN alert_cursor a ON a.device = d.id")
    return [r for r in rows if r[2] > r[3]]


def scan_new(c: Collector) -> list[int]:
    """Raise the alerts of every event stored since the last scan; the ids raised. A
    round reads up to BATCH events of the devices behind, then writes in one short
    transaction (the syncs wait for the write lock once a round, not once a device)."""
    raised: list[int] = []
    while True:
        steps = _read_round(c)
        if not steps:
            return raised
        with c.db.transaction():
            _lock_scans(c)
            for dev, hall, cursor, upto, rows in steps:
                if c.db.value("SELECT seq FROM alert_cursor WHERE device = ?", (dev,),
                              -1) != cursor:
                    continue  # another process scanned these; the next round goes on
                found = list(_event_findings(c, dev, hall, rows))
                found += _bad_rate_findings(c, hall, rows)
                raised += raise_alerts(c, found)
                c.db.execute(c.db.upsert_sql("alert_cursor", ("device", "seq"), ("device",)),
                             (dev, upto))


def _read_round(c: Collector) -> list[tuple[str, str, int, int, list[tuple]]]:
    """(device, hall, cursor, scanned up to, events) for a round, read outside any
    transaction."""
    steps = []
    budget = BATCH
    for dev, hall, last_seq, cursor in _behind(c):
        rows = c.db.all("SELECT seq, kind, win, level, mode, t, staff_no FROM events "
                        "WHERE device = ? AND seq > ? AND seq <= ? AND kind IN "
                        "('rating', 'alert', 'overflow') ORDER BY seq LIMIT ?",
                        (dev, cursor, last_seq, budget))
        upto = rows[-1][0] if len(rows) == budget else last_seq
        steps.append((dev, hall, cursor, upto, rows))
        budget -= len(rows)
        if budget <= 0:
            break
    return steps


def _event_findings(c: Collector, dev: str, hall: str, rows: list[tuple]) -> Iterator[Finding]:
    tz = hall_tz(c, hall)
    cleared = {(r[3], r[0]) for r in rows if r[1] == "alert" and not r[4]}
    for seq, kind, win, level, mode, t, _staff in rows:
        if kind == "rating" and level == _DISSATISFIED:
            yield Finding("dissatisfied", f"dissatisfied:{dev}:{seq}", hall, win, dev,
                          f"{win} 窗口收到一条不满意评价", t)
        elif kind == "alert" and mode and 0 < level < len(record.ALERT_NAMES):
            name = record.ALERT_NAMES[level]
            if name in _OWN_NEWS or any(code == level and s > seq for code, s in cleared):
                continue  # came and went within these records, or told otherwise
            what = (texts.get(name) or name).split("，")[0]
            yield Finding("device_alert", f"device_alert:{dev}:{seq}", hall, win, dev,
                          f"{win} 窗口设备 {dev} 报告：{what}", t)
        elif kind == "overflow":
            day = iso(t if t is not None else c.now(), tz)[:10]
            yield Finding("log_full", f"log_full:{dev}:{day}", hall, win, dev,
                          f"{win} 窗口设备 {dev} 的存储已满，评价暂以每小时计数保存，"
                          "请尽快同步并联系技术人员", t)


def _bad_rate_findings(c: Collector, hall: str, rows: list[tuple]) -> list[Finding]:
    """A window's 差评率 in the hour up to each new 不满意 (only a 不满意 can raise it),
    at least bad_rate_min ratings; one alert a window an hour (inside the scan's
    transaction, so the check holds across processes)."""
    limits = thresholds(c, hall)
    bad_times: dict[str, list[int]] = {}
    for _seq, kind, win, level, _mode, t, _staff in rows:
        if kind == "rating" and level == _DISSATISFIED and t is not None:
            bad_times.setdefault(win, []).append(t)
    out: list[Finding] = []
    for win, times in bad_times.items():
        hour = _HourOfRatings(c, win, min(times) - HOUR_S, max(times))
        for t in sorted(times):
            if any(f.window == win and abs((f.at or 0) - t) < HOUR_S for f in out) or c.db.one(
                    "SELECT 1 FROM alerts WHERE kind = 'bad_rate' AND win = ? AND period_t > ? "
                    "AND period_t < ?", (win, t - HOUR_S, t + HOUR_S)):
                continue
            n, bad = hour.counts(t - HOUR_S, t)
            if n >= limits["bad_rate_min"] and bad * 100 > limits["bad_rate_pct"] * n:
                out.append(Finding("bad_rate", f"bad_rate:{win}:{t}", hall, win, None,
                                   f"{win} 窗口近一小时差评率 {round(bad * 100 / n)}%（{bad}/{n} "
                                   f"条），超过 {limits['bad_rate_pct']}%", t))
    return out


class _HourOfRatings:
    """A window's ratings (time, 不满意 or not) over a span, read once, counted in any
    (lo, hi] within it. The query names no kind: so both engines take the time index,
    and the kind is looked at here."""

    def __init__(self, c: Collector, win: str, lo: int, hi: int):
        rows = sorted((t, level == _DISSATISFIED) for kind, t, level in c.db.all(
            "SELECT kind, t, level FROM events WHERE t > ? AND t <= ? AND win = ?",
            (lo, hi, win)) if kind == "rating")
        self.times = [t for t, _bad in rows]
        self.bad_before = [0]  # 不满意 among the first i ratings
        for _t, bad in rows:
            self.bad_before.append(self.bad_before[-1] + bad)

    def counts(self, lo: int, hi: int) -> tuple[int, int]:
        """(ratings, 不满意) with lo < t <= hi."""
        i, j = bisect.bisect_right(self.times, lo), bisect.bisect_right(self.times, hi)
        return j - i, self.bad_before[j] - self.bad_before[i]


# ---- time-based: pause, silence, log fill --------------------------------------------------
def scan_time(c: Collector) -> list[int]:
    """Raise the alerts that time alone makes true now; the ids raised."""
    now = c.now()
    found: list[Finding] = []
    devices = c.db.all("SELECT id, win, hall, created, last_seen, last_seq FROM devices "
                       "WHERE revoked IS NULL ORDER BY id")
    halls: dict[str, dict[str, int]] = {}
    for dev, win, hall, created, last_seen, last_seq in devices:
        limits = halls.get(hall) or halls.setdefault(hall, thresholds(c, hall))
        found += _pause_finding(c, dev, win, hall, now, limits)
        found += _silent_finding(dev, win, hall, created, last_seen, now, limits)
        found += _fill_finding(c, dev, win, hall, last_seen, last_seq, now, limits)
    if not found:
        return []
    with c.db.transaction():
        _lock_scans(c)
        return raise_alerts(c, found)


def _pause_finding(c: Collector, dev: str, win: str, hall: str, now: int,
                   limits: dict[str, int]) -> list[Finding]:
    row = c.db.one("SELECT seq, to_state, t FROM events WHERE kind = 'status' AND device = ? "
                   "ORDER BY seq DESC LIMIT 1", (dev,))
    if row is None or row[1] != record.PAUSED or row[2] is None:
        return []
    seq, _state, since = row
    if now - since < limits["pause_max_min"] * 60:
        return []
    at = iso(since, hall_tz(c, hall))[11:16]
    return [Finding("pause_long", f"pause_long:{dev}:{seq}", hall, win, dev,
                    f"{win} 窗口暂停服务已超过 {limits['pause_max_min']} 分钟（{at} 起）", since)]


def _silent_finding(dev: str, win: str, hall: str, created: int, last_seen: int | None,
                    now: int, limits: dict[str, int]) -> list[Finding]:
    heard = last_seen if last_seen is not None else created
    if now - heard < limits["silent_h"] * HOUR_S:
        return []
    text = (f"{win} 窗口设备 {dev} 已超过 {limits['silent_h']} 小时未同步" if last_seen is not None
            else f"{win} 窗口设备 {dev} 登记已超过 {limits['silent_h']} 小时，从未同步")
    return [Finding("silent", f"silent:{dev}:{heard}", hall, win, dev, text, heard)]


def _fill_finding(c: Collector, dev: str, win: str, hall: str, last_seen: int | None,
                  last_seq: int, now: int, limits: dict[str, int]) -> list[Finding]:
    """The device reports no fill level (design.md section 4: a full log is told by its
    overflow records, once full), so the collector estimates the records made since the
    last sync, which the log must hold until the next: its current log's records per
    second so far, times the silence."""
    if last_seen is None or now - last_seen < HOUR_S:
        return []
    first = c.db.one("SELECT seq, received FROM records WHERE device = ? AND seq >= ? "
                     "ORDER BY seq LIMIT 1", (dev, last_seq >> LOG_SHIFT << LOG_SHIFT))
    if first is None or last_seen - first[1] < FILL_HISTORY_S:
        return []
    rate = (last_seq - first[0] + 1) / (last_seen - first[1])
    pct = round(rate * (now - last_seen) * 100 / LOG_RECORDS)
    if pct < limits["log_fill_pct"]:
        return []
    days = (now - last_seen) / DAY_S
    return [Finding("log_nearly_full", f"log_nearly_full:{dev}:{last_seen}", hall, win, dev,
                    f"{win} 窗口设备 {dev} 已 {days:.1f} 天未同步，存储估计已用 {min(pct, 100)}%，"
                    "请尽快同步", last_seen)]


# ---- reading and closing -------------------------------------------------------------
def hall_tz(c: Collector, hall: str | None) -> int:
    """The hall's time zone (its own tz_min setting, else every hall's)."""
    if hall:
        v = c.db.value("SELECT value FROM settings WHERE scope = ? AND key = 'tz_min'",
                       ("hall:" + hall,))
        if v is not None:
            return int(json.loads(v))
    return c.hall_tz_min()


_COLS = "id, kind, hall, win, device, message, raised, state, closed, closed_by"


def _shown(c: Collector, row: tuple, tzs: dict[str, int]) -> dict[str, Any]:
    aid, kind, hall, win, dev, text, raised, state, closed, by = row
    tz = tzs.setdefault(hall, hall_tz(c, hall))
    return {"id": aid, "kind": kind, "hall": hall, "window": win, "device": dev, "text": text,
            "raised": iso(raised, tz), "state": state,
            "closed": iso(closed, tz) if closed is not None else None, "closed_by": by}


def list_alerts(c: Collector, hall: str | None = None, state: str = "open",
                after: int | None = None, limit: int = PAGE) -> dict[str, Any]:
    """Alerts newest first; a page: ids below `after`, at most `limit`, and `next`."""
    if state not in STATES:
        raise CollectorError(f"state must be one of {', '.join(STATES)} (got {state!r})")
    if not 1 <= limit <= PAGE_MAX:
        raise CollectorError(f"limit must be a whole number from 1 to {PAGE_MAX}")
    if hall is not None:
        check_hall(c, hall)
    sql, params = f"SELECT {_COLS} FROM alerts WHERE 1 = 1", []
    if hall is not None:
        sql += " AND hall = ?"
        params.append(hall)
    if state != "all":
        sql += " AND state = ?"
        params.append(state)
    if after is not None:
        sql += " AND id < ?"
        params.append(after)
    tzs: dict[str, int] = {}
    rows = [_shown(c, r, tzs) for r in c.db.all(sql + " ORDER BY id DESC LIMIT ?",
                                                  [*params, limit])]
    return {"alerts": rows, "next": rows[-1]["id"] if len(rows) == limit else None}


class NotFound(CollectorError):
    pass


def close_alert(c: Collector, alert_id: int, who: str) -> dict[str, Any]:
    """Close an open alert (its row stays, with who closed it and when)."""
    with c.db.transaction():
        row = c.db.one("SELECT state FROM alerts WHERE id = ?", (alert_id,))
        if row is None:
            raise NotFound(f"no alert {alert_id} (pingjia alert list --state all)")
        if row[0] != "open":
            raise CollectorError(f"alert {alert_id} is closed already")
        c.db.execute("UPDATE alerts SET state = 'closed', closed = ?, closed_by = ? "
                     "WHERE id = ?", (c.now(), who, alert_id))
        c.note_change()
        shown = c.db.one(f"SELECT {_COLS} FROM alerts WHERE id = ?", (alert_id,))
    return _shown(c, shown, {})


# ---- the serve process's thread -----------------------------------------------------------
class Watcher(Worker):
    """Scans for new alerts when poked (after a stored frame) and every `every_s` for the
    time-based ones, on a thread of its own; on_raise is called with the ids raised (the
    webhook worker's poke). A failing scan is logged and tried again at the next tick."""

    name = "pingjia-alerts"

    def __init__(self, c: Collector, every_s: float = SCAN_S,
                 on_raise: Callable[[list[int]], None] | None = None):
        self.c = c
        self.every_s = every_s
        self.on_raise = on_raise
        super().__init__()

    def scan_once(self, timed: bool = True) -> list[int]:
        raised = scan_new(self.c) + (scan_time(self.c) if timed else [])
        if raised and self.on_raise:
            self.on_raise(raised)
        return raised

    def _analyze(self) -> None:
        """The planner's statistics, as the rows grow (Database.analyze)."""
        try:
            self.c.db.analyze()
        except StorageUnavailable as e:
            log.warning("statistics put off: %s", e)

    def _run(self) -> None:
        import time

        due = 0.0
        analyzed = time.monotonic()  # the collector analyzed at open
        while not self.stopping:
            timed = time.monotonic() >= due
            try:
                self.scan_once(timed)
            except StorageUnavailable as e:  # the database is away: the next tick tries
                log.warning("alert scan put off: %s", e)
            except Exception:
                log.exception("alert scan failed")
            if timed:
                due = time.monotonic() + self.every_s
            if time.monotonic() >= analyzed + ANALYZE_S:
                analyzed = time.monotonic()
                self._analyze()
            self.wake.wait(max(due - time.monotonic(), 0.05))
            self.wake.clear()


# ---- HTTP (server.py includes these routes) --------------------------------------------------
def json_error(text: str, status: int = 400) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": text}, status_code=status)


async def answer(fn: Callable[[], Any]) -> Any:
    """Run fn in the thread pool: its result as JSON, a refusal as a 4xx, a storage fault 503."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, PlainTextResponse

    from host_tools.errors import PingjiaError

    try:
        return JSONResponse(await run_in_threadpool(fn))
    except StorageUnavailable as e:
        return PlainTextResponse(f"unavailable: {e}", status_code=503,
                                 headers={"Retry-After": str(e.retry_after)})
    except NotFound as e:
        return json_error(str(e), 404)
    except (ValueError, PingjiaError) as e:
        return json_error(str(e))


async def json_body(request: Any, most: int = 4096) -> dict[str, Any]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > most:
            raise CollectorError(f"the body is larger than {most} bytes")
    try:
        obj = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise CollectorError("the body must be a JSON object") from None
    if not isinstance(obj, dict):
        raise CollectorError("the body must be a JSON object")
    return obj


def _page(q: Any) -> tuple[int | None, int]:
    try:
        limit = int(q.get("limit", PAGE))
        after = int(q["after"]) if q.get("after") else None
    except ValueError:
        raise CollectorError("limit and after must be whole numbers") from None
    return after, limit


def routes(c: Collector) -> list[Any]:
    from starlette.routing import Route

    from host_tools.collector.access import require

    @require("viewer")
    async def alerts_list(request: Any) -> Any:
        q = request.query_params

        def run() -> dict[str, Any]:
            after, limit = _page(q)
            return list_alerts(c, q.get("hall") or None, q.get("state") or "open", after, limit)

        return await answer(run)

    @require("admin")
    async def alert_close(request: Any) -> Any:
        raw = request.path_params["id"]
        if not raw.isdigit():
            return json_error(f"alert id {raw!r}: a whole number (pingjia alert list)")
        return await answer(lambda: close_alert(c, int(raw), request.user.display_name))

    @require("viewer")
    async def settings_show(request: Any) -> Any:
        hall = request.query_params.get("hall") or DEFAULT_HALL
        return await answer(lambda: {"hall": check_hall(c, hall),
                                     "settings": thresholds(c, hall)})

    @require("admin")
    async def settings_set(request: Any) -> Any:
        try:
            b = await json_body(request)
        except CollectorError as e:
            return json_error(str(e))
        if "key" not in b or "value" not in b:
            return json_error('give {"key": K, "value": V} and "hall" (else every hall)')
        hall = b.get("hall")
        return await answer(lambda: {"hall": hall or ALL_HALLS, "settings": set_setting(
            c, str(b["key"]), b["value"], None if hall is None else str(hall))})

    return [
        Route("/api/v1/alerts", alerts_list, methods=["GET"]),
        Route("/api/v1/alerts/settings", settings_show, methods=["GET"]),
        Route("/api/v1/alerts/settings", settings_set, methods=["POST"]),
        Route("/api/v1/alerts/{id}/close", alert_close, methods=["POST"]),
    ]


def after_sync(app: Any) -> None:
    """The sync route's call once a frame is stored: wake the watcher, if this server
    runs one (`pingjia serve` does; the in-process test server does not)."""
    watcher = getattr(app.state, "alert_watcher", None)
    if watcher is not None:
        watcher.poke()


def lifespan(c: Collector) -> Callable[[Any], Any]:
    """Starlette's lifespan for `pingjia serve`: the alert watcher and the webhook
    delivery worker run while the server does."""
    from host_tools.collector import webhooks

    @contextlib.asynccontextmanager
    async def run(app: Any) -> Any:
        deliverer = webhooks.Deliverer(c).start()
        watcher = Watcher(c, on_raise=lambda _ids: deliverer.poke()).start()
        app.state.alert_watcher = watcher
        try:
            yield
        finally:
            watcher.stop()
            deliverer.stop()

    return run
