# Records -> readable dicts: the virtual device's `log`, USB pulls and the
# collector read the log the same way. Runs on MicroPython and CPython; the
# firmware itself never loads it (what only readers need lives here).
from firmware import record as R
from firmware.clock import days_from_civil, iso

KIND_NAMES = {
    R.BOOT: "boot",
    R.CLOCK_SET: "clock_set",
    R.STATUS: "status",
    R.RATING: "rating",
    R.NO_RATING: "no_rating",
    R.REASON: "reason",
    R.TICKET: "ticket",
    R.STRAY: "stray",
    R.DROPPED: "dropped",
    R.FLAG: "flag",
    R.OVERFLOW: "overflow",
    R.CONFIG: "config",
    R.UNKNOWN_BADGE: "unknown_badge",
}
WHY_NAMES = ("boot", "key", "badge", "timeout", "schedule", "clock", "settings")
FLAG_NAMES = ("", "wait_overlong")
LEVEL_NAMES = ("", "非常满意", "满意", "基本满意", "不满意")
REASON_NAMES = ("", "等候时间长", "服务态度不好", "业务不熟悉/解释不清", "其他")


def scan(records):
    """First pass: reasons by rating seq, and each boot's wall-clock offset."""
    reasons = {}
    offsets = {}
    boot = 0
    for r in records:
        kind = r[1]
        if kind == R.BOOT:
            boot = data24(r)
        elif kind == R.REASON:
            reasons[r[5]] = r[2]
        elif kind == R.CLOCK_SET:
            offsets[boot] = r[5] - data24(r)
    return reasons, offsets


def decode(records, reasons, offsets, staff, tz_min=480):
    """Second pass: one dict per record, oldest first. staff(slot) -> (uid, no, name) or None."""
    boot = 0
    chunks = []
    for r in records:
        seq, kind, val, arg, slot, t = r[:6]
        if kind == R.TICKET:
            chunks.append(ticket_chunk(R.pack(*r[:6])))
        if kind == R.BOOT:
            boot = data24(r)
        d = {"seq": seq, "kind": KIND_NAMES.get(kind, "kind%d" % kind)}
        if kind in (R.REASON, R.TICKET, R.STRAY, R.DROPPED, R.OVERFLOW):
            pass
        elif t & R.REL:
            up = t & ~R.REL
            off = offsets.get(boot)
            d["time"] = iso(off + up, tz_min) if off is not None else None
            d["boot"] = boot
            d["uptime"] = up
        else:
            d["time"] = iso(t, tz_min)
        e = staff(slot) if slot else None
        if kind in (R.RATING, R.NO_RATING, R.STATUS, R.REASON, R.FLAG, R.STRAY, R.DROPPED):
            d["staff_no"] = e[1] if e else None
            d["staff_name"] = e[2] if e else None
        if kind == R.RATING:
            d["level"] = val
            d["level_name"] = LEVEL_NAMES[val] if 0 < val < 5 else None
            d["mode"] = "free" if arg == 1 else "invite"
            rs = reasons.get(seq)
            d["reason"] = rs
            d["reason_text"] = REASON_NAMES[rs] if rs and 0 < rs < 5 else None
        if kind in (R.RATING, R.NO_RATING):
            d["ticket"] = ticket_text(chunks) if chunks else None
            chunks = []
            if kind == R.NO_RATING:
                d["cancelled"] = arg == 1
        elif kind == R.STATUS:
            d["from"] = R.STATE_NAMES[val >> 4 & 7] if (val >> 4) < 6 else None
            d["to"] = R.STATE_NAMES[val & 15] if (val & 15) < 6 else None
            d["why"] = WHY_NAMES[arg & 0x7F] if (arg & 0x7F) < len(WHY_NAMES) else None
            d["flagged"] = bool(arg & R.FLAGGED)
        elif kind == R.REASON:
            d["rating_seq"] = t
            d["reason"] = val
            d["reason_text"] = REASON_NAMES[val] if 0 < val < 5 else None
        elif kind == R.TICKET:
            d["chunk"] = ticket_chunk(R.pack(*r[:6])).rstrip(b"\x00").decode()
        elif kind in (R.STRAY, R.DROPPED):
            d["hour"] = _when(t, boot, offsets, tz_min)
            d["count"] = data16(r)
        elif kind == R.OVERFLOW:
            d["hour"] = _when(t, boot, offsets, tz_min)
            d["level"] = val
            d["count"] = arg | slot << 8
        elif kind == R.FLAG:
            d["flag"] = FLAG_NAMES[val] if val < len(FLAG_NAMES) else val
        elif kind in (R.BOOT, R.CLOCK_SET, R.UNKNOWN_BADGE):
            d["value"] = data24(r)
        elif kind == R.CONFIG:
            d["what"] = "settings" if val == 1 else "roster"
            d["version"] = arg | slot << 8
        yield d


def _when(t, boot, offsets, tz_min):
    if t & R.REL:
        off = offsets.get(boot)
        return iso(off + (t & ~R.REL), tz_min) if off is not None else None
    return iso(t, tz_min)


def data16(r):
    return r[2] | r[3] << 8


def data24(r):
    return r[2] | r[3] << 8 | r[4] << 16


def ticket_chunk(buf, off=0):
    return bytes(buf[off + 5 : off + 12])


def ticket_text(chunks):
    return b"".join(chunks).rstrip(b"\x00").decode()


def parse_iso(text):
    """'2026-11-23T09:00:00+08:00' (or Z) -> seconds since 2000 UTC."""
    text = text.strip()
    tz = 0
    if text.endswith("Z"):
        text = text[:-1]
    elif len(text) > 19 and text[-6] in "+-":
        sign = -1 if text[-6] == "-" else 1
        tz = sign * (int(text[-5:-3]) * 60 + int(text[-2:]))
        text = text[:-6]
    date, _, tod = text.partition("T")
    y, m, d = (int(x) for x in date.split("-"))
    parts = [int(x) for x in tod.split(":")] if tod else [0]
    while len(parts) < 3:
        parts.append(0)
    return days_from_civil(y, m, d) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2] - tz * 60
