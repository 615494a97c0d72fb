# Keys: edges come from pin interrupts into a preallocated ring (the IRQ path
# allocates nothing); a task debounces them and turns them into events.
# A key given as a callable (returns the level) is polled instead.
import array
from time import ticks_diff

from firmware.const import const

PRESS = const(1)
RELEASE = const(2)
LONG = const(3)  # still held after long_ms

_CAP = const(32)  # edges the ring holds
_EDGE_BYTES = const(8)  # an edge in the ring: two 32-bit ints
_IRQ_BOTH = const(3)  # Pin.IRQ_FALLING | Pin.IRQ_RISING (firmware/ never imports machine)
_POLL_MS = const(10)


class Keys:
    def __init__(self, pins, ticks_ms, flag, debounce_ms=30, long_ms=1500, long_keys=()):
        self.pins = pins
        self.ticks_ms = ticks_ms
        self.debounce_ms = debounce_ms
        self.long_ms = long_ms
        self.long_keys = long_keys
        n = len(pins)
        self.flag = flag  # set by the IRQ handler (a ThreadSafeFlag on the board)
        self.dropped = 0  # edges lost to a full ring
        # the ring: (key << 1 | level, ticks) pairs; one array, no object per edge
        self._ring = array.array("i", bytes(_EDGE_BYTES * _CAP))
        self._head = 0  # written by the IRQ
        self._tail = 0  # read by the task
        self.level = bytearray(b"\x01" * n)  # debounced level (1: released)
        # mono ms of the last accepted change: while a key is down, when it went down
        self._changed = [-(1 << 20)] * n
        self.long_done = bytearray(n)  # the held key already gave its LONG
        self.deadline = None  # mono ms when process() must run again without a new edge
        self._polled = False
        irq = self._irq  # one bound method for every pin: it finds the key by its pin
        for p in pins:
            if hasattr(p, "irq"):
                p.irq(handler=irq, trigger=_IRQ_BOTH)
            else:
                self._polled = True

    def _irq(self, pin):
        h = self._head
        nxt = (h + 1) % _CAP
        if nxt == self._tail:
            self.dropped += 1
        else:
            r = self._ring
            # the IRQ passes the pin object it was set on (ESP32 pins are static objects);
            # index() compares identity first and allocates nothing
            r[2 * h] = self.pins.index(pin) << 1 | pin.value()
            r[2 * h + 1] = self.ticks_ms()
            self._head = nxt
        self.flag.set()

    def process(self, now):
        """Debounced events since the last call: [(key, PRESS|RELEASE|LONG, mono ms)];
        sets deadline."""
        out = []
        tnow = self.ticks_ms()
        r = self._ring
        while self._tail != self._head:
            t = self._tail
            c = r[2 * t]
            self._tail = (t + 1) % _CAP
            self._edge(c >> 1, c & 1, now - ticks_diff(tnow, r[2 * t + 1]), out)
        d = now + _POLL_MS if self._polled else None
        for i, p in enumerate(self.pins):
            lvl = p() if callable(p) and not hasattr(p, "value") else p.value()
            if lvl != self.level[i]:
                if now - self._changed[i] >= self.debounce_ms:
                    self._edge(i, lvl, now, out)
                else:
                    t = self._changed[i] + self.debounce_ms
                    d = t if d is None or t < d else d
        for i in self.long_keys:
            if not self.level[i] and not self.long_done[i]:
                t = self._changed[i] + self.long_ms
                if now >= t:
                    self.long_done[i] = 1
                    out.append((i, LONG, now))
                else:
                    d = t if d is None or t < d else d
        self.deadline = d
        return out

    def _edge(self, k, lvl, at, out):
        if lvl == self.level[k] or at - self._changed[k] < self.debounce_ms:
            return  # no change, or a bounce
        self.level[k] = lvl
        self._changed[k] = at
        if lvl == 0:
            self.long_done[k] = 0
            out.append((k, PRESS, at))
        else:
            out.append((k, RELEASE, at))
