# Entry point of the virtual device on the unix port:
#   micropython hw/sim/main.py --flash IMG [--time S2000] [--badge UID]
#                              [--provision DIR] [--blocks N] [--ctl DIR]
# Runs the real firmware (firmware/) on SimBoard and answers the line
# protocol (hw/sim/console.py) on stdin/stdout, or with --ctl on the FIFOs
# DIR/ctl.in and DIR/ctl.out,
# leaving stdin/stdout to the REPL (`pingjia sim --serial` puts it on a pty).
import asyncio
import os
import sys

from firmware import storage
from firmware.app import App
from hw.sim.board import ROOT, SimBoard
from hw.sim.console import Console
from hw.sim.flash import BLOCKS


def _args(argv):
    opts = {"--flash": None, "--time": None, "--badge": None, "--provision": None,
            "--blocks": None, "--ctl": None, "--sign": "4.2", "--ble": "0"}
    i = 0
    while i < len(argv):
        if argv[i] not in opts or i + 1 >= len(argv):
            raise SystemExit("sim_main: bad argument %r" % argv[i])
        opts[argv[i]] = argv[i + 1]
        i += 2
    if not opts["--flash"]:
        raise SystemExit("sim_main: --flash IMAGE is required")
    return opts


def provision(src):
    """Copy provisioning files (device.json, settings.json, roster.txt...) onto the flash."""
    for name in os.listdir(src):
        with open(src + "/" + name, "rb") as f:
            data = f.read()
        if name == "log.state":  # where the log goes on (a known device, a new flash)
            storage.makedirs(ROOT + "/log")
            name = "log/state"
        storage.replace(ROOT + "/" + name, data)


def main():
    o = _args(sys.argv[1:])
    wall = int(o["--time"]) if o["--time"] else None
    board = SimBoard(o["--flash"], wall, int(o["--blocks"] or BLOCKS),
                     eink=None if o["--sign"] == "text" else o["--sign"])
    board.ble = o["--ble"] == "1"  # aioble (the double, or the real one) on MICROPYPATH
    if o["--provision"]:
        provision(o["--provision"])
    if o["--badge"]:
        board.rfid.insert(bytes.fromhex(o["--badge"]))
    os.chdir(ROOT)  # the REPL sees the flash as a board's "/" (mpremote paths are relative)
    global app  # as main.py's on the board: `pingjia pull --usb` acks it from the REPL
    app = App(board)
    if o["--ctl"]:
        inp = open(o["--ctl"] + "/ctl.in", "r")
        out = open(o["--ctl"] + "/ctl.out", "w")
        con = Console(app, board, out=lambda s: out.write(s + "\n"))
        try:
            asyncio.run(con.run(inp, out))
        except KeyboardInterrupt:
            # Ctrl-C on the serial line, as on a board: the app stops, the REPL is free
            print("app stopped; the REPL is yours (soft reset: Ctrl-D)")
        except Exception as e:
            out.write("\x04 crash %r\n" % e)  # the launcher must not wait on a dead app
            raise
        finally:
            out.close()
        return
    asyncio.run(Console(app, board).run())


main()
