# machine.Pin, machine.PWM and machine.SPI for the unix port, following the
# real API. Chips on the SPI bus are models that see the bytes the real
# drivers send (fake at the chip, not at the function).
IN = 1
OUT = 3
PULL_UP = 1
IRQ_FALLING = 2
IRQ_RISING = 1


class SimPin:
    IN = IN
    OUT = OUT
    PULL_UP = PULL_UP
    IRQ_FALLING = IRQ_FALLING
    IRQ_RISING = IRQ_RISING

    def __init__(self, id, mode=IN, pull=None, value=1):
        self.id = id
        self.mode = mode
        self._v = value
        self._handler = None
        self._trigger = 0
        self.listeners = []  # models watching this line: fn(pin, level)

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            self.mode = mode
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return self._v
        v = 1 if v else 0
        if v == self._v:
            return None
        self._v = v
        for fn in self.listeners:
            fn(self, v)
        h = self._handler
        if h is not None and self._trigger & (IRQ_RISING if v else IRQ_FALLING):
            h(self)
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=IRQ_FALLING | IRQ_RISING):
        self._handler = handler
        self._trigger = trigger


class SimPWM:
    def __init__(self, pin, freq=1000, duty_u16=0):
        self.pin = pin
        self._freq = freq
        self._duty = duty_u16
        self.tones = 0  # times it started sounding

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        if d and not self._duty:
            self.tones += 1
        self._duty = d


class SimSPI:
    """A shared SPI bus: bytes go to the chip whose CS line is low."""

    def __init__(self, id=2, baudrate=1000000):
        self.id = id
        self.baudrate = baudrate
        self.chips = []  # (cs pin, model with exchange(byte) -> byte)

    def attach(self, cs, model):
        self.chips.append((cs, model))

    def init(self, baudrate=None, **kw):
        if baudrate:
            self.baudrate = baudrate

    def _chip(self):
        for cs, m in self.chips:
            if cs.value() == 0:
                return m
        return None

    def write(self, buf):
        m = self._chip()
        if m is not None:
            for b in buf:
                m.exchange(b)

    def readinto(self, buf, write=0):
        m = self._chip()
        for i in range(len(buf)):
            buf[i] = m.exchange(write) if m is not None else 0xFF

    def read(self, n, write=0):
        b = bytearray(n)
        self.readinto(b, write)
        return bytes(b)

    def write_readinto(self, wbuf, rbuf):
        m = self._chip()
        for i in range(len(wbuf)):
            rbuf[i] = m.exchange(wbuf[i]) if m is not None else 0xFF

    def deinit(self):
        pass
