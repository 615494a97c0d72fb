# Test helpers on the unix port: the real SSD168x driver on the panel model,
# on a SimSPI bus, in virtual time. Big buffers are made first (the heap is
# 128 KB, and fragmentation would refuse them later).
import asyncio

from hw.drivers.ssd168x import SSD168x
from hw.sim.chips.ssd168x import PanelModel
from hw.sim.machine import SimPin, SimSPI
from hw.sim.sign import SAMPLES, fields, until_done  # noqa: F401 (U.until_done)
from hw.sim.vtime import VirtualTime

CS, DC, RST, BUSY = 5, 17, 16, 4  # hw/esp32/wiring.py's wiring


def panel(size="4.2", strict=True, tb=None, spi=None, rows=None):
    tb = tb or VirtualTime()
    spi = spi or SimSPI(2)
    cs = SimPin(CS, SimPin.OUT, value=1)
    dc = SimPin(DC, SimPin.OUT, value=1)
    rst = SimPin(RST, SimPin.OUT, value=1)
    model = PanelModel(size, tb, cs, dc, rst, BUSY, strict)
    spi.chips.append((cs, model))
    drv = SSD168x(spi, cs, dc, rst, model.busy_pin, tb, rows, size)
    return tb, drv, model


def layout(drv, fonts_dir):
    from firmware.layout import Layout

    return Layout(drv, fonts_dir)


def run(coro):
    return asyncio.run(coro)


# the reference screens (tests/data/sign/<size>/<name>.pbm): the preview samples and
# two that test the edges
SCREENS = SAMPLES + (
    ("missing_glyph", ("serving", fields(window="B😀", no="X1", name="张\U0001F600伟"))),
    ("long_names", ("serving", fields(window="社会保障卡综合服务窗口12", no="SB20260001",
                                      name="阿卜杜热合曼·买买提"))),
)


def write_pbm(model, path):
    with open(path, "wb") as f:
        model.write_pbm(f)
