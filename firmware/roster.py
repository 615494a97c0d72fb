# The staff roster on the device: badge UID -> (slot, staff_no, name).
# Slots are 1-based positions in the roster file, stored in records.
from firmware import storage


def normalize_uid(uid):
    """Hex UID text -> upper-case hex without separators; ValueError if it is not a UID."""
    u = uid.strip().replace(":", "").replace("-", "").replace(" ", "").upper()
    if len(u) not in (8, 14, 20) or any(c not in "0123456789ABCDEF" for c in u):
        raise ValueError("bad badge UID: " + uid)
    return u


class Roster:
    def __init__(self, entries=(), version=0):
        self.version = version
        self.staff = []  # [(uid, staff_no, name)], slot = index + 1
        self._by_uid = {}
        for e in entries:
            uid, no, name = normalize_uid(e[0]), str(e[1]), str(e[2])
            self.staff.append((uid, no, name))
            self._by_uid[uid] = len(self.staff)

    def lookup(self, uid):
        """Slot of a badge, 0 if unknown."""
        return self._by_uid.get(uid, 0)

    def entry(self, slot):
        if 0 < slot <= len(self.staff):
            return self.staff[slot - 1]
        return None

    def to_json(self):
        return {"version": self.version, "staff": [list(e) for e in self.staff]}


def from_json(obj):
    if not isinstance(obj, dict) or not isinstance(obj.get("staff"), list):
        raise ValueError("roster must be an object with a staff list")
    if len(obj["staff"]) > 254:
        raise ValueError("roster holds at most 254 staff per device")
    for e in obj["staff"]:
        if not isinstance(e, list) or len(e) != 3:
            raise ValueError("roster entries are [uid, staff_no, name]")
    return Roster(obj["staff"], int(obj.get("version", 0)))


def load(path):
    """(roster, error text or None). A corrupt file gives an empty roster and says so."""
    try:
        return from_json(storage.load_json(path, {"staff": []})), None
    except ValueError as e:
        return Roster(), str(e)
