# A chip-level model of the SSD1683 (4.2" 400x300) and SSD1680 (2.9" 296x128)
# for tests, previews and the virtual device. It sees the bytes on the SPI bus
# (attached to SimSPI with its CS pin), reads DC for command vs data, is reset
# by RST low, keeps the two RAM planes and the image shown, drives BUSY from
# the timebase, and refuses what a real panel would not take.
import hashlib

from micropython import const

from hw.sim.machine import SimPin

FULL_MS = const(3000)
PARTIAL_MS = const(500)
POWER_MS = const(80)  # an activation that only switches power
SWRESET_MS = const(5)
HWRESET_MS = const(2)

# commands (SSD1680/SSD1683 datasheets)
_DRIVER_OUTPUT = const(0x01)  # gates
_GATE_VOLTAGE = const(0x03)
_SOURCE_VOLTAGE = const(0x04)
_BOOSTER = const(0x0C)
_DEEP_SLEEP = const(0x10)
_ENTRY_MODE = const(0x11)  # the RAM address counter's direction
_SW_RESET = const(0x12)
_TEMP_SENSOR = const(0x18)
_TEMP_WRITE = const(0x1A)
_MASTER_ACTIVATION = const(0x20)
_UPDATE_CTRL1 = const(0x21)
_UPDATE_CTRL2 = const(0x22)
_WRITE_BW = const(0x24)  # RAM: the new image
_WRITE_RED = const(0x26)  # RAM: the old image
_VCOM = const(0x2C)
_BORDER = const(0x3C)
_RAM_X_WINDOW = const(0x44)
_RAM_Y_WINDOW = const(0x45)
_RAM_X_COUNT = const(0x4E)
_RAM_Y_COUNT = const(0x4F)
# parameter bits
_SLEEP_MODES = const(0x03)  # deep sleep: mode 1 keeps the RAM, mode 2 (both bits) loses it
_ENTRY_X_UP = const(0x01)  # data entry: X increases
_ENTRY_Y_UP = const(0x02)  # Y increases
_ENTRY_Y_FIRST = const(0x04)  # Y moves first
_CTRL1_BYPASS_RED = const(0x40)  # update control 1: RAM 0x26 ignored
_CTRL2_CLOCK_ANALOG = const(0xC0)  # update control 2: clock and analog on
_CTRL2_MODE2 = const(0x08)  # display mode 2: the partial waveform
_CTRL2_DISPLAY = const(0x04)  # a display update (else only power sequencing)
_BORDER_RESET = const(0xC0)  # the border register after a reset
_MISO = const(0xFF)  # what the bus reads back: the panel drives no MISO

# parameter bytes each command takes (applied when complete)
_NPARAM = {
    _DRIVER_OUTPUT: 3, _GATE_VOLTAGE: 1, _SOURCE_VOLTAGE: 3, _BOOSTER: 5, _DEEP_SLEEP: 1,
    _ENTRY_MODE: 1, _TEMP_SENSOR: 1, _TEMP_WRITE: 2, _UPDATE_CTRL1: 2, _UPDATE_CTRL2: 1,
    _VCOM: 1, _BORDER: 1, _RAM_X_WINDOW: 2, _RAM_Y_WINDOW: 4, _RAM_X_COUNT: 1, _RAM_Y_COUNT: 2,
}


class PanelFault(Exception):
    pass


class BusyPin(SimPin):
    """The BUSY line: its level comes from the model and the time now."""

    def __init__(self, model, id=4):
        super().__init__(id, SimPin.IN, value=0)
        self._model = model

    def value(self, v=None):
        if v is not None:
            raise PanelFault("BUSY is an output of the panel")
        return self._model.busy_level()

    __call__ = value  # SimPin's pin() is its own value()


