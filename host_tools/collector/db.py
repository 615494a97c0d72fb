"""The collector's storage: SQLite (a file path) or PostgreSQL (a postgresql:// URL),
the same SQL through a thin layer, with numbered schema migrations.

Write transactions run one at a time (a lock: SQLite allows one writer anyway, and it
keeps each device's frames in order). Reads outside a transaction never wait behind a
writer: on SQLite they take a reading connection of their own (WAL readers are not
blocked by a writer, ours or another program's; a few are kept for the next reads, each
holds three files); on PostgreSQL every statement or transaction
takes a connection from a pool (psycopg_pool) that drops dead connections and makes new
ones, so a server restart fails requests for as long as it lasts and no longer.

A fault of the storage is StorageUnavailable (one line, and how long to wait): SQLite
busy past BUSY_S (another program holds the write lock), PostgreSQL unreachable, a disk
error. The server answers it 503 with Retry-After; nothing of the request is stored."""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from host_tools.errors import PingjiaError

BUSY_S = 0.5  # how long a statement waits for a lock before the request is answered 503
POOL_MAX = 8  # PostgreSQL connections: one writer at a time, the rest read
READERS_KEPT = 4  # SQLite reading connections kept open between reads
CONNECT_S = 5.0  # PostgreSQL: how long opening the collector waits for the server
ANALYZE_MIN_ROWS = 1000  # events below which SQLite's plans need no statistics
ANALYZE_GROWTH = 2  # the events grown this many times since the last ANALYZE: another

