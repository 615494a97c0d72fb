# The key interrupt path allocates nothing: edges go into preallocated rings.
import asyncio

import micropython

from firmware.keys import LONG, PRESS, RELEASE, Keys
from hw.sim.machine import SimPin

t = [1000]
pins = [SimPin(i) for i in range(6)]
keys = Keys(pins, lambda: t[0], asyncio.ThreadSafeFlag(), long_keys=(5,))
micropython.heap_lock()
try:
    pins[2].value(0)  # a press...
    t[0] += 2
    pins[2].value(1)  # ...a bounce...
    t[0] += 1
    pins[2].value(0)
    t[0] += 80
    pins[2].value(1)  # ...and the release
    pins[5].value(0)
finally:
    micropython.heap_unlock()
ev = keys.process(t[0] - 1000 + 100)
kinds = [(k, e) for k, e, _ in ev]
assert kinds == [(2, PRESS), (2, RELEASE), (5, PRESS)], kinds
assert keys.dropped == 0
ev = keys.process(t[0] - 1000 + 2000)
assert [(k, e) for k, e, _ in ev] == [(5, LONG)], ev
assert RELEASE != LONG
print("PASS")
