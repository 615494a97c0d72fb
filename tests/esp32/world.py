# What surrounds the ESP32 in the ESP32 double: the copper (one Line per GPIO,
# shared by every Pin object made on it, as two Pin(5) objects are one pad), the
# chips on the SPI bus (the same chip models the virtual board uses), the flash
# behind esp32.Partition, RTC memory that outlives a reset, and a record of what
# the firmware did to the outputs a person could see or hear (LEDs, buzzer).
#
# The test side (tests/esp32/port.py) configures it from a JSON file named by
# $PINGJIA_ESP32_WORLD; machine, network and esp32 (this folder) read it.
import json
import os
import time

_config = None
lines = {}  # GPIO number -> Line
chips = []  # (cs Line, model): what an SPI transfer talks to when its CS is low
trace = []  # (ms, what, value): LED levels and buzzer duty, as the firmware set them
_t0 = time.ticks_ms()


def config():
    global _config
    if _config is None:
        path = os.getenv("PINGJIA_ESP32_WORLD")
        if path:
            with open(path) as f:
                _config = json.load(f)
        else:
            _config = {}
    return _config


def now_ms():
    return time.ticks_diff(time.ticks_ms(), _t0)


def record(what, value):
    trace.append((now_ms(), what, value))


class Line:
    """One GPIO pad: the level the board drives, or the one the world drives
    into it (a key held, a chip's BUSY output), and who listens (chip models)."""

    def __init__(self, gpio):
        self.gpio = gpio
        cfg = config()
        self.held = gpio in cfg.get("held", ())  # held low at power-on (a key)
        self.level = 0 if self.held else (1 if gpio in cfg.get("pulled_up", ()) else 0)
        self.driver = None  # fn() -> level, for a line a chip drives
        self.listeners = ()
        self.handler = None  # the board's IRQ handler, set by Pin.irq()
        self.trigger = 0
        self.watch = None  # a name for the trace ("led0"), if a person sees it

    # the interface the chip models know (hw/sim/chips take SimPin-like lines)
    def value(self, v=None):
        if v is None:
            return self.driver() if self.driver else self.level
        self.set(v)

    __call__ = value

    def listen(self, fn):
        self.listeners += (fn,)

    def set(self, v):
        v = 1 if v else 0
        if v == self.level:
            return
        self.level = v
        if self.watch:
            record(self.watch, v)
        for fn in self.listeners:
            fn(self, v)

    def drive(self, v):
        """The world puts a level on an input (a key pressed pulls it low) and the
        pad's edge interrupt fires, as the GPIO matrix would."""
        v = 1 if v else 0
        self.held = not v
        if v == self.level:
            return
        self.level = v
        h = self.handler
        if h is not None and self.trigger & (1 if v else 2):  # IRQ_RISING 1, IRQ_FALLING 2
            h(self.pin)


def line(gpio):
    ln = lines.get(gpio)
    if ln is None:
        ln = lines[gpio] = Line(gpio)
        names = config().get("watch", {})
        ln.watch = names.get(str(gpio))
    return ln


def rtc_path():
    return config().get("rtc")


def load_rtc():
    p = rtc_path()
    if not p:
        return b""
    try:
        with open(p, "rb") as f:
            return f.read()
    except OSError:
        return b""


def save_rtc(data):
    p = rtc_path()
    if p:
        with open(p, "wb") as f:
            f.write(data)


def event(text):
    """A line for the test side (the silicon's own doings: a reset, a trace)."""
    print("@esp32 " + text)
