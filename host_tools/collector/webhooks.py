"""Webhooks: every alert of a hall POSTed to each of the hall's URLs, signed, retried.

An alert's deliveries are rows of `outbox`, written in the transaction that raises it
(alerts.raise_alerts), so none is lost to a crash. `Deliverer` (a thread of `pingjia
serve`) claims due rows for a lease, so two serve processes never send the same row at
once, POSTs them, and records the outcome: done, or another try after an exponential
backoff with jitter, until MAX_ATTEMPTS or a day has passed (then failed, shown by
`pingjia webhook list`). The body names a delivery id that stays the same across tries:
a receiver that keeps the ids it has taken sees every alert once, even when the
collector died between the receiver's answer and recording it.

Signature: HMAC-SHA256 with the webhook's secret over `<timestamp>.<body>`, in
X-Pingjia-Signature as `sha256=<hex>`; the Unix timestamp in X-Pingjia-Timestamp
(`verify` is what a receiver does)."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import os
import random
import socket
import ssl
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from firmware.clock import EPOCH_UNIX, iso
from host_tools.collector import alerts
from host_tools.collector.db import StorageUnavailable
from host_tools.collector.store import Collector, CollectorError
from host_tools.collector.worker import Worker

log = logging.getLogger("pingjia.webhooks")

URL_MAX = 2000
TIMEOUT_S = 10.0  # one POST: connect, send, answer
BASE_S = 10  # the first retry's delay; each next one doubles, up to CAP_S
CAP_S = 3600
MAX_ATTEMPTS = 12
GIVE_UP_S = 86400  # a delivery older than this is marked failed at its next failure
BATCH = 32  # rows claimed at a time
SENDERS = 4  # POSTs at once: one dead URL does not hold back the others
POLL_S = 2.0  # another process's new alerts are found this often
SIGNATURE = "X-Pingjia-Signature"
TIMESTAMP = "X-Pingjia-Timestamp"
DELIVERY = "X-Pingjia-Delivery"
TOLERANCE_S = 300
RECORD_TRIES = 20  # a busy database, for about 10 s in all  # what `verify` takes as a fresh timestamp


# ---- URLs, and where they may point --------------------------------------------------------
def _refused_address(addr: str) -> str | None:
    """Why the collector will not POST to this address (None: it may). Loopback and the
    LAN are allowed (a hall's receivers live there); link-local (cloud metadata at
    169.254.169.254), multicast, unspecified and reserved addresses are not."""
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if ip.is_link_local:
        return "a link-local address (such as a cloud's metadata service)"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "not an address of a host"
    return None


def check_url(url: str) -> str:
    """An http or https URL to a host, no credentials in it; CollectorError otherwise."""
    if not isinstance(url, str) or not url or len(url) > URL_MAX or not url.isprintable() \
            or " " in url:
        raise CollectorError(f"webhook URL: 1 to {URL_MAX} printable characters, no spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise CollectorError(f"webhook URL {url!r}: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise CollectorError(f"webhook URL {url!r}: only http:// and https:// are sent to "
                             "(no file:, ftp:, gopher: or other schemes)")
    if not parts.hostname:
        raise CollectorError(f"webhook URL {url!r}: no host")
    if parts.username is not None or parts.password is not None:
        raise CollectorError(f"webhook URL {url!r}: no user or password in the URL (it "
                             "would be stored and shown; the signature proves the sender)")
    if port == 0:
        raise CollectorError(f"webhook URL {url!r}: port 0")
    try:
        why = _refused_address(parts.hostname)
    except ValueError:
        why = None  # a name: checked at every delivery, as it resolves then
    if why:
        raise CollectorError(f"webhook URL {url!r}: {why}")
    return url


# ---- signing -------------------------------------------------------------------------------
def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, headers: dict[str, str], body: bytes, now_unix: float,
           tolerance_s: int = TOLERANCE_S) -> bool:
    """What a receiver checks: the signature over the timestamp and the body, and a
    timestamp within tolerance_s of its own clock (an old capture replayed is refused;
    the delivery id de-duplicates the rest). headers: names in lower case."""
    ts = headers.get(TIMESTAMP.lower(), "")
    if not ts.isdigit() or abs(now_unix - int(ts)) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, int(ts), body),
                               headers.get(SIGNATURE.lower(), ""))


# ---- webhooks, by an admin -----------------------------------------------------------------
def add(c: Collector, hall: str, url: str) -> dict[str, Any]:
    """A webhook for a hall's alerts from now on; its secret is in the answer, once."""
    url = check_url(url)
    alerts.check_hall(c, hall)
    secret = "whsec_" + os.urandom(24).hex()
    with c.db.transaction():
        hook = alerts._next_id(c, "webhook_seq")
        c.db.execute("INSERT INTO webhooks (id, hall, url, secret, created) "
                     "VALUES (?, ?, ?, ?, ?)", (hook, hall, url, secret, c.now()))
    return {"id": hook, "hall": hall, "url": url, "secret": secret}


