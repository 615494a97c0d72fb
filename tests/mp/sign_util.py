# Test helpers on the unix port: the real SSD168x driver on the panel model, on a
# SimSPI bus, in virtual time, as the virtual board builds them. Big buffers are made
# first (the heap is 128 KB, and fragmentation would refuse them later).
import asyncio

from hw.esp32 import wiring
from hw.sim.machine import SimSPI
from hw.sim.sign import SAMPLES, fields, make_panel, until_done  # noqa: F401 (U.until_done)
from hw.sim.vtime import VirtualTime


def panel(size="4.2", strict=True, tb=None, spi=None, rows=None):
    """(virtual time, the real driver, the panel model) wired as the virtual board wires
    them (hw/sim/sign.py on the pins of hw/esp32/wiring.py)."""
    tb = tb or VirtualTime()
    drv, model = make_panel(spi or SimSPI(wiring.SPI_ID), tb, size, strict=strict, rows=rows)
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
