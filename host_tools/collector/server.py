"""`pingjia serve`: the sync endpoint, a JSON API and the dashboard, on Starlette
(ASGI) served by uvicorn. Database work runs in Starlette's thread pool so a
slow query never stalls the event loop; the database layer serialises writes.

run_in_thread() starts the same server in-process on 127.0.0.1 (the virtual
device's `pingjia sim` and the tests use it)."""

from __future__ import annotations

import asyncio
import html
import socket
import threading
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from firmware import frame
from host_tools.collector import export, reports
from host_tools.collector.store import Collector

SYNC_PATH = "/api/v1/sync"
MAX_BODY = frame.frame_size(frame.ID_MAX, frame.MAX_RECORDS)
# refusals: what a device or a tester sees (text/plain, one line)
_STATUS = {"unknown_device": 403, "bad_mac": 401, "oversized": 413, "replayed": 409}


REASONS = {
    "bad_magic": "not a pingjia sync frame",
    "bad_version": "frame version not spoken here",
    "bad_id": "malformed device id",
    "truncated": "the frame is shorter than its header says",
    "oversized": "the frame is longer than its header says or than any frame",
    "unknown_device": "no such device (pingjia device add ID --window W)",
    "bad_mac": "the signature does not match the device's key (forged, corrupted or a wrong key)",
    "bad_record": "a record fails its CRC or its seq is out of order",
    "replayed": "this exact request was taken before (a replay; a device sends a new nonce "
                "with every attempt)",
}


def explain(e: frame.FrameError) -> str:
    detail = str(e)[len(e.reason):].strip()
    return f"refused: {e.reason}: {REASONS.get(e.reason, e.reason)}" + (
        f" ({detail})" if detail else "")


class BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    n = request.headers.get("content-length")
    if n is not None and (not n.isdigit() or int(n) > limit):
        raise BodyTooLarge
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise BodyTooLarge
    return bytes(buf)


def create_app(collector: Collector) -> Starlette:
    c = collector

    async def sync(request: Request) -> Response:
        try:
            body = await _read_body(request, MAX_BODY)
        except BodyTooLarge:
            return PlainTextResponse(f"refused: oversized: more than {MAX_BODY} bytes",
                                     status_code=413)
        except ClientDisconnect:  # the network cut the frame: nothing to store
            return PlainTextResponse("refused: truncated: the connection closed", 400)
        try:
            answer = await run_in_threadpool(c.ingest, body)
        except frame.FrameError as e:
            return PlainTextResponse(explain(e), status_code=_STATUS.get(e.reason, 400))
        return Response(answer, media_type="application/octet-stream")

    def _day(request: Request) -> str:
        return request.query_params.get("day") or reports.local_day(c.now(), c.hall_tz_min())

    async def report(request: Request) -> Response:
        by = request.query_params.get("by", "window")
        day = request.query_params.get("day")
        try:
            rows = await run_in_threadpool(reports.summary, c.db, c.hall_tz_min(), day, by,
                                           c.now())
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        return JSONResponse({"day": day, "by": by, "rows": rows})

    async def ratings(request: Request) -> Response:
        day = request.query_params.get("day")
        try:
            rows = await run_in_threadpool(reports.ratings, c.db, c.hall_tz_min(), day)
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        return Response(export.to_json(rows), media_type="application/json")

    async def devices(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(c.devices))

    async def dashboard_json(request: Request) -> Response:
        try:
            return JSONResponse(await run_in_threadpool(dashboard_data, c, _day(request)))
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=400)

    async def dashboard(request: Request) -> Response:
        try:
            data = await run_in_threadpool(dashboard_data, c, _day(request))
        except ValueError as e:
            return PlainTextResponse(str(e), status_code=400)
        return HTMLResponse(render_dashboard(data))

    routes = [
        Route(SYNC_PATH, sync, methods=["POST"]),
        Route("/api/v1/report", report),
        Route("/api/v1/ratings", ratings),
        Route("/api/v1/devices", devices),
        Route("/api/v1/dashboard", dashboard_json),
        Route("/", dashboard),
    ]
    return Starlette(routes=routes)


