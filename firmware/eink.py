# The e-ink sign: show() only notes the newest screen (cheap, called on every
# change); run() draws it and refreshes the panel under design.md section 8's
# policy: one update per change, none while idle, the newest screen wins, at
# least 2 s between updates, partial refreshes with a full one after 5 partial
# ones once 180 s have passed since the last full one, and one full a day.
# The driver puts the panel into deep sleep after every update.
from micropython import const

from firmware import texts

MIN_GAP_MS = const(2000)
SETTLE_MS = const(300)  # changes this close together draw once
PARTIAL_RUN = const(5)
FULL_GAP_MS = const(180_000)
DAY_MS = const(86_400_000)
RETRY_MS = const(30_000)  # after a panel fault, doubling up to RETRY_MAX_MS
RETRY_MAX_MS = const(960_000)


class EinkSign:
    """driver: an SSD168x driver; layout: a Layout drawing on driver.canvas."""

    def __init__(self, driver, layout, on_update=None, min_gap_ms=MIN_GAP_MS,
                 settle_ms=SETTLE_MS):
        self.driver = driver
        self.layout = layout
        self.on_update = on_update  # callable(sign) after each panel update
        self.min_gap_ms = min_gap_ms
        self.settle_ms = settle_ms
        self.screen = None  # the newest screen asked for
        self.shown = None  # the screen on the panel (None: unknown)
        self._flag = None
        self._last_end = None  # mono_ms when the last update ended
        self._last_full = None
        self._partials = 0  # partial updates since the last full one
        self.requests = 0  # show() calls
        self.updates = 0  # panel updates
        self.full = 0
        self.partial = 0
        self.daily = 0  # full refreshes made only because a day had passed
        self.errors = 0  # updates lost to a panel fault
        self.last_error = None
        self._drawing = None
        self._draw = self._draw_now  # bound once: show() calls it per band

    # --- the sign interface
    def show(self, screen):
        self.screen = screen
        self.requests += 1
        if self._flag is not None:
            self._flag.set()

    def text(self):
        return texts.text(self.screen) if self.screen else ""

    def counts(self):
        return {"requests": self.requests, "updates": self.updates, "full": self.full,
                "partial": self.partial, "daily": self.daily, "errors": self.errors}

    def _draw_now(self):
        self.layout.draw(self._drawing)

    # --- the refresh task
    def _want_full(self, now):
        if self._last_full is None or self.shown is None:
            return True  # panel state unknown: boot, or after a fault
        since = now - self._last_full
        if since >= DAY_MS:
            return True
        return self._partials >= PARTIAL_RUN and since >= FULL_GAP_MS

    async def run(self, tb):
        if self._flag is None:
            self._flag = tb.flag()
        flag = self._flag
        retry = RETRY_MS
        while True:
            if self.screen is None or self.screen == self.shown:
                due = None if self._last_full is None else self._last_full + DAY_MS
                await tb.wait(flag, due)
                now = tb.mono_ms()
                if due is None or now < due or self.screen is None:
                    continue
                self.daily += 1  # idle for a day: one full refresh clears ghosting
            else:
                # let quick toggles settle and keep the gap; newer screens replace it
                now = tb.mono_ms()
                start = now + self.settle_ms
                if self._last_end is not None and self._last_end + self.min_gap_ms > start:
                    start = self._last_end + self.min_gap_ms
                while tb.mono_ms() < start:
                    await tb.wait(flag, start)
                if self.screen == self.shown:
                    continue  # toggled back: nothing to draw
            if await self._update(tb):
                retry = RETRY_MS
            else:
                await tb.sleep_ms(retry)
                retry = min(retry * 2, RETRY_MAX_MS)

    async def _update(self, tb):
        screen = self.screen
        now = tb.mono_ms()
        full = self._want_full(now)
        self._drawing = screen
        try:
            await self.driver.show(full, self._draw)
        except Exception as e:  # a stuck panel (or no RAM) must not stop the device
            self.errors += 1
            self.last_error = e
            self.shown = None  # unknown: the next update is a full one
            self._last_end = tb.mono_ms()
            return False
        self._last_end = tb.mono_ms()
        self.shown = screen
        self.updates += 1
        if full:
            self.full += 1
            self._last_full = now
            self._partials = 0
        else:
            self.partial += 1
            self._partials += 1
        if self.on_update:
            try:
                self.on_update(self)
            except Exception as e:  # a viewer's hook must not stop the sign
                self.last_error = e
        return True


def build(driver, font_dir="/lib", on_update=None):
    """The sign for a driver (hw/ssd168x.py): fonts from font_dir (lib/*.pjf),
    laid out for the panel's size, drawing on the driver's canvas."""
    from firmware.layout import Layout, font_sizes, load_fonts

    fonts = load_fonts(font_dir, font_sizes(driver.height))
    return EinkSign(driver, Layout(driver.canvas, fonts), on_update)
