# Virtual time for the unix port: it moves only when advance() is called, and
# wakes every waiter whose deadline passes, in order, letting tasks run between.
import asyncio

from micropython import const

_SETTLE = const(8)  # event-loop turns that let a woken task and what it wakes run
_TICKS_MASK = const(0x3FFFFFFF)  # ticks_ms() wraps at 2**30, as on the ports


class VirtualTime:
    # Flags are Events: a ThreadSafeFlag is polled like a stream on the unix port
    # (a 1 ms sleep per loop turn), and virtual time has no real interrupts.
    # wait() clears a flag when it wakes, as ThreadSafeFlag.wait() does.
    flag = asyncio.Event

    def __init__(self):
        self.ms = 0  # now
        self._waiters = {}  # flag -> deadline

    def mono_ms(self):
        return self.ms

    def ticks_ms(self):
        return self.ms & _TICKS_MASK

    async def wait(self, flag, deadline=None):
        if deadline is not None:
            if deadline <= self.ms:
                return
            self._waiters[flag] = deadline
        await flag.wait()
        flag.clear()
        self._waiters.pop(flag, None)

    def sleep_ms(self, ms):  # a coroutine to await, as asyncio.sleep_ms() is
        return self.wait(asyncio.Event(), self.ms + ms)

    async def settle(self):
        for _ in range(_SETTLE):
            await asyncio.sleep_ms(0)

    async def advance(self, ms):
        target = self.ms + ms
        w = self._waiters
        while True:
            due = None
            for f in w:
                if w[f] <= target and (due is None or w[f] < w[due]):
                    due = f
            if due is None:
                break
            self.ms = max(self.ms, w.pop(due))
            due.set()
            await self.settle()
        self.ms = target
        await self.settle()

