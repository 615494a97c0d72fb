"""Who may use the collector (design.md section 6): users with a role and one token each.

- viewer: reports, the dashboard, exports; admin: also devices, roster and settings;
  queue: the queue system (叫号系统), nothing else.
- A token is `pj_<id>_<secret>`: the id finds the user, the secret is checked against an
  argon2 hash (argon2-cffi); the token itself is printed once and never stored. The same
  token is the password of the dashboard's login page, which keeps the user in a signed
  session cookie (Starlette's SessionMiddleware: HttpOnly, SameSite=Strict, 8 hours).
- Every request checks the user's row again, so a revoked user is out at the next one.
- The device endpoint needs no user: a device proves itself by its key (the frame's MAC).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from host_tools.collector.db import Database
from host_tools.errors import PingjiaError

ROLES = ("viewer", "admin", "queue")
# what each role may do: the scopes Starlette's authentication carries
SCOPES = {"viewer": ("viewer",), "admin": ("viewer", "admin"), "queue": ("queue",)}
NAME_MAX = 32
SESSION_S = 8 * 3600  # a working day: then the login page again
FAILS_PER_MIN = 10  # wrong tokens from one address before it must wait
_CACHE = 1024  # tokens whose hash check passed, by their SHA-256 (never the token)

# argon2id at OWASP's lowest recommended cost (19 MiB, 2 passes): a token carries 192
# random bits, so the hash guards a leaked database, not a guessable password, and a
# check must stay cheap enough that wrong tokens cannot burn the server's CPU
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


class AccessError(PingjiaError, ValueError):
    pass


@dataclass(frozen=True)
class User:
    name: str
    role: str
    token_id: str

    @property
    def scopes(self) -> tuple[str, ...]:
        return SCOPES[self.role]


def check_name(name: str) -> str:
    if not 1 <= len(name) <= NAME_MAX or any(
            unicodedata.category(c)[0] in "CZ" for c in name):
        raise AccessError(f"user name {name!r}: 1 to {NAME_MAX} characters, no spaces or "
                          "control characters")
    return name


def split_token(token: str) -> tuple[str, str] | None:
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != "pj" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


class Users:
    """The users table. now() gives the collector's clock (seconds since 2000)."""

    def __init__(self, db: Database, now: Callable[[], int]):
        self.db = db
        self.now = now
        self._ok: OrderedDict[bytes, str] = OrderedDict()  # sha256(token) -> token_id
        self._lock = threading.Lock()

    def add(self, name: str, role: str) -> str:
        """A new user; returns the token (shown once: only its hash is kept)."""
        check_name(name)
        if role not in ROLES:
            raise AccessError(f"role {role!r}: one of {', '.join(ROLES)}")
        for _ in range(8):  # a token id already taken (1 in 4 billion): draw again
            token_id = secrets.token_hex(4)
            if not self.db.one("SELECT 1 FROM users WHERE token_id = ?", (token_id,)):
                break
        token = f"pj_{token_id}_{secrets.token_urlsafe(24)}"
        with self.db.transaction():
            row = self.db.one("SELECT revoked FROM users WHERE name = ?", (name,))
            if row is not None and row[0] is None:
                raise AccessError(f"user {name} exists (pingjia user revoke {name} first)")
            self.db.execute("DELETE FROM users WHERE name = ?", (name,))
            self.db.execute("INSERT INTO users (name, role, token_id, token_hash, created) "
                            "VALUES (?, ?, ?, ?, ?)",
                            (name, role, token_id, _hasher.hash(token), self.now()))
        return token

    def list(self) -> list[dict[str, Any]]:
        rows = self.db.all("SELECT name, role, created, revoked FROM users ORDER BY name")
        return [dict(zip(("name", "role", "created", "revoked"), r, strict=True))
                for r in rows]

    def revoke(self, name: str) -> None:
        n = self.db.execute("UPDATE users SET revoked = ? WHERE name = ? AND revoked IS NULL",
                            (self.now(), name))
        if not n:
            raise AccessError(f"no user {name} (or revoked already): pingjia user list")

    def has_admin(self) -> bool:
        return bool(self.db.one(
            "SELECT 1 FROM users WHERE role = 'admin' AND revoked IS NULL"))

    def current(self, name: str, token_id: str) -> User | None:
        """The user of a session, if still active with the same token."""
        row = self.db.one("SELECT role FROM users WHERE name = ? AND token_id = ? "
                          "AND revoked IS NULL", (name, token_id))
        return User(name, row[0], token_id) if row else None

    def check(self, token: str) -> User | None:
        """The active user of a token, or None."""
        parts = split_token(token)
        if parts is None:
            return None
        token_id = parts[0]
        row = self.db.one("SELECT name, role, token_hash FROM users WHERE token_id = ? "
                          "AND revoked IS NULL", (token_id,))
        if row is None:
            return None
        name, role, token_hash = row
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            known = self._ok.get(digest) == token_id
        if not known:
            try:
                _hasher.verify(token_hash, token)
            except (VerificationError, InvalidHashError):
                return None
            with self._lock:
                self._ok[digest] = token_id
                while len(self._ok) > _CACHE:
                    self._ok.popitem(last=False)
        return User(name, role, token_id)


