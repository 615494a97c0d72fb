# The device application: builds the logic from a board and runs its tasks.
# Every task is created here (one place); each waits through the timebase.
import asyncio
import gc
import json

from firmware import forget, record, roster, storage, texts
from firmware.badge import POLL_MS, BadgeWatch
from firmware.clock import Clock, iso
from firmware.const import const
from firmware.core import Core
from firmware.keys import LONG, PRESS, RELEASE, Keys
from firmware.log import Log
from firmware.ui import Feedback

_GC_EVERY = const(16384)
_FEED_MS = const(1000)  # the watchdog is fed this often while every task lives
_RUNNING_MS = const(5000)  # tasks alive this long after start: the boot did not fail
_RESTART_MS = const(100)  # a task loop that raised starts again after this
_IDLE_S = const(3600)
# key indexes on board.keys: four citizen keys (0-3: key 1-4), then 请评价, then the status key
_CITIZEN_KEYS = const(4)
K_INVITE = const(4)
K_STATUS = const(5)


def _load_device(path):
    """(device.json's object, error text or None): an id and a key, or nothing."""
    try:
        d = storage.load_json(path, {})
    except ValueError as e:
        return {}, str(e)
    if not isinstance(d, dict) or d and not (isinstance(d.get("id"), str)
                                             and isinstance(d.get("key"), str)):
        return {}, "device.json: no id and key"
    return d, None


