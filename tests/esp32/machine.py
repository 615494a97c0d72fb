# A strict double of the ESP32 port's `machine` module, as MicroPython documents
# it (docs/library/machine.*.rst and docs/esp32/quickref.rst): the names,
# arguments and refusals of the real one, so hw/esp32/board.py and main.py run
# unchanged on the unix port. Only what exists on an ESP32-WROOM-32E is allowed:
# GPIO 6-11 are the flash, 20 and 24 and 28-31 do not exist, 34-39 are inputs
# without pull resistors. The copper and chips around it are tests/esp32/world.py.
import time

import world
from micropython import const

_GPIOS = tuple(range(0, 6)) + tuple(range(12, 20)) + (21, 22, 23, 25, 26, 27) + tuple(
    range(32, 40))
_INPUT_ONLY = const(34)  # 34..39
_EPOCH_2000 = const(946684800)  # the unix port's time functions count from 1970

PWRON_RESET = const(1)
HARD_RESET = const(2)
WDT_RESET = const(3)
DEEPSLEEP_RESET = const(4)
SOFT_RESET = const(5)


class Pin:
    IN = const(1)
    OUT = const(3)
    OPEN_DRAIN = const(7)
    PULL_UP = const(2)
    PULL_DOWN = const(1)
    PULL_HOLD = const(4)
    IRQ_RISING = const(1)
    IRQ_FALLING = const(2)
    WAKE_LOW = const(4)
    WAKE_HIGH = const(5)
    DRIVE_0 = const(0)
    DRIVE_1 = const(1)
    DRIVE_2 = const(2)
    DRIVE_3 = const(3)

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if not isinstance(id, int) or id not in _GPIOS:
            raise ValueError("invalid pin")
        self.id = id
        self._line = world.line(id)
        self._line.pin = self
        self._mode = None
        self.init(mode, pull, value=value, drive=drive, hold=hold)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if mode not in (-1, None, Pin.IN, Pin.OUT, Pin.OPEN_DRAIN):
            raise ValueError("invalid pin mode")
        if mode in (Pin.OUT, Pin.OPEN_DRAIN) and self.id >= _INPUT_ONLY:
            raise ValueError("pin can only be input")
        if pull not in (-1, None, Pin.PULL_UP, Pin.PULL_DOWN, Pin.PULL_HOLD):
            raise ValueError("invalid pull")
        if pull in (Pin.PULL_UP, Pin.PULL_DOWN) and self.id >= _INPUT_ONLY:
            # the pads have no pull resistors: the port would accept it and the
            # line would float; a double that accepted it would hide the bug
            raise ValueError("GPIO%d has no pull resistors" % self.id)
        if mode not in (-1, None):
            self._mode = mode
        if pull == Pin.PULL_UP and not self._line.held:
            self._line.level = 1
        if value is not None:
            self.value(value)

    def value(self, x=None):
        if x is None:
            return self._line.value()
        if self._mode in (Pin.OUT, Pin.OPEN_DRAIN):
            self._line.set(x)
        else:
            self._line.out = 1 if x else 0  # kept for when it becomes an output

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=IRQ_FALLING | IRQ_RISING, *, wake=None):
        if trigger & ~(Pin.IRQ_RISING | Pin.IRQ_FALLING):
            raise ValueError("invalid trigger")
        self._line.handler = handler
        self._line.trigger = trigger
        self._line.pin = self
        return None


class PWM:
    """duty_u16 0..65535, freq 1 Hz..40 MHz (the LEDC's range), as on the port."""

    def __init__(self, dest, *, freq=None, duty=None, duty_u16=None, duty_ns=None, invert=0):
        if not isinstance(dest, Pin):
            raise TypeError("PWM needs a Pin")
        self._pin = dest
        self._freq = 5000
        self._duty = 0
        self._live = True
        if freq is not None:
            self.freq(freq)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)

    def _check(self):
        if not self._live:
            raise OSError("PWM is deinitialised")

    def freq(self, value=None):
        self._check()
        if value is None:
            return self._freq
        if not 1 <= value <= 40_000_000:
            raise ValueError("frequency must be from 1Hz to 40MHz")
        self._freq = value

    def duty_u16(self, value=None):
        self._check()
        if value is None:
            return self._duty
        if not 0 <= value <= 65535:
            raise ValueError("duty_u16 must be from 0 to 65535")
        if value != self._duty:
            world.record("pwm", (self._freq, value))
        self._duty = value

    def deinit(self):
        if self._duty:
            world.record("pwm", (self._freq, 0))
        self._duty = 0
        self._live = False


