# The virtual device's line protocol (design.md section 7), on the device side.
# Each command answers one line or more, then a line "\x04 <mono ms>" that the
# host launcher (host_tools/device/sim.py) strips; it handles `power` itself.
import asyncio
import json
import sys

from micropython import const

from firmware import record
from firmware.app import K_INVITE, K_STATUS
from firmware.clock import iso, parse_iso

_PRESS_MS = const(100)  # a key press, held this long
_LONG_MS = const(1600)  # a long press (firmware/keys.py takes 1.5 s)
_MAX_SLEEP_S = const(31 * 86400)  # `sleep` moves time by a month at most

HELP = (
    "commands: key N | invite [TICKET] | wait | pause | badge UID | badge out | "
    "sleep S | power off|on | sync | status | log | clock ISO | quit"
)


class CommandError(Exception):
    pass


def dumps(d, first):
    """One JSON object with the keys in first leading (MicroPython dicts keep no order)."""
    keys = [k for k in first if k in d] + [k for k in d if k not in first]
    return "{" + ", ".join(json.dumps(k) + ": " + json.dumps(d[k]) for k in keys) + "}"


_LOG_KEYS = ("seq", "kind", "time", "level", "level_name", "staff_no", "staff_name", "ticket",
             "reason", "reason_text", "from", "to", "why")
_STATUS_KEYS = ("screen", "staff_no", "unsynced", "seq", "state", "staff_name", "window")


