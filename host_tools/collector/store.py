"""The collector's logic: devices and keys, frame ingest (idempotent on device and
seq, one transaction per frame), rosters per window with stable slots, settings
per hall or device, and what a device is provisioned with."""

from __future__ import annotations

import json
import os
import struct
import time as _time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware import frame, logview, record
from firmware import roster as roster_mod
from firmware import settings as settings_mod
from firmware.clock import EPOCH_UNIX, iso
from host_tools.collector import checks, rollups, rostercsv
from host_tools.collector.access import Users
from host_tools.collector.db import Database
from host_tools.errors import PingjiaError

Clock = Callable[[], float]  # seconds since 2000-01-01 UTC, the firmware's epoch
HALL = "hall"  # the settings scope of every device (then a hall's, then a device's own)
DEFAULT_HALL = "main"  # the one hall of a small install
EMPTY_UID = "00000000"  # a slot whose staff left the window: keeps later slots in place
ROSTER_BYTES_MAX = 12 * 1024  # a window's roster.txt: 254 staff with 工号 and name fit
_NOT_SETTABLE = ("version", "window")
NONCE_WINDOW_S = 7 * 86400  # the replay window: an older frame is refused
NONCE_AHEAD_S = 86400  # a device clock ahead by this much still makes fresh nonces
LOG_SHIFT = 32  # stored seq and boot: the log's index << LOG_SHIFT | the device's value
DEVICE_SEQ = (1 << LOG_SHIFT) - 1
MARK_ROWS = 16  # change_mark's rows (db.py migration 7): their sum is the mark


class CollectorError(PingjiaError, ValueError):
    """A request the collector refuses; str() says why in words a user can act on."""


WINDOW_MAX = 16  # a window's name goes into settings.json and onto the sign
HALL_MAX = 32


def check_label(what: str, text: str, most: int) -> str:
    """A window's or hall's name: 1 to `most` printable characters, no control characters
    (they would travel into the device's settings and the office's spreadsheets)."""
    if not isinstance(text, str) or not 1 <= len(text) <= most or not text.isprintable() \
            or text != text.strip():
        raise CollectorError(f"{what} {text!r}: 1 to {most} printable characters, "
                             "no control characters or surrounding spaces")
    return text


def _check_key(key: str | None) -> str:
    if key is None:
        return os.urandom(16).hex()
    try:
        if len(bytes.fromhex(key)) < 16:
            raise ValueError
    except ValueError:
        raise CollectorError("key must be at least 16 bytes in hex") from None
    return key.lower()


class AnswerError(CollectorError):
    """The answer to a frame cannot be made (nothing of the frame was stored)."""


def system_clock() -> float:
    return _time.time() - EPOCH_UNIX


def _dev_prefix(device: str) -> str:
    return "device:" + device


def _place_where(alias: str, hall: str | None, window: str | None) -> tuple[str, list[Any]]:
    """SQL conditions (each after an AND) and their parameters: the devices table as
    alias, of a hall and a window when given."""
    where, params = "", []
    if hall:
        where += f" AND {alias}.hall = ?"
        params.append(hall)
    if window:
        where += f" AND {alias}.win = ?"
        params.append(window)
    return where, params


def _hall_prefix(hall: str) -> str:
    return "hall:" + hall


