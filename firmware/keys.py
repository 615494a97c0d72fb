# Keys: edges come from pin interrupts into a preallocated ring (the IRQ path
# allocates nothing); a task debounces them and turns them into events.
# A key given as a callable (returns the level) is polled instead.
import array
from time import ticks_diff

from firmware.record import const

PRESS = const(1)
RELEASE = const(2)
LONG = const(3)  # still held after long_ms

_CAP = const(32)
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
        self._rk = bytearray(_CAP)
        self._rl = bytearray(_CAP)
        self._rt = array.array("i", [0] * _CAP)
        self._head = 0  # written by the IRQ
        self._tail = 0  # read by the task
        self.level = bytearray(b"\x01" * n)  # debounced level (1: released)
        self._changed = [-(1 << 20)] * n  # mono ms of the last accepted change
        self._pressed_at = [0] * n
        self._long_done = bytearray(n)
        self._recheck = None
        self._polled = False
        for i, p in enumerate(pins):
            if hasattr(p, "irq"):
                p.irq(handler=self._handler(i), trigger=3)  # IRQ_FALLING | IRQ_RISING
            else:
                self._polled = True

    def _handler(self, i):
        def irq(pin):
            h = self._head
            nxt = (h + 1) % _CAP
            if nxt == self._tail:
                self.dropped += 1
            else:
                self._rk[h] = i
                self._rl[h] = pin.value()
                self._rt[h] = self.ticks_ms()
                self._head = nxt
            self.flag.set()

        return irq

    def _value(self, i):
        p = self.pins[i]
        return p() if callable(p) and not hasattr(p, "value") else p.value()

    def next_deadline(self):
        """Mono ms when process() must run again without a new edge, or None."""
        d = self._recheck
        for i in self.long_keys:
            if not self.level[i] and not self._long_done[i]:
                t = self._pressed_at[i] + self.long_ms
                d = t if d is None or t < d else d
        return d

    def poll_deadline(self, now):
        return now + _POLL_MS if self._polled else None

    def process(self, now):
        """Debounced events since the last call: [(key, PRESS|RELEASE|LONG, mono ms)]."""
        out = []
        tnow = self.ticks_ms()
        while self._tail != self._head:
            t = self._tail
            k, lvl = self._rk[t], self._rl[t]
            at = now - ticks_diff(tnow, self._rt[t])
            self._tail = (t + 1) % _CAP
            self._edge(k, lvl, at, out)
        self._recheck = None
        for i in range(len(self.pins)):
            lvl = self._value(i)
            if lvl != self.level[i]:
                if now - self._changed[i] >= self.debounce_ms:
                    self._edge(i, lvl, now, out)
                else:
                    r = self._changed[i] + self.debounce_ms
                    self._recheck = r if self._recheck is None else min(r, self._recheck)
        for i in self.long_keys:
            if not self.level[i] and not self._long_done[i]:
                if now - self._pressed_at[i] >= self.long_ms:
                    self._long_done[i] = 1
                    out.append((i, LONG, now))
        return out

    def _edge(self, k, lvl, at, out):
        if lvl == self.level[k] or at - self._changed[k] < self.debounce_ms:
            return  # no change, or a bounce
        self.level[k] = lvl
        self._changed[k] = at
        if lvl == 0:
            self._pressed_at[k] = at
            self._long_done[k] = 0
            out.append((k, PRESS, at))
        else:
            out.append((k, RELEASE, at))
