"""The office's live dashboard (design.md section 6, issue 14): one page behind the login
(viewer role) and the JSON it redraws from.

- `GET /`: the page (templates/dashboard.html), drawn on the server with the data of its
  filters, so its tables show without any script; static/dashboard.js then keeps it live
  and draws the charts with ECharts (static/vendor/, bundled at build time, never a CDN).
- `GET /api/v1/dashboard`: the same view as JSON; `?format=csv|xlsx` under
  `/api/v1/dashboard/export`: the tables shown, as a file.
- `GET /api/v1/live`: server-sent events. It polls `Collector.change_mark()` (one row,
  so any serve process sharing one PostgreSQL moves every page) about once a second and
  sends `change` when it moves; comments in between keep proxies from closing it. A
  stream lives at most LIVE_S (below limits.py's whole-request deadline): the browser's
  EventSource reconnects by itself. Streams count against the address's requests in
  flight (limits.py's Guard) and at most half of those may be streams, so a wall of
  screens behind one address still gets its JSON fetched.

Filters come from the query string (hall, window, staff, day or from/to, YYYY-MM-DD in
the hall's zone), so a view can be bookmarked; an unknown hall, window or staff is a 400
with a line saying so, and the page shows that line.

/static/ is served without a login: it holds code and styles only (the page's script,
CSS, ECharts), no data, and the login page needs its stylesheet before anyone is in."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from firmware import record
from firmware.clock import iso
from host_tools.collector import alerts, cases, export, reports
from host_tools.collector.access import require
from host_tools.collector.db import StorageUnavailable
from host_tools.collector.store import Collector
from host_tools.errors import PingjiaError

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
STATIC = HERE / "static"
LIVE_PATH = "/api/v1/live"
STATIC_PATH = "/static/{path:path}"  # public: code and styles, no data (see above)
STATIC_MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".png": "image/png"}
LIVE_S = 55.0  # one stream's life; limits.Limits.request_s (120 s) would cut it anyway
POLL_S = 1.0
HEARTBEAT_S = 15.0  # a comment this often: proxies close a quiet connection after 30-60 s
RETRY_MS = 2000  # what the browser waits before it reconnects
BAD_PAGE = 20  # 差评 on the page; the next ones page through /api/v1/bad
SILENT_MIN = 60  # a device not heard from this long is listed (?silent=MINUTES)
SILENT_MAX = 7 * 24 * 60
ALERTS_SHOWN = 50  # the newest open alerts; the rest: /api/v1/alerts
CASES_SHOWN = 20  # cases a list; the rest page through /api/v1/cases
# no inline script or style anywhere: what a ticket or a name smuggles in cannot run
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
STATE_ZH = {"serving": "服务中", "wait": "请稍候", "paused": "暂停服务", "closed": "非工作时间",
            "overtime": "延时服务", "none": "未知", None: "未知"}
WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


# ---- the view ---------------------------------------------------------------------------
def parse_filter(c: Collector, q: Any) -> reports.Filter:
    """The query string's filter, checked: dates that parse, names the collector knows.
    Without dates the view is today's (in the hall's zone)."""
    flt = reports.Filter(day=q.get("day") or None, since=q.get("from") or None,
                         until=q.get("to") or None, hall=q.get("hall") or None,
                         window=q.get("window") or None, staff=q.get("staff") or None)
    if not (flt.day or flt.since or flt.until):
        flt.day = reports.local_day(c.now(), c.hall_tz_min())
    flt.check(c.db)  # dates that parse and run forwards, names the collector knows
    return flt


def silent_minutes(q: Any) -> int:
    raw = q.get("silent") or str(SILENT_MIN)
    if not raw.isdigit() or not 1 <= int(raw) <= SILENT_MAX:
        raise ValueError(f"silent must be whole minutes from 1 to {SILENT_MAX}")
    return int(raw)


def view(c: Collector, flt: reports.Filter, silent_min: int = SILENT_MIN) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data (texts the page needs in Chinese)."""
    tz, now = c.hall_tz_min(), c.now()
    span = flt.span(tz)
    mark = c.change_mark()  # before the reads: a change during them moves the page again
    by_window = {r["window"]: r for r in _summary(c, tz, now, flt, "window")}
    status = reports.window_status(c.db, tz, flt)
    windows = [_window_row(w, status.get(w), by_window.get(w))
               for w in sorted(set(by_window) | set(status))]
    return {
        "mark": mark, "now": iso(now, tz),
        "filter": {"day": flt.day, "from": flt.since, "to": flt.until, "hall": flt.hall,
                   "window": flt.window, "staff": flt.staff, "silent": silent_min},
        "total": _rates(_total(by_window.values())),
        "windows": windows,
        "staff": _staff_rows(c, tz, now, flt, span),
        "heat": {"weekdays": list(WEEKDAYS), "hours": list(range(24)),
                 "counts": reports.heat_week(c.db, tz, flt)},
        "bad": reports.ratings_page(c.db, tz, flt, "", BAD_PAGE, level=4),
        "silent": silent_devices(c, tz, now, flt, silent_min * 60),
        "alerts": open_alerts(c, flt),
        "cases": case_lists(c, flt),
    }


