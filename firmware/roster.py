# The staff roster on the device: badge UID -> (slot, staff_no, name).
# Slots are 1-based positions in the roster, stored in records.
#
# The roster file (roster.txt, as the collector pushes it) is UTF-8 text:
#   PJR1 <version> <lines>         (<lines>: the slots below, so a file cut
#                                  short is refused; rosters without it are taken)
#   <UID>\t<staff_no>\t<name>      one line a slot, up to 254
# The device keeps the file's bytes as they are and looks things up in them:
# no parse into objects (a tuple of three strings costs some 500 bytes of heap
# here, a line about 30), so a full roster needs a few KB and no JSON.

from firmware.const import const

_MAX_STAFF = const(254)
_UID_HEX = const((8, 14, 20))  # 4-, 7- and 10-byte UIDs as hex digits
_FIELDS = const(3)  # a line: UID, staff_no, name


def normalize_uid(uid):
    """Hex UID text -> upper-case hex without separators; ValueError if it is not a UID."""
    u = uid.strip().replace(":", "").replace("-", "").replace(" ", "").upper()
    # bytes, not the str: iterating a str interns each character as a qstr
    if len(u) not in _UID_HEX or any(c not in b"0123456789ABCDEF" for c in u.encode()):
        raise ValueError("bad badge UID: " + uid)
    return u


def dumps(version, staff):
    """The roster text of [(uid, staff_no, name)] (the collector and tests write it)."""
    out = ["PJR1 %d %d\n" % (version, len(staff))]
    for e in staff:
        out.append("%s\t%s\t%s\n" % (normalize_uid(e[0]), e[1], e[2]))
    return "".join(out).encode()


class Roster:
    def __init__(self, data=b"PJR1 0\n"):
        """data: roster text (bytes); ValueError naming the line if it is not one."""
        nl = data.find(b"\n")
        if not data.startswith(b"PJR1 ") or nl < 0:
            raise ValueError("not a roster (no PJR1 header line)")
        head = data[5:nl].split(b" ")
        self.version = int(head[0])
        rows = data[nl:]  # every line starts after a "\n", so a lookup can anchor on it
        if not rows.endswith(b"\n"):
            rows += b"\n"
        n = 0
        i = 0
        while i < len(rows) - 1:
            j = rows.find(b"\n", i + 1)
            n += 1
            f = str(rows[i + 1 : j], "utf-8").split("\t")
            if len(f) != _FIELDS or normalize_uid(f[0]) != f[0] or n > _MAX_STAFF:
                raise ValueError("roster line %d: not UID<tab>staff_no<tab>name" % (n + 1))
            i = j
        if len(head) > 1 and (int(head[1]) != n or not data.endswith(b"\n")):
            raise ValueError("roster cut short: %d of %s lines" % (n, str(head[1], "utf-8")))
        self.count = n
        self._rows = rows
        self._last = None  # (slot, entry): the sign asks for the one on duty again and again

    def lookup(self, uid):
        """Slot of a badge, 0 if unknown."""
        i = self._rows.find(b"\n" + uid.encode() + b"\t")
        return self._rows.count(b"\n", 0, i + 1) if i >= 0 else 0

    def entry(self, slot):
        """(uid, staff_no, name) of a slot, or None."""
        if not 0 < slot <= self.count:
            return None
        last = self._last
        if last is None or last[0] != slot:
            r = self._rows
            a = 0
            for _ in range(slot):
                a = r.find(b"\n", a) + 1
            last = self._last = (slot, tuple(str(r[a : r.find(b"\n", a)], "utf-8").split("\t")))
        return last[1]


def load(path):
    """(roster, error text or None). A corrupt file gives an empty roster and says so."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return Roster(), None
    try:
        return Roster(data), None
    except ValueError as e:  # UnicodeError is a ValueError too
        return Roster(), str(e)