# Each entry moves the schema one version up; never edit one that has shipped.
# `win` is the window's name ("window" is reserved in PostgreSQL).
MIGRATIONS: list[list[Any]] = [
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
        # people and systems that use the collector: one token each, kept only as an
        # argon2 hash; token_id (public, in the token) finds the row to check it against
        """CREATE TABLE users (
            name TEXT PRIMARY KEY, role TEXT NOT NULL, token_id TEXT NOT NULL UNIQUE,
            token_hash TEXT NOT NULL, created BIGINT NOT NULL, revoked BIGINT)""",
        # a revoked device's frames are refused; its records stay in the reports
        "ALTER TABLE devices ADD COLUMN revoked BIGINT",
        # the hall (办事大厅) a device serves in: reports and exports filter by it
        "ALTER TABLE devices ADD COLUMN hall TEXT NOT NULL DEFAULT 'main'",
    ],
    [
        # what the door let in but did not believe (a time outside the collector's
        # window), one row a record and finding, for the office to see
        """CREATE TABLE flags (
            device TEXT NOT NULL, seq BIGINT NOT NULL, what TEXT NOT NULL,
            detail TEXT NOT NULL, received BIGINT NOT NULL, PRIMARY KEY (device, seq, what))""",
        # the newest nonce a device sent over the network: the replay window's edge
        "ALTER TABLE devices ADD COLUMN nonce_hi BIGINT NOT NULL DEFAULT 0",
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
    [
        # a number that grows with every change the office's views show (a stored frame,
        # a case action): a live dashboard on any serve process polls it, one row read
        "INSERT INTO meta (key, value) VALUES ('change_mark', '0')",
    ],
    [
        # 差评 handling (cases.py): a case for every 不满意 rating, made in the ingest
        # transaction; the rating's row is never touched. since: the rating's time, or
        # when it was received while that is unknown (lists order by it, the callback is
        # due N days after it); closed: 0 while the case needs work (one index range)
        """CREATE TABLE cases (
            device TEXT NOT NULL, seq BIGINT NOT NULL, win TEXT NOT NULL,
            slot INTEGER NOT NULL, staff_no TEXT, t BIGINT, since BIGINT NOT NULL,
            state TEXT NOT NULL, closed INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (device, seq))""",
        "CREATE INDEX cases_open ON cases (closed, since, device, seq)",
        "CREATE INDEX cases_since ON cases (since, device, seq)",
        "CREATE INDEX cases_state ON cases (state, since)",
        "CREATE INDEX cases_slot ON cases (win, slot, since)",  # a window's, a staff's
        "CREATE INDEX cases_untimed ON cases (device) WHERE t IS NULL",
        # every action on a case, appended, with who did it (n: 1, 2, ... per case)
        """CREATE TABLE case_actions (
            device TEXT NOT NULL, seq BIGINT NOT NULL, n INTEGER NOT NULL,
            action TEXT NOT NULL, text TEXT NOT NULL, decision TEXT,
            by_name TEXT NOT NULL, at BIGINT NOT NULL, PRIMARY KEY (device, seq, n))""",
        # days to the callback, per hall ('' for every hall without its own)
        "CREATE TABLE case_rules (hall TEXT PRIMARY KEY, callback_days INTEGER NOT NULL)",
        # the 差评 stored before cases existed get theirs
        """INSERT INTO cases (device, seq, win, slot, staff_no, t, since, state)
            SELECT e.device, e.seq, e.win, e.slot, e.staff_no, e.t,
                   COALESCE(e.t, r.received, 0), 'open'
            FROM events e LEFT JOIN records r ON r.device = e.device AND r.seq = e.seq
            WHERE e.kind = 'rating' AND e.level = 4""",
    ],
    [
        # the office's alerts (alerts.py): akey (kind, device or window, event or period)
        # is unique, so no process, restart or re-scan raises one twice; closed ones stay
        """CREATE TABLE alerts (
            id BIGINT PRIMARY KEY, akey TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
            hall TEXT NOT NULL, win TEXT, device TEXT, message TEXT NOT NULL,
            period_t BIGINT, raised BIGINT NOT NULL, state TEXT NOT NULL, closed BIGINT,
            closed_by TEXT)""",
        "CREATE INDEX alerts_hall ON alerts (hall, state, id)",
        "CREATE INDEX alerts_period ON alerts (kind, win, period_t)",
        """CREATE TABLE alert_settings (
            hall TEXT NOT NULL, key TEXT NOT NULL, value BIGINT NOT NULL,
            PRIMARY KEY (hall, key))""",
        # each device's last event scanned for alerts; what was stored before starts scanned
        "CREATE TABLE alert_cursor (device TEXT PRIMARY KEY, seq BIGINT NOT NULL)",
        "INSERT INTO alert_cursor (device, seq) SELECT id, last_seq FROM devices",
        "INSERT INTO meta (key, value) VALUES ('alert_seq', '0')",
        "INSERT INTO meta (key, value) VALUES ('alert_scan', '0')",
        "INSERT INTO meta (key, value) VALUES ('webhook_seq', '0')",
        # webhooks per hall (webhooks.py) and the outbox: a row per alert and webhook,
        # written with the alert, claimed by one delivery worker at a time
        """CREATE TABLE webhooks (
            id BIGINT PRIMARY KEY, hall TEXT NOT NULL, url TEXT NOT NULL, secret TEXT NOT NULL,
            created BIGINT NOT NULL, removed BIGINT)""",
        """CREATE TABLE outbox (
            alert BIGINT NOT NULL, hook BIGINT NOT NULL, state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, next_at BIGINT NOT NULL, created BIGINT NOT NULL,
            claimed_until BIGINT, claimed_by TEXT, last_error TEXT, last_try BIGINT,
            done_at BIGINT, PRIMARY KEY (alert, hook))""",
        "CREATE INDEX outbox_due ON outbox (state, next_at)",
    ],
    [
        # rollups per hall, window, staff slot and hall-local hour, day, and month x
        # weekday x hour (rollups.py), built from the rows already stored; the ingest
        # keeps them from here on. A function: the tables differ (partitions on
        # PostgreSQL) and the build reads the hall's time zone.
        lambda db: _rollups(db),
    ],
    [
        # the dashboard's flags per staff (dashboard.staff_flags): 请稍候 left on too long,
        # pauses with no badge; few rows, so a year's view reads only them. IF NOT EXISTS:
        # a test that re-runs an earlier migration runs this one again too
        "CREATE INDEX IF NOT EXISTS events_flags ON events (t) "
        "WHERE kind = 'flag' OR (kind = 'status' AND flagged <> 0)",
    ],
    [
        # the change mark in 16 rows (the mark is their sum): every ingest moved one row,
        # whose lock then held every other serve process's ingest until commit; a device's
        # frames now move the row of its slot (Collector.note_change)
        "INSERT INTO meta (key, value) VALUES " + ", ".join(
            f"('change_mark:{i}', '0')" for i in range(1, 16)),
    ],
]