def _summary(c: Collector, tz: int, now: int, flt: reports.Filter, by: str
             ) -> list[dict[str, Any]]:
    """reports.summary's rows, a 差评 found malicious on appeal taken out as the report
    does (cases.discount_malicious)."""
    rows = reports.summary(c.db, tz, None, by, now, flt, bad_lists=False)  # shown apart
    return cases.discount_malicious(c.db, rows, by, tz, flt)


def _rates(r: dict[str, Any]) -> dict[str, Any]:
    return {"ratings": r["ratings"], "levels": {str(k): v for k, v in r["levels"].items()},
            "satisfied_rate": r["satisfied_rate"], "bad_rate": r["bad_rate"],
            "participation_rate": r["participation_rate"], "index": r["index"],
            "pause_s": r["pause_s"], "wait_s": r["wait_s"]}


def _total(rows: Any) -> dict[str, Any]:
    t = reports._new_row()
    for r in rows:
        for k in ("ratings", "no_rating", "invite_ratings", "pause_s", "wait_s"):
            t[k] += r[k]
        for lv, n in r["levels"].items():
            t["levels"][lv] += n
    return reports.finish(t)


def _window_row(win: str, st: dict[str, Any] | None, rep: dict[str, Any] | None
                ) -> dict[str, Any]:
    st = st or {}
    rep = rep or reports.finish(reports._new_row())
    return {"window": win, "state": st.get("state"), "state_zh": STATE_ZH.get(
                st.get("state"), st.get("state")),
            "staff_no": st.get("staff_no"), "staff_name": st.get("staff_name"),
            "since": st.get("since"), "device": st.get("device"),
            "last_seen": st.get("last_seen"), **_rates(rep)}


def _staff_rows(c: Collector, tz: int, now: int, flt: reports.Filter,
                span: tuple[int, int] | None) -> list[dict[str, Any]]:
    flags = staff_flags(c, flt, span)
    out = []
    for r in _summary(c, tz, now, flt, "staff"):
        no = r["staff"]
        f = flags.get(no, (0, 0))
        out.append({"staff_no": no, "staff_name": r.get("staff_name"), **_rates(r),
                    "wait_overlong": f[0], "pause_no_badge": f[1]})
    return out


def staff_flags(c: Collector, flt: reports.Filter, span: tuple[int, int] | None
                ) -> dict[str, tuple[int, int]]:
    """Per staff: 请稍候 left on past wait_max_s, pauses with no badge in working hours
    (design.md section 3: pause signs must not be left out at will)."""
    more, params = flt.where(c.db)
    sql = ("SELECT COALESCE(e.staff_no, ws.staff_no), "
           "SUM(CASE WHEN e.kind = 'flag' AND e.level = ? THEN 1 ELSE 0 END), "
           "SUM(CASE WHEN e.kind = 'status' AND e.flagged <> 0 THEN 1 ELSE 0 END) "
           "FROM events e LEFT JOIN window_slots ws ON ws.win = e.win AND ws.slot = e.slot "
           # the partial index events_flags' own condition, word for word (SQLite uses a
           # partial index only for a query that states its condition)
           "WHERE (e.kind = 'flag' OR (e.kind = 'status' AND e.flagged <> 0))")
    ps: list[Any] = [record.FLAG_WAIT_LONG]
    if span:
        sql += " AND e.t >= ? AND e.t < ?"
        ps += list(span)
    rows = c.db.all(sql + more + " GROUP BY COALESCE(e.staff_no, ws.staff_no)", ps + params)
    return {no or "-": (int(w or 0), int(p or 0)) for no, w, p in rows}


