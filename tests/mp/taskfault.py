# Faults inside the running firmware must not stop it: a MemoryError while the
# log rolls its journal into a segment loses no record (the roll is tried again
# at the next append), and an exception in the keypad's task restarts the task
# instead of leaving the keypad dead.
import asyncio
import sys

from simday import remove, serve_one

from firmware import storage
from firmware.app import App
from firmware.log import Log
from hw.sim.board import SimBoard

IMG = sys.argv[1]
remove(IMG)


async def main():
    board = SimBoard(IMG, 848710800)
    board.net = None
    storage.replace("/flash/roster.txt", b"PJR1 1\n0A1B2C3D\tSB0101\tx\n")
    storage.replace("/flash/settings.json", b'{"window": "B01"}')
    app = App(board)
    app.start()
    tb = board.timebase
    await tb.settle()
    board.rfid.insert(bytes.fromhex("0A1B2C3D"))
    await tb.advance(1000)
    log = app.log

    # every roll fails for a while: records pile up in the journal, none is lost
    fails = [0]
    roll = Log._roll

    def failing_roll(self):
        fails[0] += 1
        raise MemoryError("no room for the segment file")

    Log._roll = failing_roll
    i = 0
    while not log.roll_errors:  # until the journal is due to roll, and once more
        await serve_one(board, i)
        i += 1
    await serve_one(board, i)
    Log._roll = roll
    assert fails[0] > 1 and log.roll_errors == fails[0], (fails, log.roll_errors)
    for i in range(i + 1, 24):
        await serve_one(board, i)

    # the core itself throws once, in the middle of a citizen's key press
    key = app.core.key
    boom = [0]

    def key_once(k):
        if not boom[0]:
            boom[0] = 1
            raise MemoryError("a full heap, once")
        return key(k)

    app.core.key = key_once
    await serve_one(board, 24)  # this citizen's press is lost with the exception
    app.core.key = key
    for i in range(25, 30):
        await serve_one(board, i)
    assert app.errors == 1 and isinstance(app.last_error, MemoryError), app.errors

    seqs = [r[0] for r in log.records()]
    ratings = sum(1 for r in log.records() if r[1] == 4)
    print("roll_fails", fails[0], "roll_errors", log.roll_errors, "task_restarts", app.errors,
          "ratings", ratings, "records", len(seqs))
    assert seqs == list(range(1, log.seq + 1)), "a record is missing or repeated"
    assert ratings == 29, ratings  # 30 citizens, one press lost to the fault
    print("PASS")


asyncio.run(main())
