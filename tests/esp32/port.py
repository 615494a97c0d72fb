# The ESP32 port's start-up, on the unix port with the ESP32 double: what the
# firmware image does before our code runs (ports/esp32/modules/_boot.py: mount
# the littlefs "vfs" partition over "/", format it when blank; sys.path '',
# .frozen, /lib), then boot.py and main.py from that flash, as pyexec does.
# Before that it puts the chips on the copper (tests/esp32/world.py), and a task
# takes the test side's commands on stdin (keys, the badge slot, a stuck bus).
#
#   PINGJIA_ESP32_WORLD=world.json micropython port.py
import asyncio
import json
import select
import sys
import time

import esp32
import machine  # noqa: F401 (the double, imported before the host's files go away)
import network  # noqa: F401
import vfs
import world
from micropython import const

_POLL_MS = const(10)


class Clock:
    """The panel model's sense of time: the board's real one."""

    def mono_ms(self):
        return world.now_ms()

    def ticks_ms(self):
        return time.ticks_ms()


def put_chips(cfg):
    """The chips the world's board carries, on their lines (hw/esp32/wiring.py's
    pins). A missing one (a loose cable) answers 0xFF on the bus, as MISO floats high."""
    models = {}
    if cfg.get("reader", True):
        from hw.sim.chips.mfrc522 import MFRC522Model

        cs = world.line(15)
        models["reader"] = MFRC522Model(cs, world.line(21))
        world.chips.append((cs, models["reader"]))
    panel = cfg.get("panel", "4.2")
    if panel:
        from hw.sim.chips.ssd168x import PanelModel

        cs = world.line(5)
        model = PanelModel(panel, Clock(), cs, world.line(17), world.line(16), 4)
        world.line(4).driver = model.busy_pin.value
        world.chips.append((cs, model))
        models["panel"] = model
    else:
        world.line(4).level = 1  # no panel: BUSY floats high through its pull-up
    return models


def forget_host_modules():
    """The chip models came from the host's build; the board's own hw/ and
    firmware/ must come from its flash, so the host's are forgotten."""
    for name in list(sys.modules):
        if name in ("hw", "firmware") or name.startswith(("hw.", "firmware.")):
            del sys.modules[name]


def mount_flash(host_dir):
    bdev = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="vfs")[0]
    host = vfs.VfsPosix(host_dir)
    vfs.umount("/")
    try:
        fs = vfs.VfsLfs2(bdev)
    except OSError:  # a blank flash: the port formats it (inisetup.py)
        vfs.VfsLfs2.mkfs(bdev)
        fs = vfs.VfsLfs2(bdev)
    vfs.mount(fs, "/")
    vfs.mount(host, "/host")  # the test side's files: RTC memory, nothing of the board's
    import os

    os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib"]


async def commands(models):
    """Lines from the test side: press GPIO MS, hold GPIO, release GPIO,
    badge UID, badge out, trace, status, stall, quit."""
    poll = select.poll()
    poll.register(sys.stdin, select.POLLIN)
    while True:
        if not poll.poll(0):
            await asyncio.sleep_ms(_POLL_MS)
            continue
        words = sys.stdin.readline().split()
        if not words:
            raise SystemExit(0)  # the test side closed stdin
        await command(words, models)


async def command(words, models):
    cmd = words[0]
    if cmd == "press":
        ln = world.line(int(words[1]))
        ln.drive(0)
        await asyncio.sleep_ms(int(words[2]))
        ln.drive(1)
    elif cmd == "hold":
        world.line(int(words[1])).drive(0)
    elif cmd == "release":
        world.line(int(words[1])).drive(1)
    elif cmd == "badge":  # into the slot; with no reader fitted nobody reads it
        if "reader" in models:
            models["reader"].card = None if words[1] == "out" else bytes.fromhex(words[1])
    elif cmd == "trace":
        world.event("trace " + json.dumps(world.trace))
        world.trace.clear()
    elif cmd == "status":  # what a technician reads at the REPL: app.status()
        world.event("status " + json.dumps(MAIN["app"].status()))
    elif cmd == "stall":
        world.event("stalled")
        while True:  # a bus that hangs the CPU: only the watchdog gets it back
            pass
    elif cmd == "quit":
        raise SystemExit(0)
    world.event("ok " + cmd)


MAIN = {"__name__": "__main__"}  # main.py's globals: its `app`, once built


def run_file(name):
    with open(name) as f:
        code = f.read()
    exec(compile(code, name, "exec"), MAIN)


def main():
    cfg = world.config()
    models = put_chips(cfg)
    esp32.flash()  # opened while the host's files are still there
    forget_host_modules()
    mount_flash(cfg["host"])
    asyncio.create_task(commands(models))  # runs inside main.py's event loop
    world.event("boot " + str(machine.reset_cause()))
    run_file("boot.py")
    if cfg.get("main", True):
        run_file("main.py")
    world.event("repl")  # where the port's REPL would take over


main()
