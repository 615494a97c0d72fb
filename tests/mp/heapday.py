# The whole firmware (App on the virtual board) through a day of ratings, with the heap
# after gc measured stage by stage, so the host can tell what the board would hold
# (design.md section 8) from what only the virtual board has. Staff change every 20
# citizens, so the sign draws names it has not drawn before (a drawn character must not
# stay behind in RAM). With the e-ink sign ("full") the Wi-Fi link syncs with a real
# collector after every 50 ratings.
#   heapday.py IMG PROVISION_DIR N STAFF text|full FONT_DIR [ROMFS_IMAGE]
# With ROMFS_IMAGE the device code is imported from that image mounted with vfs.VfsRom
# and runs in place, as from a board's ROMFS partition.
#
# Stages, each the heap in use after gc (printed as one JSON line, then PASS):
#   start     the interpreter and this script (the harness, not on the board)
#   image     the ROMFS image's bytes (flash on the board), its VfsRom object and mount
#   radio     (BLE) the `bluetooth` module, its radio object and its transport (the socket
#             to the bumble radio and the task reading it): the double of tests/ble, C
#             (NimBLE's binding and transport) on the board. asyncio, which the double
#             imports, is measured before it and counted as device code (frozen there).
#   aioble    (BLE) aioble's code (the double's, standing in for micropython-lib's):
#             frozen or mip'd on the board, so the board holds it (counted)
# BLE runs when $PINGJIA_HEAP_BLE is 1 (full only): the BLE link advertises and serves the
# host's pulls all day (bench/heap.py runs the radio and the pulls).
#   code      importing the modules the board runs (the list below): device code
#   sim_code  importing the virtual board (hw/sim/): C or silicon on the board
#   harness   this day's own helpers (tests/mp/simday.py)
#   board     the virtual board's objects (pins, SPI bus, the MFRC522 model, the flash
#             block device, virtual time, WLAN) and, inside them, two things the board
#             holds too: the littlefs mount and the reader's driver, measured apart by
#             making a second of each ("in_board")
#   boot, samples, end: the running firmware, before the day, every 50 ratings, after it
#             (with BLE, boot and end are taken between two of the host's pulls)
# Interned strings (micropython.qstr_info(), each line after a "qstrs: LABEL" line): before
# and after the code stage (the qstr pools the device's names take: flash in a frozen
# image, bench/heap.py), and at boot and the day's end (the counts must not change).
import gc
import sys

import micropython


def used():
    gc.collect()
    return gc.mem_alloc()


def qstrs(label):
    print("qstrs:", label)
    micropython.qstr_info()


# every key made now, so that filling them in allocates nothing that a stage would count
stages = {"start": 0, "image": 0, "radio": 0, "aioble": 0, "code": 0, "sim_code": 0,
          "harness": 0, "board": 0, "in_board": 0}
stages["start"] = used()
IMG, PROV = sys.argv[1], sys.argv[2]
N, SHIFTS = int(sys.argv[3]), int(sys.argv[4])
# full: the e-ink sign (the real driver, layout and glyph file; no chip model, as on the
# board) and the Wi-Fi link; text: the text sign and no network. The glyph file is copied
# onto the flash and read from there, as the board reads /lib/pj.pjf.
FULL = sys.argv[5] == "full"
FONTS = sys.argv[6]
ROM = sys.argv[7] if len(sys.argv) > 7 else None
import os  # noqa: E402 (built in: nothing on the heap)

BLE = FULL and os.getenv("PINGJIA_HEAP_BLE") == "1"

if ROM:
    import vfs

    with open(ROM, "rb") as f:
        image = bytearray(f.seek(0, 2))  # read into place: f.read() would grow a copy
        f.seek(0)
        f.readinto(image)
    vfs.mount(vfs.VfsRom(image), "/rom")
    sys.path.insert(0, "/rom")  # first, as the board's /rom is
    stages["image"] = used() - stages["start"]

asyncio_bytes = 0  # device code (frozen on the board), counted in the code stage below
if BLE:  # the radio's binding, its radio object and its link to the controller, apart
    mark = used()
    import asyncio  # the double needs it: imported first so that it is not the radio's

    asyncio_bytes = used() - mark
    mark = used()
    import bluetooth

    # active: the double's socket to the bumble radio and the task reading it, which are
    # NimBLE's transport on the board (C, outside the GC heap)
    bluetooth.BLE().active(True)
    stages["radio"] = used() - mark