def _rollups(db: Database) -> None:
    import json

    from firmware.settings import DEFAULTS
    from host_tools.collector import rollups

    for stmt in rollups.schema(db.postgres):
        db.execute(stmt)
    tz = db.value("SELECT value FROM settings WHERE scope = 'hall' AND key = 'tz_min'")
    rollups.rebuild(db, int(json.loads(tz)) if tz is not None else DEFAULTS["tz_min"])


class DatabaseError(PingjiaError):
    """The database cannot be opened or migrated (a bad path or URL, a file that is not
    SQLite, a server that refuses)."""


class StorageUnavailable(PingjiaError):
    """The database cannot take the request now (locked by another program, restarting,
    a disk fault): nothing of it was stored; try again after retry_after seconds."""

    retry_after = 1


class BadValue(PingjiaError, ValueError):
    """A value of a request that the database cannot hold or compare: a NUL character in
    text (PostgreSQL's text refuses it), a whole number beyond 64 bits (SQLite's INTEGER
    refuses it). The request's fault: a 400 (any ValueError is), or exit 2."""


def _bad_value(e: Exception) -> bool:
    if isinstance(e, OverflowError):
        return True
    import psycopg  # only reached on PostgreSQL, where it is loaded

    return isinstance(e, psycopg.errors.NumericValueOutOfRange) or (
        isinstance(e, psycopg.DataError) and "NUL" in str(e))


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def _owner_only(path: str) -> None:
    """Create the SQLite file readable by its owner only, before SQLite does with the
    umask's 0644: it holds device keys, staff names and tickets. SQLite gives the -wal
    and -shm files the database file's mode. A file found readable by others is
    tightened; anything else is left as it is (`--db /tmp` made /tmp 0600, and every other
    user, PostgreSQL's among them, lost it)."""
    if path == ":memory:" or path.startswith("file:"):
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except FileExistsError:
        pass
    for p in (path, path + "-wal", path + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            mode = os.stat(p).st_mode
            if stat.S_ISREG(mode) and mode & 0o077:
                os.chmod(p, 0o600)


class Database:
    def __init__(self, url: str, busy_s: float = BUSY_S):
        self.url = url
        self.postgres = is_postgres(url)
        self.busy_s = busy_s
        self.lock = threading.RLock()  # the one write transaction at a time
        self._local = threading.local()  # tx: this thread's open transaction
        self._readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue(READERS_KEPT)
        self.pool: Any = None
        self.writer: Any = None
        try:
            if self.postgres:
                self._open_pool()
            else:
                _owner_only(url)
                self.writer = self._sqlite()
                self.writer.execute("PRAGMA journal_mode=WAL")
                self.writer.execute("PRAGMA synchronous=FULL")  # an ack is sent after the commit
            self.migrate()
            self.analyze()
        except (StorageUnavailable, *self._driver_errors()) as e:
            self.close()
            raise DatabaseError(f"cannot open the database {url}: {e}") from None

    # ---- connections ------------------------------------------------------
    def _driver_errors(self) -> tuple[type[Exception], ...]:
        if self.postgres:
            import psycopg  # only for PostgreSQL URLs

            return psycopg.Error, OSError
        return sqlite3.Error, OSError

    def _sqlite(self) -> sqlite3.Connection:
        return sqlite3.connect(self.url, check_same_thread=False, isolation_level=None,
                               timeout=self.busy_s)

    def _open_pool(self) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        # one connection first: a server that is not there is one clear error now, not
        # a pool that retries in the background and logs every attempt
        psycopg.connect(self.url, connect_timeout=max(1, int(CONNECT_S))).close()

        # check: a connection that died with the server is found at checkout and
        # replaced; timeout: a request waits this long for one, then fails (503)
        self.pool = ConnectionPool(self.url, min_size=1, max_size=POOL_MAX, open=False,
                                   timeout=max(self.busy_s, 1.0), kwargs={"autocommit": True},
                                   check=ConnectionPool.check_connection,
                                   reconnect_timeout=86400, name="pingjia")
        self.pool.open(wait=True, timeout=CONNECT_S)

    @contextmanager
    def _reader(self) -> Iterator[Any]:
        """A SQLite reading connection for one statement: a kept one, or a new one."""
        if self.url == ":memory:":
            with self.lock:  # one database per connection: read where it is
                yield self.writer
            return
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = self._sqlite()
            conn.execute("PRAGMA query_only=1")
        try:
            yield conn
        finally:
            try:
                self._readers.put_nowait(conn)
            except queue.Full:
                conn.close()

    def close(self) -> None:
        with self.lock:
            if self.pool is not None:
                self.pool.close()
            if self.writer is not None:
                self.writer.close()
            while True:
                try:
                    self._readers.get_nowait().close()
                except queue.Empty:
                    break

    # ---- faults -----------------------------------------------------------
    @contextmanager
    def _faults(self) -> Iterator[None]:
        """Driver errors that mean 'not now' become StorageUnavailable."""
        try:
            yield
        except sqlite3.OperationalError as e:
            text = str(e)
            if "locked" in text or "busy" in text:
                raise StorageUnavailable(
                    "the database is busy (another program holds its write lock); "
                    "try again in a second") from None
            if any(w in text for w in _SQLITE_FAULTS):
                raise StorageUnavailable(f"the database failed: {text}") from None
            raise
        except Exception as e:
            if self.postgres and _pg_unavailable(e):
                raise StorageUnavailable(
                    f"PostgreSQL is not answering ({type(e).__name__}); "
                    "try again in a second") from None
            raise

    def _sql(self, sql: str) -> str:
        # psycopg reads % as a placeholder's start: a literal one (LIKE 'x%') is %%
        return sql.replace("%", "%%").replace("?", "%s") if self.postgres else sql

    # ---- transactions -----------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """One write transaction: everything in it or nothing. A COMMIT that fails is
        rolled back, so the connection is clean for the next request."""
        local = self._local
        if getattr(local, "tx", None) is not None:
            yield self  # nested: part of the open one
            return
        with self.lock, self._faults():
            conn = self.pool.getconn() if self.postgres else self.writer
            try:
                conn.execute("BEGIN" if self.postgres else "BEGIN IMMEDIATE")
                local.tx = conn
                try:
                    yield self
                except BaseException:
                    with contextlib.suppress(Exception):
                        conn.execute("ROLLBACK")
                    raise
                finally:
                    local.tx = None
                try:
                    conn.execute("COMMIT")
                except self._driver_errors() as e:
                    # SQLite keeps a transaction whose COMMIT failed open: end it, or
                    # every later BEGIN fails; PostgreSQL has rolled it back already
                    with contextlib.suppress(Exception):
                        conn.execute("ROLLBACK")
                    raise StorageUnavailable(f"the database could not commit ({e}); "
                                             "nothing of it was stored") from None
            finally:
                if self.postgres:
                    self.pool.putconn(conn)  # a broken or dirty one is discarded there

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        """The connection for one statement: the open transaction's, else a reader."""
        tx = getattr(self._local, "tx", None)
        try:
            if tx is not None:
                yield tx
            elif self.postgres:
                with self._faults(), self.pool.connection() as conn:
                    yield conn
            else:
                with self._faults(), self._reader() as conn:
                    yield conn
        except Exception as e:
            if (self.postgres or isinstance(e, OverflowError)) and _bad_value(e):
                raise BadValue(f"a value that cannot be stored or looked up: {e}") from None
            raise

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        if getattr(self._local, "tx", None) is None:
            with self.transaction():  # a write on its own is its own transaction
                return self.execute(sql, params)
        with self._conn() as conn:
            return conn.execute(self._sql(sql), tuple(params)).rowcount

    def executemany(self, sql: str, rows: list[Sequence[Any]]) -> None:
        if not rows:
            return
        if getattr(self._local, "tx", None) is None:
            with self.transaction():
                return self.executemany(sql, rows)
        with self._conn() as conn:
            if self.postgres:
                with conn.cursor() as cur:
                    cur.executemany(self._sql(sql), rows)
            else:
                conn.executemany(sql, rows)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._conn() as conn:
            return list(conn.execute(self._sql(sql), tuple(params)).fetchall())

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        with self._conn() as conn:
            return conn.execute(self._sql(sql), tuple(params)).fetchone()

    def value(self, sql: str, params: Sequence[Any] = (), default: Any = None) -> Any:
        r = self.one(sql, params)
        return default if r is None or r[0] is None else r[0]

    # ---- schema -----------------------------------------------------------
    def migrate(self) -> int:
        """Bring the schema up to date; returns the version."""
        with self.transaction():
            self.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            have = int(self.value("SELECT MAX(version) FROM schema_version", (), 0))
            for v in range(have + 1, len(MIGRATIONS) + 1):
                for stmt in MIGRATIONS[v - 1]:
                    if callable(stmt):
                        stmt(self)
                    else:
                        self.execute(stmt)
                self.execute("INSERT INTO schema_version (version) VALUES (?)", (v,))
        return len(MIGRATIONS)

    def analyze(self) -> None:
        """The query planner's statistics, made again once the events have doubled since
        they were last made. SQLite has none but what ANALYZE writes: without them, or with
        sampled ones (`PRAGMA analysis_limit`), it chose plans 10 to 1000 times slower for
        the office's views at ten million ratings (bench/views.py: a day's summary 1.0 s,
        10 ms with them). A whole ANALYZE reads every index: 2.4 s at 10.6 million events,
        so it is not run at every open (every CLI command opens the collector). Called at
        open and every hour by `pingjia serve` (alerts.Watcher). PostgreSQL's autovacuum
        keeps its own."""
        if self.postgres:
            return
        rows = int(self.value("SELECT MAX(rowid) FROM events", (), 0) or 0)  # rows ever added
        if rows < ANALYZE_MIN_ROWS or rows < ANALYZE_GROWTH * self._analyzed_rows():
            return
        with self.transaction():
            self.execute("ANALYZE")

    def _analyzed_rows(self) -> int:
        """The events' count when ANALYZE last ran (0: never)."""
        if not self.value("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"):
            return 0
        stat = self.value("SELECT stat FROM sqlite_stat1 WHERE idx = 'events_t'")
        return int(str(stat).split()[0]) if stat else 0

    def upsert_sql(self, table: str, cols: Sequence[str], keys: Sequence[str]) -> str:
        """INSERT ... ON CONFLICT (keys) DO UPDATE: both engines speak it."""
        ph = ", ".join("?" for _ in cols)
        upd = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in keys)
        return (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({ph}) "
                f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {upd}")


# SQLite errors of the disk, not of the statement
_SQLITE_FAULTS = ("disk I/O error", "disk is full", "unable to open", "readonly")


def _pg_unavailable(e: Exception) -> bool:
    """A PostgreSQL error that means the server or the link is gone, not a bad statement."""
    import psycopg
    from psycopg_pool import PoolTimeout, TooManyRequests

    return isinstance(e, psycopg.OperationalError | psycopg.InterfaceError | PoolTimeout
                      | TooManyRequests) or (
        isinstance(e, psycopg.Error) and e.sqlstate is not None
        and e.sqlstate[:2] in ("08", "57", "40"))  # connection exception, operator
    # intervention, a transaction rolled back (deadlock, serialization): all worth a retry
