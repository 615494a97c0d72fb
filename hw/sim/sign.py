# The virtual device's e-ink sign: the real driver, layout, fonts and EinkSign
# on the panel model, on the shared SimSPI bus with the board's pins. Also the
# previews (`pingjia sign preview`) and a terminal rendering of the panel.
import asyncio
import os

from firmware.eink import build
from firmware.layout import Layout
from hw.drivers.ssd168x import SSD168x
from hw.esp32 import wiring
from hw.sim.machine import SimPin

# framebuffer rows, as the board draws them: the 4.2" in bands of
# wiring.EINK_ROWS (32 rows: 1.6 KB, not 15 KB), the 2.9" whole (4.7 KB)
PAGE_ROWS = {"4.2": wiring.EINK_ROWS, "2.9": None}


async def until_done(tb, coro, step_ms=20, limit_ms=120_000):
    """Run coro while virtual time moves on; its result, or its exception."""
    # gather(return_exceptions=True): the task ends well either way, so no
    # exception handler sees coro's error before it is raised here
    t = asyncio.create_task(asyncio.gather(coro, return_exceptions=True))
    spent = 0
    while not t.done() and spent < limit_ms:
        await tb.advance(step_ms)
        spent += step_ms
    if not t.done():
        t.cancel()
        raise RuntimeError("not done in %d virtual ms" % limit_ms)
    r = (await t)[0]
    if isinstance(r, Exception):
        raise r
    return r


def font_dir():
    """The glyph files of the source tree: the host launchers pass their lib/ in
    $PINGJIA_FONTS (host_tools.device.build.mp_env); else lib/ under the cwd."""
    return os.getenv("PINGJIA_FONTS") or "lib"


def make_panel(spi, timebase, size="4.2", cs=None, dc=None, rst=None, strict=True,
               rows=None):
    """The panel model on the bus and the real driver talking to it: (driver, model)."""
    from hw.sim.chips.ssd168x import PanelModel

    cs = cs or SimPin(wiring.EINK_CS, SimPin.OUT, value=1)
    dc = dc or SimPin(wiring.EINK_DC, SimPin.OUT, value=1)
    rst = rst or SimPin(wiring.EINK_RST, SimPin.OUT, value=1)
    model = PanelModel(size, timebase, cs, dc, rst, wiring.EINK_BUSY, strict)
    spi.chips.append((cs, model))
    driver = SSD168x(spi, cs, dc, rst, model.busy_pin, timebase, rows, size)
    return driver, model


def make_sign(spi, timebase, size="4.2", fonts=None, image_path=None, on_update=None,
              cs=None, dc=None, rst=None, model=True, rows=-1):
    """An EinkSign on the panel model. image_path: a PBM of the panel, rewritten
    after every refresh (any image viewer shows it). sign.model is the chip.
    model=False: no chip on the bus (its bytes go nowhere, BUSY never high):
    the sign's own RAM only, as on the board, for heap budgets."""
    if rows == -1:
        rows = PAGE_ROWS[size]
    if model:
        driver, model = make_panel(spi, timebase, size, cs, dc, rst, rows=rows)
    else:
        cs = cs or SimPin(wiring.EINK_CS, SimPin.OUT, value=1)
        dc = dc or SimPin(wiring.EINK_DC, SimPin.OUT, value=1)
        rst = rst or SimPin(wiring.EINK_RST, SimPin.OUT, value=1)
        driver = SSD168x(spi, cs, dc, rst, SimPin(wiring.EINK_BUSY, value=0), timebase, rows, size)
        model = None
        image_path = None

    def updated(sign):
        if image_path:
            write_pbm(model, image_path)
        if on_update:
            on_update(sign)

    sign = build(driver, fonts or font_dir(), updated)
    sign.model = model
    return sign


def write_pbm(model, path):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        model.write_pbm(f)
    os.rename(tmp, path)


def blocks(model, cols=None):
    """The panel as text: one character per cell of 2 half blocks; a half is
    black when a quarter of its pixels are."""
    w, h = model.width, model.height
    cols = cols or w // 4
    cw = w // cols
    ch = cw * 2  # a terminal cell is about twice as tall as wide
    hh = ch // 2
    need = max(1, cw * hh // 4)
    px = model.pixel
    plane = model.shown()
    if plane is None:
        return ""
    rows = []
    for cy in range(0, h - ch + 1, ch):
        line = []
        for cx in range(0, cols * cw, cw):
            top = bot = 0
            for y in range(hh):
                for x in range(cw):
                    top += px(cx + x, cy + y, plane)
                    bot += px(cx + x, cy + hh + y, plane)
            line.append(" ▀▄█"[(top >= need) | (bot >= need) << 1])
        rows.append("".join(line).rstrip())
    return "\n".join(rows)


# screens for the previews: (file name, screen)
def fields(window="B01", no=None, name=None, notice=None, alert=None):
    return {"window": window, "staff_no": no, "staff_name": name, "notice": notice,
            "alert": alert}


SAMPLES = (
    ("closed", ("closed", fields())),
    ("serving", ("serving", fields(no="SB0101", name="张伟"))),
    ("wait", ("wait", fields(no="SB0101", name="张伟"))),
    ("paused", ("paused", fields())),
    ("paused_unknown_badge", ("paused", fields(notice="unknown_badge"))),
    ("overtime", ("overtime", fields(no="SB0102", name="刘洋"))),
    ("invite", ("invite", fields(no="SB0101", name="张伟"))),
    ("reason", ("reason", fields(no="SB0101", name="张伟"))),
    ("thanks", ("thanks", fields(no="SB0101", name="张伟"))),
    ("serving_alert", ("serving", fields(no="SB0207", name="欧阳晓燕", alert="sync_failing"))),
    ("closed_alert", ("closed", fields(alert="log_full"))),
)


def preview(out_dir, size="4.2", fonts=None, names=None):
    """Draw each sample screen with the firmware, refresh it through the model,
    and write out_dir/<name>.pbm from the model's image."""
    from hw.sim.machine import SimSPI
    from hw.sim.vtime import VirtualTime

    tb = VirtualTime()
    spi = SimSPI(wiring.SPI_ID)
    driver, model = make_panel(spi, tb, size, rows=PAGE_ROWS[size])
    layout = Layout(driver, fonts or font_dir())
    done = []

    async def main():
        for name, screen in SAMPLES:
            if names and name not in names:
                continue
            await until_done(tb, driver.show(True, lambda: layout.draw(screen)))
            write_pbm(model, "%s/%s.pbm" % (out_dir, name))
            done.append(name)

    asyncio.run(main())
    if model.faults:
        raise RuntimeError("panel faults: %r" % model.faults)
    return done


def _main(argv):
    # micropython -m hw.sim.sign OUT_DIR SIZE [FONT_DIR]
    out = argv[1]
    size = argv[2] if len(argv) > 2 else "4.2"
    fonts = argv[3] if len(argv) > 3 else None
    for n in preview(out, size, fonts):
        print(n)


if __name__ == "__main__":
    import sys

    _main(sys.argv)
