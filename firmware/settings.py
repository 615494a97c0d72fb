# Settings pushed by the collector (or provisioned): defaults and validation. On the
# device this runs at boot and when a sync brings new settings, and is dropped after
# (firmware.forget): the opening hours that run all day are firmware/schedule.py.
from firmware import storage
from firmware.const import const
from firmware.schedule import day, spans

_WEEK = const(7)  # days in "hours", Monday first
_WINDOW_MAX = const(16)  # characters of a window's name

DEFAULTS = {
    "version": 0,
    "window": "",
    "mode": "invite",  # invite | free
    "invite_s": 15,
    "reason_s": 10,
    "thanks_s": 3,
    "min_interval_s": 3,
    "wait_max_s": 900,
    "tz_min": 480,  # Asia/Shanghai
    # Monday .. Sunday; each "HH:MM-HH:MM" spans separated by spaces or commas
    "hours": ["09:00-17:30"] * 5 + ["", ""],
    "holidays": [],  # "YYYY-MM-DD": closed all day
    "workdays": [],  # "YYYY-MM-DD": weekend days worked (调休), with Monday's hours
    "sync_url": "",
    "sync_s": 300,
}

_RANGES = {
    "invite_s": (5, 120),
    "reason_s": (3, 60),
    "thanks_s": (1, 10),
    "min_interval_s": (0, 60),
    "wait_max_s": (60, 86400),
    "tz_min": (-720, 840),
    "sync_s": (10, 86400),
    "version": (0, 65535),
}


def validate(obj):
    """A complete, checked settings dict from a partial one; ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("settings must be an object")
    s = dict(DEFAULTS)
    for k, v in obj.items():
        if k not in DEFAULTS:
            raise ValueError("unknown setting: " + k)
        s[k] = v
    for k, (lo, hi) in _RANGES.items():
        v = s[k]
        if not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError("%s must be a whole number from %d to %d" % (k, lo, hi))
    if s["mode"] not in ("invite", "free"):
        raise ValueError("mode must be invite or free")
    if not isinstance(s["window"], str) or len(s["window"]) > _WINDOW_MAX:
        raise ValueError("window must be text of at most %d characters" % _WINDOW_MAX)
    if not isinstance(s["hours"], list) or len(s["hours"]) != _WEEK:
        raise ValueError("hours must list 7 days, Monday first")
    for h in s["hours"]:
        spans(h)
    for k in ("holidays", "workdays"):
        for d in s[k]:
            day(d)
    return s


def load(path):
    """(settings, error text or None). A corrupt file gives the defaults and says so."""
    try:
        obj = storage.load_json(path, {})
        return validate(obj), None
    except ValueError as e:
        return dict(DEFAULTS), str(e)
