# A day's workload at one window, driven straight into Core (no asyncio):
# badge in, invitations with tickets, ratings of every level, reasons, 请稍候
# and pauses, a badge swap, stray presses, timeouts.
from firmware.clock import Clock
from firmware.core import Core
from firmware.roster import Roster, dumps
from firmware.settings import validate

START = 848710800  # 2026-11-23T09:00:00+08:00, a Monday
ROSTER = Roster(dumps(1, [["0A1B2C3D", "SB0101", "张伟"], ["0E0F1011", "SB0102", "刘洋"]]))


class Ms:
    def __init__(self):
        self.ms = 0

    def __call__(self):
        return self.ms


def boot(log, ms, wall=START):
    clock = Clock(ms)
    if wall is not None:
        clock.set(wall)
    return Core(clock, log, validate({"window": "B01"}), ROSTER)


def step(core, ms, dt):
    ms.ms += dt
    core.tick()


def day(core, ms, n=40):
    core.badge("0A1B2C3D")
    for i in range(n):
        core.invite("T%04d" % i if i % 2 else None)
        step(core, ms, 2000)
        if i % 7 == 6:
            step(core, ms, 16000)  # nobody rates: no_rating
            continue
        k = 1 + i % 4
        core.key(k)
        if k == 4 and i % 3:
            core.key(1 + i % 4)
        core.key(2)  # a second press in the same window counts nothing
        step(core, ms, 12000)
        if i % 10 == 3:
            core.status_key(False)
            step(core, ms, 30000)
            core.status_key(False)
        if i % 10 == 8:
            core.key(3)  # stray
            core.badge(None)
            step(core, ms, 5000)
            core.badge("0E0F1011" if i % 20 == 8 else "0A1B2C3D")
    core.status_key(True)
    step(core, ms, 3600 * 1000)
