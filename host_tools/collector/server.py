"""`pingjia serve`: the sync endpoint, a JSON API and the dashboard, on Starlette
(ASGI) served by uvicorn. Database work runs in Starlette's thread pool so a
slow query never stalls the event loop; the database layer serialises writes.

Who may do what (access.py): the sync endpoint takes devices by their key; every other
route needs a user's role (viewer: reports, dashboard, exports; admin: also devices,
roster, settings), by token or by the login page's session cookie. Limits (limits.py)
bound what any client can hold: connections, time to send a request, body sizes,
requests in flight.

run_in_thread() starts the same server in-process on 127.0.0.1 (the virtual
device's `pingjia sim` and the tests use it)."""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import threading
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from firmware import frame
from firmware import invite as invite_format
from host_tools.collector import alerts, cases, dashboard, evaluation, export, reports, webhooks
from host_tools.collector import invite as invites
from host_tools.collector.access import SESSION_S, TokenOrSession, auth_error, require
from host_tools.collector.dashboard import TEMPLATES
from host_tools.collector.db import StorageUnavailable
from host_tools.collector.store import AnswerError, Collector, CollectorError
from host_tools.errors import PingjiaError

SYNC_PATH = "/api/v1/sync"
INVITE_PATH = "/api/v1/invite"
MAX_BODY = frame.frame_size(frame.ID_MAX, frame.MAX_RECORDS)
FORM_MAX = 4096  # the login form
ROSTER_MAX = 1 << 20  # a roster CSV posted by an admin
PAGE = 100  # rows a page of a list by default
PAGE_MAX = 1000
BAD_ON_DASHBOARD = 20  # 差评 per window on the dashboard; the rest through /api/v1/bad
# refusals: what a device or a tester sees (text/plain, one line)
_STATUS = {"unknown_device": 403, "revoked": 403, "bad_mac": 401, "oversized": 413,
           "replayed": 409, "stale": 409, "bad_field": 422, "seq_jump": 422}


REASONS = {
    "bad_magic": "not a pingjia sync frame",
    "bad_version": "frame version not spoken here",
    "bad_id": "malformed device id",
    "truncated": "the frame is shorter than its header says",
    "oversized": "the frame is longer than its header says or than any frame",
    "unknown_device": "no such device (pingjia device add ID --window W)",
    "revoked": "this device was revoked (pingjia device rekey ID lets it back in)",
    "bad_mac": "the signature does not match the device's key (forged, corrupted or a wrong key)",
    "bad_record": "a record fails its CRC or its seq is out of order",
    "replayed": "this exact request was taken before (a replay; a device sends a new nonce "
                "with every attempt)",
    "stale": "this request is older than the replay window and than the device's newest "
             "(a replay of a captured frame)",
    "bad_field": "a record holds a value no device writes (nothing of the frame was stored)",
    "seq_jump": "the record seqs jump further than a device's log can",
}


def explain(e: frame.FrameError) -> str:
    detail = str(e)[len(e.reason):].strip()
    return f"refused: {e.reason}: {REASONS.get(e.reason, e.reason)}" + (
        f" ({detail})" if detail else "")


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    n = request.headers.get("content-length")
    if n is not None and (not n.isdigit() or int(n) > limit):
        raise BodyTooLarge
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise BodyTooLarge
    return bytes(buf)


def _unavailable(e: StorageUnavailable) -> Response:
    return PlainTextResponse(f"unavailable: {e}", status_code=503,
                             headers={"Retry-After": str(e.retry_after)})


def _bad(e: Exception, status: int = 400) -> Response:
    return JSONResponse({"error": str(e)}, status_code=status)


def _page_args(request: Request) -> tuple[str, int]:
    q = request.query_params
    try:
        limit = int(q.get("limit", PAGE))
    except ValueError:
        raise ValueError(f"limit must be a whole number from 1 to {PAGE_MAX}") from None
    if not 1 <= limit <= PAGE_MAX:
        raise ValueError(f"limit must be a whole number from 1 to {PAGE_MAX}")
    return q.get("after", ""), limit


def _filter(request: Request) -> reports.Filter:
    q = request.query_params
    return reports.Filter(day=q.get("day") or None, since=q.get("from") or None,
                          until=q.get("to") or None, hall=q.get("hall") or None,
                          window=q.get("window") or None, staff=q.get("staff") or None)


def _place(request: Request, db: Any) -> tuple[str | None, str | None]:
    """(hall, window) of a list of devices or flags (which have no dates or staff);
    ValueError for a hall or window the collector does not know."""
    q = request.query_params
    flt = reports.Filter(hall=q.get("hall") or None, window=q.get("window") or None)
    flt.check(db)
    return flt.hall, flt.window