def silent_devices(c: Collector, tz: int, now: int, flt: reports.Filter, silent_s: int
                   ) -> list[dict[str, Any]]:
    """Devices whose last sync is older than silent_s (or that never synced), oldest first."""
    sql = ("SELECT id, win, hall, last_seen FROM devices WHERE revoked IS NULL "
           "AND (last_seen IS NULL OR last_seen < ?)")
    ps: list[Any] = [now - silent_s]
    for col, val in (("hall", flt.hall), ("win", flt.window)):
        if val:
            sql += f" AND {col} = ?"
            ps.append(val)
    rows = c.db.all(sql + " ORDER BY last_seen, id", ps)
    return [{"device": d, "window": w, "hall": h,
             "last_seen": iso(t, tz) if t is not None else None,
             "silent_s": now - t if t is not None else None} for d, w, h, t in rows]


def open_alerts(c: Collector, flt: reports.Filter) -> list[dict[str, Any]]:
    """The office's open alerts (alerts.py), newest first, of the filter's hall and window."""
    rows = alerts.list_alerts(c, flt.hall, "open", None, ALERTS_SHOWN)["alerts"]
    return [a for a in rows if not flt.window or a["window"] in (None, flt.window)]


def case_lists(c: Collector, flt: reports.Filter) -> dict[str, Any]:
    """The 差评 cases that need work (cases.py): counts, the overdue ones and the open ones,
    oldest first. Not cut by the dates: a case overdue today is about an older 差评."""
    who = reports.Filter(hall=flt.hall, window=flt.window, staff=flt.staff)
    open_page = cases.list_cases(c, who, "open", "", CASES_SHOWN)
    tz = c.hall_tz_min()
    counts = cases.work_counts(c.db, who, c.now(), tz)  # not every case's count: the year's
    counts["malicious"] = cases.malicious_count(c.db, who, tz)  # 500 000 took 40 ms
    return {"summary": counts,
            "overdue": cases.list_cases(c, who, "overdue", "", CASES_SHOWN).cases,
            "open": {"cases": open_page.cases, "next": open_page.next}}


