# The e-ink sign: show() only notes the newest screen (cheap, called on every
# change); run() draws it and refreshes the panel under design.md section 8's
# policy: one update per change, none while idle, the newest screen wins, at
# least 2 s between updates, partial refreshes with a full one after 5 partial
# ones once 180 s have passed since the last full one, and one full a day.
# The driver puts the panel into deep sleep after every update.
from firmware import texts
from firmware.const import const

_MIN_GAP_MS = const(2000)
_SETTLE_MS = const(300)  # changes this close together draw once
_PARTIAL_RUN = const(5)
_FULL_GAP_MS = const(180_000)
_DAY_MS = const(86_400_000)
_RETRY_MS = const(30_000)  # after a panel fault, doubling up to _RETRY_MAX_MS
_RETRY_MAX_MS = const(960_000)


class EinkSign:
    """driver: an SSD168x driver; layout: a Layout drawing on it."""

    def __init__(self, driver, layout, on_update=None):
        self.driver = driver
        self.layout = layout
        self.on_update = on_update  # callable(sign) after each panel update
        self.screen = None  # the newest screen asked for
        self.shown = None  # the screen on the panel (None: unknown)
        self._flag = None
        self._end = None  # mono_ms when the last update ended
        self._full = None  # mono_ms when the last full update began
        self._partials = 0  # partial updates since the last full one
        # counters
        self.requests = 0  # show() calls
        self.full = 0  # full panel updates
        self.partial = 0  # partial ones (all updates: their sum)
        self.daily = 0  # full updates made only because a day had passed
        self.errors = 0  # updates lost to a panel fault
        self.last_error = None

    # --- the sign interface
    def show(self, screen):
        self.screen = screen
        self.requests += 1
        if self._flag is not None:
            self._flag.set()

    def text(self):
        return texts.text(self.screen) if self.screen else ""

    def counts(self):
        return {"requests": self.requests, "updates": self.full + self.partial, "full": self.full,
                "partial": self.partial, "daily": self.daily, "errors": self.errors}

    # --- the refresh task
    async def run(self, tb):
        if self._flag is None:
            self._flag = tb.flag()
        retry = _RETRY_MS
        while True:
            if not await self._next_change(tb):
                continue
            screen = self.screen
            now = tb.mono_ms()
            full = self._full_due(now)
            try:
                await self.driver.show(full, lambda: self.layout.draw(screen))
            except Exception as e:  # a stuck panel (or no RAM) must not stop the device
                self.errors += 1
                self.last_error = e
                self.shown = None  # unknown: the next update is a full one
                self._end = tb.mono_ms()
                await tb.sleep_ms(retry)
                retry = min(retry * 2, _RETRY_MAX_MS)
                continue
            retry = _RETRY_MS
            self._updated(tb, screen, now, full)

    async def _next_change(self, tb):
        """Wait for a screen to draw: True when one is due (a change, once it has
        settled and the gap since the last update has passed, or a day without
        a full update), False when the wait ended with nothing to draw."""
        flag = self._flag
        if self.screen is None or self.screen == self.shown:
            due = None if self._full is None else self._full + _DAY_MS
            await tb.wait(flag, due)
            if due is None or tb.mono_ms() < due or self.screen is None:
                return False
            self.daily += 1  # idle for a day: one full refresh clears ghosting
            return True
        # let quick toggles settle and keep the gap; newer screens replace it
        start = tb.mono_ms() + _SETTLE_MS
        if self._end is not None and self._end + _MIN_GAP_MS > start:
            start = self._end + _MIN_GAP_MS
        while tb.mono_ms() < start:
            await tb.wait(flag, start)
        return self.screen != self.shown  # toggled back: nothing to draw

    def _full_due(self, now):
        """A full refresh when the panel's state is unknown (boot, or after a
        fault), once a day, and after a run of partial ones, 180 s apart."""
        since = None if self._full is None or self.shown is None else now - self._full
        return since is None or since >= _DAY_MS or (
            self._partials >= _PARTIAL_RUN and since >= _FULL_GAP_MS)

    def _updated(self, tb, screen, began, full):
        self._end = tb.mono_ms()
        self.shown = screen
        if full:
            self.full += 1
            self._full = began
            self._partials = 0
        else:
            self.partial += 1
            self._partials += 1
        if self.on_update:
            try:
                self.on_update(self)
            except Exception as e:  # a viewer's hook must not stop the sign
                self.last_error = e


def build(driver, font_dir="/lib", on_update=None):
    """The sign for a driver (hw/drivers/ssd168x.py): glyph files from font_dir
    (lib/*.pjf), laid out for the panel's size."""
    from firmware.layout import Layout

    return EinkSign(driver, Layout(driver, font_dir), on_update)
