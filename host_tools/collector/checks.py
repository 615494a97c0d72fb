"""Checked at the door: what a device with a valid key may send, and what the collector
may push to a device.

A frame's MAC proves who sent it, not that what it says is sane: a buggy or tampered
device could store level 9, a time in 2060, a seq near 2^32, or a reason for someone
else's rating. So every record is checked against what the firmware can write
(firmware/record.py, firmware/core.py):

- refused (the whole frame, FrameError bad_field or seq_jump, nothing stored): a kind,
  level, state, why, reason, mode, flag or staff slot out of range; a seq further than
  SEQ_JUMP_MAX past the last one; a reason that is not for a 不满意 of the same device and
  boot within REASON_GAP records before it, or for one that has its reason already.
- stored with the time unknown, and flagged (the flags table says why): a time outside
  the window around the collector's clock (TIME_AHEAD_S ahead, TIME_BACK_S back); never
  trusted, never used for a clock offset.

And what goes out: settings (types, the sync URL the device parses, sizes) before a push.
"""

from __future__ import annotations

import json
import re
from typing import Any

from firmware import record
from firmware.frame import FrameError

SEQ_JUMP_MAX = 1 << 20  # ten full logs: no device skips more seqs than that
REASON_GAP = 16  # records between a 不满意 and its reason (a status, a clock set, tallies)
TIME_AHEAD_S = 3600  # a device's clock is set by the collector: an hour ahead is a fault
TIME_BACK_S = 400 * 86400  # a log offline for a year still syncs
SLOT_MAX = 254  # a roster holds 254 staff (firmware/roster.py)
OVERFLOW_LOST = 0xFF  # an overflow record counting other records a full log lost (time 0)
_STATES = range(1, 6)  # serving .. overtime
_WHYS = range(0, 7)  # boot .. settings
_FLAGS = (record.FLAG_WAIT_LONG,)
_KINDS = range(record.BOOT, record.ALERT + 1)
_BOOT_WHYS = range(1, len(record.BOOT_NAMES))  # power_on .. reset
_TIMED = (record.BOOT, record.CLOCK_SET, record.STATUS, record.RATING, record.NO_RATING, record.STRAY, record.DROPPED, record.FLAG,
          record.OVERFLOW, record.CONFIG, record.UNKNOWN_BADGE,
          record.BOOT_WHY, record.ALERT)  # REASON and TICKET carry no time


def _refuse(seq: int, what: str) -> FrameError:
    return FrameError("bad_field", f"record seq {seq}: {what}")


def record_fields(r: tuple) -> None:
    """The fields of one record are what the firmware writes; FrameError otherwise."""
    seq, kind, val, arg, slot, t = r
    if kind not in _KINDS:
        raise _refuse(seq, f"kind {kind} is none a device writes")
    if kind != record.OVERFLOW and slot > SLOT_MAX:  # overflow counts use the slot byte
        raise _refuse(seq, f"staff slot {slot} (a roster has at most {SLOT_MAX})")
    if kind == record.RATING:
        if not 1 <= val <= 4:
            raise _refuse(seq, f"rating level {val} (keys are 1-4)")
        if arg not in (0, 1):
            raise _refuse(seq, f"rating mode {arg} (0 invite, 1 free)")
    elif kind == record.NO_RATING:
        if val != 0 or arg not in (0, 1):
            raise _refuse(seq, f"no_rating {val}/{arg} (0, and 0 timeout or 1 cancelled)")
    elif kind == record.REASON:
        if not 1 <= val <= 4:
            raise _refuse(seq, f"reason {val} (reasons are 1-4)")
    elif kind == record.STATUS:
        to, frm, why = val & 15, val >> 4, arg & 0x7F
        if to not in _STATES or frm not in (0, *_STATES) or why not in _WHYS:
            raise _refuse(seq, f"status {frm}->{to} why {why} (states 1-5, why 0-6)")
    elif kind == record.FLAG:
        if val not in _FLAGS:
            raise _refuse(seq, f"flag {val} is none a device raises")
    elif kind == record.OVERFLOW:
        if not (0 <= val <= 4 or val == OVERFLOW_LOST):
            raise _refuse(seq, f"overflow level {val} (0 no_rating, 1-4, 255 lost)")
    elif kind == record.CONFIG:
        if val not in (1, 2):
            raise _refuse(seq, f"config {val} (1 settings, 2 roster)")
    elif kind == record.BOOT_WHY:
        if val not in _BOOT_WHYS:
            raise _refuse(seq, f"boot reason {val} (1-{len(record.BOOT_NAMES) - 1})")
    elif kind == record.ALERT:
        if not 0 < val < len(record.ALERT_NAMES) or arg not in (0, 1):
            raise _refuse(seq, f"alert {val}/{arg} (1-{len(record.ALERT_NAMES) - 1}, "
                          "and 1 raised or 0 cleared)")
    if kind in (record.STRAY, record.DROPPED, record.OVERFLOW) and (t & ~record.REL) % 3600:
        raise _refuse(seq, "a tally's time is the start of its hour")