# ---- what the page's template shows -------------------------------------------------------
def page_context(data: dict[str, Any]) -> dict[str, Any]:
    """The view with its texts made for dashboard.html (the template escapes them)."""
    heat = data["heat"]["counts"]
    top = max((n for row in heat for n in row), default=0) or 1
    return {**data, "pct": reports.pct, "num": reports.num, "hms": reports.hms,
            # ten shades (CSS classes h0..h9): no inline style under the CSP
            "heat_rows": [(WEEKDAYS[d], [(n, (n * 9 + top - 1) // top) for n in heat[d]])
                          for d in range(7)],
            "filter_query": _query(data["filter"])}


def _query(f: dict[str, Any]) -> str:
    from urllib.parse import urlencode

    keys = (("day", "day"), ("from", "from"), ("to", "to"), ("hall", "hall"),
            ("window", "window"), ("staff", "staff"))
    return urlencode([(q, f[k]) for k, q in keys if f.get(k)])


# ---- the shown data as a file -------------------------------------------------------------
def tables(data: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """(title, header, rows) of every table on the page, for CSV and XLSX."""
    def rates(r: dict[str, Any]) -> list[Any]:
        lv = r["levels"]
        return [r["ratings"], lv["1"], lv["2"], lv["3"], lv["4"], reports.pct(r["satisfied_rate"]),
                reports.pct(r["bad_rate"]), reports.pct(r["participation_rate"]),
                reports.num(r["index"]), reports.hms(r["pause_s"]), reports.hms(r["wait_s"])]

    rate_head = ["评价数", "非常满意", "满意", "基本满意", "不满意", "满意率", "差评率", "参评率",
                 "满意度指数", "暂停时长", "请稍候时长"]
    win = [[w["window"], w["state_zh"], w["staff_no"] or "", w["staff_name"] or "",
            w["since"] or "", w["last_seen"] or "", *rates(w)] for w in data["windows"]]
    staff = [[s["staff_no"], s["staff_name"] or "", *rates(s), s["wait_overlong"],
              s["pause_no_badge"]] for s in data["staff"]]
    bad = [[b["time"], b["window"], b["staff_no"], b["staff_name"], b["ticket"],
            b["reason"] or "未选择"] for b in data["bad"]["rows"]]
    heat = [[WEEKDAYS[d], *row] for d, row in enumerate(data["heat"]["counts"])]
    silent = [[s["device"], s["window"], s["hall"], s["last_seen"] or "从未同步"]
              for s in data["silent"]]
    alerts_ = [[a["raised"], a["hall"], a["window"] or "", a["device"] or "", a["text"]]
               for a in data["alerts"]]
    open_cases = [[k["id"], k["time"] or "", k["window"], k["staff_no"] or "",
                   k["staff_name"] or "", k["ticket"] or "", k["reason_text"] or "未选择",
                   k["state_name"], k["due"], "是" if k["overdue"] else ""]
                  for k in data["cases"]["open"]["cases"]]
    return [
        ("窗口", ["窗口", "状态", "工号", "姓名", "状态起始", "最近同步", *rate_head], win),
        ("人员", ["工号", "姓名", *rate_head, "请稍候超时", "无工牌暂停"], staff),
        ("差评", ["时间", "窗口", "工号", "姓名", "办件编号", "原因"], bad),
        ("热力图", ["", *[f"{h}时" for h in range(24)]], heat),
        ("未同步设备", ["设备", "窗口", "大厅", "最近同步"], silent),
        ("告警", ["时间", "大厅", "窗口", "设备", "告警"], alerts_),
        ("差评处理", ["编号", "差评时间", "窗口", "工号", "姓名", "办件编号", "原因", "状态",
                  "回访期限", "逾期"], open_cases),
    ]


def _title(data: dict[str, Any]) -> str:
    f = data["filter"]
    when = f["day"] or f"{f['from'] or '…'} 至 {f['to'] or '…'}"
    who = " ".join(f"{k} {f[k]}" for k in ("hall", "window", "staff") if f[k])
    return f"窗口服务评价 {when} {who}".strip() + f" (截至 {data['now']})"


def to_csv(data: dict[str, Any]) -> bytes:
    """Every table one after another, each under its title, a blank row between
    (export.py's BOM, CRLF and formula neutralising)."""
    out = io.StringIO()
    out.write(export.BOM)
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([export.inert(_title(data))])
    for title, head, rows in tables(data):
        w.writerow([])
        w.writerow([title])
        w.writerow(head)
        for r in rows:
            w.writerow([export.inert(v) for v in r])
    return out.getvalue().encode("utf-8")


def to_xlsx(data: dict[str, Any]) -> bytes:
    """One sheet a table; text cells are string cells, never formulas."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import TYPE_STRING

    wb = Workbook(write_only=True)
    for title, head, rows in tables(data):
        ws = wb.create_sheet(title)
        ws.append([_title(data)])
        ws.append(head)
        for r in rows:
            cells = []
            for v in r:
                cell = WriteOnlyCell(ws, value=v)
                if isinstance(v, str):
                    cell.data_type = TYPE_STRING
                cells.append(cell)
            ws.append(cells)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# ---- live: server-sent events --------------------------------------------------------------
class Streams:
    """Live streams open now, per client address (the server's loop thread only)."""

    def __init__(self) -> None:
        self.by_host: dict[str, int] = {}

    def take(self, host: str, cap: int) -> bool:
        if self.by_host.get(host, 0) >= cap:
            return False
        self.by_host[host] = self.by_host.get(host, 0) + 1
        return True

    def drop(self, host: str) -> None:
        n = self.by_host.get(host, 0) - 1
        if n > 0:
            self.by_host[host] = n
        else:
            self.by_host.pop(host, None)


class _Counted(StreamingResponse):
    """A stream that gives its place back however it ends (done, cut, cancelled)."""

    def __init__(self, content: Any, release: Any, **kw: Any):
        super().__init__(content, **kw)
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def _mark_for(c: Collector, user: Any) -> Any:
    """The change mark, or None once the stream's user is revoked (or has a new token):
    a stream is one request, and a revoked user is out at the next poll, not at the
    end of a stream's life."""
    if user is not None and c.users.current(user.name, user.token_id) is None:
        return None
    return c.change_mark()


async def live_events(c: Collector, life_s: float, poll_s: float = POLL_S,
                      heartbeat_s: float = HEARTBEAT_S, user: Any = None) -> Any:
    """The stream: the mark now, then `change` each time it moves, comments between;
    `revoked` and the end if user (access.User) is no longer allowed in."""
    loop = asyncio.get_running_loop()
    end = loop.time() + life_s
    last = None
    quiet_since = loop.time()
    yield f"retry: {RETRY_MS}\n\n"
    while True:
        try:
            mark = await run_in_threadpool(_mark_for, c, user)
            if mark is None:
                yield "event: revoked\ndata: log in again\n\n"
                return
        except StorageUnavailable:
            mark = last  # the database is restarting: say nothing, keep the stream
        if mark != last:
            yield f"event: {'mark' if last is None else 'change'}\ndata: {mark}\n\n"
            last, quiet_since = mark, loop.time()
        elif loop.time() - quiet_since >= heartbeat_s:
            yield ": heartbeat\n\n"
            quiet_since = loop.time()
        left = end - loop.time()
        if left <= 0:
            return
        await asyncio.sleep(min(poll_s, left))


async def static_file(request: Request) -> Response:
    """A file under static/ (what the build copied there too: vendor/echarts.min.js);
    nothing outside it, no listing."""
    rel = request.path_params["path"]
    path = (STATIC / rel).resolve()
    if (".." in rel.split("/") or not path.is_relative_to(STATIC.resolve())
            or path.suffix not in STATIC_MEDIA or not path.is_file()):
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(path, media_type=STATIC_MEDIA[path.suffix],
                        headers={"Cache-Control": "public, max-age=3600"})


# ---- routes ------------------------------------------------------------------------------
def routes(collector: Collector, limits: Any = None) -> list[Any]:
    """The dashboard's routes for server.create_app (limits: its limits.Limits)."""
    from host_tools.collector.limits import Limits

    c = collector
    limits = limits or Limits()
    streams = Streams()
    per_host = max(1, limits.per_client_in_flight // 2)
    life_cap = max(1.0, min(LIVE_S, limits.request_s - 10))

    def make_view(q: Any) -> dict[str, Any]:
        return view(c, parse_filter(c, q), silent_minutes(q))

    async def guarded(fn: Any, *args: Any) -> Any:
        """fn's result, or the Response that says why not."""
        try:
            return await run_in_threadpool(fn, *args)
        except StorageUnavailable as e:
            return PlainTextResponse(f"unavailable: {e}", status_code=503,
                                     headers={"Retry-After": str(e.retry_after)})
        except (ValueError, PingjiaError) as e:
            return JSONResponse({"error": str(e)}, status_code=400)

    @require("viewer", page=True)
    async def page(request: Request) -> Response:
        data = await guarded(make_view, request.query_params)
        error = None
        if isinstance(data, Response):
            if data.status_code != 400:
                return data
            error = json.loads(bytes(data.body))["error"]
            data = await guarded(make_view, {})  # today's view under the message
            if isinstance(data, Response):
                return data
        ctx = dict(page_context(data), user=request.user.display_name, error=error,
                   asked={k: request.query_params.get(k, "") for k in
                          ("day", "from", "to", "hall", "window", "staff")})
        resp = TEMPLATES.TemplateResponse(request, "dashboard.html", ctx,
                                          status_code=400 if error else 200)
        resp.headers["Content-Security-Policy"] = CSP
        return resp

    @require("viewer")
    async def dashboard_json(request: Request) -> Response:
        data = await guarded(make_view, request.query_params)
        return data if isinstance(data, Response) else JSONResponse(data)

    @require("viewer")
    async def dashboard_export(request: Request) -> Response:
        fmt = request.query_params.get("format", "csv")
        if fmt not in ("csv", "xlsx"):
            return JSONResponse({"error": "format must be csv or xlsx"}, status_code=400)
        data = await guarded(make_view, request.query_params)
        if isinstance(data, Response):
            return data
        body = await run_in_threadpool(to_csv if fmt == "csv" else to_xlsx, data)
        f = data["filter"]
        name = f"pingjia-dashboard-{f['day'] or (f['from'] or 'start') + '_' + (f['to'] or 'now')}"
        return Response(body, media_type=export.MEDIA[fmt], headers={
            "Content-Disposition": f'attachment; filename="{name}.{fmt}"'})

    @require("viewer")
    async def live(request: Request) -> Response:
        raw = request.query_params.get("max_s")
        try:
            life = life_cap if raw is None else float(raw)
        except ValueError:
            life = -1
        if not 0 <= life <= life_cap:
            return JSONResponse({"error": f"max_s must be seconds from 0 to {life_cap:g}"},
                                status_code=400)
        host = request.client.host if request.client else "-"
        if not streams.take(host, per_host):
            return PlainTextResponse(
                f"busy: {per_host} live streams from this address already (close a tab)",
                status_code=503, headers={"Retry-After": "10"})
        return _Counted(live_events(c, life, user=request.scope.get("pingjia_user")),
                        lambda: streams.drop(host),
                        media_type="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    live.streams = streams  # type: ignore[attr-defined]  # what the tests read
    return [
        Route("/", page),
        Route("/api/v1/dashboard", dashboard_json),
        Route("/api/v1/dashboard/export", dashboard_export),
        Route(LIVE_PATH, live),
        Route(STATIC_PATH, static_file),
    ]