class Throttle:
    """Wrong tokens per client address in the last minute: past FAILS_PER_MIN the
    address gets 429 without a hash check (a guesser gains nothing, the CPU stays free).
    Bounded: the table forgets the oldest addresses."""

    def __init__(self, per_min: int = FAILS_PER_MIN, clock: Callable[[], float] = time.monotonic,
                 keep: int = 4096):
        self.per_min = per_min
        self.clock = clock
        self.keep = keep
        self._fails: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, addr: str) -> list[float]:
        now = self.clock()
        fails = [t for t in self._fails.get(addr, ()) if now - t < 60]
        if fails:
            self._fails[addr] = fails
        else:
            self._fails.pop(addr, None)
        return fails

    def blocked(self, addr: str) -> bool:
        with self._lock:
            return len(self._recent(addr)) >= self.per_min

    def failed(self, addr: str) -> None:
        with self._lock:
            self._fails[addr] = [*self._recent(addr), self.clock()]
            self._fails.move_to_end(addr)
            while len(self._fails) > self.keep:
                self._fails.popitem(last=False)


# ---- on the server: Starlette's authentication, fed by tokens and sessions --------------
def _client(conn: Any) -> str:
    return conn.client.host if conn.client else "-"


class TokenOrSession:
    """Starlette AuthenticationBackend: `Authorization: Bearer TOKEN`, or the session
    cookie of the login page. Requests to the paths in `open_paths` (the device endpoint)
    are not looked at."""

    def __init__(self, users: Users, open_paths: tuple[str, ...] = (),
                 throttle: Throttle | None = None):
        self.users = users
        self.open_paths = open_paths
        self.throttle = throttle or Throttle()

    async def authenticate(self, conn: Any) -> Any:
        from starlette.authentication import AuthCredentials, AuthenticationError, SimpleUser
        from starlette.concurrency import run_in_threadpool

        if conn.url.path in self.open_paths:
            return None
        header = conn.headers.get("authorization")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthenticationError("use the header Authorization: Bearer TOKEN "
                                          "(pingjia user add NAME --role viewer prints one)")
            addr = _client(conn)
            if self.throttle.blocked(addr):
                raise AuthenticationError("too many wrong tokens from this address: "
                                          "wait a minute")
            user = await run_in_threadpool(self.users.check, token)
            if user is None:
                self.throttle.failed(addr)
                raise AuthenticationError("this token is not valid: mistyped, or its user "
                                          "was revoked (pingjia user list)")
        else:
            session = conn.scope.get("session") or {}
            if not session.get("user"):
                return None
            user = await run_in_threadpool(self.users.current, session.get("user"),
                                           session.get("tid", ""))
            if user is None:  # revoked, or a new token since: log in again
                session.clear()
                return None
        conn.scope["pingjia_user"] = user
        return AuthCredentials(list(user.scopes)), SimpleUser(user.name)


def auth_error(conn: Any, exc: Exception) -> Any:
    """A bad or refused token: 401 (429 while the address must wait), one line."""
    from starlette.responses import PlainTextResponse

    status = 429 if "wait a minute" in str(exc) else 401
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {"Retry-After": "60"}
    return PlainTextResponse(f"refused: {exc}", status_code=status, headers=headers)


def require(scope: str, page: bool = False) -> Callable:
    """A route needs this scope: no user is 401 (a page goes to the login page
    instead), a user whose role lacks it 403, each with a line saying so."""
    import functools

    from starlette.authentication import has_required_scope
    from starlette.responses import PlainTextResponse, RedirectResponse

    def wrap(handler: Callable) -> Callable:
        @functools.wraps(handler)
        async def guarded(request: Any) -> Any:
            if not request.user.is_authenticated:
                if page:
                    # the query too: a bookmarked dashboard view keeps its filters
                    from urllib.parse import quote

                    where = request.url.path + (f"?{request.url.query}" if request.url.query
                                                else "")
                    return RedirectResponse("/login?next=" + quote(where, safe="/"), 303)
                return PlainTextResponse(
                    "refused: this needs a token: send Authorization: Bearer TOKEN "
                    "(pingjia user add NAME --role viewer prints one)", 401,
                    headers={"WWW-Authenticate": "Bearer"})
            if not has_required_scope(request, [scope]):
                user = request.scope.get("pingjia_user")
                role = user.role if user else "?"
                return PlainTextResponse(
                    f"refused: the role {role} may not do this (it needs {scope}: "
                    f"pingjia user add NAME --role {'admin' if scope == 'admin' else scope})",
                    403)
            return await handler(request)

        guarded.scope_needed = scope  # type: ignore[attr-defined]
        return guarded

    return wrap
