# Wall clock on top of a monotonic millisecond counter. The wall time is
# unknown after a power cut until a sync or the host sets it; records then
# carry seconds since boot (record.REL).
from firmware.const import const
from firmware.record import REL

EPOCH_UNIX = const(946684800)  # 2000-01-01T00:00:00Z in Unix time
_DAY_S = const(86400)
# civil() and days_from_civil() are Howard Hinnant's days-from-civil algorithms
# (eras of 400 years that start on 1 March, so the leap day ends a year); the
# other numbers in them are the algorithm's own
_ERA_DAYS = const(146097)  # days in 400 years
_FROM_0000_03_01 = const(730425)  # 2000-01-01 in days since 0000-03-01
_SATURDAY = const(5)  # 2000-01-01's weekday, Monday 0


def civil(days):
    """Days since 2000-01-01 -> (year, month, day)."""
    z = days + _FROM_0000_03_01
    era = z // _ERA_DAYS
    doe = z - era * _ERA_DAYS
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def days_from_civil(y, m, d):
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * _ERA_DAYS + doe - _FROM_0000_03_01


def iso(t, tz_min):
    """Seconds since 2000 UTC -> ISO 8601 in the hall's zone, with offset."""
    lt = t + tz_min * 60
    y, m, d = civil(lt // _DAY_S)
    s = lt % _DAY_S
    sign = "+" if tz_min >= 0 else "-"
    a = abs(tz_min)
    return "%04d-%02d-%02dT%02d:%02d:%02d%s%02d:%02d" % (
        y, m, d, s // 3600, s // 60 % 60, s % 60, sign, a // 60, a % 60)


def parse_iso(text):
    """'2026-11-23T09:00:00+08:00' (or Z, or no zone: UTC) -> seconds since 2000 UTC."""
    text = text.strip()
    tz = 0  # the zone's minutes east of UTC
    if text.endswith("Z"):
        text = text[:-1]
    elif len(text) > 19 and text[-6] in "+-":
        sign = -1 if text[-6] == "-" else 1
        tz = sign * (int(text[-5:-3]) * 60 + int(text[-2:]))
        text = text[:-6]
    date, _, tod = text.partition("T")
    y, m, d = (int(x) for x in date.split("-"))
    hms = [int(x) for x in tod.split(":")] if tod else [0]
    while len(hms) < 3:
        hms.append(0)
    return days_from_civil(y, m, d) * _DAY_S + hms[0] * 3600 + hms[1] * 60 + hms[2] - tz * 60


class Clock:
    def __init__(self, mono_ms, tz_min=480):
        self.mono_ms = mono_ms  # non-wrapping milliseconds since boot
        self.tz_min = tz_min
        self._base = None  # wall seconds at mono 0, in ms

    @property
    def known(self):
        return self._base is not None

    def uptime_s(self):
        return self.mono_ms() // 1000

    def set(self, wall_s):
        """Set the wall time. True if it was unknown or moved by more than 2 s."""
        old = self.wall()
        self._base = wall_s * 1000 - self.mono_ms()
        return old is None or abs(old - wall_s) > 2

    def wall(self):
        if self._base is None:
            return None
        return (self._base + self.mono_ms()) // 1000

    def rec_time(self):
        w = self.wall()
        return (REL | self.uptime_s()) if w is None else w

    def local(self):
        """(days since 2000, seconds of day, weekday) in the hall's zone, or None."""
        w = self.wall()
        if w is None:
            return None
        lt = w + self.tz_min * 60
        days = lt // _DAY_S
        return days, lt % _DAY_S, (days + _SATURDAY) % 7  # weekday: 0 = Monday
