# The window's logic: duty and status (badge, 请稍候, 暂停服务, opening hours)
# and the rating session (一事一评). A state machine fed events and the clock;
# every timer is a deadline it reports, so the asyncio layer (or a test, or the
# virtual device's `sleep`) only has to call tick() when the nearest one is due.
from hashlib import sha256

from firmware import record
from firmware.const import const
from firmware.schedule import Schedule

# what the sign shows besides the status screens
INVITE = "invite"
REASON = "reason"
THANKS = "thanks"

# LED patterns for the citizen keys
LEDS_OFF = const(0)
LEDS_BLINK = const(1)
LEDS_ON = const(2)

_DISSATISFIED = const(4)  # key 4 不满意: a 差评, whose reason is asked for
_HOUR_S = const(3600)

_ALLOWED = (record.SERVING, record.OVERTIME)


class Core:
    def __init__(self, clock, log, settings, roster, ui=None):
        self.clock = clock
        self.log = log
        self.ui = ui  # .leds(pattern), .beep(); optional
        self.alerts = []  # technician alerts from outside (settings, sync); see all_alerts()
        self.on_screen = None  # callback(screen) when what is shown changes
        self.state = record.NO_STATE
        self.slot = 0  # staff on duty (roster slot), 0 nobody
        self.status_slot = 0  # staff of the last status record
        self.uid = None  # badge in the slot
        self.unknown = False  # a badge is in the slot but not on the roster
        # keyed into an unknown badge's tag (the device key): no UID crosses the network
        self.badge_salt = b""
        self.toggle = record.SERVING  # staff's choice: SERVING, WAIT or PAUSED
        self.phase = None  # None, INVITE, REASON, THANKS
        self.ticket = None
        self.rated = False  # the open invitation already has its rating
        self.rating_seq = 0
        self.after_end = 0  # mono ms when the last rating's reason and thank-you end
        self.invite_end = None  # mono ms
        self.phase_end = None
        self.wait_end = None  # mono ms when a 请稍候 becomes overlong
        self.sched_at = None
        self.last_free = None  # mono ms of the last counted press in free mode
        self.tally_hour = None  # record time of the hour being tallied
        self.tally_end = None  # mono ms when that hour ends
        self.stray = 0
        self.dropped = 0
        self.screen = None
        self.apply_settings(settings, roster, boot=True)
        log.append(record.BOOT, *record.split24(log.boot), time=clock.rec_time())
        self._update(record.WHY_BOOT)

    # ---- configuration -------------------------------------------------
    def apply_settings(self, settings, roster=None, boot=False):
        self.settings = settings
        self.schedule = Schedule(settings)
        self.clock.tz_min = settings["tz_min"]
        if roster is not None:
            self.roster = roster
        if boot:
            return
        v = settings["version"]  # a config record's version: arg | staff << 8
        self.log.append(record.CONFIG, record.CONFIG_SETTINGS, v & 0xFF, v >> 8 & 0xFF, self.clock.rec_time())
        if roster is not None:
            v = roster.version
            self.log.append(record.CONFIG, record.CONFIG_ROSTER, v & 0xFF, v >> 8 & 0xFF, self.clock.rec_time())
            if self.uid:
                self._badge(self.uid)
        self._update(record.WHY_SETTINGS)

    def set_time(self, wall_s):
        """The host or the collector tells the time (seconds since 2000 UTC)."""
        if self.clock.set(wall_s):
            self.log.append(record.CLOCK_SET, *record.split24(min(self.clock.uptime_s(), record.DATA24_MAX)),
                            time=wall_s)
            self._update(record.WHY_CLOCK)

    # ---- events ----------------------------------------------------------
    def badge(self, uid):
        """A badge (hex UID) went into the slot; None: the slot is empty."""
        self._flush_tallies()
        self._badge(uid)
        self._update(record.WHY_BADGE)

    def _badge(self, uid):
        was = self.uid
        self.uid = uid
        self.slot = self.roster.lookup(uid) if uid else 0
        self.unknown = bool(uid) and not self.slot
        if uid != was:
            self.toggle = record.SERVING
            if self.unknown:
                self.log.append(record.UNKNOWN_BADGE, *record.split24(self._badge_tag(uid)),
                                time=self.clock.rec_time())

    def _badge_tag(self, uid):
        """24 bits of SHA-256(device key, UID): the same badge gives the same tag (the
        office sees it come back; the collector, which has the key, can match it against
        a roster), but the UID itself never leaves the device."""
        digest = sha256(self.badge_salt + uid.encode()).digest()
        return digest[0] | digest[1] << 8 | digest[2] << 16

    def status_key(self, long):
        """Status key: a short press toggles 请稍候, a long one 暂停服务.
        False if there is nobody on duty to ask for it."""
        if not self.slot:
            return False
        t = record.PAUSED if long else record.WAIT
        self.toggle = record.SERVING if self.toggle == t else t
        self._update(record.WHY_KEY)
        return True

    def invite(self, ticket=None):
        """Staff press 请评价. False when the window is not serving."""
        if self.settings["mode"] != "invite" or self.state not in _ALLOWED:
            return False
        self._end_session()
        self.ticket = ticket
        self.rated = False
        self.invite_end = self.clock.mono_ms() + self.settings["invite_s"] * 1000
        self._phase(INVITE, self.invite_end, LEDS_BLINK)
        self._show()
        return True

    def key(self, k):
        """A citizen key (1-4). Returns what it did: rating, reason, stray, dropped."""
        now = self.clock.mono_ms()
        if self.phase == REASON:
            # no beep, no change of the LEDs: after keys 1-3 a second press does
            # nothing either (design.md section 2: staff cannot tell)
            self.log.append(record.REASON, k, 0, self.slot, self.rating_seq)
            return self._thanks(now, "reason")
        if self.settings["mode"] == "free":
            if self.state == record.WAIT or (self.slot and self.toggle == record.PAUSED):
                return self._tally(False)
            gap = self.settings["min_interval_s"] * 1000
            if self.last_free is not None and now - self.last_free < gap:
                return self._tally(True)
            self.last_free = now
            mode = record.FREE
        elif self.invite_end is not None and now < self.invite_end:
            if self.rated:
                return self._tally(True)
            mode = record.INVITED
        else:
            return self._tally(False)
        self.rating_seq = self.log.append(record.RATING, k, mode, self.slot, self.clock.rec_time(),
                                          self.ticket)
        # durable from here: only now may the citizen see the thank-you
        self.rated = True
        self.ticket = None
        if self.ui:
            self.ui.beep()
        # every rating ends at the same time after its key, whatever was keyed:
        # the reason's time and the thank-you's, for 1-3 all thank-you
        self.after_end = now + (self.settings["reason_s"] + self.settings["thanks_s"]) * 1000
        if k == _DISSATISFIED:
            self._phase(REASON, now + self.settings["reason_s"] * 1000, LEDS_ON)
            self._show()
            return "rating"
        return self._thanks(now, "rating")

    def _thanks(self, now, what):
        self._phase(THANKS, max(self.after_end, now), LEDS_ON)
        self._show()
        return what

    def _tally(self, dropped):
        t = self.clock.rec_time()
        s = (t & ~record.REL) % _HOUR_S  # into the hour (wall, or uptime while the clock is unknown)
        if self.tally_hour is not None and t - s != self.tally_hour:
            self._flush_tallies()
        if self.tally_hour is None:
            self.tally_hour = t - s
            self.tally_end = self.clock.mono_ms() + (_HOUR_S - s) * 1000
        if dropped:
            self.dropped += 1
            return "dropped"
        self.stray += 1
        return "stray"

    # ---- time -----------------------------------------------------------
    def next_deadline(self):
        d = None
        for t in (self.phase_end, self.invite_end, self.wait_end, self.sched_at,
                  self.tally_end):
            if t is not None and (d is None or t < d):
                d = t
        return d

    def tick(self):
        """Run every timer that is due."""
        now = self.clock.mono_ms()
        if self.invite_end is not None and now >= self.invite_end:
            self.invite_end = None
            if not self.rated:
                self.log.append(record.NO_RATING, 0, record.TIMED_OUT, self.slot, self.clock.rec_time(), self.ticket)
                self.ticket = None
                self.rated = True
                if self.phase == INVITE:
                    self._phase(None)
                    self._show()
        if self.phase_end is not None and now >= self.phase_end:
            if self.phase == REASON:
                self._thanks(now, None)
            else:
                self._phase(None)
                self._show()
        if self.wait_end is not None and now >= self.wait_end:
            self.wait_end = None
            self.log.append(record.FLAG, record.FLAG_WAIT_LONG, 0, self.slot, self.clock.rec_time())
        if self.sched_at is not None and now >= self.sched_at:
            self._update(record.WHY_SCHEDULE)
        if self.tally_end is not None and now >= self.tally_end:
            self._flush_tallies()

    # ---- state ----------------------------------------------------------
    def _update(self, why):
        """Derive the state from duty, the staff's choice and the hours; record a change."""
        now = self.clock.mono_ms()
        local = self.clock.local()
        is_open = None  # unknown clock
        self.sched_at = None
        if local is not None:
            is_open, d = self.schedule.at(local)
            self.sched_at = now + d * 1000
        if not self.slot:
            new = record.CLOSED if is_open is False else record.PAUSED
        elif self.toggle != record.SERVING:
            new = self.toggle
        else:
            new = record.OVERTIME if is_open is False else record.SERVING
        if new != self.state or self.slot != self.status_slot:
            self._flush_tallies()
            arg = why
            if new == record.PAUSED and not self.slot and is_open:
                arg |= record.FLAGGED  # nobody at the window in working hours
            self.log.append(record.STATUS, new | self.state << 4, arg, self.slot, self.clock.rec_time())
            self.state = new
            self.status_slot = self.slot
            self.wait_end = now + self.settings["wait_max_s"] * 1000 if new == record.WAIT else None
            if new not in _ALLOWED:
                self._end_session()
        self._show()

    def _end_session(self):
        """An open invitation ends unrated: a no_rating, cancelled."""
        if self.invite_end is not None and not self.rated:
            self.log.append(record.NO_RATING, 0, record.CANCELLED, self.slot, self.clock.rec_time(), self.ticket)
        self.invite_end = None
        self.rated = False
        self.ticket = None
        if self.phase is not None:
            self._phase(None)

    def _phase(self, phase, end=None, leds=LEDS_OFF):
        self.phase = phase
        self.phase_end = end
        if self.ui:
            self.ui.leds(leds)

    # ---- tallies of presses that count nothing ------------------------------
    def _flush_tallies(self):
        h = self.tally_hour
        if self.stray:
            self.log.append(record.STRAY, self.stray & 0xFF, self.stray >> 8 & 0xFF, self.slot, h)
            self.stray = 0
        if self.dropped:
            self.log.append(record.DROPPED, self.dropped & 0xFF, self.dropped >> 8 & 0xFF,
                            self.slot, h)
            self.dropped = 0
        self.tally_hour = None
        self.tally_end = None

    # ---- what is shown ---------------------------------------------------
    def add_alert(self, name):
        if name not in self.alerts:
            self.alerts.append(name)
            self._log_alert(name, 1)
            self._show()

    def clear_alert(self, name):
        """The alert's cause is gone."""
        if name in self.alerts:
            self.alerts.remove(name)
            self._log_alert(name, 0)
            self._show()

    def _log_alert(self, name, raised):
        # a record, so the collector learns when each alert came and went
        if name in record.ALERT_NAMES:
            self.log.append(record.ALERT, record.ALERT_NAMES.index(name), raised, 0,
                            self.clock.rec_time())

    def all_alerts(self):
        """Technician alerts, most urgent first: the log's and the clock's, then the rest."""
        a = []
        if self.log.full:
            a.append("log_full")
        if not self.clock.known:
            a.append("clock_unknown")
        return a + self.alerts

    def staff_entry(self):
        return self.roster.entry(self.slot)

    def current_screen(self):
        name = self.phase or record.STATE_NAMES[self.state]
        e = self.staff_entry()
        alerts = self.all_alerts()
        return (name, {
            "window": self.settings["window"],
            "staff_no": e[1] if e else None,
            "staff_name": e[2] if e else None,
            "notice": "unknown_badge" if self.unknown else None,
            "alert": alerts[0] if alerts else None,
        })

    def _show(self):
        s = self.current_screen()
        if s != self.screen:
            self.screen = s
            if self.on_screen:
                self.on_screen(s)