def seq_jumps(first: int, last_stored: int, seqs: list[int]) -> None:
    """No jump past SEQ_JUMP_MAX: from the last stored seq, and between records."""
    prev = max(last_stored, 0)
    for s in seqs:
        if s - prev > SEQ_JUMP_MAX:
            raise FrameError("seq_jump", f"seq {s} after {prev}: more than {SEQ_JUMP_MAX} "
                             "seqs skipped")
        prev = max(prev, s)


class TimeWindow:
    """Times the collector believes: [lo, hi) in seconds since 2000 UTC. (Not bound to
    the device's registration: a device added again to a new database, with its key,
    brings the records it made before.)"""

    def __init__(self, now: int):
        self.lo = now - TIME_BACK_S
        self.hi = now + TIME_AHEAD_S

    def holds(self, t: int | None) -> bool:
        return t is None or self.lo <= t < self.hi


# ---- what the collector pushes --------------------------------------------------------
SETTINGS_BYTES_MAX = 4096  # settings.json on the device, in every answer that changes it
_LIST_MAX = 64  # holidays, workdays
_URL = re.compile(r"http://[A-Za-z0-9.-]{1,64}(:[0-9]{1,5})?/[\x21-\x7e]{0,120}")


def settings(s: dict[str, Any]) -> None:
    """What firmware/settings.py's validate() does not look at, and the device would
    trip on: types (a bool is no number), lists and their items, the sync URL as the
    device's link parses it, the size. ValueError says what."""
    for k, v in s.items():
        if isinstance(v, bool):
            raise ValueError(f"{k} must not be true or false")
    for k in ("hours", "holidays", "workdays"):
        v = s.get(k, [])
        if not isinstance(v, list) or not all(isinstance(x, str) and len(x) <= 64 for x in v):
            raise ValueError(f"{k} must be a list of texts")
        if len(v) > (7 if k == "hours" else _LIST_MAX):
            raise ValueError(f"{k}: at most {7 if k == 'hours' else _LIST_MAX} entries")
    url = s.get("sync_url", "")
    if not isinstance(url, str) or url and not _URL.fullmatch(url):
        raise ValueError(f"sync_url {url!r}: http://HOST[:PORT]/PATH (the device speaks "
                         "plain HTTP to the collector)")
    port = url[7:].partition("/")[0].partition(":")[2]
    if port and not 1 <= int(port) <= 65535:
        raise ValueError(f"sync_url {url!r}: port {port} out of range")
    for k in ("mode", "window"):
        if not isinstance(s.get(k, ""), str) or not str(s.get(k, "")).isprintable():
            raise ValueError(f"{k} must be printable text")
    size = len(json.dumps(s, ensure_ascii=False, separators=(",", ":")).encode())
    if size > SETTINGS_BYTES_MAX:
        raise ValueError(f"the settings would be {size} bytes, more than the "
                         f"{SETTINGS_BYTES_MAX} a device takes")
