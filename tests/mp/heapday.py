# The whole firmware (App on the virtual board) under the heap budget: boot,
# then a day of 500 ratings; the heap in use after gc must not grow.
import asyncio
import gc
import sys

from simday import remove, serve_one

from firmware import storage
from firmware.app import App
from hw.sim import SimBoard

IMG = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 500
# core: the firmware with the text sign; full: with the e-ink sign (the real driver,
# layout and glyph files; no chip model, as on the board) and the Wi-Fi link
FULL = len(sys.argv) > 3 and sys.argv[3] == "full"
FONTS = sys.argv[4] if len(sys.argv) > 4 else "lib"
remove(IMG)


async def main():
    board = SimBoard(IMG, 848710800)
    if FULL:  # built as hw/board.py builds it: driver on the bus, glyph files, layout
        from firmware import eink
        from hw import board as B
        from hw.simpins import SimPin
        from hw.ssd168x import SSD1683

        def out(n):
            return SimPin(n, SimPin.OUT, value=1)

        panel = SSD1683(board.spi, out(B.EINK_CS), out(B.EINK_DC), out(B.EINK_RST),
                        SimPin(B.EINK_BUSY, value=0), board.timebase, rows=64)
        board.sign = eink.build(panel, FONTS)
    else:
        board.net = None
    storage.replace("/flash/roster.json",
                    b'{"version": 1, "staff": [["0A1B2C3D", "SB0101", "\\u5f20\\u4f1f"]]}')
    storage.replace("/flash/settings.json", b'{"window": "B01"}')
    app = App(board)
    app.start()
    tb = board.timebase
    await tb.settle()
    board.rfid.insert(bytes.fromhex("0A1B2C3D"))
    await tb.advance(1000)
    gc.collect()
    base = gc.mem_alloc()
    peak = 0
    samples = []
    for i in range(N):
        await serve_one(board, i)
        if i % 50 == 49:
            gc.collect()
            samples.append(gc.mem_alloc())
            peak = max(peak, gc.mem_alloc())
    gc.collect()
    end = gc.mem_alloc()
    ratings = sum(1 for r in app.log.records() if r[1] == 4)
    assert ratings == N, ratings
    print("ratings", ratings, "records", app.log.seq, "boot_alloc", base, "end_alloc", end,
          "free", gc.mem_free(), "samples", samples)
    # the heap after gc is flat over the day: no leak per rating
    assert end - base < 2048, (base, end)
    assert max(samples) - min(samples) < 2048, samples
    print("PASS")


asyncio.run(main())
