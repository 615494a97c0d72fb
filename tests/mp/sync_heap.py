# The firmware with its Wi-Fi link under the 128 KB heap: boot, then a day of
# ratings synced every 50 to a real collector (URL in argv); the heap in use
# after gc must not grow. No line console here: only what the board runs.
import asyncio
import gc
import json
import os
import sys

from simday import serve_one

from firmware import storage
from firmware.app import App
from firmware.sync import Link
from hw.net_sim import SimWLAN
from hw.sim import SimBoard

IMG, PROV = sys.argv[1], sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 500
HEAPDBG = len(sys.argv) > 4


async def main():
    board = SimBoard(IMG, 848710800)
    for name in os.listdir(PROV):
        with open(PROV + "/" + name, "rb") as f:
            storage.replace("/flash/" + name, f.read())
    app = App(board)
    app.link = Link(app, SimWLAN(), auto=False)
    app.start()
    tb = board.timebase
    await tb.settle()
    board.rfid.insert(bytes.fromhex("0A1B2C3D"))
    await tb.advance(1000)
    out = await app.link.sync_now()
    assert out.startswith("ok"), out
    gc.collect()
    base = gc.mem_alloc()
    samples = []
    for i in range(N):
        await serve_one(board, i)
        if i % 50 == 49:
            out = await app.link.sync_now()
            assert out.startswith("ok"), out
            gc.collect()
            samples.append(gc.mem_alloc())
    gc.collect()
    print(json.dumps({"base": base, "end": gc.mem_alloc(), "free": gc.mem_free(),
                      "samples": samples, "seq": app.log.seq, "acked": app.log.acked,
                      "frames": app.link.frames, "sent": app.link.sent}))


asyncio.run(main())
