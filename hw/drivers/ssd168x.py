# E-paper driver for the sign: 4.2" 400x300 SSD1683 and 2.9" 296x128 SSD1680
# (Good Display GDEY042T81 / GDEY029T94 class panels), one class: a board has
# one panel and the two differ only in a few values. The driver is the
# framebuffer (nano-gui style); show() sends it and waits on BUSY through the
# timebase, so the keypad task keeps running during a refresh. With rows=N the
# framebuffer is a band of the panel and show() draws it band by band (less
# RAM). RAM bit 1 is white, 0 black, sent as it is.
import framebuf
from micropython import const

_POLL_MS = const(15)  # BUSY poll period: keeps the keypad task responsive
_RESET_MS = const(10)
_RESET_TIMEOUT_MS = const(1000)  # SW/HW reset: BUSY falls within a few ms
_REFRESH_TIMEOUT_MS = const(10000)  # full refresh ~3 s (slower when cold)

# commands (SSD1680/SSD1683 datasheets)
_DEEP_SLEEP = const(0x10)
_SW_RESET = const(0x12)
_TEMP_SENSOR = const(0x18)
_MASTER_ACTIVATION = const(0x20)
_UPDATE_CTRL1 = const(0x21)
_UPDATE_CTRL2 = const(0x22)
_WRITE_BW = const(0x24)  # new image
_WRITE_RED = const(0x26)  # old image: the reference for a partial refresh
_BORDER = const(0x3C)
_RAM_X_COUNT = const(0x4E)
_RAM_Y_COUNT = const(0x4F)

# their parameters
_BORDER_FULL = const(b"\x05")  # border waveform: follow LUT1 on a full refresh
_BORDER_PARTIAL = const(b"\x80")  # VCOM level on a partial one
_CTRL1_BYPASS_RED = const(0x40)  # update control 1: ignore RAM 0x26 (the old image)
_CTRL1_S8 = const(0x80)  # and on the 2.9": sources S8..S167
_TEMP_INTERNAL = const(b"\x80")  # the internal temperature sensor: the LUT follows the room
# update control 2: clock, analog, temperature, LUT, display mode 1 (full), power
# off; and the same with display mode 2 (the partial waveform)
_CTRL2_FULL = const(b"\xf7")
_CTRL2_PARTIAL = const(b"\xff")
_SLEEP_KEEP_RAM = const(b"\x01")  # deep sleep mode 1: RAM kept, a reset wakes it
_X_BYTES_29 = const(16)  # the 2.9"'s RAM row: 128 sources in 16 bytes, counted down

# init commands per panel, each as command, parameter count, parameters:
# 0x01 driver output (gates), 0x11 data entry mode, 0x44/0x45 RAM X/Y window
_INIT_42 = const(
    b"\x01\x03\x2b\x01\x00"  # 300 gates
    b"\x11\x01\x03"  # X then Y, both increasing
    b"\x44\x02\x00\x31"  # bytes 0..49
    b"\x45\x04\x00\x00\x2b\x01"  # rows 0..299
)
_INIT_29 = const(
    b"\x01\x03\x27\x01\x00"  # 296 gates
    b"\x11\x01\x06"  # Y (gate) first, Y increasing, X decreasing
    b"\x44\x02\x0f\x00"  # bytes 15 down to 0
    b"\x45\x04\x00\x00\x27\x01"  # gates 0..295
)


_WIDTH_42 = const(400)  # the frame as the panel is mounted (landscape)
_HEIGHT_42 = const(300)
_WIDTH_29 = const(296)
_HEIGHT_29 = const(128)


class PanelBusyError(Exception):
    """BUSY never fell: the panel was reset and the update is lost."""


