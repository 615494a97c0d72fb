# E-paper drivers for the sign: 4.2" 400x300 SSD1683 and 2.9" 296x128 SSD1680
# (Good Display GDEY042T81 / GDEY029T94 class panels). The driver is the
# framebuffer (nano-gui style); show() sends it and waits on BUSY through the
# timebase, so the keypad task keeps running during a refresh. With rows=N the
# framebuffer is a band of the panel and show() draws it band by band (less
# RAM). RAM bit 1 is white, 0 black: draw with WHITE/BLACK, sent as it is.
import framebuf
from micropython import const

BLACK = const(0)
WHITE = const(1)

_POLL_MS = const(15)  # BUSY poll period: keeps the keypad task responsive
_RESET_MS = const(10)
_RESET_TIMEOUT_MS = const(1000)  # SW/HW reset: BUSY falls within a few ms
_REFRESH_TIMEOUT_MS = const(10000)  # full refresh ~3 s (slower when cold)

# commands (SSD1680/SSD1683 datasheets)
_DRIVER_OUTPUT = const(0x01)
_DEEP_SLEEP = const(0x10)
_DATA_ENTRY = const(0x11)
_SW_RESET = const(0x12)
_TEMP_SENSOR = const(0x18)
_MASTER_ACTIVATION = const(0x20)
_UPDATE_CTRL1 = const(0x21)
_UPDATE_CTRL2 = const(0x22)
_WRITE_BW = const(0x24)  # new image
_WRITE_RED = const(0x26)  # old image: the reference for a partial refresh
_BORDER = const(0x3C)
_RAM_X = const(0x44)
_RAM_Y = const(0x45)
_RAM_X_COUNT = const(0x4E)
_RAM_Y_COUNT = const(0x4F)

# 0x22 values: 0xF7 clock, analog, temperature, LUT, display mode 1 (full),
# power off; 0xFF the same with display mode 2 (partial waveform)


class PanelError(Exception):
    pass


class PanelBusyError(PanelError):
    """BUSY never fell: the panel was reset and the update is lost."""


class Band:
    """The whole panel's coordinates over a band of rows (paged mode): the
    layout draws as on a full frame, each call shifted to the band shown now."""

    def __init__(self, fb, width, height):
        self.fb = fb
        self.width = width
        self.height = height
        self.oy = 0  # first panel row in the band
        self.rows = fb.rows

    def visible(self, y, h):
        return y < self.oy + self.rows and y + h > self.oy

    def fill(self, c):
        self.fb.fill(c)

    def fill_rect(self, x, y, w, h, c):
        self.fb.fill_rect(x, y - self.oy, w, h, c)

    def rect(self, x, y, w, h, c):
        self.fb.rect(x, y - self.oy, w, h, c)

    def hline(self, x, y, w, c):
        self.fb.hline(x, y - self.oy, w, c)

    def vline(self, x, y, h, c):
        self.fb.vline(x, y - self.oy, h, c)

    def pixel(self, x, y, c):
        self.fb.pixel(x, y - self.oy, c)

    def blit(self, src, x, y, key=-1, palette=None):
        self.fb.blit(src, x, y - self.oy, key, palette)