async def _call(fn: Any, *args: Any) -> Any:
    return await run_in_threadpool(fn, *args)


def create_app(collector: Collector, limits: Any = None) -> Starlette:
    """The collector's ASGI app. limits: a limits.Limits (None: the defaults)."""
    from host_tools.collector.limits import Guard, Limits

    c = collector
    limits = limits or Limits()

    async def sync(request: Request) -> Response:
        try:
            body = await read_body(request, MAX_BODY)
        except BodyTooLarge:
            return PlainTextResponse(f"refused: oversized: more than {MAX_BODY} bytes",
                                     status_code=413)
        except ClientDisconnect:  # the network cut the frame: nothing to store
            return PlainTextResponse("refused: truncated: the connection closed", 400)
        try:
            answer = await _call(c.ingest_network, body)
        except frame.FrameError as e:
            if e.reason in alerts.REFUSED_REASONS and getattr(e, "device", None):
                try:
                    await _call(alerts.refused, c, e.device, str(e))
                except StorageUnavailable:
                    pass  # the device sends the same frame again: the alert comes then
            return PlainTextResponse(explain(e), status_code=_STATUS.get(e.reason, 400))
        except StorageUnavailable as e:
            return _unavailable(e)
        except AnswerError as e:  # ours to fix (a roster past the checks): say so
            return PlainTextResponse(f"unavailable: {e}", status_code=500)
        # a device that signed this frame: where the queue system's invitations reach it
        try:
            await _call(invites.note_address, c, body,
                        request.client.host if request.client else None,
                        request.headers.get(invite_format.PORT_HEADER))
        except StorageUnavailable:
            pass  # the frame is stored; the address comes with the next sync
        alerts.after_sync(request.app)  # its alerts are raised off the answer's path
        return Response(answer, media_type="application/octet-stream")

    # ---- queue: the queue system's invitation (host_tools/collector/invite.py) ----
    @require("queue")
    async def invitation(request: Request) -> Response:
        try:
            ask = json.loads(await read_body(request, 4096) or b"{}")
            if not isinstance(ask, dict):
                raise ValueError
        except (ValueError, BodyTooLarge, ClientDisconnect):
            return JSONResponse({"ok": False, "error": 'want JSON {"window": ..., '
                                 '"ticket": ...}'}, status_code=400)
        try:
            done = await _call(invites.send, c, ask.get("window"), ask.get("ticket"))
        except invites.InviteError as e:
            return JSONResponse({"ok": False, "error": str(e)}, status_code=e.status)
        except StorageUnavailable as e:
            return _unavailable(e)
        return JSONResponse(done)

    async def guarded_json(fn: Any, *args: Any) -> Response:
        try:
            return JSONResponse(await _call(fn, *args))
        except StorageUnavailable as e:
            return _unavailable(e)
        except (ValueError, PingjiaError) as e:
            return _bad(e)

    # ---- viewer: reports, lists, dashboard, exports -----------------------
    @require("viewer")
    async def report(request: Request) -> Response:
        by = request.query_params.get("by", "window")
        flt = _filter(request)

        def run() -> dict[str, Any]:
            rows = reports.summary(c.db, c.hall_tz_min(), flt.day, by, c.now(), flt)
            cases.discount_malicious(c.db, rows, by, c.hall_tz_min(), flt)  # appeal upheld
            for r in rows:  # the full 差评 list pages through /api/v1/bad
                r["bad_total"] = r["bad_count"]
                r["bad"] = r["bad"][-BAD_ON_DASHBOARD:]
            return {"day": flt.day, "by": by, "rows": rows}

        return await guarded_json(run)

    @require("viewer")
    async def ratings(request: Request) -> Response:
        def run() -> dict[str, Any]:
            after, limit = _page_args(request)
            return reports.ratings_page(c.db, c.hall_tz_min(), _filter(request), after, limit)

        return await guarded_json(run)

    @require("viewer")
    async def bad(request: Request) -> Response:
        def run() -> dict[str, Any]:
            after, limit = _page_args(request)
            return reports.ratings_page(c.db, c.hall_tz_min(), _filter(request), after, limit,
                                        level=4)

        return await guarded_json(run)

    @require("viewer")
    async def devices(request: Request) -> Response:
        def run() -> dict[str, Any]:
            after, limit = _page_args(request)
            rows = c.devices(after, limit, *_place(request, c.db))
            return {"rows": rows, "next": rows[-1]["id"] if len(rows) == limit else None}

        return await guarded_json(run)

    @require("viewer")
    async def flags(request: Request) -> Response:
        def run() -> dict[str, Any]:
            after, limit = _page_args(request)
            rows = c.flags(after, limit, *_place(request, c.db))
            last = rows[-1] if len(rows) == limit else None
            # the cursor walks the stored seqs (log << 32 | seq)
            nxt = (f"{last['received']}|{last['device']}|{last['log'] << 32 | last['seq']}"
                   if last else None)
            return {"rows": rows, "next": nxt}

        return await guarded_json(run)

    @require("viewer")
    async def export_route(request: Request) -> Response:
        fmt = request.query_params.get("format", "csv")
        if fmt not in export.FORMATS:
            return _bad(ValueError(f"format must be one of {', '.join(export.FORMATS)}"))
        flt = _filter(request)
        try:
            data = await _call(export.render, fmt, c, flt)
        except StorageUnavailable as e:
            return _unavailable(e)
        except (ValueError, PingjiaError) as e:
            return _bad(e)
        name = f"pingjia-{flt.day or 'all'}.{export.SUFFIX.get(fmt, fmt)}"
        return Response(data, media_type=export.MEDIA[fmt],
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    # ---- admin: devices, roster, settings -----------------------------------
    async def _json_body(request: Request) -> dict[str, Any]:
        try:
            obj = json.loads(await read_body(request, FORM_MAX))
        except (ValueError, UnicodeDecodeError):
            raise CollectorError("the body must be a JSON object") from None
        if not isinstance(obj, dict):
            raise CollectorError("the body must be a JSON object")
        return obj

    def _text(b: dict[str, Any], name: str) -> str | None:
        """A field that names something: text or absent (str() would make 5, null or [1]
        a device "5", "None" or "[1]")."""
        v = b.get(name)
        if v is not None and not isinstance(v, str):
            raise CollectorError(f"{name} must be text (a JSON string), not {json.dumps(v)}")
        return v

    async def admin_call(request: Request, fn: Any) -> Response:
        try:
            return JSONResponse(await _call(fn, await _json_body(request)))
        except BodyTooLarge:
            return _bad(ValueError("the body is too large"), 413)
        except StorageUnavailable as e:
            return _unavailable(e)
        except (ValueError, PingjiaError) as e:
            return _bad(e)

    @require("admin")
    async def device_add(request: Request) -> Response:
        def run(b: dict[str, Any]) -> dict[str, Any]:
            dev = _text(b, "id") or ""
            key = c.add_device(dev, _text(b, "window") or "", hall=_text(b, "hall"))
            return {"id": dev, "key": key}

        return await admin_call(request, run)

    @require("admin")
    async def device_rekey(request: Request) -> Response:
        dev = request.path_params["id"]
        return await admin_call(request, lambda b: {"id": dev, "key": c.rekey(dev)})

    @require("admin")
    async def device_revoke(request: Request) -> Response:
        dev = request.path_params["id"]

        def run(b: dict[str, Any]) -> dict[str, Any]:
            c.revoke_device(dev)
            return {"id": dev, "revoked": True}

        return await admin_call(request, run)

    @require("admin")
    async def settings_set(request: Request) -> Response:
        def run(b: dict[str, Any]) -> dict[str, Any]:
            if "key" not in b or "value" not in b:
                raise CollectorError('give {"key": K, "value": V} (and "device" or "hall")')
            v = c.set_setting(_text(b, "key") or "", b["value"], _text(b, "device"),
                              _text(b, "hall"))
            return {"settings_version": v}

        return await admin_call(request, run)

    @require("admin")
    async def roster_import(request: Request) -> Response:
        try:
            data = await read_body(request, ROSTER_MAX)
            versions = await _call(c.import_roster_bytes, data, "roster")
        except BodyTooLarge:
            return _bad(ValueError(f"a roster CSV of at most {ROSTER_MAX} bytes"), 413)
        except StorageUnavailable as e:
            return _unavailable(e)
        except (ValueError, PingjiaError) as e:
            return _bad(ValueError(f"{e} (nothing stored)"))
        return JSONResponse({"roster_versions": versions})

    # ---- login ----------------------------------------------------------------
    async def login_page(request: Request) -> Response:
        nxt = request.query_params.get("next", "/")
        return TEMPLATES.TemplateResponse(request, "login.html",
                                          {"next": _safe_next(nxt), "error": None})

    async def login(request: Request) -> Response:
        try:
            form = parse_qs((await read_body(request, FORM_MAX)).decode("utf-8", "replace"))
        except BodyTooLarge:
            return PlainTextResponse("refused: the form is too large", 413)
        name = (form.get("name") or [""])[0]
        token = (form.get("token") or [""])[0]
        nxt = _safe_next((form.get("next") or ["/"])[0])
        addr = request.client.host if request.client else "-"
        throttle = backend.throttle
        user = None
        if not throttle.blocked(addr):
            try:
                user = await _call(c.users.check, token)
            except StorageUnavailable as e:
                return _unavailable(e)
        if user is None or user.name != name or "viewer" not in user.scopes:
            throttle.failed(addr)
            msg = ("用户名或令牌不对 (wrong name or token)" if not throttle.blocked(addr)
                   else "尝试次数过多，请一分钟后再试 (too many tries: wait a minute)")
            return TEMPLATES.TemplateResponse(request, "login.html",
                                              {"next": nxt, "error": msg}, status_code=401)
        request.session.clear()
        request.session.update({"user": user.name, "tid": user.token_id})
        return RedirectResponse(nxt, 303)

    async def logout(request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/login", 303)

    routes = [
        Route(SYNC_PATH, sync, methods=["POST"]),
        Route(INVITE_PATH, invitation, methods=["POST"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/v1/report", report),
        Route("/api/v1/ratings", ratings),
        Route("/api/v1/bad", bad),
        Route("/api/v1/devices", devices, methods=["GET"]),
        Route("/api/v1/flags", flags),
        Route("/api/v1/export", export_route),
        Route("/api/v1/devices", device_add, methods=["POST"]),
        Route("/api/v1/devices/{id}/rekey", device_rekey, methods=["POST"]),
        Route("/api/v1/devices/{id}/revoke", device_revoke, methods=["POST"]),
        Route("/api/v1/settings", settings_set, methods=["POST"]),
        Route("/api/v1/roster", roster_import, methods=["POST"]),
        *evaluation.routes(c),  # /api/v1/evaluation(.pdf): the periods ranked
        *cases.routes(c),  # 差评 cases: /api/v1/cases, /api/v1/cases/{case_id}
        *alerts.routes(c), *webhooks.routes(c),
        *dashboard.routes(c, limits),  # the office's live dashboard (dashboard.py)
    ]
    backend = TokenOrSession(c.users, open_paths=(SYNC_PATH,))
    middleware = [
        Middleware(Guard, limits=limits, body_caps={SYNC_PATH: MAX_BODY, "/api/v1/roster":
                                                    ROSTER_MAX}),
        Middleware(SessionMiddleware, secret_key=c.session_secret(), session_cookie="pingjia",
                   max_age=SESSION_S, same_site="strict"),
        Middleware(AuthenticationMiddleware, backend=backend, on_error=auth_error),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=alerts.lifespan(c))


def _safe_next(path: str) -> str:
    """Where to go after the login: a path of this server only (never another site)."""
    return path if path.startswith("/") and not path.startswith("//") else "/"


class ServerThread:
    """A collector serving on 127.0.0.1 in a background thread."""

    def __init__(self, collector: Collector, host: str = "127.0.0.1", port: int = 0,
                 limits: Any = None):
        import uvicorn

        from host_tools.collector.limits import Limits, quiet_logs, uvicorn_options

        self.collector = collector
        self.limits = limits = limits or Limits()
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only then
        # (else Nagle and delayed ACKs add 40 ms to every answer)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(create_app(collector, limits), log_level="warning",
                                access_log=False, lifespan="off", **uvicorn_options(limits))
        quiet_logs(limits.log_every_s)
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


def listen(host: str, port: int) -> socket.socket:
    """The collector's socket, bound before anything is served: a port in use or an
    address this machine does not have is one line (exit 2), not uvicorn's log and exit 3."""
    try:
        family, kind, proto, _name, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise PingjiaError(f"cannot listen on {host}: {e.strerror or e} (--host)") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind(addr)
    except OSError as e:
        sock.close()
        hint = ("another server there? --port picks another" if e.errno == errno.EADDRINUSE
                else "--host: an address of this machine, or 0.0.0.0 for all")
        raise PingjiaError(f"cannot listen on {host}:{port}: {e.strerror or e} ({hint})") \
            from None
    return sock


def serve(collector: Collector, host: str, port: int, proxies: tuple[str, ...] = (),
          sock: socket.socket | None = None) -> None:
    import uvicorn

    from host_tools.collector.limits import Limits, quiet_logs, raise_open_files, uvicorn_options

    sock = sock or listen(host, port)
    limits = Limits(max_connections=raise_open_files(), proxies=proxies)
    config = uvicorn.Config(create_app(collector, limits), host=host, port=port,
                            log_level="info", access_log=False, **uvicorn_options(limits))
    quiet_logs()
    uvicorn.Server(config).run(sockets=[sock])
