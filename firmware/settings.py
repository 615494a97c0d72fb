# Settings pushed by the collector (or provisioned): defaults, validation,
# and the opening-hours schedule.
from firmware import storage
from firmware.clock import civil, days_from_civil
from firmware.const import const

_DAY_MIN = const(1440)
_DAY_S = const(86400)
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


def _spans(text):
    out = []
    for part in text.replace(",", " ").split():
        a, _, b = part.partition("-")
        se = []
        for hm in (a, b):  # start, end: minutes of the day
            h, _, m = hm.partition(":")
            h, m = int(h), int(m or 0)
            if not (0 <= h <= 24 and 0 <= m < 60 and h * 60 + m <= _DAY_MIN):
                raise ValueError("bad time: " + hm)
            se.append(h * 60 + m)
        if se[1] <= se[0]:
            raise ValueError("span ends before it starts: " + part)
        out.append(tuple(se))
    out.sort()
    return out


def _day(text):
    try:
        y, m, d = (int(x) for x in text.split("-"))
    except ValueError:
        raise ValueError("bad date (YYYY-MM-DD): %s" % text)
    n = days_from_civil(y, m, d)
    if civil(n) != (y, m, d):
        raise ValueError("no such date: %s" % text)
    return n


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
        _spans(h)
    for k in ("holidays", "workdays"):
        for d in s[k]:
            _day(d)
    return s


class Schedule:
    def __init__(self, s):
        self.days = [_spans(h) for h in s["hours"]]
        self.holidays = {_day(d) for d in s["holidays"]}
        self.workdays = {_day(d) for d in s["workdays"]}

    def at(self, local):
        """(open now, seconds until the next span edge today or until midnight)
        at local = (days since 2000, seconds of day, weekday)."""
        days, sec, wd = local
        if days in self.holidays:
            spans = ()
        else:
            spans = self.days[0 if days in self.workdays else wd]
        is_open = False
        for s, e in spans:
            if s * 60 <= sec < e * 60:
                is_open = True
            for edge in (s * 60, e * 60):
                if edge > sec:
                    return is_open, edge - sec
        return is_open, _DAY_S - sec


def load(path):
    """(settings, error text or None). A corrupt file gives the defaults and says so."""
    try:
        obj = storage.load_json(path, {})
        return validate(obj), None
    except ValueError as e:
        return dict(DEFAULTS), str(e)
