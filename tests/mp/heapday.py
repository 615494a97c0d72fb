# The whole firmware (App on the virtual board) under the heap budget: boot,
# then a day of 500 ratings; the heap in use after gc must not grow. Staff
# change every 20 citizens, so the sign draws names it has not drawn before
# (a drawn character must not stay behind in RAM).
import asyncio
import gc
import sys

import micropython
from simday import remove, serve_one

from firmware import storage
from firmware.app import App
from firmware.roster import dumps
from hw.sim import SimBoard

IMG = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 500
# core: the firmware with the text sign; full: with the e-ink sign (the real driver,
# layout and glyph files; no chip model, as on the board) and the Wi-Fi link
FULL = len(sys.argv) > 3 and sys.argv[3] == "full"
FONTS = sys.argv[4] if len(sys.argv) > 4 else "lib"
remove(IMG)
# 24 staff, 69 different characters
NAMES = ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴刚", "徐丽",
         "孙强", "马超", "朱红", "胡军", "郭燕", "何平", "高峰", "林涛", "罗琳", "郑凯", "梁爽",
         "谢婷", "宋佳")
SHIFTS = len(NAMES)


async def sign_in(board, i):
    """Staff i puts their badge in the slot (the last one's comes out first)."""
    tb = board.timebase
    board.rfid.remove()
    await tb.advance(1000)
    board.rfid.insert(bytes([0x0A, 0x1B, 0x2C, i]))
    await tb.advance(1000)


async def main():
    board = SimBoard(IMG, 848710800, sign=False if FULL else None)  # FULL: the e-ink sign below
    if FULL:  # built as hw/board.py builds it: driver on the bus, glyph files, layout
        from firmware import eink
        from hw import board as B
        from hw.simpins import SimPin
        from hw.ssd168x import SSD1683

        def out(n):
            return SimPin(n, SimPin.OUT, value=1)

        panel = SSD1683(board.spi, out(B.EINK_CS), out(B.EINK_DC), out(B.EINK_RST),
                        SimPin(B.EINK_BUSY, value=0), board.timebase, rows=B.EINK_ROWS)
        board.sign = eink.build(panel, FONTS)
    else:
        board.net = None
    storage.replace("/flash/roster.txt",
                    dumps(1, [("0A1B2C%02X" % i, "SB%04d" % i, NAMES[i]) for i in range(SHIFTS)]))
    storage.replace("/flash/settings.json", b'{"window": "B01"}')
    app = App(board)
    app.start()
    tb = board.timebase
    await tb.settle()
    await sign_in(board, 0)
    gc.collect()
    base = gc.mem_alloc()
    micropython.qstr_info()  # interned strings: the test compares the counts
    peak = 0
    samples = []
    for i in range(N):
        if i % 20 == 0 and i:
            await sign_in(board, i // 20 % SHIFTS)
        await serve_one(board, i)
        if i % 50 == 49:
            gc.collect()
            samples.append(gc.mem_alloc())
            peak = max(peak, gc.mem_alloc())
    gc.collect()
    end = gc.mem_alloc()
    micropython.qstr_info()
    ratings = 0
    staff = set()
    for r in app.log.records():
        if r[1] == 4:
            ratings += 1
            staff.add(r[4])
    assert ratings == N, ratings
    assert len(staff) == min(SHIFTS, (N + 19) // 20), staff  # each shift rated its own staff
    print("ratings", ratings, "records", app.log.seq, "boot_alloc", base, "end_alloc", end,
          "free", gc.mem_free(), "samples", samples)
    # the heap after gc is flat over the day: no leak per rating
    assert end - base < 2048, (base, end)
    assert max(samples) - min(samples) < 2048, samples
    print("PASS")


asyncio.run(main())
