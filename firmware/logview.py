# The log as its readers see it: records -> readable dicts, with the names of
# kinds, levels and reasons. The virtual device's `log`, USB pulls and the
# collector read the log the same way. Runs on MicroPython and CPython; the
# device's own logic never loads it (what only readers need lives here).
from firmware import record
from firmware.clock import iso
from firmware.const import const

KIND_NAMES = {
    record.BOOT: "boot",
    record.CLOCK_SET: "clock_set",
    record.STATUS: "status",
    record.RATING: "rating",
    record.NO_RATING: "no_rating",
    record.REASON: "reason",
    record.TICKET: "ticket",
    record.STRAY: "stray",
    record.DROPPED: "dropped",
    record.FLAG: "flag",
    record.OVERFLOW: "overflow",
    record.CONFIG: "config",
    record.UNKNOWN_BADGE: "unknown_badge",
    record.BOOT_WHY: "boot_why",
    record.ALERT: "alert",
}
WHY_NAMES = ("boot", "key", "badge", "timeout", "schedule", "clock", "settings")
FLAG_NAMES = ("", "wait_overlong")
LEVEL_NAMES = ("", "非常满意", "满意", "基本满意", "不满意")
REASON_NAMES = ("", "等候时间长", "服务态度不好", "业务不熟悉/解释不清", "其他")

_STATE_MASK = const(0x0F)  # a status val: to | from << 4
_WHY_MASK = const(0x7F)  # a status arg: why | record.FLAGGED
# kinds whose time is no moment of their own: a reason's is its rating's seq, a
# ticket's is ticket bytes, the tallies' is the hour they count
_NO_MOMENT = (record.REASON, record.TICKET, record.STRAY, record.DROPPED, record.OVERFLOW)
_WITH_STAFF = (record.RATING, record.NO_RATING, record.STATUS, record.REASON, record.FLAG,
               record.STRAY, record.DROPPED)


def scan(records):
    """First pass: reasons by rating seq, and each boot's wall-clock offset."""
    reasons = {}
    offsets = {}
    boot = 0
    for r in records:
        kind = r[1]
        if kind == record.BOOT:
            boot = data24(r)
        elif kind == record.REASON:
            reasons[r[5]] = r[2]
        elif kind == record.CLOCK_SET:
            offsets[boot] = r[5] - data24(r)
    return reasons, offsets


def decode(records, reasons, offsets, staff, tz_min=480):
    """Second pass: one dict per record, oldest first. staff(slot) -> (uid, no, name) or None."""
    boot = 0
    chunks = []  # the ticket chunks before a rating or no_rating
    for r in records:
        seq, kind, val, arg, slot, t = r[:6]
        if kind == record.TICKET:
            chunks.append(ticket_chunk(record.pack(*r[:6])))
        elif kind == record.BOOT:
            boot = data24(r)
        d = {"seq": seq, "kind": KIND_NAMES.get(kind, "kind%d" % kind)}
        if kind not in _NO_MOMENT:
            _moment(d, t, boot, offsets, tz_min)
        if kind in _WITH_STAFF:
            e = staff(slot) if slot else None
            d["staff_no"] = e[1] if e else None
            d["staff_name"] = e[2] if e else None
        if kind == record.RATING or kind == record.NO_RATING:
            d["ticket"] = ticket_text(chunks) if chunks else None
            chunks = []
        _fields(d, r, boot, offsets, tz_min, reasons)
        yield d


def _moment(d, t, boot, offsets, tz_min):
    """A record's time: ISO in the hall's zone, or (boot, uptime) and the time once
    the boot's clock offset is known."""
    if t & record.REL:
        d["time"] = _when(t, boot, offsets, tz_min)
        d["boot"] = boot
        d["uptime"] = t & ~record.REL
    else:
        d["time"] = iso(t, tz_min)


def _fields(d, r, boot, offsets, tz_min, reasons):
    """What a record of its kind says, into d."""
    seq, kind, val, arg, slot, t = r[:6]
    if kind == record.RATING:
        d["level"] = val
        d["level_name"] = _name(LEVEL_NAMES, val)
        d["mode"] = "free" if arg == record.FREE else "invite"
        rs = reasons.get(seq)
        d["reason"] = rs
        d["reason_text"] = _name(REASON_NAMES, rs) if rs is not None else None
    elif kind == record.NO_RATING:
        d["cancelled"] = arg == record.CANCELLED
    elif kind == record.STATUS:
        d["from"] = _name(record.STATE_NAMES, val >> 4)
        d["to"] = _name(record.STATE_NAMES, val & _STATE_MASK)
        d["why"] = _name(WHY_NAMES, arg & _WHY_MASK)
        d["flagged"] = bool(arg & record.FLAGGED)
    elif kind == record.REASON:
        d["rating_seq"] = t
        d["reason"] = val
        d["reason_text"] = _name(REASON_NAMES, val)
    elif kind == record.TICKET:
        d["chunk"] = ticket_chunk(record.pack(*r[:6])).rstrip(b"\x00").decode()
    elif kind == record.STRAY or kind == record.DROPPED:
        d["hour"] = _when(t, boot, offsets, tz_min)
        d["count"] = data16(r)
    elif kind == record.OVERFLOW:
        d["hour"] = _when(t, boot, offsets, tz_min)
        d["level"] = val
        d["count"] = arg | slot << 8
    elif kind == record.FLAG:
        d["flag"] = FLAG_NAMES[val] if val < len(FLAG_NAMES) else val
    elif kind in (record.BOOT, record.CLOCK_SET, record.UNKNOWN_BADGE):
        d["value"] = data24(r)
    elif kind == record.CONFIG:
        d["what"] = "settings" if val == record.CONFIG_SETTINGS else "roster"
        d["version"] = arg | slot << 8


def _name(names, i):
    """names[i] for a number a record holds; None where it names nothing (out of
    range, or the "" of no level, no reason)."""
    return (names[i] or None) if 0 <= i < len(names) else None


def _when(t, boot, offsets, tz_min):
    if t & record.REL:
        off = offsets.get(boot)
        return iso(off + (t & ~record.REL), tz_min) if off is not None else None
    return iso(t, tz_min)


def data16(r):
    return r[2] | r[3] << 8


def data24(r):
    return r[2] | r[3] << 8 | r[4] << 16


def ticket_chunk(buf, off=0):
    return bytes(buf[off + 5 : off + 12])


def ticket_text(chunks):
    return b"".join(chunks).rstrip(b"\x00").decode()
