"""What one client, or a crowd of them, may hold of the collector, so that idle, slow or
garbage connections leave the sync endpoint and the dashboard answering.

- Connections (uvicorn's HTTP protocol, extended here): at most `max_connections` in all,
  kept below the open-file limit so accept() never fails (at that limit asyncio logs
  every failed accept and the server refuses everything); at most
  `per_client_connections` from one address, and once the server is half full an
  address that already holds `fair_share` gets no more (a device holds one: it still
  gets in while a flood from a few addresses is turned away).
- Time: a request's head must be in within `head_s` of the connection (or of the last
  answer on a kept-alive one), however slowly it drips; the whole request, answer
  included, within `request_s`; an idle kept-alive connection closes after
  `keep_alive_s` (uvicorn's). The head is at most `head_bytes` (h11's cap).
- Requests (an ASGI middleware, Guard): at most `per_client_in_flight` at once from one
  address (503 and Retry-After beyond); a body larger than its route's cap is 413 before
  it is read; a body not in within `body_s` is 408. (The work behind requests is bounded
  by Starlette's thread pool and the database's one writer.)
- Logging: one line per kind of complaint per `log_every_s`, then a count of those left
  out, so garbage cannot fill the disk.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_BODY = 64 * 1024  # routes without a cap of their own (the login form, admin JSON)
RESERVED_FILES = 128  # kept free below the open-file limit: database, log, threads
CONNECTIONS_MAX = 4096


@dataclass
class Limits:
    max_connections: int = 1024
    per_client_connections: int = 32
    fair_share: int = 4
    head_s: float = 10.0
    body_s: float = 15.0
    request_s: float = 120.0
    keep_alive_s: float = 5.0
    head_bytes: int = 16 * 1024
    per_client_in_flight: int = 8
    log_every_s: float = 60.0
    # the HTTP proxies in front (`pingjia serve --proxy ADDR`): their X-Forwarded-For is
    # believed, so the per-address caps and the invitations see the device's address;
    # a proxy's own connections count in all but not against one address's caps (it
    # carries a whole hall's). Without one, X-Forwarded-For is no one's word.
    proxies: tuple[str, ...] = ()


class Counts:
    """Connections and requests now, by client address (the server's loop thread
    writes them; tests and the bench read them)."""

    def __init__(self) -> None:
        self.connections: dict[str, int] = defaultdict(int)
        self.requests: dict[str, int] = defaultdict(int)
        self.total = 0
        self.in_flight = 0
        self.refused = 0  # connections closed at once (over a cap)
        self.timed_out = 0  # connections closed for a head or request too slow
        self.busy = 0  # requests answered 503 (too many at once)

    def take(self, table: dict[str, int], host: str) -> None:
        table[host] += 1

    def drop(self, table: dict[str, int], host: str) -> None:
        table[host] -= 1
        if table[host] <= 0:
            del table[host]


def _host(client: Any) -> str:
    return client[0] if client else "-"


def protocol_class(limits: Limits, counts: Counts) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the connection caps and deadlines above."""

    class GuardedH11(H11Protocol):
        _timer: asyncio.TimerHandle | None = None
        _counted = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            host = _host(self.client)
            have = counts.connections.get(host, 0)
            if (counts.total >= limits.max_connections
                    or host not in limits.proxies and (
                        have >= limits.per_client_connections
                        or (counts.total * 2 >= limits.max_connections
                            and have >= limits.fair_share))):
                counts.refused += 1
                transport.abort()  # no answer: a flood gets nothing to read
                return
            self._counted = True
            counts.total += 1
            counts.take(counts.connections, host)
            self._arm(limits.head_s)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._counted:
                self._counted = False
                counts.total -= 1
                counts.drop(counts.connections, _host(self.client))
            super().connection_lost(exc)

        def handle_events(self) -> None:
            waiting = self.conn.their_state is h11.IDLE
            super().handle_events()
            if waiting and self.conn.their_state is not h11.IDLE:
                self._arm(limits.request_s)  # the head is in: now the whole request

        def on_response_complete(self) -> None:
            self._arm(limits.head_s)  # the next request's head, on a kept-alive connection
            super().on_response_complete()

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _too_slow(self) -> None:
            self._timer = None
            if not self.transport.is_closing():
                counts.timed_out += 1
                self.transport.abort()

    return GuardedH11


