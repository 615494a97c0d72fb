# Time for the asyncio tasks. Every task waits through a timebase so the same
# code runs on the board (RealTime, here) and on the virtual device, whose time
# only moves when told to (VirtualTime in hw/sim/vtime.py, the same interface).
import asyncio
from time import ticks_diff, ticks_ms


class RealTime:
    def __init__(self):
        self._last = ticks_ms()
        self._mono = 0
        self.ticks_ms = ticks_ms

    def mono_ms(self):
        """Milliseconds since the timebase was made (at boot); never wraps
        (ticks_ms does, every 12.4 days) as long as it is read at least every
        6 days (ticks_diff spans half the period): the tasks read it every
        few seconds."""
        t = ticks_ms()
        self._mono += ticks_diff(t, self._last)
        self._last = t
        return self._mono

    async def wait(self, flag, deadline=None):
        """Until flag is set or mono_ms() reaches deadline (None: no deadline)."""
        if deadline is None:
            await flag.wait()
            return
        d = deadline - self.mono_ms()
        if d <= 0:
            return
        try:
            await asyncio.wait_for_ms(flag.wait(), d)
        except asyncio.TimeoutError:
            pass

    async def sleep_ms(self, ms):
        await asyncio.sleep_ms(ms)

    def flag(self):
        """A flag an interrupt handler may set."""
        return asyncio.ThreadSafeFlag()