# The code stage: what main.py, hw/esp32/board.py and the App import on the board
# (modules import what they need, so these pull in the rest). hw.esp32.board and
# firmware.timebase are the board's own: the virtual board uses hw/sim/ instead, but
# the board holds them. At the end every device module loaded must be one of these.
qstrs("before_code")
mark = used()
import asyncio  # noqa: E402 (frozen, as on the board)

if BLE:  # aioble's share of the code stage (it needs asyncio, counted as device code)
    amark = used()
    import aioble  # noqa: F401

    stages["aioble"] = used() - amark

import firmware.app  # noqa: E402, F401
import firmware.sign  # noqa: E402, F401
import firmware.timebase  # noqa: E402, F401
import hw.drivers.mfrc522  # noqa: E402, F401
import hw.esp32.board  # noqa: E402, F401

if FULL:
    import firmware.eink  # noqa: F401
    import firmware.layout  # noqa: F401
    import firmware.queue_link  # noqa: F401 (the queue system's invitations, with the link)
    import firmware.sync  # noqa: F401
    import hw.drivers.ssd168x  # noqa: F401
DEVICE = ("firmware", "hw.drivers", "hw.esp32")
# the board drops the pin map (and safe mode, which this day never loads) once the app
# runs (hw/esp32/board.py: Board.started); the virtual board is built on it, uncounted
DROPPED = ("hw.esp32.wiring",)
code_modules = set()
for name in sys.modules:
    if name.startswith(DEVICE) or name.startswith(("aioble", "bluetooth")):
        code_modules.add(name)
if BLE:
    import firmware.ble  # noqa: F401
for name in sys.modules:
    if name.startswith(DEVICE) or name.startswith(("aioble", "bluetooth")):
        code_modules.add(name)
stages["code"] = used() - mark - stages["aioble"] + asyncio_bytes
qstrs("after_code")

mark = used()
import hw.sim.board  # noqa: E402
import hw.sim.chips.mfrc522  # noqa: E402
import hw.sim.flash  # noqa: E402
import hw.sim.machine  # noqa: E402
import hw.sim.network  # noqa: E402
import hw.sim.vtime  # noqa: E402, F401

stages["sim_code"] = used() - mark

mark = used()
import json  # noqa: E402
import os  # noqa: E402

import vfs  # noqa: E402
from simday import copy_file, fresh_flash, remove, serve_one  # noqa: E402

from firmware import storage  # noqa: E402
from firmware.app import App  # noqa: E402
from firmware.sign import TextSign  # noqa: E402
from hw.esp32 import wiring  # noqa: E402

SimPin = hw.sim.machine.SimPin
remove(IMG)
stages["harness"] = used() - mark


def flash_as_deployed():
    """The flash as deploy and provisioning leave it, made before the board mounts it:
    the glyph file (full) and the provisioning files. Not after: a mounted littlefs
    keeps a pointer to the last buffer written to a file until that file changes, so a
    copy made through the board's mount pinned the harness's 4 KB copy buffer in the
    device's share of the heap until the device's own writes took its place."""
    bd = fresh_flash(IMG, hw.sim.flash.BLOCKS, "/deploy")
    if FULL:
        os.mkdir("/deploy/lib")
        copy_file(FONTS + "/pj.pjf", "/deploy/lib/pj.pjf", bytearray(4096))
    for name in os.listdir(PROV):
        with open(PROV + "/" + name, "rb") as f:
            storage.replace("/deploy/" + name, f.read())
    vfs.umount("/deploy")
    bd.f.close()


def in_board_probe():
    """The heap of a littlefs mount (VfsLfs2 with the log's cache sizes) and an MFRC522
    driver, made a second time on a bus, pins, chip model and block device of their own:
    the part of the virtual board's stage that the board holds as well."""
    bus = hw.sim.machine.SimSPI(wiring.SPI_ID)
    cs = SimPin(wiring.RFID_CS, SimPin.OUT, value=1)
    rst = SimPin(wiring.RFID_RST, SimPin.OUT, value=1)
    bus.chips.append((cs, hw.sim.chips.mfrc522.MFRC522Model(cs, rst)))
    bd = hw.sim.flash.FileBlockDev(IMG + ".probe", 16)
    vfs.VfsLfs2.mkfs(bd, **storage.LFS_OPTS)
    before = used()
    reader = hw.drivers.mfrc522.MFRC522(bus, cs, rst)
    vfs.mount(vfs.VfsLfs2(bd, **storage.LFS_OPTS), "/probe")
    size = used() - before
    vfs.umount("/probe")
    bd.f.close()
    remove(IMG + ".probe")
    del reader
    return size


