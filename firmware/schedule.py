# The opening hours (settings "hours", "holidays", "workdays"): parsed once per
# settings, asked every state change. firmware/settings.py checks the same texts
# with spans() and day().
from firmware.clock import civil, days_from_civil
from firmware.const import const

_DAY_MIN = const(1440)
_DAY_S = const(86400)


def spans(text):
    """A day's "HH:MM-HH:MM" spans as sorted (start, end) minutes; ValueError if bad."""
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


def day(text):
    """"YYYY-MM-DD" as days since 2000; ValueError if it is no date."""
    try:
        y, m, d = (int(x) for x in text.split("-"))
    except ValueError:
        raise ValueError("bad date (YYYY-MM-DD): %s" % text)
    n = days_from_civil(y, m, d)
    if civil(n) != (y, m, d):
        raise ValueError("no such date: %s" % text)
    return n


class Schedule:
    def __init__(self, s):
        self.days = [spans(h) for h in s["hours"]]
        self.holidays = {day(d) for d in s["holidays"]}
        self.workdays = {day(d) for d in s["workdays"]}

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
