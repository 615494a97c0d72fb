# The virtual device with its Wi-Fi link, for the sync tests:
#   micropython sync_sim.py --flash IMG [--time S2000] [--provision DIR] [--badge UID]
# The line protocol of hw/sim/console.py, plus:
#   net on|off     the access point comes and goes
#   link           one JSON line: the link's counters and the log's seq/acked
#   run S          auto sync on; advance S virtual seconds one at a time, letting
#                  any sync in flight finish (real time, bounded) after each
import asyncio
import json
import os
import sys

from firmware import storage
from firmware.app import App
from firmware.sync import Link
from hw.sim.board import ROOT, SimBoard
from hw.sim.console import Console
from hw.sim.network import SimWLAN


class SyncConsole(Console):
    async def cmd_net(self, args):
        self._nargs(args, 1, 1, "net on|off")
        self.app.link.wlan.reachable = args[0] == "on"
        self.out("ok: net " + args[0])

    async def cmd_link(self, args):
        a = self.app
        k = a.link
        d = {"ok": k.ok, "fails": k.fails, "frames": k.frames, "sent": k.sent,
             "refused": k.refused, "backoff_s": k.backoff_ms // 1000,
             "last_error": k.last_error}
        d.update({"seq": a.log.seq, "acked": a.log.acked, "unsynced": a.log.unsynced(),
                  "boot": a.log.boot, "settings_version": a.settings["version"],
                  "roster_version": a.roster.version, "clock": a.clock.wall(),
                  "roster": [a.roster.entry(i)[1] for i in range(1, a.roster.count + 1)],
                  "invite_s": a.settings["invite_s"]})
        import gc

        gc.collect()
        d["mem_free"] = gc.mem_free()
        self.out(json.dumps(d))

    async def cmd_run(self, args):
        self._nargs(args, 1, 1, "run S")
        link = self.app.link
        link.auto = True
        link.kick.set()
        for _ in range(int(args[0])):
            await self.tb.advance(1000)
            for _ in range(3000):  # bounded: a sync in flight has its own timeouts
                await asyncio.sleep_ms(1)
                if not link.busy:
                    break
        link.auto = False
        self.out("ok: ran %s s; ok %d fails %d frames %d" % (args[0], link.ok, link.fails,
                                                            link.frames))


def main():
    argv = sys.argv[1:]
    o = {"--flash": None, "--time": None, "--provision": None, "--badge": None}
    for i in range(0, len(argv), 2):
        o[argv[i]] = argv[i + 1]
    wall = int(o["--time"]) if o["--time"] else None
    board = SimBoard(o["--flash"], wall)
    if o["--provision"]:
        for name in os.listdir(o["--provision"]):
            with open(o["--provision"] + "/" + name, "rb") as f:
                storage.replace(ROOT + "/" + name, f.read())
    if o["--badge"]:
        board.rfid.insert(bytes.fromhex(o["--badge"]))
    app = App(board)
    app.link = Link(app, SimWLAN(), auto=False)
    asyncio.run(SyncConsole(app, board).run())


main()
