"""The staff roster CSV (design.md section 6): badge_uid, staff_no, name, department,
windows (separated by ';'), UTF-8 with or without BOM, as Excel writes it."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from firmware import roster as roster_mod
from firmware.roster import normalize_uid
from host_tools.errors import PingjiaError

COLUMNS = ("badge_uid", "staff_no", "name", "department", "windows")


class RosterError(PingjiaError, ValueError):
    pass


@dataclass
class Staff:
    badge_uid: str
    staff_no: str
    name: str
    department: str = ""
    windows: list[str] = field(default_factory=list)

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
        if not any((v or "").strip() for v in row.values()):
            continue
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
        out.append(Staff(uid, no, name, (row["department"] or "").strip(), wins))
    return out


def load(path: str | Path) -> list[Staff]:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise RosterError(f"{p}: {e.strerror}") from None
    return parse_bytes(data, str(p))


def parse_bytes(data: bytes, source: str = "roster") -> list[Staff]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RosterError(f"{source}: not UTF-8 (save the CSV as 'CSV UTF-8')") from None
    return parse(text, source)


def device_roster(staff: list[Staff], window: str, version: int = 1) -> bytes:
    """The device's roster.txt: the staff who serve this window, slot = position."""
    return roster_mod.dumps(version, [(s.badge_uid, s.staff_no, s.name)
                                      for s in staff if s.serves(window)])