class SPI:
    """Hardware SPI 1 (HSPI) or 2 (VSPI); any pins through the GPIO matrix.
    Bytes go to the chip model whose CS line is low, as on a shared bus."""

    MSB = const(0)
    LSB = const(1)

    def __init__(self, id, baudrate=1_000_000, *, polarity=0, phase=0, bits=8, firstbit=MSB,
                 sck=None, mosi=None, miso=None):
        if id not in (1, 2):
            raise ValueError("SPI(%s) doesn't exist" % id)
        for p in (sck, mosi, miso):
            if p is not None and not isinstance(p, Pin):
                raise TypeError("SPI pins must be Pin objects")
        if mosi is not None and mosi.id >= _INPUT_ONLY:
            raise ValueError("MOSI on an input-only pin")
        if bits != 8:
            raise ValueError("only 8 bits a word here")
        self.baudrate = baudrate
        self._live = True

    def deinit(self):
        self._live = False

    def _chip(self):
        if not self._live:
            raise OSError("SPI is deinitialised")
        for cs, model in world.chips:
            if not cs.value():
                return model
        return None

    def write_readinto(self, write_buf, read_buf):
        if len(write_buf) != len(read_buf):
            raise ValueError("buffers must be the same length")
        m = self._chip()
        for i in range(len(write_buf)):
            read_buf[i] = m.exchange(write_buf[i]) if m is not None else 0xFF

    def write(self, buf):
        m = self._chip()
        if m is not None:
            for i in range(len(buf)):
                m.exchange(buf[i])

    def read(self, nbytes, write=0x00):
        buf = bytearray(nbytes)
        self.readinto(buf, write)
        return bytes(buf)

    def readinto(self, buf, write=0x00):
        m = self._chip()
        for i in range(len(buf)):
            buf[i] = m.exchange(write) if m is not None else 0xFF


class RTC:
    """datetime() starts at 2000-01-01 00:00:00 at power-on (the board has no
    battery on the RTC) and runs from there; memory() keeps up to 2048 bytes
    across a reset (not a power cut)."""

    _MAX = const(2048)

    def datetime(self, dt=None):
        if dt is None:
            base = world.config().get("rtc_set_s", 0)  # seconds since 2000, if set
            t = time.gmtime(base + world.now_ms() // 1000 + _EPOCH_2000)
            return (t[0] - 0, t[1], t[2], t[6], t[3], t[4], t[5], 0)
        if len(dt) != 8:
            raise ValueError("datetime needs 8 fields")
        y, mo, d, _wd, h, mi, s, _us = dt
        secs = time.mktime((y, mo, d, h, mi, s, 0, 0)) - _EPOCH_2000
        world.config()["rtc_set_s"] = secs - world.now_ms() // 1000

    def memory(self, data=None):
        if data is None:
            return world.load_rtc()
        if len(data) > RTC._MAX:
            raise ValueError("buffer too long")
        world.save_rtc(bytes(data))


class WDT:
    """Started, it cannot be stopped; not fed within timeout ms, it resets the chip.
    A thread stands in for the hardware timer, which runs whatever the CPU does."""

    _started = None

    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError("only WDT(0)")
        if not 1 <= timeout:
            raise ValueError("timeout must be at least 1 ms")
        if WDT._started is not None:
            WDT._started._timeout = timeout  # the port reconfigures the one timer
            self.__dict__ = WDT._started.__dict__
            return
        self._timeout = timeout
        self._fed = world.now_ms()
        self.feeds = 0
        WDT._started = self
        world.event("wdt started %d" % timeout)
        import _thread

        _thread.start_new_thread(self._watch, ())

    def feed(self):
        self._fed = world.now_ms()
        self.feeds += 1

    def _watch(self):
        while True:
            time.sleep_ms(20)
            if world.now_ms() - self._fed > self._timeout:
                reset_memory = world.load_rtc()
                world.save_rtc(reset_memory)
                # the chip resets: the test side kills this process and boots it
                # again with reset_cause() == WDT_RESET
                world.event("reset wdt")
                while True:
                    time.sleep_ms(1000)


def reset():
    world.event("reset hard")
    raise SystemExit(HARD_RESET)


def soft_reset():
    world.event("reset soft")
    raise SystemExit(SOFT_RESET)


def reset_cause():
    return world.config().get("reset_cause", PWRON_RESET)


def unique_id():
    return bytes.fromhex(world.config().get("mac", "246f28a1b2c3"))


def freq(hz=None):
    if hz is None:
        return 160_000_000
    if hz not in (20_000_000, 40_000_000, 80_000_000, 160_000_000, 240_000_000):
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")


def idle():
    time.sleep_ms(1)


def disable_irq():
    return 0


def enable_irq(state=0):
    pass