IDLE_TRIES = 1500  # 20 ms apart: 30 s of real time for the host's next pull to end


async def ble_between_pulls(app, tb):
    """(BLE) Wait, in real time and bounded, until the host has had a pull acked and no
    central is connected: base and end are taken between two of the host's pulls. The
    link's first connection makes what every later one reuses (part of the base, not
    growth), and a live connection holds about 1 KB that its end gives back."""
    from aioble.device import DeviceConnection

    for _ in range(IDLE_TRIES):
        if app.ble.acks and not DeviceConnection._connected:
            await tb.settle()  # the supervisor lets go of the ended connection
            return
        await asyncio.sleep_ms(20)
    raise AssertionError("BLE: no pull acked, or a central stayed connected, for 30 s")


async def sign_in(board, i):
    """Staff i puts their badge in the slot (the last one's comes out first)."""
    tb = board.timebase
    board.rfid.remove()
    await tb.advance(1000)
    board.rfid.insert(bytes([0x0A, 0x1B, 0x2C, i]))
    await tb.advance(1000)


async def main():
    mark = used()
    flash_as_deployed()
    stages["harness"] += used() - mark
    mark = used()
    board = hw.sim.board.SimBoard(IMG, 848710800, sign=False)
    if FULL:  # the panel's lines: silicon on the board
        def out(n):
            return SimPin(n, SimPin.OUT, value=1)

        lines = (out(wiring.EINK_CS), out(wiring.EINK_DC), out(wiring.EINK_RST),
                 SimPin(wiring.EINK_BUSY, value=0))
    else:
        board.net = None
    board.ble = BLE  # the BLE link advertises, and serves the host's pulls
    stages["board"] = used() - mark
    stages["in_board"] = in_board_probe()

    if FULL:  # built as hw/esp32/board.py builds it: driver on the bus, glyph file, layout
        panel = hw.drivers.ssd168x.SSD1683(board.spi, *lines, board.timebase,
                                           rows=wiring.EINK_ROWS)
        board.sign = firmware.eink.build(panel, "/flash/lib")
    else:
        board.sign = TextSign()
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
    if BLE:
        await ble_between_pulls(app, tb)
    base = used()
    qstrs("base")  # interned strings: the host compares the counts
    samples = []
    for i in range(N):
        if i % 20 == 0 and i:
            await sign_in(board, i // 20 % SHIFTS)
        await serve_one(board, i)
        if i % 50 == 49:
            await sync()
            samples.append(used())
    if BLE:
        await ble_between_pulls(app, tb)
    end = used()
    qstrs("end")
    ratings = 0
    staff = set()
    for r in app.log.records():
        if r[1] == 4:
            ratings += 1
            staff.add(r[4])
    late = []  # device modules first imported after the code stage: the split would miss them
    for name in sys.modules:
        if (name.startswith(DEVICE) or name.startswith(("aioble", "bluetooth"))) \
                and name not in code_modules and name not in DROPPED:
            late.append(name)
    in_place = 0  # code modules loaded from the ROMFS image (with ROMFS_IMAGE: all of them)
    for name in code_modules:
        if getattr(sys.modules[name], "__file__", "").startswith("/rom/"):
            in_place += 1
    print(json.dumps({"stages": stages, "base": base, "end": end, "samples": samples,
                      "free": gc.mem_free(), "late_imports": late,
                      "code_modules": len(code_modules), "modules": sorted(code_modules), "from_romfs": in_place,
                      "aioble": "aioble" in sys.modules,
                      "ratings": ratings, "staff": len(staff), "seq": app.log.seq,
                      "acked": app.log.acked, "frames": link.frames if link else 0,
                      "sent": link.sent if link else 0,
                      "ble": {"connections": app.ble.connections, "frames": app.ble.frames,
                              "sent": app.ble.sent, "acks": app.ble.acks}
                      if app.ble else None}))
    assert ratings == N, ratings
    assert len(staff) == min(SHIFTS, (N + 19) // 20), staff  # each shift rated its own staff
    print("PASS")


asyncio.run(main())
