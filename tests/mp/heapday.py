# The whole firmware (App on the virtual board) under the heap budget: boot,
# then a day of ratings; the heap in use after gc must not grow. Staff change
# every 20 citizens, so the sign draws names it has not drawn before (a drawn
# character must not stay behind in RAM). With the e-ink sign ("full") the Wi-Fi
# link syncs with a real collector after every 50 ratings.
#   heapday.py IMG PROVISION_DIR N STAFF [full FONT_DIR]
import asyncio
import gc
import json
import os
import sys

import micropython
from simday import copy_file, remove, serve_one

from firmware import storage
from firmware.app import App
from hw.sim.board import SimBoard

IMG, PROV = sys.argv[1], sys.argv[2]
N, SHIFTS = int(sys.argv[3]), int(sys.argv[4])
# full: the e-ink sign (the real driver, layout and glyph file; no chip model, as on
# the board) and the Wi-Fi link; else the text sign and no network. The glyph file
# is copied onto the flash and read from there, as the board reads /lib/pj.pjf.
FULL = sys.argv[5:6] == ["full"]
FONTS = sys.argv[6] if len(sys.argv) > 6 else "lib"
remove(IMG)


async def sign_in(board, i):
    """Staff i puts their badge in the slot (the last one's comes out first)."""
    tb = board.timebase
    board.rfid.remove()
    await tb.advance(1000)
    board.rfid.insert(bytes([0x0A, 0x1B, 0x2C, i]))
    await tb.advance(1000)


async def main():
    board = SimBoard(IMG, 848710800, sign=False if FULL else None)
    if FULL:  # built as hw/esp32/wiring.py builds it: driver on the bus, glyph files, layout
        from firmware import eink
        from hw.drivers.ssd168x import SSD1683
        from hw.esp32 import wiring
        from hw.sim.machine import SimPin

        def out(n):
            return SimPin(n, SimPin.OUT, value=1)

        panel = SSD1683(board.spi, out(wiring.EINK_CS), out(wiring.EINK_DC), out(wiring.EINK_RST),
                        SimPin(wiring.EINK_BUSY, value=0), board.timebase, rows=wiring.EINK_ROWS)
        os.mkdir("/flash/lib")
        copy_file(FONTS + "/pj.pjf", "/flash/lib/pj.pjf", bytearray(4096))
        board.sign = eink.build(panel, "/flash/lib")
    else:
        board.net = None
    for name in os.listdir(PROV):
        with open(PROV + "/" + name, "rb") as f:
            storage.replace("/flash/" + name, f.read())
    app = App(board)
    app.start()
    link = app.link if app.link and app.settings["sync_url"] else None

    async def sync():
        if link:
            out = await link.sync_now()
            assert out.startswith("ok"), out

    tb = board.timebase
    await tb.settle()
    await sign_in(board, 0)
    await sync()
    gc.collect()
    base = gc.mem_alloc()
    micropython.qstr_info()  # interned strings: the host compares the counts
    samples = []
    for i in range(N):
        if i % 20 == 0 and i:
            await sign_in(board, i // 20 % SHIFTS)
        await serve_one(board, i)
        if i % 50 == 49:
            await sync()
            gc.collect()
            samples.append(gc.mem_alloc())
    gc.collect()
    end = gc.mem_alloc()
    micropython.qstr_info()
    ratings = 0
    staff = set()
    for r in app.log.records():
        if r[1] == 4:
            ratings += 1
            staff.add(r[4])
    print(json.dumps({"base": base, "end": end, "free": gc.mem_free(), "samples": samples,
                      "ratings": ratings, "staff": len(staff), "seq": app.log.seq,
                      "acked": app.log.acked, "frames": link.frames if link else 0,
                      "sent": link.sent if link else 0}))
    assert ratings == N, ratings
    assert len(staff) == min(SHIFTS, (N + 19) // 20), staff  # each shift rated its own staff
    # the heap after gc is flat over the day: no leak per rating
    assert end - base < 2048, (base, end)
    assert max(samples) - min(samples) < 2048, samples
    print("PASS")


asyncio.run(main())