class Collector:
    def __init__(self, db: Database | str, clock: Clock | None = None):
        self.db = db if isinstance(db, Database) else Database(db)
        self.clock = clock or system_clock
        self.users = Users(self.db, self.now)

    def now(self) -> int:
        return int(self.clock())

    # ---- devices ----------------------------------------------------------
    def add_device(self, device: str, window: str, key: str | None = None,
                   hall: str | None = None) -> str:
        """Register a device; returns its key (hex) to provision."""
        try:
            frame.check_id(device)
        except frame.FrameError:
            raise CollectorError(f"device id {device!r}: 1 to {frame.ID_MAX} characters of "
                                 "A-Z a-z 0-9 . _ - (it goes in every frame)") from None
        check_label("window", window, WINDOW_MAX)
        hall = check_label("hall", hall or DEFAULT_HALL, HALL_MAX)
        key = _check_key(key)
        with self.db.transaction():
            if self.db.one("SELECT id FROM devices WHERE id = ?", (device,)):
                raise CollectorError(f"device {device} is already registered")
            self.db.execute("INSERT INTO devices (id, key, win, created, hall) "
                            "VALUES (?, ?, ?, ?, ?)", (device, key, window, self.now(), hall))
            self._rebuild_window(window)
        return key

    def rekey(self, device: str, key: str | None = None) -> str:
        """A new key for a device (lost, leaked, or back after a revoke); returns it.
        Frames signed with the old key are refused from now on."""
        key = _check_key(key)
        with self.db.transaction():
            self.device_window(device)
            self.db.execute("UPDATE devices SET key = ?, revoked = NULL WHERE id = ?",
                            (key, device))
            self.db.execute("DELETE FROM nonces WHERE device = ?", (device,))
        return key

    def revoke_device(self, device: str) -> None:
        """Refuse the device's frames from now on (its key is forgotten); what it sent
        stays in the reports. `rekey` lets it back in with a new key."""
        with self.db.transaction():
            self.device_window(device)
            self.db.execute("UPDATE devices SET revoked = ?, key = ? WHERE id = ?",
                            (self.now(), "", device))

    def devices(self, after: str = "", limit: int | None = None, hall: str | None = None,
                window: str | None = None) -> list[dict[str, Any]]:
        """Devices by id (of a hall, a window); a page of them: ids after `after`, at
        most `limit`."""
        where, params = _place_where("d", hall, window)
        sql = ("SELECT id, win, hall, created, last_seen, last_seq, frames, boot, "
               "settings_version, roster_version, revoked, "
               "(SELECT COUNT(*) FROM flags f WHERE f.device = d.id) "
               f"FROM devices d WHERE id > ?{where} ORDER BY id")
        params.insert(0, after)
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        cols = ("id", "window", "hall", "created", "last_seen", "last_seq", "frames", "boot",
                "settings_version", "roster_version", "revoked", "flags")
        out = [dict(zip(cols, r, strict=True)) for r in self.db.all(sql, params)]
        for d in out:  # the seq the device knows, and which of its logs it is in
            d["log"], d["last_seq"] = d["last_seq"] >> LOG_SHIFT, d["last_seq"] & DEVICE_SEQ
        return out

    def flags(self, after: str = "", limit: int | None = None, hall: str | None = None,
              window: str | None = None) -> list[dict[str, Any]]:
        """What the door stored but did not believe (checks.py), oldest first, of a
        hall's or a window's devices; a page: rows after the cursor `after`
        ("received|device|seq"), at most `limit`."""
        where, params = _place_where("d", hall, window)
        sql = ("SELECT f.device, f.seq, f.what, f.detail, f.received FROM flags f "
               f"JOIN devices d ON d.id = f.device WHERE 1 = 1{where}")
        if after:
            try:
                rec_t, dev, seq = after.split("|")
                params += [int(rec_t), int(rec_t), dev, dev, int(seq)]
            except ValueError:
                raise CollectorError(f"after {after!r}: use the 'next' of the page before") \
                    from None
            sql += (" AND (f.received > ? OR (f.received = ? AND (f.device > ? OR "
                    "(f.device = ? AND f.seq > ?))))")
        sql += " ORDER BY f.received, f.device, f.seq, f.what"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        cols = ("device", "seq", "what", "detail", "received")
        out = [dict(zip(cols, r, strict=True)) for r in self.db.all(sql, params)]
        for f in out:  # stored seqs are log << LOG_SHIFT | the device's seq
            f["log"], f["seq"] = f["seq"] >> LOG_SHIFT, f["seq"] & DEVICE_SEQ
        return out

    def device_key(self, device: str) -> bytes | None:
        """The key of an active device (None: unknown or revoked). Read at every frame,
        so a rekey or revoke from the CLI holds at the server's next request."""
        v = self.db.value("SELECT key FROM devices WHERE id = ? AND revoked IS NULL",
                          (device,))
        return bytes.fromhex(v) if v else None

    def _frame_key(self, device: str) -> bytes | None:
        """parse_request's key_for: the device's key; a revoked device is refused by
        name (FrameError revoked), an unknown one is None."""
        row = self.db.one("SELECT key, revoked FROM devices WHERE id = ?", (device,))
        if row is None:
            return None
        if row[1] is not None:
            raise frame.FrameError("revoked", device)
        return bytes.fromhex(row[0])

    def device_window(self, device: str) -> str:
        w = self.db.value("SELECT win FROM devices WHERE id = ?", (device,))
        if w is None:
            raise CollectorError(f"no device {device} (pingjia device add {device} --window W)")
        return str(w)

    # ---- roster -------------------------------------------------------------
    def import_roster(self, path: str | Path) -> dict[str, int]:
        """Store a roster CSV (all or nothing); returns each window's roster version."""
        return self._store_roster(rostercsv.load(path))

    def import_roster_bytes(self, data: bytes, source: str = "roster") -> dict[str, int]:
        """The same for a roster CSV's bytes (posted by an admin)."""
        return self._store_roster(rostercsv.parse_bytes(data, source))

    def _store_roster(self, staff: list[rostercsv.Staff]) -> dict[str, int]:
        with self.db.transaction():
            self.db.execute("DELETE FROM staff")
            self.db.executemany(
                "INSERT INTO staff (staff_no, badge_uid, name, department) VALUES (?, ?, ?, ?)",
                [(s.staff_no, s.badge_uid, s.name, s.department) for s in staff])
            wins = {r[0] for r in self.db.all("SELECT win FROM devices")}
            wins |= {r[0] for r in self.db.all("SELECT win FROM window_slots")}
            for s in staff:
                wins.update(s.windows)
            versions = {w: self._rebuild_window(w, staff) for w in sorted(wins)}
            for w in sorted(wins):
                self._check_roster_size(w, staff)
            return versions

    def _check_roster_size(self, window: str, staff: list[rostercsv.Staff]) -> None:
        """The window's roster.txt fits what a device takes (naming the line that
        makes it too large); CollectorError otherwise, and the import is undone."""
        size = 0
        lines = {s.staff_no: s.line for s in staff}
        for n, (uid, no, name) in enumerate(self._roster_entries(window), start=1):
            size += len(f"{uid}\t{no}\t{name}\n".encode())
            if size > ROSTER_BYTES_MAX:
                at = f"line {lines[no]}" if no in lines else f"slot {n}"
                raise CollectorError(f"{at}: window {window}'s roster passes "
                                     f"{ROSTER_BYTES_MAX} bytes, more than a device takes")

    def _rebuild_window(self, window: str, staff: list[rostercsv.Staff] | None = None) -> int:
        """Give new staff of a window the next free slots; staff who left keep
        theirs, inactive. Bumps the window's roster version when anything changed."""
        if staff is None:
            rows = self.db.all("SELECT staff_no, badge_uid, name, department FROM staff")
            staff = [rostercsv.Staff(r[1], r[0], r[2], r[3]) for r in rows]
            wl = {r[0]: r[1] for r in self.db.all(
                "SELECT staff_no, active FROM window_slots WHERE win = ?", (window,))}
            # the staff table keeps no windows: who serves is what the slots say,
            # or everyone for a window no import has named yet
            serving = {s.staff_no for s in staff if wl.get(s.staff_no, 1 if not wl else 0)}
        else:
            serving = {s.staff_no for s in staff if s.serves(window)}
        slots = {r[0]: (r[1], r[2]) for r in self.db.all(
            "SELECT slot, staff_no, active FROM window_slots WHERE win = ?", (window,))}
        by_no = {no: slot for slot, (no, _a) in slots.items()}
        changed = False
        nxt = max(slots, default=0) + 1
        for s in staff:
            if s.staff_no not in serving:
                continue
            slot = by_no.get(s.staff_no)
            if slot is None and nxt > checks.SLOT_MAX:
                raise CollectorError(
                    f"line {s.line}: {s.staff_no} would be staff number {nxt} of window "
                    f"{window}, and a device holds {checks.SLOT_MAX} (staff who left keep "
                    "their slot: give the window a new name to start it afresh)")
            if slot is None:
                self.db.execute("INSERT INTO window_slots (win, slot, staff_no, active) "
                                "VALUES (?, ?, ?, 1)", (window, nxt, s.staff_no))
                nxt += 1
                changed = True
            elif not slots[slot][1]:
                self.db.execute("UPDATE window_slots SET active = 1 WHERE win = ? AND slot = ?",
                                (window, slot))
                changed = True
        for slot, (no, active) in slots.items():
            if active and no not in serving:
                self.db.execute("UPDATE window_slots SET active = 0 WHERE win = ? AND slot = ?",
                                (window, slot))
                changed = True
        if nxt > 255:
            raise CollectorError(f"window {window}: more than 254 roster slots")
        v = self.db.value("SELECT version FROM rosters WHERE win = ?", (window,))
        if v is None and nxt == 1:
            return 0  # no staff has ever served here: nothing to push
        if v is None:
            v = 1
            self.db.execute("INSERT INTO rosters (win, version) VALUES (?, ?)", (window, v))
        elif changed or staff is not None and self._roster_text_changed(window):
            v = int(v) % 65535 + 1
            self.db.execute("UPDATE rosters SET version = ? WHERE win = ?", (v, window))
        return int(v)

    def _roster_text_changed(self, window: str) -> bool:
        # names or badges edited for staff already in a slot also need a push
        key = "roster_text:" + window
        text = json.dumps(self._roster_entries(window), ensure_ascii=False)
        old = self.db.value("SELECT value FROM meta WHERE key = ?", (key,))
        if old == text:
            return False
        self.db.execute(self.db.upsert_sql("meta", ("key", "value"), ("key",)), (key, text))
        return old is not None

    def _roster_entries(self, window: str) -> list[list[str]]:
        rows = self.db.all(
            "SELECT ws.slot, ws.active, s.badge_uid, s.staff_no, s.name FROM window_slots ws "
            "LEFT JOIN staff s ON s.staff_no = ws.staff_no WHERE ws.win = ? ORDER BY ws.slot",
            (window,))
        out: list[list[str]] = []
        for slot, active, uid, no, name in rows:
            while len(out) < slot - 1:
                out.append([EMPTY_UID, "", ""])
            out.append([uid, no, name] if active and uid else [EMPTY_UID, "", ""])
        while out and out[-1][0] == EMPTY_UID:
            out.pop()
        return out

    def roster_for(self, window: str) -> dict[str, Any]:
        """A window's roster: version and [uid, staff_no, name] a slot."""
        v = self.db.value("SELECT version FROM rosters WHERE win = ?", (window,), 0)
        return {"version": int(v), "staff": self._roster_entries(window)}

    def roster_text(self, window: str) -> bytes:
        """The device's roster.txt of a window (firmware/roster.py)."""
        r = self.roster_for(window)
        return roster_mod.dumps(r["version"], r["staff"])

    def slot_staff(self, window: str) -> dict[int, str]:
        return {r[0]: r[1] for r in self.db.all(
            "SELECT slot, staff_no FROM window_slots WHERE win = ?", (window,))}

    # ---- settings -----------------------------------------------------------
    def _stored_settings(self, scope: str) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.all(
            "SELECT key, value FROM settings WHERE scope = ?", (scope,))}

    def change_mark(self) -> int:
        """Grows with every change the office's views show; a live view polls it (the sum
        of a few rows, on every serve process sharing the database) and reloads when it
        moves."""
        return int(self.db.value("SELECT SUM(CAST(value AS BIGINT)) FROM meta WHERE key = "
                                 "'change_mark' OR key LIKE 'change_mark:%'", (), 0))

    def note_change(self, key: str = "") -> None:
        """Move change_mark on: called inside the transaction that makes the change. key
        (a device id) picks one of the mark's 16 rows, so the ingests of several serve
        processes do not all wait for one row's lock (measured: two processes on one
        PostgreSQL took 1.0x one's rate with one row, 1.4x with the rows spread)."""
        slot = zlib.crc32(key.encode()) % MARK_ROWS if key else 0
        self.db.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) "
                        "WHERE key = ?", (f"change_mark:{slot}" if slot else "change_mark",))

    def settings_version(self) -> int:
        return int(self.db.value("SELECT value FROM meta WHERE key = 'settings_version'", (), 1))

    def settings_for(self, device: str) -> dict[str, Any]:
        """The device's settings.json: every device's settings, its hall's on top, the
        device's own on top of those."""
        row = self.db.one("SELECT win, hall FROM devices WHERE id = ?", (device,))
        if row is None:
            raise CollectorError(f"no device {device} (pingjia device add {device} --window W)")
        s = self._stored_settings(HALL)
        s.update(self._stored_settings(_hall_prefix(row[1])))
        s.update(self._stored_settings(_dev_prefix(device)))
        s["window"] = str(row[0])
        s["version"] = self.settings_version()
        checks.settings(s)  # before validate(), which takes some wrong types for others
        return settings_mod.validate(s)

    def hall_tz_min(self) -> int:
        v = self._stored_settings(HALL).get("tz_min", settings_mod.DEFAULTS["tz_min"])
        return int(v)

    def set_setting(self, key: str, value: Any, device: str | None = None,
                    hall: str | None = None) -> int:
        """Set one setting for every device, a hall's or one device; returns the new
        settings version."""
        if key in _NOT_SETTABLE:
            raise CollectorError(f"{key} is not set this way"
                                 + (" (pingjia device add ID --window W)" if key == "window"
                                    else " (the collector numbers settings itself)"))
        if key not in settings_mod.DEFAULTS:
            raise CollectorError(f"unknown setting {key!r}; known: "
                                 + ", ".join(k for k in settings_mod.DEFAULTS
                                             if k not in _NOT_SETTABLE))
        with self.db.transaction():
            scope = HALL
            if device is not None:
                self.device_window(device)
                scope = _dev_prefix(device)
            elif hall is not None:
                scope = _hall_prefix(check_label("hall", hall, HALL_MAX))
                # a misspelt hall would keep a setting no device ever gets
                if hall != DEFAULT_HALL and self.db.one(
                        "SELECT 1 FROM devices WHERE hall = ? LIMIT 1", (hall,)) is None:
                    raise CollectorError(f"no hall {hall!r}: no device serves there (pingjia "
                                         f"device add ID --window W --hall {hall})")
            self.db.execute(self.db.upsert_sql("settings", ("scope", "key", "value"),
                                               ("scope", "key")),
                            (scope, key, json.dumps(value, ensure_ascii=False)))
            if device:
                targets = [device]
            elif hall is not None:
                targets = [r[0] for r in self.db.all("SELECT id FROM devices WHERE hall = ?",
                                                     (hall,))]
            else:
                targets = [r[0] for r in self.db.all("SELECT id FROM devices")]
            try:
                base = self._stored_settings(HALL)
                if device is None:
                    if hall is not None:
                        base.update(self._stored_settings(scope))
                    checks.settings(base)
                    settings_mod.validate(base)
                for d in targets:
                    self.settings_for(d)
            except ValueError as e:
                raise CollectorError(f"{key} = {json.dumps(value, ensure_ascii=False)}: {e}") \
                    from None
            if key == "tz_min" and scope == HALL and rollups.built_tz(self.db) != int(value):
                rollups.rebuild(self.db, int(value))  # their buckets are hall-local hours
            v = self.settings_version() % 65535 + 1
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'settings_version'", (str(v),))
        return v

    def settings_table(self) -> list[tuple[str, str, Any]]:
        return [(scope, k, json.loads(v)) for scope, k, v in self.db.all(
            "SELECT scope, key, value FROM settings ORDER BY scope, key")]

    # ---- provisioning ---------------------------------------------------------
    def provisioning(self, device: str, sync_url: str | None = None) -> dict[str, dict]:
        """The files a device starts with: device.json, settings.json, roster.txt."""
        key = self.db.value("SELECT key FROM devices WHERE id = ?", (device,))
        if key is None:
            raise CollectorError(f"no device {device}")
        if sync_url and self._stored_settings(_dev_prefix(device)).get("sync_url") != sync_url:
            self.set_setting("sync_url", sync_url, device)  # later pushes keep the link
        settings = self.settings_for(device)
        return {
            "device.json": {"id": device, "key": key},
            "settings.json": settings,
            "roster.txt": self.roster_text(settings["window"]),
        }

    # ---- the server's own -------------------------------------------------------
    def session_secret(self) -> str:
        """The key that signs the dashboard's session cookies: made once, kept in the
        database (whoever can read that reads everything a session shows anyway)."""
        v = self.db.value("SELECT value FROM meta WHERE key = 'session_secret'")
        if v is None:
            with self.db.transaction():
                self.db.execute("INSERT INTO meta (key, value) VALUES ('session_secret', ?) "
                                "ON CONFLICT (key) DO NOTHING", (os.urandom(32).hex(),))
            v = self.db.value("SELECT value FROM meta WHERE key = 'session_secret'")
        return str(v)

    # ---- ingest ------------------------------------------------------------------
    def ingest_network(self, body: bytes) -> bytes:
        """ingest() for a frame that came over the network (the sync endpoint): the
        replay window holds too."""
        return self.ingest(body, replay_window=True)

    def ingest(self, body: bytes, replay_window: bool = False) -> bytes:
        """Store one sync frame and return the signed answer. FrameError if refused
        (nothing stored). The answer is made inside the transaction, so a commit is
        never followed by an answer that cannot be made (the device would send the
        frame again and again, its ack lost every time). replay_window: refuse a frame
        older than the window by its nonce (see _check_nonce)."""
        keys: dict[str, bytes] = {}

        def key_for(device: str) -> bytes | None:
            k = self._frame_key(device)
            if k is not None:
                keys[device] = k
            return k

        req = frame.parse_request(body, key_for)
        now = self.now()
        with self.db.transaction():
            self._lock_device(req.device)
            base = self._log_index(req, now) << LOG_SHIFT
            self._check_nonce(req, now, replay_window)
            try:
                ack = self._store(req, now, base)
            except frame.FrameError as e:
                e.device = req.device  # proved by the MAC: whose sync stops here (alerts.refused)
                raise
            self.note_change(req.device)
            window = self.device_window(req.device)
            s = self.settings_for(req.device)
            settings = None
            if s["version"] != req.settings_version:
                settings = json.dumps(s, ensure_ascii=False, separators=(",", ":")).encode()
            roster = None
            rv = int(self.db.value("SELECT version FROM rosters WHERE win = ?", (window,), 0))
            if rv and rv != req.roster_version:
                roster = self.roster_text(window)
            try:
                answer = frame.answer(keys[req.device], req.mac, ack, max(now, 0), settings, roster)
                if len(answer) > frame.ANSWER_MAX:
                    raise ValueError(f"{len(answer)} bytes")
            except (ValueError, OverflowError, struct.error) as e:
                raise AnswerError(
                    f"the answer to {req.device} does not fit a frame ({e}): its settings "
                    f"({len(settings or b'')} bytes) or its window's roster "
                    f"({len(roster or b'')} bytes) is too large; nothing was stored") from None
        return answer

    def _lock_device(self, device: str) -> None:
        """A device's frames are stored one at a time, whichever serve process took them:
        a retry through another process behind the proxy waits for the first attempt and
        then finds its records stored (a replay). Within a process the write lock does it,
        on SQLite its write lock; on PostgreSQL the device's row does."""
        if self.db.postgres:
            self.db.one("SELECT id FROM devices WHERE id = ? FOR UPDATE", (device,))

    def _log_index(self, req: frame.Request, now: int) -> int:
        """The collector's index of the frame's log on its device: a log id seen
        before keeps its index; a new one is a new log (a wiped, re-flashed or
        replaced flash), unless it is the first id of a device that synced
        before log ids, going on with that log (its frame starts past seq 1, or
        nothing of the old log is stored). Version 1 frames: index 0."""
        db = self.db
        dev = req.device
        if req.log_id is None:
            if not db.one("SELECT 1 FROM logs WHERE device = ? AND idx = 0", (dev,)):
                db.execute("INSERT INTO logs (device, idx, log_id, first_seen) "
                           "VALUES (?, 0, NULL, ?)", (dev, now))
            return 0
        idx = db.value("SELECT idx FROM logs WHERE device = ? AND log_id = ?", (dev, req.log_id))
        if idx is not None:
            return int(idx)
        if db.one("SELECT 1 FROM logs WHERE device = ? AND idx = 0 AND log_id IS NULL", (dev,)) \
                and (req.first > 1 or not db.one("SELECT 1 FROM records WHERE device = ? "
                                                 "AND seq <= ?", (dev, DEVICE_SEQ))):
            db.execute("UPDATE logs SET log_id = ? WHERE device = ? AND idx = 0",
                       (req.log_id, dev))
            return 0
        idx = int(db.value("SELECT MAX(idx) FROM logs WHERE device = ?", (dev,), -1)) + 1
        if idx == 0 and db.one("SELECT 1 FROM records WHERE device = ?", (dev,)):
            idx = 1  # records of version 1 frames hold index 0
        db.execute("INSERT INTO logs (device, idx, log_id, first_seen) VALUES (?, ?, ?, ?)",
                   (dev, idx, req.log_id, now))
        return idx

    def _check_nonce(self, req: frame.Request, now: int, replay_window: bool) -> None:
        """A nonce is taken once. Over the network, also no older than the replay window:
        a device's nonce is its clock (firmware/frame.py next_nonce), increasing, so a
        frame is taken if its nonce is newer than the device's newest yet, or unseen and
        within NONCE_WINDOW_S of the collector's clock; a captured frame replayed later
        is neither (the nonces of the window are remembered, older ones need not be).
        A nonce made with the clock unknown (NONCE_UNTIMED) is remembered for good."""
        db = self.db
        n = req.nonce
        if db.one("SELECT 1 FROM nonces WHERE device = ? AND nonce = ?", (req.device, n)):
            raise frame.FrameError("replayed", f"nonce {n} seen before")
        if replay_window and not n & frame.NONCE_UNTIMED:
            newest = int(db.value("SELECT nonce_hi FROM devices WHERE id = ?", (req.device,), 0))
            if n > newest:
                db.execute("UPDATE devices SET nonce_hi = ? WHERE id = ?", (n, req.device))
            elif not now - NONCE_WINDOW_S <= n <= now + NONCE_AHEAD_S:
                raise frame.FrameError("stale", f"made {iso(n, self.hall_tz_min())} by its nonce, "
                                   f"outside the {NONCE_WINDOW_S // 86400}-day window, and "
                                   "the device has sent newer ones")
        db.execute("INSERT INTO nonces (device, nonce, seen) VALUES (?, ?, ?)",
                   (req.device, n, now))
        if n % 64 == 0:  # now and then: forget the timed nonces the window refuses anyway
            db.execute("DELETE FROM nonces WHERE device = ? AND nonce < ? AND nonce < ? "
                       "AND seen < ?", (req.device, frame.NONCE_UNTIMED, now - NONCE_WINDOW_S,
                                        now - NONCE_WINDOW_S))

    def _store(self, req: frame.Request, now: int, log_base: int) -> int:
        """Store the frame's records not stored yet; the ack: the last seq of
        the frame (every record in it is stored once this commits)."""
        db = self.db
        dev = req.device
        # the last seq stored of this log (a new log starts from nothing)
        last_seq = int(db.value("SELECT MAX(seq) FROM records WHERE device = ? AND seq BETWEEN "
                                "? AND ?", (dev, log_base, log_base | DEVICE_SEQ), log_base))
        last_seq &= DEVICE_SEQ
        recs = [record.unpack(req.records, i * record.SIZE) for i in range(req.count)]
        for r in recs:  # every field in range, or the frame is refused before any write
            checks.record_fields(r)
        checks.seq_jumps(req.first, int(last_seq), [r[0] for r in recs])
        db.execute("UPDATE devices SET last_seen = ?, frames = frames + 1, boot = ?, "
                   "settings_version = ?, roster_version = ? WHERE id = ?",
                   (now, req.boot, req.settings_version, req.roster_version, dev))
        if req.count == 0:
            return max(req.first - 1, 0)  # nothing to store: what the device says it had
        # seqs as stored: the log's index in the high bits (one history a device)
        recs = [(log_base | r[0],) + r[1:] for r in recs]
        lo, hi = recs[0][0], recs[-1][0]
        have = {r[0] for r in db.all(
            "SELECT seq FROM records WHERE device = ? AND seq BETWEEN ? AND ?", (dev, lo, hi))}
        if all(r[0] in have for r in recs):
            return hi & DEVICE_SEQ  # a replay: every record of it is stored already
        window = self.device_window(dev)
        slots = self.slot_staff(window)
        believe = checks.TimeWindow(now)
        boot = int(db.value("SELECT boot FROM records WHERE device = ? AND seq < ? AND seq >= ? "
                            "ORDER BY seq DESC LIMIT 1", (dev, lo, log_base), log_base))
        offsets = {b: d for b, d in db.all(
            "SELECT boot, delta FROM clock_offsets WHERE device = ?", (dev,))}
        new_offsets: dict[int, int] = {}
        rows: list[tuple] = []
        events: list[tuple] = []
        reasons: list[tuple] = []
        flags: list[tuple] = []
        bad_ratings: dict[int, int] = {}  # seq -> boot of this frame's 不满意, for reasons
        chunks: list[tuple[int, bytes]] = []  # (seq, chunk) of the next rating's ticket
        tz = self.hall_tz_min()
        for i, r in enumerate(recs):
            seq, kind, val, arg, slot, t = r
            if kind == record.BOOT:
                boot = log_base | logview.data24(r)
            elif kind == record.CLOCK_SET and seq not in have:
                if believe.holds(t):
                    offsets[boot] = new_offsets[boot] = t - logview.data24(r)
                else:  # a clock no one should take: its boot's times stay unknown
                    flags.append((dev, seq, "clock", f"clock set to {iso(t, tz)}, outside "
                                  "the window around the collector's clock", now))
            if kind == record.TICKET:
                chunks.append((seq, logview.ticket_chunk(req.records, i * record.SIZE)))
            if seq in have:
                if kind in (record.RATING, record.NO_RATING):
                    chunks = []
                continue
            rows.append((dev, seq, kind, val, arg, slot, t, boot, now))
            uptime = None
            when: int | None = t
            if kind == record.OVERFLOW and val == checks.OVERFLOW_LOST or kind in (
                    record.REASON, record.TICKET, record.CLOCK_SET):
                # no time to believe: a count of lost records, a reason, a ticket chunk;
                # a clock set was looked at above
                when = None
            elif t & record.REL:
                uptime = t & ~record.REL
                d = offsets.get(boot)
                when = None if d is None else d + uptime
            if not believe.holds(when):
                flags.append((dev, seq, "time", f"{logview.KIND_NAMES[kind]} at {iso(when, tz)}, "
                              "outside the window around the collector's clock: stored "
                              "with its time unknown", now))
                when = uptime = None
            base = (dev, seq)
            staff_no = slots.get(slot) if slot else None
            if kind in (record.RATING, record.NO_RATING):
                ticket = self._ticket(dev, chunks, lo if i == len(chunks) else None)
                chunks = []
                if kind == record.RATING and val == 4:
                    bad_ratings[seq] = boot
                events.append(base + ("rating" if kind == record.RATING else "no_rating", window,
                                      slot, staff_no, val if kind == record.RATING else 0, arg,
                                      None, ticket, None, None, None, None, None, boot,
                                      uptime, when))
            elif kind == record.REASON:
                rating = log_base | t  # t: its rating's seq in this log
                self._check_reason(dev, seq, rating, boot, bad_ratings, reasons)
                reasons.append((val, dev, rating))
            elif kind == record.STATUS:
                events.append(base + ("status", window, slot, staff_no, None, None, None, None,
                                      val >> 4 & 15, val & 15, arg & 0x7F,
                                      1 if arg & record.FLAGGED else 0, None, boot, uptime, when))
            elif kind in (record.STRAY, record.DROPPED):
                events.append(base + ("stray" if kind == record.STRAY else "dropped", window, slot, staff_no, None, None,
                                      None, None, None, None, None, None, logview.data16(r), boot,
                                      uptime, when))
            elif kind == record.OVERFLOW:
                events.append(base + ("overflow", window, 0, None, val, None, None, None, None,
                                      None, None, None, arg | slot << 8, boot, uptime, when))
            elif kind == record.BOOT_WHY:  # why the device booted: level holds the BOOT_* code
                events.append(base + ("boot", window, 0, None, val, None, None, None, None,
                                      None, None, None, None, boot, uptime, when))
            elif kind == record.ALERT:  # level: the alert's code, mode: 1 raised, 0 cleared
                events.append(base + ("alert", window, 0, None, val, arg, None, None, None,
                                      None, None, None, None, boot, uptime, when))
            elif kind == record.UNKNOWN_BADGE:  # count: the badge's keyed tag, not its UID
                events.append(base + ("unknown_badge", window, 0, None, None, None, None, None,
                                      None, None, None, None, logview.data24(r), boot, uptime,
                                      when))
            elif kind == record.FLAG:
                events.append(base + ("flag", window, slot, staff_no, val, None, None, None,
                                      None, None, None, None, None, boot, uptime, when))
        roll = _Roll(db, dev, self._device_hall(dev), events, new_offsets)
        db.executemany("INSERT INTO records (device, seq, kind, val, arg, staff, time, boot, "
                       "received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                       "ON CONFLICT (device, seq) DO NOTHING", rows)
        db.executemany("INSERT INTO events (device, seq, kind, win, slot, staff_no, level, mode, "
                       "reason, ticket, from_state, to_state, why, flagged, count, boot, "
                       "uptime, t) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                       "ON CONFLICT (device, seq) DO NOTHING", events)
        db.executemany("UPDATE events SET reason = ? WHERE device = ? AND seq = ? "
                       "AND kind = 'rating'", reasons)
        db.executemany("INSERT INTO flags (device, seq, what, detail, received) "
                       "VALUES (?, ?, ?, ?, ?) ON CONFLICT (device, seq, what) DO NOTHING", flags)
        for b, d in new_offsets.items():
            db.execute(db.upsert_sql("clock_offsets", ("device", "boot", "delta"),
                                     ("device", "boot")), (dev, b, d))
            # records of that boot stored before its clock was known get real times now,
            # those the window does not believe excepted
            roll.dated(b, d, believe.lo, believe.hi)
            db.execute("UPDATE events SET t = ? + uptime WHERE device = ? AND boot = ? "
                       "AND t IS NULL AND uptime IS NOT NULL AND ? + uptime >= ? "
                       "AND ? + uptime < ?", (d, dev, b, d, believe.lo, d, believe.hi))
        from host_tools.collector import cases  # a case for every 差评 (cases.py imports us)
        cases.open_cases(db, dev, sorted(bad_ratings), bool(new_offsets), now)
        db.execute("UPDATE devices SET last_seq = ? WHERE id = ? AND last_seq < ?",
                   (hi, dev, hi))
        roll.done()
        return hi & DEVICE_SEQ

    def _device_hall(self, device: str) -> str:
        return str(self.db.value("SELECT hall FROM devices WHERE id = ?", (device,), DEFAULT_HALL))

    def _check_reason(self, dev: str, seq: int, rating: int, boot: int,
                      bad_ratings: dict[int, int], taken: list[tuple]) -> None:
        """A reason is for a 不满意 of the same device and boot, at most REASON_GAP
        records before it, that has no reason yet; FrameError bad_field otherwise (a
        reason must not rewrite another rating's)."""
        why = None
        if not 0 < seq - rating <= checks.REASON_GAP:
            why = f"its rating (seq {rating}) is not among the {checks.REASON_GAP} records before it"
        elif any(r[2] == rating for r in taken):
            why = f"rating seq {rating} has a reason already"
        elif rating in bad_ratings:
            if bad_ratings[rating] != boot:
                why = f"rating seq {rating} is of an earlier boot"
        else:
            row = self.db.one("SELECT level, boot, reason FROM events WHERE device = ? "
                              "AND seq = ? AND kind = 'rating'", (dev, rating))
            if row is None or row[0] != 4:
                why = f"seq {rating} is no 不满意 rating"
            elif row[1] != boot:
                why = f"rating seq {rating} is of an earlier boot"
            elif row[2] is not None:
                why = f"rating seq {rating} has a reason already"
        if why:
            raise frame.FrameError("bad_field", f"record seq {seq}: a reason, but {why}")

    def _ticket(self, dev: str, chunks: list[tuple[int, bytes]], lo: int | None) -> str | None:
        """The ticket of a rating from the TICKET records right before it. lo: the
        frame's first seq when the chunks run from the frame's start, so earlier
        chunks may have come in the previous frame."""
        parts = [c for _s, c in chunks]
        if lo is not None:
            back = record.TICKET_MAX // record.TICKET_CHUNK - len(parts)
            prev = self.db.all("SELECT seq, kind, val, arg, staff, time FROM records "
                               "WHERE device = ? AND seq BETWEEN ? AND ? ORDER BY seq DESC",
                               (dev, lo - back, lo - 1)) if back > 0 else []
            expect = lo - 1
            for s, kind, val, arg, staff, t in prev:
                if s != expect or kind != record.TICKET:
                    break
                parts.insert(0, logview.ticket_chunk(record.pack(s, kind, val, arg, staff, t)))
                expect -= 1
        if not parts:
            return None
        try:
            text = logview.ticket_text(parts)
        except UnicodeError:
            return None
        # a NUL inside is no ticket a queue system prints (chunks padded in the middle);
        # PostgreSQL's text cannot hold one, so both backends keep such a ticket unknown
        return None if "\x00" in text else text


_EV_SEQ, _EV_KIND, _EV_WIN, _EV_SLOT, _EV_LEVEL, _EV_MODE, _EV_COUNT, _EV_T = 1, 2, 3, 4, 6, 7, 14, 17


class _Roll:
    """One frame's changes to the rollups (rollups.py), made in its transaction: the
    counted events it adds, those whose time it makes known, and the difference it
    makes to its device's status intervals (taken before and after its writes)."""

    def __init__(self, db: Database, device: str, hall: str, events: list[tuple],
                 new_offsets: dict[int, int]):
        self.db, self.device, self.hall = db, device, hall
        tz = rollups.built_tz(db)
        self.tz = settings_mod.DEFAULTS["tz_min"] if tz is None else tz
        self.acc: dict[rollups.Key, list[int]] = {}
        for e in events:
            if e[_EV_KIND] in rollups.COUNTED:
                rollups.add(self.acc, self._key(e[_EV_WIN], e[_EV_SLOT], e[_EV_T]),
                            rollups.counters(e[_EV_KIND], e[_EV_LEVEL], e[_EV_MODE],
                                             e[_EV_COUNT]))
        first = [e[_EV_SEQ] for e in events if e[_EV_KIND] == "status"]
        for b in new_offsets:  # undated changes of a boot whose clock this frame sets
            s = db.value("SELECT MIN(seq) FROM events WHERE device = ? AND boot = ? AND "
                         "kind = 'status' AND t IS NULL AND uptime IS NOT NULL", (device, b))
            if s is not None:
                first.append(int(s))
        self.start = rollups.status_from(db, device, min(first)) if first else None
        self.before = self._status()

    def _key(self, win: str, slot: int, t: int | None) -> rollups.Key:
        return (self.hall, win, slot, rollups.hour_of(t, self.tz))

    def _status(self) -> dict[rollups.Key, list[int]]:
        if self.start is None:
            return {}
        return rollups.status_contrib(self.db, self.device, self.hall, self.start, self.tz)

    def dated(self, boot: int, delta: int, lo: int, hi: int) -> None:
        """Before store.py dates a boot's undated records: move their counts from the
        unknown hour to theirs (the same rows its UPDATE takes)."""
        for kind, win, slot, level, mode, count, uptime in self.db.all(
                "SELECT kind, win, slot, level, mode, count, uptime FROM events WHERE "
                "device = ? AND boot = ? AND t IS NULL AND uptime IS NOT NULL AND ? + uptime "
                ">= ? AND ? + uptime < ? AND kind IN ('rating', 'no_rating', 'stray', "
                "'dropped')", (self.device, boot, delta, lo, delta, hi)):
            v = rollups.counters(kind, level, mode, count)
            rollups.add(self.acc, self._key(win, slot, None), v, -1)
            rollups.add(self.acc, self._key(win, slot, delta + uptime), v)

    def done(self) -> None:
        for k, v in rollups.diff(self._status(), self.before).items():
            rollups.add(self.acc, k, v)
        rollups.apply(self.db, self.acc)