def uvicorn_options(limits: Limits | None, counts: Counts | None = None) -> dict[str, Any]:
    """uvicorn.Config keywords for these limits."""
    limits = limits or Limits()
    counts = counts or getattr(limits, "counts", None) or Counts()
    limits.counts = counts  # type: ignore[attr-defined]  # where tests and the bench read them
    return {"http": protocol_class(limits, counts), "timeout_keep_alive": limits.keep_alive_s,
            "proxy_headers": bool(limits.proxies),
            "forwarded_allow_ips": list(limits.proxies) or None,
            "h11_max_incomplete_event_size": limits.head_bytes,
            # asyncio accepts up to `backlog` sockets in one turn before any of them is
            # counted (and refused): half the cap, which raise_open_files leaves room for
            "backlog": max(16, min(2048, limits.max_connections // 2))}


class _BodyTooSlow(Exception):
    pass


class _BodyTooLarge(Exception):
    pass


async def _plain(send: Any, status: int, text: str, headers: dict[str, str]) -> None:
    body = text.encode()
    raw = [(b"content-type", b"text/plain; charset=utf-8"),
           (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: requests in flight per address, body caps by path, the body's
    deadline."""

    def __init__(self, app: Any, limits: Limits, body_caps: dict[str, int] | None = None):
        self.app = app
        self.limits = limits
        self.counts: Counts = getattr(limits, "counts", None) or Counts()
        limits.counts = self.counts  # type: ignore[attr-defined]
        self.body_caps = body_caps or {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lim, counts = self.limits, self.counts
        host = _host(scope.get("client"))
        # per address only: a request waiting for its body costs a coroutine, and the
        # work behind a complete one is bounded by the thread pool and the write lock, so
        # a cap in all would let slow bodies starve the devices' syncs
        if host not in lim.proxies and counts.requests.get(host, 0) >= lim.per_client_in_flight:
            counts.busy += 1
            await _plain(send, 503, "busy: too many requests at once (from this address or "
                         "in all); try again in a second", {"Retry-After": "1"})
            return
        head = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b"")) + sum(
            len(k) + len(v) for k, v in scope["headers"])
        if head > lim.head_bytes:  # h11 caps a head that trickles in; this one came whole
            await _plain(send, 431, f"refused: a request head of at most {lim.head_bytes} "
                         "bytes", {})
            return
        cap = self.body_caps.get(scope["path"], DEFAULT_BODY)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > cap):
            await _plain(send, 413, f"refused: oversized: a body of at most {cap} bytes here",
                         {})
            return
        counts.in_flight += 1
        counts.take(counts.requests, host)
        deadline = asyncio.get_running_loop().time() + lim.body_s
        got = 0
        started = False

        body_done = False

        async def receive_in_time() -> dict:
            nonlocal got, body_done
            if body_done:  # after the body only the disconnect comes (a live stream waits
                return await receive()  # for it all its life): no body deadline then
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.001))
            except asyncio.TimeoutError:
                raise _BodyTooSlow from None
            if message["type"] == "http.request":
                got += len(message.get("body", b""))
                if got > cap:
                    raise _BodyTooLarge
                body_done = not message.get("more_body", False)
            return message

        async def send_marked(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive_in_time, send_marked)
        except _BodyTooSlow:
            if started:
                raise
            await _plain(send, 408, f"refused: the request body took longer than "
                         f"{lim.body_s:g} s", {})
        except _BodyTooLarge:
            if started:
                raise
            await _plain(send, 413, f"refused: oversized: a body of at most {cap} bytes here",
                         {})
        finally:
            counts.in_flight -= 1
            counts.drop(counts.requests, host)


class RateLimited(logging.Filter):
    """At most one record per (logger, message) every `every_s` seconds; the next one
    let through says how many were left out in between."""

    def __init__(self, every_s: float = 60.0, clock: Any = time.monotonic, keep: int = 256):
        super().__init__()
        self.every_s = every_s
        self.clock = clock
        self.keep = keep
        self._last: dict[tuple[str, Any], list[float | int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg if isinstance(record.msg, str) else type(record.msg))
        now = self.clock()
        with self._lock:
            seen = self._last.get(key)
            if seen is not None and now - seen[0] < self.every_s:
                seen[1] += 1
                return False
            left_out = int(seen[1]) if seen else 0
            if len(self._last) >= self.keep and seen is None:
                self._last.pop(next(iter(self._last)))
            self._last[key] = [now, 0]
        if left_out:
            record.msg = f"{record.getMessage()} ({left_out} more like it not logged)"
            record.args = ()
        return True


LOGGERS = ("uvicorn.error", "uvicorn.access", "asyncio", "pingjia")


def quiet_logs(every_s: float = 60.0) -> None:
    """Rate-limit what the server's loggers write (idempotent)."""
    for name in LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, RateLimited) for f in log.filters):
            log.addFilter(RateLimited(every_s))


def raise_open_files(want: int = CONNECTIONS_MAX + RESERVED_FILES) -> int:
    """Raise this process's open-file limit toward `want` (as far as the hard limit
    allows); returns how many connections fit below it with RESERVED_FILES to spare and
    room for one turn of accepts (uvicorn_options' backlog, half of them) on top."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        soft = want
    return max(8, min(CONNECTIONS_MAX, (soft - RESERVED_FILES) * 2 // 3))
