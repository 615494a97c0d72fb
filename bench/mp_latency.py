# Key press to durable record on the unix port: the pin edge, the IRQ ring,
# the key task, the rating session and the flash commit, timed in-process,
# against the bare flash commit (the floor) in the same run.
import asyncio
import sys
import time

from simday import remove

from firmware import storage
from firmware.app import App
from hw.sim.board import SimBoard

IMG = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 200
remove(IMG)


async def main():
    board = SimBoard(IMG, 848710800)
    board.net = None  # the key path only: no Wi-Fi link in this heap
    storage.replace("/flash/roster.txt", b"PJR1 1\n0A1B2C3D\tSB0101\tx\n")
    app = App(board)
    app.start()
    tb = board.timebase
    board.rfid.insert(bytes.fromhex("0A1B2C3D"))
    await tb.advance(1000)
    total = 0
    for i in range(N):
        app.queue_invite(None)
        await tb.settle()
        seq = app.log.seq
        t0 = time.ticks_us()
        board.keys[i % 3].value(0)
        for _ in range(10000):  # bounded: a key task that died must not spin here forever
            if app.log.seq != seq:
                break
            await asyncio.sleep_ms(0)
        else:
            raise SystemExit("the key press stored nothing")
        total += time.ticks_diff(time.ticks_us(), t0)
        board.keys[i % 3].value(1)
        await tb.advance(20000)
    # the floor: the same commit with nothing in front of it
    t0 = time.ticks_us()
    for i in range(N):
        app.log.append(4, 1, 0, 1, 1000)
    floor = time.ticks_diff(time.ticks_us(), t0)
    print("key_to_durable_us %.1f" % (total / N))
    print("bare_commit_us %.1f" % (floor / N))


asyncio.run(main())
