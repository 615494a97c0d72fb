# Debouncing: bounces, a key held down, a tap shorter than the debounce time,
# long presses, and a full edge ring.
import asyncio

from firmware.keys import LONG, PRESS, RELEASE, Keys
from hw.sim.machine import SimPin

now = [0]
pins = [SimPin(i) for i in range(6)]
keys = Keys(pins, lambda: now[0] & 0x3FFFFFFF, asyncio.ThreadSafeFlag(), long_keys=(5,))


def at(ms):
    now[0] = ms


def events(ms):
    at(ms)
    return [(k, e) for k, e, _ in keys.process(ms)]


# bounces around a press and a release count once each
at(1000)
for v in (0, 1, 0, 1, 0):
    pins[0].value(v)
    now[0] += 1
assert events(now[0]) == [(0, PRESS)], "bouncy press"
at(1200)
for v in (1, 0, 1):
    pins[0].value(v)
    now[0] += 2
assert events(now[0]) == [(0, RELEASE)], "bouncy release"

# a key held down for ten seconds is one press, no repeats
at(2000)
pins[1].value(0)
assert events(2001) == [(1, PRESS)]
for ms in range(2100, 12000, 500):
    assert events(ms) == [], "a held key repeated"
pins[1].value(1)
assert events(12001) == [(1, RELEASE)]

# a 5 ms tap: the press is taken, the release is caught by the recheck deadline
at(20000)
pins[2].value(0)
at(20005)
pins[2].value(1)
assert events(20006) == [(2, PRESS)]
d = keys.deadline
assert d is not None and d <= 20000 + keys.debounce_ms, d
assert events(d) == [(2, RELEASE)]

# status key: short press, then a long press fires LONG at 1.5 s while still held
at(30000)
pins[5].value(0)
assert events(30000) == [(5, PRESS)]
at(30300)
pins[5].value(1)
assert events(30300) == [(5, RELEASE)]
at(40000)
pins[5].value(0)
assert events(40000) == [(5, PRESS)]
assert keys.deadline == 41500
assert events(41499) == []
assert events(41500) == [(5, LONG)]
assert events(45000) == [], "LONG fires once"
at(46000)
pins[5].value(1)
assert events(46000) == [(5, RELEASE)]

# a flood of edges fills the ring: counted, and the level still ends right
at(50000)
for i in range(100):
    pins[3].value(i % 2)
assert keys.dropped > 0
ev = events(50100)
assert ev in ([], [(3, PRESS), (3, RELEASE)]), ev
assert keys.level[3] == pins[3].value()
print("PASS")
