# micropython sign_bench.py SIZE FONT_DIR [ROWS]
# The sign's device-side figures on the unix port: heap held by the driver,
# fonts, layout and EinkSign (no chip model: a bus with nothing on it), glyph
# cache RAM, and the time to draw each screen. Prints "key value" lines.
import gc
import sys
import time

import sign_util

from firmware.eink import EinkSign
from firmware.layout import Layout
from hw.drivers.ssd168x import SSD168x
from hw.esp32 import wiring
from hw.sim.machine import SimPin, SimSPI
from hw.sim.vtime import VirtualTime

size, fonts = sys.argv[1], sys.argv[2]
gc.collect()
a0 = gc.mem_alloc()
tb = VirtualTime()
pins = [SimPin(n, SimPin.OUT, value=1) for n in (wiring.EINK_CS, wiring.EINK_DC, wiring.EINK_RST)]
rows = int(sys.argv[3]) if len(sys.argv) > 3 else None
# BUSY low and no chip on the bus: the sign's own RAM only, as on the board
drv = SSD168x(SimSPI(wiring.SPI_ID), pins[0], pins[1], pins[2],
              SimPin(wiring.EINK_BUSY, value=0), tb, rows, size)
gc.collect()
a1 = gc.mem_alloc()
lay = Layout(drv, fonts)
fs = lay.fonts
gc.collect()
a2 = gc.mem_alloc()
sign = EinkSign(drv, lay)
gc.collect()
a3 = gc.mem_alloc()
print("driver_bytes", a1 - a0)
print("fonts_layout_bytes", a2 - a1)
print("glyph_cache_bytes", sum(f.cache_bytes() for f in fs.values()))
print("sign_bytes", a3 - a0)
worst = 0
total = 0
for name, screen in sign_util.SCREENS:
    best = None
    for _ in range(3):
        t = time.ticks_us()
        for y0 in range(0, drv.height, drv.rows):  # as show() draws it: once per band
            drv.oy = y0
            drv.fill(1)
            lay.draw(screen)
        dt = time.ticks_diff(time.ticks_us(), t)
        best = dt if best is None or dt < best else best
    print("render_us_" + name, best)
    total += best
    worst = max(worst, best)
print("render_us_mean", total // len(sign_util.SCREENS))
print("render_us_max", worst)
hits = sum(f.hits for f in fs.values())
misses = sum(f.misses for f in fs.values())
print("glyph_hit_ratio", hits / (hits + misses))


def again():
    """Draw every screen again; the bytes still held after gc (growth)."""
    gc.collect()
    a = gc.mem_alloc()
    for _name, scr in sign_util.SCREENS:
        lay.draw(scr)
    gc.collect()
    return gc.mem_alloc() - a


gc.collect()
print("first_round_bytes", gc.mem_alloc() - a3)
again()  # the module's own globals settle
print("growth_bytes", max(again(), again()))