class PanelModel:
    # size -> (the controller, its sources, its gates); the 2.9" is mounted
    # turned, its gates across (see pixel())
    CHIPS = {
        "4.2": ("SSD1683", 400, 300),
        "2.9": ("SSD1680", 128, 296),
    }

    def __init__(self, size, timebase, cs, dc, rst, busy_id=4, strict=True):
        self.chip, self.sources, self.gates = self.CHIPS[size]
        self.size = size
        self.tb = timebase
        self.cs = cs
        self.dc = dc
        self.rst = rst
        rst.listen(self._on_rst)
        self.busy_pin = BusyPin(self, busy_id)
        self.strict = strict
        self.xbytes = self.sources // 8
        n = self.xbytes * self.gates
        self.bw = bytearray(n)  # RAM 0x24 (power-on content: black)
        self.red = bytearray(n)  # RAM 0x26
        # The image shown is not kept as a third plane (RAM is short on the device's
        # heap): it is the BW plane until that is rewritten, then the RED plane,
        # which a correct driver fills with it; a hash proves which holds it.
        self._shown_hash = None  # None: white since power-on
        self._bw_dirty = True
        self.red_valid = False  # 0x26 written since power-on
        self.faults = []
        self.full_refreshes = 0
        self.partial_refreshes = 0
        self.hw_resets = 0
        self.sw_resets = 0
        self.deep_sleeps = 0
        self.stuck = False  # test hook: BUSY never falls
        self.on_refresh = None  # callable(model) after each refresh
        self.commands = []  # log of (command, params) since the last reset, bounded
        self._busy_until = 0
        self._in_reset = False
        self._power_on()

    # --- state
    def _power_on(self):
        self.deep = False
        self.swreset = False
        self.ctrl2 = None
        self.entry = _ENTRY_X_UP | _ENTRY_Y_UP
        self.mux = self.gates
        self.xs, self.xe = 0, self.xbytes - 1
        self.ys, self.ye = 0, self.gates - 1
        self.x, self.y = 0, 0
        self.ctrl1 = (0x00, 0x00)
        self.border = _BORDER_RESET
        self._cmd = None
        self._params = []
        self._written = 0
        self.commands = []

    def power_cycle(self):
        """Power off and on: registers to defaults, RAM content lost, image white."""
        self._power_on()
        self.red_valid = False
        self._shown_hash = None
        self._bw_dirty = True
        self.stuck = False
        self._busy_until = 0
        self._in_reset = False

    def busy_level(self):
        if self.stuck:
            return 1
        return 1 if self.tb.mono_ms() < self._busy_until else 0

    def _fault(self, msg):
        msg = "%s: %s" % (self.chip, msg)
        self.faults.append(msg)
        if self.strict:
            raise PanelFault(msg)

    def _busy(self, ms):
        self._busy_until = self.tb.mono_ms() + ms

    def _on_rst(self, pin, level):
        if level == 0:
            self._in_reset = True
            return
        self._in_reset = False
        self.hw_resets += 1
        self._power_on()  # registers to defaults; RAM kept (deep sleep mode 1)
        self._busy(HWRESET_MS)

    # --- the SPI seam
    def exchange(self, b):
        if self._in_reset:
            self._fault("SPI byte 0x%02x while RST is low" % b)
            return _MISO
        if self.dc.value() == 0:
            self._command(b)
        else:
            self._data(b)
        return _MISO

    def _command(self, c):
        self._finish()
        if self.deep:
            self._fault("command 0x%02x in deep sleep (only a hardware reset wakes it)" % c)
            return
        if self.busy_level():
            self._fault("command 0x%02x while BUSY" % c)
            return
        self._cmd = c
        self._params = []
        self._written = 0
        if len(self.commands) < 64:
            self.commands.append(c)
        if c == _SW_RESET:
            self._power_on()
            self.swreset = True
            self.sw_resets += 1
            self._busy(SWRESET_MS)
        elif c == _WRITE_BW or c == _WRITE_RED:
            if not self.swreset:
                self._fault("RAM write before SW reset (0x12)")
            if not (self.xs <= self.x <= self.xe or self.xe <= self.x <= self.xs) or \
                    not (self.ys <= self.y <= self.ye or self.ye <= self.y <= self.ys):
                self._fault("RAM address (%d, %d) outside the window" % (self.x, self.y))
        elif c == _MASTER_ACTIVATION:
            self._activate()
        elif c not in _NPARAM:
            self._fault("unknown command 0x%02x" % c)

    def _data(self, b):
        c = self._cmd
        if c is None:
            self._fault("data byte 0x%02x with no command" % b)
            return
        if c == _WRITE_BW or c == _WRITE_RED:
            self._ram_write(c, b)
            return
        n = _NPARAM.get(c, 0)
        if len(self._params) >= n:
            self._fault("extra data byte 0x%02x for command 0x%02x" % (b, c))
            return
        self._params.append(b)
        if len(self._params) == n:
            self._apply(c, self._params)
            self._cmd = None

    def _finish(self):
        c = self._cmd
        if c is not None and c in _NPARAM and self._params:
            if c == _UPDATE_CTRL1 and len(self._params) == 1:  # the second byte is optional
                self._apply(c, self._params + [0])
            else:
                self._fault("command 0x%02x got %d of %d data bytes"
                            % (c, len(self._params), _NPARAM[c]))
        self._cmd = None

    def _apply(self, c, p):
        if c == _DRIVER_OUTPUT:
            self.mux = (p[0] | p[1] << 8) + 1
            if self.mux != self.gates:
                self._fault("driver output control: %d gates, the panel has %d"
                            % (self.mux, self.gates))
        elif c == _DEEP_SLEEP:
            if p[0] & _SLEEP_MODES:
                self.deep = True
                self.deep_sleeps += 1
                if p[0] & _SLEEP_MODES == _SLEEP_MODES:  # mode 2 loses the RAM
                    self.red_valid = False
        elif c == _ENTRY_MODE:
            self.entry = p[0] & (_ENTRY_X_UP | _ENTRY_Y_UP | _ENTRY_Y_FIRST)
        elif c == _UPDATE_CTRL1:
            self.ctrl1 = (p[0], p[1])
        elif c == _UPDATE_CTRL2:
            self.ctrl2 = p[0]
        elif c == _BORDER:
            self.border = p[0]
        elif c == _RAM_X_WINDOW:
            self.xs, self.xe = p[0], p[1]
            if max(self.xs, self.xe) >= self.xbytes:
                self._fault("RAM X window %d..%d beyond %d bytes" % (self.xs, self.xe,
                                                                       self.xbytes))
        elif c == _RAM_Y_WINDOW:
            self.ys, self.ye = p[0] | p[1] << 8, p[2] | p[3] << 8
            if max(self.ys, self.ye) >= self.gates:
                self._fault("RAM Y window %d..%d beyond %d gates" % (self.ys, self.ye,
                                                                       self.gates))
        elif c == _RAM_X_COUNT:
            self.x = p[0]
        elif c == _RAM_Y_COUNT:
            self.y = p[0] | p[1] << 8

    def _ram_write(self, c, b):
        x, y = self.x, self.y
        lo_x, hi_x = min(self.xs, self.xe), max(self.xs, self.xe)
        lo_y, hi_y = min(self.ys, self.ye), max(self.ys, self.ye)
        if self._written >= (hi_x - lo_x + 1) * (hi_y - lo_y + 1):
            self._fault("RAM write overruns the window (would wrap and overwrite)")
            return
        self._written += 1
        if c == _WRITE_BW:
            self.bw[y * self.xbytes + x] = b
            self._bw_dirty = True
        else:
            self.red[y * self.xbytes + x] = b
            self.red_valid = True
        # advance the address counter as data entry mode says, wrapping in the window
        dx = 1 if self.entry & _ENTRY_X_UP else -1
        dy = 1 if self.entry & _ENTRY_Y_UP else -1
        if self.entry & _ENTRY_Y_FIRST:
            y += dy
            if y > hi_y or y < lo_y:
                y = lo_y if dy > 0 else hi_y
                x += dx
                if x > hi_x or x < lo_x:
                    x = lo_x if dx > 0 else hi_x
        else:
            x += dx
            if x > hi_x or x < lo_x:
                x = lo_x if dx > 0 else hi_x
                y += dy
                if y > hi_y or y < lo_y:
                    y = lo_y if dy > 0 else hi_y
        self.x, self.y = x, y

    def _activate(self):
        self._cmd = None
        m = self.ctrl2
        if m is None:
            self._fault("master activation (0x20) without display update control (0x22)")
            return
        if not self.swreset:
            self._fault("master activation before SW reset (0x12)")
            return
        if not m & _CTRL2_DISPLAY:  # power sequencing only
            self._busy(POWER_MS)
            return
        if (m & _CTRL2_CLOCK_ANALOG) != _CTRL2_CLOCK_ANALOG:
            self._fault("display without clock and analog enabled (0x22 = 0x%02x)" % m)
            return
        partial = bool(m & _CTRL2_MODE2)
        if partial:
            if not self.red_valid:
                self._fault("partial refresh with no old image in RAM 0x26")
            elif _hash(self.red) != self._shown_hash:
                self._fault("partial refresh: RAM 0x26 is not the image shown (ghosting)")
            if self.ctrl1[0] & _CTRL1_BYPASS_RED:
                self._fault("partial refresh with RED RAM bypassed (0x21)")
            self.partial_refreshes += 1
            self._busy(PARTIAL_MS)
        else:
            self.full_refreshes += 1
            self._busy(FULL_MS)
        self._shown_hash = _hash(self.bw)
        self._bw_dirty = False
        self.ctrl2 = None
        if self.on_refresh:
            self.on_refresh(self)

    # --- what the hall sees
    @property
    def width(self):
        return self.sources if self.size == "4.2" else self.gates

    @property
    def height(self):
        return self.gates if self.size == "4.2" else self.sources

    def shown(self):
        """The RAM plane that holds the image shown, or None while it is white."""
        if self._shown_hash is None:
            return None
        if not self._bw_dirty:
            return self.bw
        if self.red_valid and _hash(self.red) == self._shown_hash:
            return self.red
        raise PanelFault("%s: neither RAM plane holds the image shown" % self.chip)

    def pixel(self, x, y, plane=None):
        """1 for black at (x, y) of the image as mounted (landscape)."""
        if plane is None:
            plane = self.shown()
            if plane is None:
                return 0
        if self.size == "4.2":
            g, s = y, x
        else:  # 2.9": gate = x, source axis runs bottom to top
            g, s = x, self.sources - 1 - y
        return 0 if plane[g * self.xbytes + (s >> 3)] & (0x80 >> (s & 7)) else 1

    def rows(self):
        """The image shown, row by row (MSB first, 1 = black), landscape: yields
        one reused bytearray per row (no 15 KB copy on the device's heap)."""
        w, h = self.width, self.height
        rb = (w + 7) // 8
        row = bytearray(rb)
        plane = self.shown()
        for y in range(h):
            if plane is None:
                for i in range(rb):
                    row[i] = 0
            elif self.size == "4.2":
                base = y * rb
                for i in range(rb):
                    row[i] = plane[base + i] ^ 0xFF
            else:
                for i in range(rb):
                    row[i] = 0
                for x in range(w):
                    if self.pixel(x, y, plane):
                        row[x >> 3] |= 0x80 >> (x & 7)
            yield row

    def image(self):
        """The image shown as bytes (rows of MSB-first bits, 1 = black)."""
        out = bytearray()
        for r in self.rows():
            out += r
        return bytes(out)

    def write_pbm(self, f):
        """Write the image shown to stream f as a binary PBM (P4)."""
        f.write(b"P4\n%d %d\n" % (self.width, self.height))
        for r in self.rows():
            f.write(r)

def _hash(buf):
    return hashlib.sha256(buf).digest()