def remove(c: Collector, hook: int) -> dict[str, Any]:
    """No more deliveries to it (those not sent yet are cancelled; the history stays)."""
    with c.db.transaction():
        if not c.db.one("SELECT 1 FROM webhooks WHERE id = ? AND removed IS NULL", (hook,)):
            raise alerts.NotFound(f"no webhook {hook} (pingjia webhook list)")
        c.db.execute("UPDATE webhooks SET removed = ? WHERE id = ?", (c.now(), hook))
        c.db.execute("UPDATE outbox SET state = 'cancelled', claimed_until = NULL "
                     "WHERE hook = ? AND state = 'pending'", (hook,))
    return {"id": hook, "removed": True}


def listing(c: Collector, hall: str | None = None) -> list[dict[str, Any]]:
    """Active webhooks with their deliveries by state and the latest failure."""
    if hall is not None:
        alerts.check_hall(c, hall)
    sql, params = "SELECT id, hall, url, created FROM webhooks WHERE removed IS NULL", []
    if hall is not None:
        sql += " AND hall = ?"
        params.append(hall)
    out = []
    for hook, h, url, created in c.db.all(sql + " ORDER BY id", params):
        tz = alerts.hall_tz(c, h)
        counts = dict.fromkeys(("pending", "done", "failed", "cancelled"), 0)
        counts.update({s: n for s, n in c.db.all(
            "SELECT state, COUNT(*) FROM outbox WHERE hook = ? GROUP BY state", (hook,))})
        last = c.db.one("SELECT last_error, last_try, next_at, state FROM outbox WHERE hook = ? "
                        "AND last_error IS NOT NULL AND state IN ('pending', 'failed') "
                        "ORDER BY last_try DESC LIMIT 1", (hook,))
        out.append({"id": hook, "hall": h, "url": url, "created": iso(created, tz),
                    "delivered": counts["done"], "pending": counts["pending"],
                    "failed": counts["failed"],
                    "last_error": last[0] if last else None,
                    "last_try": iso(last[1], tz) if last and last[1] is not None else None,
                    "next_try": iso(last[2], tz) if last and last[3] == "pending" else None})
    return out


def enqueue(c: Collector, raised: list[tuple[int, str]], now: int) -> None:
    """Inside the alerts' transaction: a delivery for every webhook of each alert's hall.
    raised: (alert id, hall)."""
    halls = sorted({h for _a, h in raised})
    hooks: dict[str, list[int]] = {}
    for hook, hall in c.db.all("SELECT id, hall FROM webhooks WHERE removed IS NULL AND hall "
                               f"IN ({', '.join('?' for _ in halls)})", halls):
        hooks.setdefault(hall, []).append(hook)
    c.db.executemany("INSERT INTO outbox (alert, hook, state, next_at, created) "
                     "VALUES (?, ?, 'pending', ?, ?)",
                     [(a, hook, now, now) for a, h in raised for hook in hooks.get(h, ())])


