# Where the heap goes: the full firmware (e-ink sign, Wi-Fi link) on the virtual
# board, built stage by stage as heapday.py builds it, printing the heap in use
# after gc at each stage. Run with a big heap to see figures past the budget:
#   micropython -X heapsize=512k heapstages.py IMG FONT_DIR
import asyncio
import gc
import sys

import micropython


def stage(tag):
    gc.collect()
    print("%-14s %7d" % (tag, gc.mem_alloc()))


stage("start")
from simday import remove, serve_one  # noqa: E402

from firmware import storage  # noqa: E402
from firmware.app import App  # noqa: E402
from hw.sim.board import SimBoard  # noqa: E402

stage("import core")
import firmware.sync  # noqa: E402, F401
from firmware import eink  # noqa: E402
from hw.drivers.ssd168x import SSD1683  # noqa: E402
from hw.esp32 import wiring  # noqa: E402
from hw.sim.machine import SimPin  # noqa: E402

stage("import all")
IMG = sys.argv[1]
FONTS = sys.argv[2] if len(sys.argv) > 2 else "lib"
remove(IMG)


async def main():
    board = SimBoard(IMG, 848710800, sign=False)
    stage("board")

    def out(n):
        return SimPin(n, SimPin.OUT, value=1)

    panel = SSD1683(board.spi, out(wiring.EINK_CS), out(wiring.EINK_DC), out(wiring.EINK_RST),
                    SimPin(wiring.EINK_BUSY, value=0), board.timebase, rows=wiring.EINK_ROWS)
    stage("panel")
    board.sign = eink.build(panel, FONTS)
    stage("sign")
    storage.replace("/flash/roster.txt", "PJR1 1\n0A1B2C3D\tSB0101\t张伟\n".encode())
    storage.replace("/flash/settings.json", b'{"window": "B01"}')
    app = App(board)
    stage("app")
    app.start()
    tb = board.timebase
    await tb.settle()
    board.rfid.insert(bytes.fromhex("0A1B2C3D"))
    await tb.advance(1000)
    stage("running")
    for i in range(20):
        await serve_one(board, i)
    stage("20 ratings")
    micropython.qstr_info()


asyncio.run(main())