class Console:
    def __init__(self, app, board, out=None):
        self.app = app
        self.board = board
        self.tb = board.timebase
        self.out = out or self._print

    def _print(self, line):
        sys.stdout.write(line + "\n")

    async def press(self, k, ms):
        await self.board.press(k, ms)

    async def handle(self, line):
        """Run one command line; False when it was quit."""
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            return True
        cmd, args = parts[0].lower(), parts[1:]
        fn = getattr(self, "cmd_" + cmd, None)
        if fn is None:
            raise CommandError("unknown command %r; %s" % (cmd, HELP))
        return await fn(args) is not False

    def _nargs(self, args, lo, hi, usage):
        if not lo <= len(args) <= hi:
            raise CommandError("usage: " + usage)

    async def cmd_key(self, args):
        self._nargs(args, 1, 1, "key N   (N = 1 非常满意, 2 满意, 3 基本满意, 4 不满意)")
        try:
            n = int(args[0])
        except ValueError:
            n = 0
        if not 1 <= n <= 4:
            raise CommandError("key must be 1, 2, 3 or 4, not %r" % args[0])
        c = self.app.core
        before = c.log.seq
        self.app.last_key = None
        await self.press(n - 1, _PRESS_MS)
        what = self.app.last_key
        if what == "rating":
            self.out("ok: key %d counted (seq %d)" % (n, c.rating_seq))
        elif what == "reason":
            self.out("ok: key %d taken as the reason (seq %d)" % (n, c.log.seq))
        elif what == "dropped":
            self.out("ok: key %d not counted (already rated, or too soon)" % n)
        elif what == "stray":
            self.out("ok: key %d not counted (no invitation open)" % n)
        else:
            self.out("ok: key %d (%s)" % (n, "stored" if c.log.seq != before else "no effect"))

    async def cmd_invite(self, args):
        self._nargs(args, 0, 1, "invite [TICKET]")
        c = self.app.core
        if args:
            t = args[0]
            if len(t.encode()) > record.TICKET_MAX:
                raise CommandError("ticket is longer than %d bytes" % record.TICKET_MAX)
            ok = self.app.queue_invite(t)
            await self.tb.settle()
        else:
            await self.press(K_INVITE, _PRESS_MS)
            ok = c.phase == "invite"
        if ok:
            self.out("ok: invitation open for %d s" % c.settings["invite_s"])
        else:
            why = "free mode" if c.settings["mode"] == "free" else record.STATE_NAMES[c.state]
            self.out("error: no invitation: the window is not serving (%s)" % why)

    async def _status_key(self, ms, what):
        c = self.app.core
        before = c.state
        await self.press(K_STATUS, ms)
        if not c.slot:
            self.out("error: %s ignored: nobody on duty (no badge in the slot)" % what)
        else:
            self.out("ok: %s -> %s" % (record.STATE_NAMES[before], record.STATE_NAMES[c.state]))

    async def cmd_wait(self, args):
        self._nargs(args, 0, 0, "wait")
        await self._status_key(_PRESS_MS, "wait")

    async def cmd_pause(self, args):
        self._nargs(args, 0, 0, "pause")
        await self._status_key(_LONG_MS, "pause")

    async def cmd_badge(self, args):
        self._nargs(args, 1, 1, "badge UID | badge out")
        rfid = self.board.rfid
        if args[0].lower() == "out":
            rfid.remove()
        else:
            uid = args[0].replace(":", "")
            try:
                raw = bytes.fromhex(uid)
            except ValueError:
                raw = b""
            if len(raw) not in (4, 7):
                raise CommandError("badge UID must be 4 or 7 bytes in hex, e.g. 0A1B2C3D")
            rfid.insert(raw)
        # poll the reader now, as the badge task would within a poll or two
        for _ in range(3):
            if self.app.poll_badge():
                break
        await self.tb.settle()
        c = self.app.core
        e = c.staff_entry()
        if c.uid is None:
            self.out("ok: badge out; window %s" % record.STATE_NAMES[c.state])
        elif c.unknown:
            self.out("error: unknown badge %s (未登记的工牌); window %s" % (c.uid, record.STATE_NAMES[c.state]))
        else:
            self.out("ok: %s %s on duty; window %s" % (e[1], e[2], record.STATE_NAMES[c.state]))

    async def cmd_sleep(self, args):
        self._nargs(args, 1, 1, "sleep S")
        try:
            s = float(args[0])
        except ValueError:
            s = -1
        if not 0 <= s <= _MAX_SLEEP_S:
            raise CommandError("sleep takes seconds from 0 to %d" % _MAX_SLEEP_S)
        await self.tb.advance(int(s * 1000))
        self.out("ok: slept %s s" % args[0])

    async def cmd_clock(self, args):
        self._nargs(args, 1, 1, "clock 2026-11-23T09:00:00+08:00")
        try:
            t = parse_iso(args[0])
        except Exception:
            raise CommandError("clock takes an ISO 8601 time, e.g. 2026-11-23T09:00:00+08:00")
        self.app.set_time(t)
        await self.tb.settle()
        self.out("ok: clock set to %s" % iso(t, self.app.clock.tz_min))

    async def cmd_sync(self, args):
        self._nargs(args, 0, 0, "sync")
        link = self.app.link
        if link is None:
            self.out("error: no collector configured for this device")
            return
        self.out(await link.sync_now())

    async def cmd_status(self, args):
        self._nargs(args, 0, 0, "status")
        self.out(dumps(self.app.status(), _STATUS_KEYS))

    async def cmd_log(self, args):
        self._nargs(args, 0, 0, "log")
        from firmware import logview

        lg = self.app.log
        reasons, offsets = logview.scan(lg.records())
        for d in logview.decode(lg.records(), reasons, offsets, self.app.roster.entry,
                               self.app.clock.tz_min):
            self.out(dumps(d, _LOG_KEYS))

    async def cmd_help(self, args):
        self.out(HELP)

    async def cmd_power(self, args):
        raise CommandError("power is handled by the launcher (pingjia sim)")

    async def cmd_quit(self, args):
        self.out("ok: bye")
        return False

    async def run(self, inp=None, out=None):
        inp = inp or sys.stdin
        out = out or sys.stdout
        self.app.start()
        await self.tb.settle()
        # with a radio or the queue system's invitations, their tasks run between commands
        # too: wait for a line in the event loop, not in a blocking read
        live = getattr(self.board, "ble", False) or getattr(self.app, "queue", None)
        reader = asyncio.StreamReader(inp) if live else None
        while True:
            line = (await reader.readline()).decode() if reader else inp.readline()
            if not line:
                break
            try:
                go = await self.handle(line.strip())
            except CommandError as e:
                self.out("error: %s" % e)
                go = True
            self.out("\x04 %d" % self.tb.mono_ms())
            try:
                out.flush()
            except (AttributeError, OSError):
                pass  # unbuffered, or a FIFO (flush is fsync there)
            if not go:
                break
