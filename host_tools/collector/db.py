"""The collector's storage: SQLite (a file path) or PostgreSQL (a postgresql:// URL),
the same SQL through a thin layer, with numbered schema migrations."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from host_tools.errors import PingjiaError

# Each entry moves the schema one version up; never edit one that has shipped.
# `win` is the window's name ("window" is reserved in PostgreSQL).
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE devices (
            id TEXT PRIMARY KEY, key TEXT NOT NULL, win TEXT NOT NULL,
            created BIGINT NOT NULL, last_seen BIGINT, last_seq BIGINT NOT NULL DEFAULT 0,
            frames BIGINT NOT NULL DEFAULT 0, boot BIGINT,
            settings_version INTEGER, roster_version INTEGER)""",
        """CREATE TABLE records (
            device TEXT NOT NULL, seq BIGINT NOT NULL, kind INTEGER NOT NULL,
            val INTEGER NOT NULL, arg INTEGER NOT NULL, staff INTEGER NOT NULL,
            time BIGINT NOT NULL, boot BIGINT NOT NULL, received BIGINT NOT NULL,
            PRIMARY KEY (device, seq))""",
        """CREATE TABLE clock_offsets (
            device TEXT NOT NULL, boot BIGINT NOT NULL, delta BIGINT NOT NULL,
            PRIMARY KEY (device, boot))""",
        # what reports read: ratings, no_ratings, status changes, tallies, flags
        """CREATE TABLE events (
            device TEXT NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL, win TEXT NOT NULL,
            slot INTEGER NOT NULL, staff_no TEXT, level INTEGER, mode INTEGER,
            reason INTEGER, ticket TEXT, from_state INTEGER, to_state INTEGER,
            why INTEGER, flagged INTEGER, count INTEGER, boot BIGINT NOT NULL,
            uptime BIGINT, t BIGINT, PRIMARY KEY (device, seq))""",
        "CREATE INDEX events_t ON events (t)",
        "CREATE INDEX events_kind ON events (kind, device, seq)",
        """CREATE TABLE staff (
            staff_no TEXT PRIMARY KEY, badge_uid TEXT NOT NULL, name TEXT NOT NULL,
            department TEXT NOT NULL DEFAULT '')""",
        # a window's roster slots: once given, a slot keeps its staff (records carry slots)
        """CREATE TABLE window_slots (
            win TEXT NOT NULL, slot INTEGER NOT NULL, staff_no TEXT NOT NULL,
            active INTEGER NOT NULL, PRIMARY KEY (win, slot))""",
        "CREATE TABLE rosters (win TEXT PRIMARY KEY, version INTEGER NOT NULL)",
        """CREATE TABLE settings (
            scope TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (scope, key))""",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO meta (key, value) VALUES ('settings_version', '1')",
    ],
    [
        # request nonces: the device makes a new one for every attempt, so a request
        # seen before is a replay (refused); old ones are pruned
        """CREATE TABLE nonces (
            device TEXT NOT NULL, nonce BIGINT NOT NULL, seen BIGINT NOT NULL,
            PRIMARY KEY (device, nonce))""",
    ],
    [
        # a device's logs (firmware/log.py: a wiped or new flash starts a new one
        # with a new id). records, events and clock_offsets keep their keys:
        # their seq and boot are the log's index << 32 | the device's value, so
        # (device, log, seq) is unique and a device's logs sort as one history.
        # Index 0 is the log a device had before log ids (log_id NULL until the
        # first frame with an id claims it).
        """CREATE TABLE logs (
            device TEXT NOT NULL, idx INTEGER NOT NULL, log_id BIGINT, first_seen BIGINT,
            PRIMARY KEY (device, idx))""",
        "INSERT INTO logs (device, idx, first_seen) SELECT DISTINCT device, 0, 0 FROM records",
    ],
]


class DatabaseError(PingjiaError):
    """The database cannot be opened or migrated (a bad path or URL, a file that is not
    SQLite, a server that refuses)."""


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


class Database:
    """One connection guarded by a lock: every transaction is serialised, which
    is what SQLite does anyway and keeps per-device ingest ordered."""

    def __init__(self, url: str):
        self.url = url
        self.postgres = is_postgres(url)
        self.lock = threading.RLock()
        self._depth = 0
        try:
            self.conn: Any = self._connect()
            self.migrate()
        except self._driver_errors() as e:
            raise DatabaseError(f"cannot open the database {url}: {e}") from None

    def _driver_errors(self) -> tuple[type[Exception], ...]:
        if self.postgres:
            import psycopg  # only for PostgreSQL URLs

            return psycopg.Error, OSError
        return sqlite3.Error, OSError

    def _connect(self) -> Any:
        if self.postgres:
            import psycopg

            return psycopg.connect(self.url, autocommit=True)
        conn = sqlite3.connect(self.url, check_same_thread=False, isolation_level=None,
                               timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # an ack is sent after the commit
        return conn

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN" if self.postgres else "BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._depth = 0
                self.conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self.conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self.lock:
            cur = self.conn.execute(self._sql(sql), tuple(params))
            return cur.rowcount

    def executemany(self, sql: str, rows: list[Sequence[Any]]) -> None:
        if not rows:
            return
        with self.lock:
            if self.postgres:
                with self.conn.cursor() as cur:
                    cur.executemany(self._sql(sql), rows)
            else:
                self.conn.executemany(sql, rows)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.lock:
            return list(self.conn.execute(self._sql(sql), tuple(params)).fetchall())

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        with self.lock:
            return self.conn.execute(self._sql(sql), tuple(params)).fetchone()

    def value(self, sql: str, params: Sequence[Any] = (), default: Any = None) -> Any:
        r = self.one(sql, params)
        return default if r is None or r[0] is None else r[0]

    # ---- schema ---------------------------------------------------------
    def schema_version(self) -> int:
        with self.lock:
            try:
                return int(self.value("SELECT MAX(version) FROM schema_version", (), 0))
            except Exception:
                if self.postgres:
                    pass  # autocommit: a failed statement leaves no open transaction
                return -1

    def migrate(self) -> int:
        """Bring the schema up to date; returns the version."""
        with self.transaction():
            self.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            have = int(self.value("SELECT MAX(version) FROM schema_version", (), 0))
            for v in range(have + 1, len(MIGRATIONS) + 1):
                for stmt in MIGRATIONS[v - 1]:
                    self.execute(stmt)
                self.execute("INSERT INTO schema_version (version) VALUES (?)", (v,))
        return len(MIGRATIONS)

    def upsert_sql(self, table: str, cols: Sequence[str], keys: Sequence[str]) -> str:
        """INSERT ... ON CONFLICT (keys) DO UPDATE: both engines speak it."""
        ph = ", ".join("?" for _ in cols)
        upd = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in keys)
        return (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({ph}) "
                f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {upd}")
