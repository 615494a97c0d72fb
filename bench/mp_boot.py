# Power-on to the first rating accepted, on the virtual board: mount the flash,
# build the app (the log finds where it goes on: the last segment and the
# journal, never the whole log), a badge in the slot, 请评价, a key. With an
# empty log and with a full one (every block of a 1.5 MB partition written),
# so a scan that grew with the log would show here.
#   micropython -m mp_boot IMG
import asyncio
import sys
import time

import vfs
from simday import fresh_flash, remove

from firmware import record, storage
from firmware.app import App
from firmware.log import Log
from hw.sim.board import SimBoard

IMG = sys.argv[1]
BLOCKS = 384  # 1.5 MB
ROSTER = b"PJR1 1\n0A1B2C3D\tSB0101\tx\n"
WALL = 848710800  # 2026-11-23 09:00 +08:00, seconds since 2000


def fill(path):
    """A log written until the partition is full: ratings, a boot now and then."""
    fresh_flash(path, BLOCKS, "/fill")
    log = Log("/fill")
    n = 0
    while not log.full:
        log.append(record.RATING, 1 + n % 4, 0, 1, WALL + n)
        n += 1
    vfs.umount("/fill")
    return n


async def first_rating():
    t0 = time.ticks_us()
    board = SimBoard(IMG, WALL, BLOCKS)
    board.net = None  # the key path: no Wi-Fi link
    storage.replace("/flash/roster.txt", ROSTER)
    app = App(board)
    app.start()
    built = time.ticks_diff(time.ticks_us(), t0)
    tb = board.timebase
    board.rfid.insert(bytes.fromhex("0A1B2C3D"))
    await tb.advance(1000)  # the badge task polls the slot
    await board.press(4)  # 请评价
    await tb.advance(500)
    app.last_key = None
    board.keys[1].value(0)
    for _ in range(10000):  # bounded: a key task that died must not spin here forever
        if app.last_key is not None:
            break
        await asyncio.sleep_ms(0)
    else:
        raise SystemExit("the key press was not taken")
    took = time.ticks_diff(time.ticks_us(), t0)
    for t in app.tasks:
        t.cancel()
    vfs.umount("/flash")
    return built, took, app.log.full


def main():
    remove(IMG)
    fresh_flash(IMG, BLOCKS, "/f0")
    vfs.umount("/f0")
    built, took, _ = asyncio.run(first_rating())
    print("boot_empty_build_ms %.1f" % (built / 1000))
    print("boot_empty_first_rating_ms %.1f" % (took / 1000))
    n = fill(IMG)
    print("full_log_records %d" % n)
    built, took, full = asyncio.run(first_rating())
    print("boot_full_build_ms %.1f" % (built / 1000))
    print("boot_full_first_rating_ms %.1f" % (took / 1000))
    print("boot_full_log_full %d" % full)


main()