class _SSD168x(framebuf.FrameBuffer):
    # per panel: size, framebuf format, init commands, 0x21 values, RAM home
    WIDTH = 0
    HEIGHT = 0
    FORMAT = framebuf.MONO_HLSB
    INIT = ()
    CTRL1_FULL = b""
    CTRL1_PARTIAL = b""

    def __init__(self, spi, cs, dc, rst, busy, timebase, busy_timeout_ms=_REFRESH_TIMEOUT_MS,
                 rows=None):
        """rows=None: the framebuffer is the whole frame (nano-gui style: draw on
        the driver, then show()). rows=N: paged, the framebuffer is a band of N
        rows (a multiple of 8) and show(full, draw) calls draw() once per band,
        drawing on self.canvas in whole-panel coordinates: 3.75 KB instead of
        15 KB of RAM on the 4.2" panel, for a few more milliseconds of drawing."""
        self.spi = spi
        self.cs = cs
        self.dc = dc
        self.rst = rst
        self.busy = busy
        self.tb = timebase
        self.busy_timeout_ms = busy_timeout_ms
        self.width = self.WIDTH
        self.height = self.HEIGHT
        h = self.HEIGHT if rows is None else rows
        if rows is not None and (h % 8 or h <= 0 or h > self.HEIGHT):
            raise ValueError("rows: a multiple of 8 up to %d" % self.HEIGHT)
        self.rows = h
        self.pages = (self.HEIGHT + h - 1) // h
        self.buf = bytearray(self.WIDTH * h // 8)
        self._cmd = bytearray(1)
        self._xy = bytearray(2)
        super().__init__(self.buf, self.WIDTH, h, self.FORMAT)
        self.canvas = self if rows is None else Band(self, self.WIDTH, self.HEIGHT)
        cs.init(cs.OUT, value=1)
        dc.init(dc.OUT, value=1)
        rst.init(rst.OUT, value=1)
        self.full_refreshes = 0
        self.partial_refreshes = 0
        self.resets = 0  # hardware resets forced by a stuck BUSY
        self.last_ms = 0  # duration of the last show()

    # --- the SPI seam
    def _command(self, c, data=None):
        self._cmd[0] = c
        self.dc(0)
        self.cs(0)
        self.spi.write(self._cmd)
        self.cs(1)
        if data:
            self.dc(1)
            self.cs(0)
            self.spi.write(data)
            self.cs(1)

    async def _ram(self, c, n=None):
        """Send the framebuffer (or its first n bytes) into RAM plane c. One
        write: 15 KB take ~30 ms at 4 MHz, short against the refresh; key
        presses meanwhile wait in their IRQ flags. (Yielding between chunks
        would let virtual time run ahead of a transfer that takes none.)"""
        self._command(c)
        self.dc(1)
        self.cs(0)
        self.spi.write(self.buf if n is None else memoryview(self.buf)[:n])
        self.cs(1)

    async def _planes(self, planes, draw):
        """Draw and send each band into each RAM plane in planes."""
        if draw is None and self.pages > 1:
            raise ValueError("paged driver: show() needs draw")
        for p in range(self.pages):
            y0 = p * self.rows
            if draw is not None:
                if self.canvas is not self:
                    self.canvas.oy = y0
                    self.fill(WHITE)
                draw()
            n = self.WIDTH * min(self.rows, self.HEIGHT - y0) // 8
            for c in planes:
                self._home(y0)
                await self._ram(c, None if n == len(self.buf) else n)

    async def _wait_busy(self, timeout_ms):
        tb = self.tb
        deadline = tb.mono_ms() + timeout_ms
        while self.busy() == 1:
            if tb.mono_ms() >= deadline:
                await self._hw_reset(wait=False)
                self.resets += 1
                raise PanelBusyError("e-ink BUSY stuck high for %d ms: panel reset, update lost"
                                     % timeout_ms)
            await tb.sleep_ms(_POLL_MS)

    async def _hw_reset(self, wait=True):
        self.rst(0)
        await self.tb.sleep_ms(_RESET_MS)
        self.rst(1)
        await self.tb.sleep_ms(_RESET_MS)
        if wait:
            await self._wait_busy(_RESET_TIMEOUT_MS)

    async def _init(self, full):
        # The panel sleeps between updates; only a hardware reset wakes it.
        await self._hw_reset()
        self._command(_SW_RESET)
        await self._wait_busy(_RESET_TIMEOUT_MS)
        for c, d in self.INIT:
            self._command(c, d)
        self._command(_BORDER, b"\x05" if full else b"\x80")
        self._command(_UPDATE_CTRL1, self.CTRL1_FULL if full else self.CTRL1_PARTIAL)
        self._command(_TEMP_SENSOR, b"\x80")  # internal sensor: LUT follows the room

    async def show(self, full=False, draw=None):
        """Send the frame and refresh (full, or partial against the image shown),
        then put the panel into deep sleep. draw: a callable that draws the
        frame on self.canvas (needed when paged). Raises PanelBusyError on a
        stuck panel."""
        t0 = self.tb.mono_ms()
        await self._init(full)
        # a full refresh ignores the old image; RAM 0x26 gets the new one too
        await self._planes((_WRITE_RED, _WRITE_BW) if full else (_WRITE_BW,), draw)
        self._command(_UPDATE_CTRL2, b"\xf7" if full else b"\xff")
        self._command(_MASTER_ACTIVATION)
        await self._wait_busy(self.busy_timeout_ms)
        if not full:
            # the next partial refresh needs the image now shown in RAM 0x26
            await self._planes((_WRITE_RED,), draw if self.pages > 1 else None)
        self._command(_DEEP_SLEEP, b"\x01")  # mode 1: RAM kept, wake by reset
        if full:
            self.full_refreshes += 1
        else:
            self.partial_refreshes += 1
        self.last_ms = self.tb.mono_ms() - t0

    async def sleep(self):
        """Deep sleep now (after a reset, e.g. at boot before the first show)."""
        await self._hw_reset()
        self._command(_DEEP_SLEEP, b"\x01")


class SSD1683(_SSD168x):
    """4.2" 400x300: 400 sources x 300 gates, landscape as the RAM lies."""
    WIDTH = 400
    HEIGHT = 300
    FORMAT = framebuf.MONO_HLSB
    INIT = (
        (_DRIVER_OUTPUT, b"\x2b\x01\x00"),  # 300 gates
        (_DATA_ENTRY, b"\x03"),  # X then Y, both increasing
        (_RAM_X, b"\x00\x31"),  # bytes 0..49
        (_RAM_Y, b"\x00\x00\x2b\x01"),  # rows 0..299
    )
    def _home(self, y0):
        """RAM address of panel row y0 (a band's first byte)."""
        xy = self._xy
        self._command(_RAM_X_COUNT, b"\x00")
        xy[0] = y0 & 0xFF
        xy[1] = y0 >> 8
        self._command(_RAM_Y_COUNT, xy)

    CTRL1_FULL = b"\x40\x00"  # bypass RED RAM (old image) for a full refresh
    CTRL1_PARTIAL = b"\x00\x00"  # use it: differential waveform


class SSD1680(_SSD168x):
    """2.9" 296x128 mounted landscape. The panel is 128 sources x 296 gates; the
    frame is MONO_VLSB so each byte (8 pixels down a column) is one RAM byte
    when the RAM fills gate-first with X decreasing: no rotation pass needed."""
    WIDTH = 296
    HEIGHT = 128
    FORMAT = framebuf.MONO_VLSB
    INIT = (
        (_DRIVER_OUTPUT, b"\x27\x01\x00"),  # 296 gates
        (_DATA_ENTRY, b"\x06"),  # Y (gate) first, Y increasing, X decreasing
        (_RAM_X, b"\x0f\x00"),  # bytes 15 down to 0
        (_RAM_Y, b"\x00\x00\x27\x01"),  # gates 0..295
    )
    def _home(self, y0):
        """RAM address of landscape row y0: the X byte of the source it drives
        (counting down), gate 0."""
        xy = self._xy
        xy[0] = 15 - (y0 >> 3)
        self._command(_RAM_X_COUNT, memoryview(xy)[:1])
        self._command(_RAM_Y_COUNT, b"\x00\x00")

    CTRL1_FULL = b"\x40\x80"  # sources S8..S167
    CTRL1_PARTIAL = b"\x00\x80"


PANELS = {"4.2": SSD1683, "2.9": SSD1680}