# ---- sending -------------------------------------------------------------------------------
@dataclass
class Outcome:
    ok: bool
    detail: str  # the status, or what went wrong, for `webhook list`


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Outcome:
    """One POST, no redirects followed (a 3xx is a failure: it could point anywhere),
    every address the name resolves to checked first."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            why = _refused_address(str(info[4][0]))
            if why:
                return Outcome(False, f"refused: {host} resolves to {why}")
    except OSError as e:
        return Outcome(False, f"cannot resolve {host}: {e}")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=timeout,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", path, body, headers)
        r = conn.getresponse()
        r.read(4096)
        return Outcome(200 <= r.status < 300, f"HTTP {r.status}")
    except TimeoutError:
        return Outcome(False, f"no answer within {timeout:g} s")
    except (OSError, http.client.HTTPException) as e:
        return Outcome(False, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
    finally:
        conn.close()


def backoff(attempts: int, rand: Callable[[], float]) -> int:
    """Seconds before the next try after `attempts` failed ones: doubling from BASE_S up
    to CAP_S, times a jitter of 0.5-1 (so receivers coming back are not hit by every
    collector at the same second)."""
    delay = min(BASE_S * 2 ** (attempts - 1), CAP_S)
    return max(1, int(delay * (0.5 + rand() / 2)))


@dataclass
class Claimed:
    alert: int
    hook: int
    url: str
    secret: str
    attempts: int
    created: int
    body: bytes


class Deliverer(Worker):
    """Delivers due outbox rows. run_once() is one round (tests call it, moving the
    collector's clock); start() runs rounds on a thread, woken by poke() or every
    poll_s. send and rand are the seams: the real POST and random jitter by default."""

    name = "pingjia-webhooks"

    def __init__(self, c: Collector, timeout: float = TIMEOUT_S,
                 send: Callable[..., Outcome] = post, rand: Callable[[], float] = random.random,
                 poll_s: float = POLL_S):
        self.c = c
        self.timeout = timeout
        self.send = send
        self.rand = rand
        self.poll_s = poll_s
        self.me = uuid.uuid4().hex[:12]
        self.lease_s = int(timeout) + 30
        super().__init__()

    def claim(self, now: int) -> list[Claimed]:
        """Due rows, each taken for lease_s by this worker alone."""
        db = self.c.db
        due = db.all("SELECT alert, hook FROM outbox WHERE state = 'pending' AND next_at <= ? "
                     "AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY next_at, "
                     "alert, hook LIMIT ?", (now, now, BATCH))
        if not due:
            return []
        mine = []
        with db.transaction():
            for alert, hook in due:
                if db.execute("UPDATE outbox SET claimed_until = ?, claimed_by = ? WHERE "
                              "alert = ? AND hook = ? AND state = 'pending' AND (claimed_until "
                              "IS NULL OR claimed_until < ?)",
                              (now + self.lease_s, self.me, alert, hook, now)) == 1:
                    mine.append((alert, hook))
        return [d for d in map(self._load, mine) if d]

    def _load(self, key: tuple[int, int]) -> Claimed | None:
        alert, hook = key
        row = self.c.db.one("SELECT w.url, w.secret, o.attempts, o.created FROM outbox o "
                            "JOIN webhooks w ON w.id = o.hook WHERE o.alert = ? AND o.hook = ? "
                            "AND w.removed IS NULL",
                            (alert, hook))
        shown = self.c.db.one(f"SELECT {alerts._COLS} FROM alerts WHERE id = ?", (alert,))
        if row is None or shown is None:
            return None
        payload = {"id": f"{alert}-{hook}", "alert": alerts._shown(self.c, shown, {})}
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return Claimed(alert, hook, row[0], row[1], row[2], row[3], body)

    def deliver(self, d: Claimed) -> Outcome:
        ts = self.c.now() + EPOCH_UNIX
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "User-Agent": "pingjia-webhook/1", DELIVERY: f"{d.alert}-{d.hook}",
                   TIMESTAMP: str(ts), SIGNATURE: signature(d.secret, ts, d.body)}
        try:
            return self.send(d.url, d.body, headers, self.timeout)
        except Exception as e:  # a sender's bug must not lose the row: it is retried
            return Outcome(False, f"{type(e).__name__}: {e}")

    def record(self, d: Claimed, out: Outcome) -> None:
        now = self.c.now()
        tries = d.attempts + 1
        if out.ok:
            sql = ("UPDATE outbox SET state = 'done', done_at = ?, attempts = ?, last_try = ?, "
                   "last_error = NULL, claimed_until = NULL WHERE alert = ? AND hook = ? "
                   "AND claimed_by = ? AND state = 'pending'")
            params: tuple = (now, tries, now, d.alert, d.hook, self.me)
        else:
            gone = tries >= MAX_ATTEMPTS or now - d.created >= GIVE_UP_S
            sql = ("UPDATE outbox SET state = ?, attempts = ?, last_try = ?, last_error = ?, "
                   "next_at = ?, claimed_until = NULL WHERE alert = ? AND hook = ? "
                   "AND claimed_by = ? AND state = 'pending'")
            params = ("failed" if gone else "pending", tries, now, out.detail[:300],
                      now + backoff(tries, self.rand), d.alert, d.hook, self.me)
        self.c.db.execute(sql, params)

    def run_once(self) -> int:
        """One round: claim what is due, POST it (SENDERS at a time), record each
        outcome; how many were tried."""
        claimed = self.claim(self.c.now())
        if not claimed:
            return 0
        with ThreadPoolExecutor(min(SENDERS, len(claimed))) as pool:
            outcomes = list(pool.map(self.deliver, claimed))
        self._record_soon(list(zip(claimed, outcomes, strict=True)))
        return len(claimed)

    def _record_soon(self, done: list[tuple[Claimed, Outcome]]) -> None:
        """Every outcome of a round in one transaction (one commit, not one a row), tried
        again while the database is busy a moment (another process's write): an outcome
        not recorded is sent again once its lease runs out."""
        for n in range(RECORD_TRIES):
            try:
                with self.c.db.transaction():
                    for d, out in done:
                        self.record(d, out)
                return
            except StorageUnavailable as e:
                if n == RECORD_TRIES - 1:
                    log.warning("%d delivery outcomes not recorded (%s): sent again after "
                                "their lease", len(done), e)
                    return
                threading.Event().wait(0.05 * (n + 1))

    def stop(self, timeout: float = 30) -> None:  # a round may be waiting on a POST
        super().stop(timeout)

    def _run(self) -> None:
        while not self.stopping:
            busy = False
            try:
                busy = self.run_once() == BATCH
            except StorageUnavailable as e:  # the database is away: the next round tries
                log.warning("webhook deliveries put off: %s", e)
            except Exception:
                log.exception("webhook delivery round failed")
            if not busy:
                self.wake.wait(self.poll_s)
                self.wake.clear()


# ---- HTTP (server.py includes these routes) --------------------------------------------------
def routes(c: Collector) -> list[Any]:
    from starlette.routing import Route

    from host_tools.collector.access import require

    @require("admin")
    async def hooks_list(request: Any) -> Any:
        hall = request.query_params.get("hall") or None
        return await alerts.answer(lambda: {"webhooks": listing(c, hall)})

    @require("admin")
    async def hook_add(request: Any) -> Any:
        try:
            b = await alerts.json_body(request)
        except CollectorError as e:
            return alerts.json_error(str(e))
        if not isinstance(b.get("hall"), str) or not isinstance(b.get("url"), str):
            return alerts.json_error('give {"hall": H, "url": "https://..."}')
        return await alerts.answer(lambda: add(c, b["hall"], b["url"]))

    @require("admin")
    async def hook_remove(request: Any) -> Any:
        raw = request.path_params["id"]
        if not raw.isdigit():
            return alerts.json_error(f"webhook id {raw!r}: a whole number (pingjia webhook list)")
        return await alerts.answer(lambda: remove(c, int(raw)))

    return [
        Route("/api/v1/webhooks", hooks_list, methods=["GET"]),
        Route("/api/v1/webhooks", hook_add, methods=["POST"]),
        Route("/api/v1/webhooks/{id}/remove", hook_remove, methods=["POST"]),
    ]
