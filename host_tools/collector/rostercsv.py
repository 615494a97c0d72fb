"""The staff roster CSV (design.md section 6): badge_uid, staff_no, name, department,
windows (separated by ';'), UTF-8 with or without BOM, as Excel writes it."""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from firmware import roster as roster_mod
from firmware.roster import normalize_uid
from host_tools.errors import PingjiaError

COLUMNS = ("badge_uid", "staff_no", "name", "department", "windows")
# what a field may hold: the device keeps staff_no and name on a 128 KB heap and draws the
# name on the sign; the office's spreadsheets take every field
FIELD_MAX = {"staff_no": 16, "name": 16, "department": 32, "windows": 200}
WINDOW_MAX = 16
ROSTER_FILE_MAX = 1 << 20  # a roster CSV: some thousand staff fit many times over


class RosterError(PingjiaError, ValueError):
    pass


@dataclass
class Staff:
    badge_uid: str
    staff_no: str
    name: str
    department: str = ""
    windows: list[str] = field(default_factory=list)
    line: int = 0  # where it stands in the CSV, for messages

    def serves(self, window: str) -> bool:
        return not self.windows or window in self.windows


def parse(text: str, source: str = "roster") -> list[Staff]:
    """Rows of a roster CSV; RosterError names the line of the first problem."""
    text = text.lstrip("\ufeff")
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise RosterError(f"{source}: missing column(s): {', '.join(missing)} "
                          f"(need {', '.join(COLUMNS)})")
    reader.fieldnames = header
    out: list[Staff] = []
    uids: dict[str, int] = {}
    nos: dict[str, int] = {}
    for i, row in enumerate(reader, start=2):
        if None in row:  # more cells than columns: a comma too many, or a shifted row
            raise RosterError(f"{source} line {i}: more cells than the header's columns")
        if not any((v or "").strip() for v in row.values()):
            continue
        for col in COLUMNS:
            _check_text(source, i, col, row[col] or "")
        try:
            uid = normalize_uid(row["badge_uid"] or "")
        except ValueError:
            raise RosterError(f"{source} line {i}: bad badge_uid {row['badge_uid']!r} "
                              "(hex, 4, 7 or 10 bytes)") from None
        no = (row["staff_no"] or "").strip()
        name = (row["name"] or "").strip()
        if not no or not name:
            raise RosterError(f"{source} line {i}: staff_no and name are required")
        if uid in uids:
            raise RosterError(f"{source} line {i}: badge {uid} already on line {uids[uid]}")
        if no in nos:
            raise RosterError(f"{source} line {i}: staff_no {no} already on line {nos[no]}")
        uids[uid] = nos[no] = i
        wins = [w.strip() for w in (row["windows"] or "").split(";") if w.strip()]
        for w in wins:
            if len(w) > WINDOW_MAX:
                raise RosterError(f"{source} line {i}: window {w!r} longer than "
                                  f"{WINDOW_MAX} characters")
        out.append(Staff(uid, no, name, (row["department"] or "").strip(), wins, i))
    return out


def _check_text(source: str, line: int, col: str, text: str) -> None:
    """No control or format character (a tab or line break would break the device's
    roster file; bidi marks disguise text), nothing over the field's length."""
    for c in text:
        if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            raise RosterError(f"{source} line {line}: {col} holds the control character "
                              f"U+{ord(c):04X}; remove it")
    most = FIELD_MAX.get(col)
    if most is not None and len(text.strip()) > most:
        raise RosterError(f"{source} line {line}: {col} is {len(text.strip())} characters, "
                          f"more than {most}")


def load(path: str | Path) -> list[Staff]:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise RosterError(f"{p}: {e.strerror}") from None
    return parse_bytes(data, str(p))


def parse_bytes(data: bytes, source: str = "roster") -> list[Staff]:
    if len(data) > ROSTER_FILE_MAX:
        raise RosterError(f"{source}: {len(data)} bytes, more than a roster's "
                          f"{ROSTER_FILE_MAX}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RosterError(f"{source}: not UTF-8 (save the CSV as 'CSV UTF-8')") from None
    return parse(text, source)


def device_roster(staff: list[Staff], window: str, version: int = 1) -> bytes:
    """The device's roster.txt: the staff who serve this window, slot = position."""
    return roster_mod.dumps(version, [(s.badge_uid, s.staff_no, s.name)
                                      for s in staff if s.serves(window)])