def dashboard_data(c: Collector, day: str) -> dict[str, Any]:
    tz = c.hall_tz_min()
    now = c.now()
    rows = {r["window"]: r for r in reports.summary(c.db, tz, day, "window", now)}
    status = reports.window_status(c.db, tz)
    heat = reports.heat(c.db, tz, day)
    wins = sorted(set(rows) | set(status) | set(heat))
    out = []
    for w in wins:
        r = rows.get(w) or reports.finish(reports._new_row())
        out.append({"window": w, "status": status.get(w), "report": r,
                    "hours": heat.get(w, [0] * 24)})
    return {"day": day, "now": reports.iso(now, tz), "windows": out}


_STATE_ZH = {"serving": "服务中", "wait": "请稍候", "paused": "暂停服务", "closed": "非工作时间",
             "overtime": "延时服务", None: "未知"}


def render_dashboard(data: dict[str, Any]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang='zh'><head><meta charset='utf-8'>",
        "<meta http-equiv='refresh' content='30'><title>窗口服务评价 pingjia</title>",
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;"
        "margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "th{background:#eee}.h td{width:1.6em;text-align:center;font-size:80%}"
        "section{border:1px solid #999;padding:.5em;margin:.5em 0}</style></head><body>",
        f"<h1>窗口服务评价 — {e(data['day'])}</h1><p>as of {e(data['now'])}</p>",
    ]
    for w in data["windows"]:
        st = w["status"] or {}
        r = w["report"]
        lv = r["levels"]
        state = _STATE_ZH.get(st.get("state"), st.get("state") or "未知")
        who = " ".join(x for x in (st.get("staff_no"), st.get("staff_name")) if x)
        parts.append(f"<section><h2>窗口 {e(w['window'])}</h2>")
        parts.append(f"<p>状态 {e(state)} {e(who)} (since {e(str(st.get('since') or '-'))})"
                     f"; device {e(str(st.get('device') or '-'))}, last sync "
                     f"{e(str(st.get('last_seen') or '-'))}</p>")
        parts.append("<table><tr><th>评价</th><th>非常满意</th><th>满意</th><th>基本满意</th>"
                     "<th>不满意</th><th>满意率</th><th>差评率</th><th>参评率</th>"
                     "<th>满意度指数</th></tr>")
        parts.append(f"<tr><td>{r['ratings']}</td><td>{lv[1]}</td><td>{lv[2]}</td>"
                     f"<td>{lv[3]}</td><td>{lv[4]}</td><td>{reports.pct(r['satisfied_rate'])}</td>"
                     f"<td>{reports.pct(r['bad_rate'])}</td>"
                     f"<td>{reports.pct(r['participation_rate'])}</td>"
                     f"<td>{reports.num(r['index'])}</td></tr></table>")
        hours = w["hours"]
        top = max(hours) or 1
        cells = "".join(
            f"<td style='background:rgba(200,60,0,{h / top:.2f})' title='{i}:00 {h}'>{h or ''}"
            "</td>" for i, h in enumerate(hours[7:20], start=7))
        heads = "".join(f"<td>{i}</td>" for i in range(7, 20))
        parts.append(f"<table class='h'><tr>{heads}</tr><tr>{cells}</tr></table>")
        if r["bad"]:
            parts.append("<table><tr><th>差评时间</th><th>工号</th><th>姓名</th><th>办件编号</th>"
                         "<th>原因</th></tr>")
            for b in r["bad"]:
                parts.append(f"<tr><td>{e(b['time'] or '-')}</td><td>{e(b['staff_no'] or '-')}"
                             f"</td><td>{e(b['staff_name'] or '')}</td>"
                             f"<td>{e(b['ticket'] or '')}</td>"
                             f"<td>{e(b['reason_text'] or '未选择')}</td></tr>")
            parts.append("</table>")
        parts.append("</section>")
    if not data["windows"]:
        parts.append("<p>No device has synced yet.</p>")
    parts.append("</body></html>")
    return "".join(parts)


class ServerThread:
    """A collector serving on 127.0.0.1 in a background thread."""

    def __init__(self, collector: Collector, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.collector = collector
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only then
        # (else Nagle and delayed ACKs add 40 ms to every answer)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(create_app(collector), log_level="warning", access_log=False,
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="pingjia-collector", daemon=True)
        self.thread.start()
        for _ in range(500):  # bounded: until it listens (normally a few ms)
            if self.server.started or not self.thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not self.server.started:
            raise RuntimeError("the collector did not start")

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def sync_url(self) -> str:
        return self.url + SYNC_PATH

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(collector: Collector, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(collector), host=host, port=port, log_level="info",
                access_log=False)