class App:
    def __init__(self, board):
        self.board = board
        Link = None
        if getattr(board, "net", None) is not None:
            from firmware.sync import Link  # before anything else: a late import fragments the heap

        tb = self.tb = board.timebase
        root = board.root.rstrip("/")
        self.paths = {
            "settings": root + "/settings.json",
            "roster": root + "/roster.txt",
            "device": root + "/device.json",
        }
        self.log = Log(root)
        # a small file that is missing or fails its checks never stops the boot:
        # its last good copy stands in (with an alert), else the defaults, and
        # the next sync brings the collector's
        self.settings, serr = self._load_settings()
        self.roster, rerr = self._trusted("roster", roster.load)
        self.device, derr = self._trusted("device", _load_device)
        self.clock = Clock(tb.mono_ms, self.settings["tz_min"])
        if board.wall_s is not None:  # an RTC that kept time, or the host set it
            self.clock.set(board.wall_s)
        self.ui = Feedback(board.leds, board.buzzer, tb)
        self.sign = board.sign
        self.core = Core(self.clock, self.log, self.settings, self.roster, self.ui)
        self.core.badge_salt = str(self.device.get("key", "")).encode()
        why = getattr(board, "boot_reason", 0)  # the ESP32 board knows; the sim does not say
        if why:
            self.log.append(record.BOOT_WHY, why, time=self.clock.rec_time())
        for damaged, alert in ((serr, "settings_corrupt"), (rerr, "roster_corrupt"),
                               (derr, "identity_corrupt"), (self.log.damaged, "log_damaged")):
            if damaged:
                self.core.add_alert(alert)
                print(alert, damaged)
        for fault in getattr(board, "faults", ()):  # a part that did not come up
            self.core.add_alert(fault)
        if self.sign:
            self.core.on_screen = self.sign.show
        self.wake = tb.flag()  # the core's deadlines may have moved
        self.keys = Keys(board.keys, tb.ticks_ms, tb.flag(), long_keys=(K_STATUS,))
        self.badge = BadgeWatch(board.reader) if board.reader else None
        self.last_key = None  # what the last citizen key did (for the virtual device)
        self.link = None  # the Wi-Fi sync supervisor, when the board has a network
        if Link is not None:
            self.link = Link(self, board.net, auto=getattr(board, "auto_sync", True))
        self.queue = self._queue_link()  # the queue system's invitations, over the network
        self.ble = None  # the BLE link (firmware/ble.py), when the board has a radio
        if getattr(board, "ble", False):
            try:
                from firmware.ble import BleLink  # needs aioble: frozen, or mip'd into /lib

                self.ble = BleLink(self)
            except ImportError as e:  # a stock image deployed --no-aioble: Wi-Fi and USB
                print("ble:", e)
        self.tasks = []
        self.errors = 0  # counts the task loops restarted after an exception
        self.last_error = None
        if self.sign:
            self.sign.show(self.core.current_screen())

    def _load_settings(self):
        """The settings file as _trusted gives it: firmware/settings.py runs at boot and
        on a pushed change only, so it is dropped after (firmware.forget)."""
        from firmware import settings

        try:
            return self._trusted("settings", settings.load)
        finally:
            forget("firmware.settings")

    def _trusted(self, name, load):
        """(content, what was wrong or None) of a small file: its own if it loads,
        else its last good copy's (name.good, renewed here from a file that
        loads), else what load gives for a missing file."""
        path = self.paths[name]
        good = path + ".good"
        obj, err = load(path)
        have = storage.read(path) is not None
        if have and err is None:
            try:
                storage.keep_copy(path, good)
            except OSError:  # a full flash: the file itself is good
                pass
            return obj, None
        if storage.read(good) is not None:
            copy, cerr = load(good)
            if cerr is None:
                return copy, err or "missing"
        return obj, err

    # ---- events from keys and the badge slot -----------------------------
    def on_key(self, k, kind):
        c = self.core
        if k < _CITIZEN_KEYS:
            if kind == PRESS:
                self.last_key = c.key(k + 1)
                if self.link:
                    self.link.notify()
        elif k == K_INVITE:
            if kind == PRESS:
                c.invite()
        elif k == K_STATUS:
            if kind == LONG:
                c.status_key(True)
            elif kind == RELEASE and not self.keys.long_done[k]:
                c.status_key(False)
        self.wake.set()

    def poll_badge(self):
        """Poll the slot once; True if the badge changed."""
        uid = self.badge.poll()
        if uid is False:
            return False
        self.core.badge(uid)
        self.wake.set()
        return True

    def _queue_link(self):
        if self.link is None or self.link.error:
            return None
        from firmware.queue_link import QueueLink

        try:
            return QueueLink(self)
        except OSError as e:  # no UDP port: invitations come from 请评价 only
            print("queue:", e)
            return None

    def queue_invite(self, ticket):
        """An invitation from the queue system, with its ticket (办件编号)."""
        ok = self.core.invite(ticket)
        self.wake.set()
        return ok

    # ---- what the collector (through the link) or the host tells ----------
    def set_time(self, wall_s):
        """The wall time, in seconds since 2000 UTC."""
        self.core.set_time(wall_s)
        self.wake.set()  # the core's deadlines may have moved

    def push_config(self, settings_json=None, roster_text=None):
        """New settings (JSON) and roster (roster.txt's bytes), either may be None:
        check both, store both (each file replaced atomically), then apply them.
        ValueError when one fails its checks, OSError when a file cannot be
        written: either way nothing changes."""
        try:
            new_s = None
            if settings_json is not None:
                from firmware import settings

                try:
                    new_s = settings.validate(json.loads(settings_json))
                finally:
                    forget("firmware.settings")
                if not new_s["sync_url"]:
                    new_s["sync_url"] = self.settings["sync_url"]  # never cut our own link
            new_r = roster.Roster(roster_text) if roster_text is not None else None
        except Exception as e:
            raise ValueError("pushed config rejected: %s" % e)
        settings_text = json.dumps(new_s).encode() if new_s is not None else None
        storage.replace_all(((self.paths["roster"], roster_text),
                             (self.paths["settings"], settings_text)))
        if new_s is not None:
            self.settings = new_s
        if new_r is not None:
            self.roster = new_r
        self.core.apply_settings(self.settings, new_r)
        self.wake.set()  # the core's deadlines may have moved

    def status(self):
        c = self.core
        name, f = c.current_screen()
        w = self.clock.wall()
        return {
            "screen": name,
            "staff_no": f["staff_no"],
            "unsynced": self.log.unsynced(),
            "seq": self.log.seq,
            "state": record.STATE_NAMES[c.state],
            "staff_name": f["staff_name"],
            "window": f["window"],
            "mode": c.settings["mode"],
            "notice": f["notice"],
            "alert": f["alert"],
            "alerts": c.all_alerts(),
            "clock": None if w is None else iso(w, self.clock.tz_min),
            "boot": self.log.boot,
            "log_full": self.log.full,
            "sign": texts.text((name, f)),
        }

    # ---- tasks -------------------------------------------------------------
    async def keys_task(self):
        keys = self.keys
        while True:
            now = self.tb.mono_ms()
            for k, kind, _at in keys.process(now):
                self.on_key(k, kind)
            await self.tb.wait(keys.flag, keys.deadline)

    async def core_task(self):
        while True:
            self.core.tick()
            await self.tb.wait(self.wake, self.core.next_deadline())

    async def badge_task(self):
        while True:
            self.poll_badge()
            await self.tb.sleep_ms(POLL_MS)

    async def _keep(self, loop, *args):
        """Run a task's loop for good: an exception (a full heap, a flash fault) is
        counted and the loop starts again, so no fault leaves the keypad dead."""
        while True:
            try:
                return await loop(*args)  # a loop that ends (the text sign's) is done
            except Exception as e:
                self.errors += 1
                self.last_error = e
                print("task restarted:", repr(e))
                await self.tb.sleep_ms(_RESTART_MS)

    def start(self):
        """Create every task; returns them."""
        # collect after every _GC_EVERY bytes allocated, not only when the heap is
        # exhausted: garbage is freed before long-lived objects (a file, a name)
        # land in the middle of it and cut the free heap into small holes
        gc.collect()
        gc.threshold(_GC_EVERY)
        t = self.tasks
        for loop, *args in ((self.keys_task,), (self.core_task,), (self.ui.run,),
                            (self.badge and self.badge_task,), (self.sign and self.sign.run, self.tb),
                            (self.link and self.link.run,), (self.ble and self.ble.run,),
                            (self.queue and self.queue.run,)):
            if loop:
                t.append(asyncio.create_task(self._keep(loop, *args)))
        return t

    def alive(self):
        """Every task loop is still running (none ended or was lost)."""
        for t in self.tasks:
            if t.done():
                return False
        return True

    async def watchdog_task(self, wdt):
        """Feed the board's hardware watchdog while the event loop turns and every
        task lives: a loop stuck in a call (a hung bus, a busy wait) starves this
        task too, and the watchdog resets the board."""
        while self.alive():
            wdt.feed()
            await self.tb.sleep_ms(_FEED_MS)
        print("a task loop ended: the watchdog will reset the board")

    async def run(self):
        self.start()
        wdt = getattr(self.board, "watchdog", None)
        if wdt is not None:
            asyncio.create_task(self.watchdog_task(wdt))
        started = getattr(self.board, "started", None)
        if started is not None:
            await self.tb.sleep_ms(_RUNNING_MS)
            started()  # the board's count of failed boots ends here
        while True:
            await asyncio.sleep(_IDLE_S)
