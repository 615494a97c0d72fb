# machine.Pin, machine.PWM and machine.SPI for the unix port, with the real
# API's names and arguments (only what the firmware and its drivers call).
# Chips on the SPI bus are models that see the bytes the real drivers send
# (fake at the chip, not at the function). Lean: every pin is an instance on
# the device's heap, so state the firmware never reads is not kept per pin.
from micropython import const

_IN = const(1)
_OUT = const(3)
_FALL = const(2)
_RISE = const(1)
_NO_ANSWER = const(0xFF)  # what MISO reads with no chip selected (pulled up)


class SimPin:
    IN = _IN
    OUT = _OUT
    _h = None  # IRQ handler (set by irq())
    _ls = ()  # models watching this line, fn(pin, level)

    def __init__(self, id, mode=_IN, pull=None, value=1):
        self._v = value

    def value(self, v=None):
        if v is None:
            return self._v
        v = 1 if v else 0
        if v != self._v:
            self._v = v
            for fn in self._ls:
                fn(self, v)
            if self._h and self._t & (_RISE if v else _FALL):
                self._h(self)

    __call__ = value  # pin() is pin.value() (a subclass that overrides value sets it too)

    def irq(self, handler=None, trigger=_FALL | _RISE):
        self._h = handler
        self._t = trigger

    def listen(self, fn):
        """A model watches this line: fn(pin, level) on every change."""
        self._ls += (fn,)


class SimPWM:
    def __init__(self, pin, freq=1000, duty_u16=0):
        self._f = freq
        self._d = duty_u16

    def freq(self, f=None):
        if f is None:
            return self._f
        self._f = f

    def duty_u16(self, d=None):
        if d is None:
            return self._d
        self._d = d


class SimSPI:
    """A shared SPI bus: bytes go to the chip whose CS line is low."""

    def __init__(self, id, baudrate=0):
        # (cs pin, model with exchange(byte) -> byte): a chip goes on the bus
        # as spi.chips.append((cs, model))
        self.chips = []

    def write_readinto(self, wbuf, rbuf=None):
        m = None
        for cs, c in self.chips:
            if not cs.value():
                m = c
                break
        for i in range(len(wbuf)):
            b = m.exchange(wbuf[i]) if m is not None else _NO_ANSWER
            if rbuf is not None:
                rbuf[i] = b

    write = write_readinto  # write(buf): the answers go nowhere