class SSD168x(framebuf.FrameBuffer):
    def __init__(self, spi, cs, dc, rst, busy, timebase, rows=None, size="4.2"):
        """size "4.2": 400x300 SSD1683, landscape as its RAM lies. "2.9": 296x128
        SSD1680 mounted landscape: the panel is 128 sources x 296 gates, and the
        frame is MONO_VLSB so each byte (8 pixels down a column) is one RAM byte
        when the RAM fills gate-first with X decreasing: no rotation pass.
        rows=None: the framebuffer is the whole frame (draw on the driver, then
        show()). rows=N: paged, the framebuffer is a band of N rows (a multiple
        of 8) and show(full, draw) calls draw() once per band; fill_rect, rect
        and blit take whole-panel coordinates, shifted to the band drawn now:
        with rows=32 (the board's), 1.6 KB instead of 15 KB of RAM on the 4.2"."""
        v = size == "2.9"
        self.ssd1680 = v
        self.width = _WIDTH_29 if v else _WIDTH_42
        self.height = _HEIGHT_29 if v else _HEIGHT_42
        self.init = _INIT_29 if v else _INIT_42  # the panel's init commands (a test may swap them)
        # counters
        self.full_refreshes = 0
        self.partial_refreshes = 0
        self.resets = 0  # hardware resets forced by a stuck BUSY
        w = self.width
        h = self.height
        self.rows = r = h if rows is None else rows
        if r != h and (r % 8 or not 0 < r < h):
            raise ValueError("rows: a multiple of 8 up to %d" % h)
        self.oy = 0  # first panel row of the band
        # the band's bytes: sent as memoryview(self) (a FrameBuffer is a buffer)
        super().__init__(bytearray(w * r // 8), w, r,
                         framebuf.MONO_VLSB if v else framebuf.MONO_HLSB)
        self.spi = spi
        self.cs = cs
        self.dc = dc
        self.rst = rst
        self.busy = busy
        self.tb = timebase
        # the pins come initialised as outputs (nano-gui style): set idle levels
        cs(1)
        dc(1)
        rst(1)

    # --- drawing in whole-panel coordinates (the layout's calls)
    def fill_rect(self, x, y, w, h, c):
        super().fill_rect(x, y - self.oy, w, h, c)

    def rect(self, x, y, w, h, c):
        super().rect(x, y - self.oy, w, h, c)

    def blit(self, src, x, y, key=-1, palette=None):
        super().blit(src, x, y - self.oy, key, palette)

    # --- the SPI seam
    def _command(self, c, data=None):
        self.dc(0)
        self.cs(0)
        self.spi.write(bytes((c,)))
        self.cs(1)
        if data:
            self.dc(1)
            self.cs(0)
            self.spi.write(data)
            self.cs(1)

    def _planes(self, planes, draw):
        """Draw each band and send it into each RAM plane in planes. One write
        a band: 15 KB take ~30 ms at 4 MHz, short against the refresh; key
        presses meanwhile wait in their IRQ flags. (Yielding between chunks
        would let virtual time run ahead of a transfer that takes none.)"""
        if draw is None and self.rows < self.height:
            raise ValueError("paged driver: show() needs draw")
        for y0 in range(0, self.height, self.rows):
            if draw:
                self.oy = y0
                self.fill(1)
                draw()
            data = memoryview(self)[:self.width * min(self.rows, self.height - y0) // 8]
            for c in planes:
                # the RAM address of the band's first byte: on the 2.9" the X
                # byte (counting down) of the source that drives row y0
                x, y = (_X_BYTES_29 - 1 - (y0 >> 3), 0) if self.ssd1680 else (0, y0)
                self._command(_RAM_X_COUNT, bytes((x,)))
                self._command(_RAM_Y_COUNT, bytes((y & 0xFF, y >> 8)))
                self._command(c, data)

    async def _wait_busy(self, timeout_ms):
        tb = self.tb
        deadline = tb.mono_ms() + timeout_ms
        while self.busy() == 1:
            if tb.mono_ms() >= deadline:
                await self._hw_reset(False)
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

    async def show(self, full=False, draw=None):
        """Send the frame and refresh (full, or partial against the image shown),
        then put the panel into deep sleep. draw: a callable that draws the
        frame on the driver, blank white when called (needed when paged).
        Raises PanelBusyError on a stuck panel."""
        cmd = self._command
        # The panel sleeps between updates; only a hardware reset wakes it.
        await self._hw_reset()
        cmd(_SW_RESET)
        await self._wait_busy(_RESET_TIMEOUT_MS)
        i = self.init
        k = 0
        while k < len(i):
            cmd(i[k], i[k + 2:k + 2 + i[k + 1]])
            k += 2 + i[k + 1]
        cmd(_BORDER, _BORDER_FULL if full else _BORDER_PARTIAL)
        # a full refresh bypasses the old image; a partial one uses it (the
        # differential waveform)
        cmd(_UPDATE_CTRL1, bytes((_CTRL1_BYPASS_RED if full else 0,
                                  _CTRL1_S8 if self.ssd1680 else 0)))
        cmd(_TEMP_SENSOR, _TEMP_INTERNAL)
        # a full refresh ignores the old image; RAM 0x26 gets the new one too
        self._planes((_WRITE_RED, _WRITE_BW) if full else (_WRITE_BW,), draw)
        cmd(_UPDATE_CTRL2, _CTRL2_FULL if full else _CTRL2_PARTIAL)
        cmd(_MASTER_ACTIVATION)
        await self._wait_busy(_REFRESH_TIMEOUT_MS)
        if not full:
            # the next partial refresh needs the image now shown in RAM 0x26
            self._planes((_WRITE_RED,), draw if self.rows < self.height else None)
        cmd(_DEEP_SLEEP, _SLEEP_KEEP_RAM)
        if full:
            self.full_refreshes += 1
        else:
            self.partial_refreshes += 1


SSD1683 = SSD168x  # the 4.2" panel, size's default (the heap day builds it by this name)
