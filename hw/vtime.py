# Virtual time for the unix port: it moves only when advance() is called, and
# wakes every waiter whose deadline passes, in order, letting tasks run between.
import asyncio

_SETTLE = 8  # event-loop turns that let a woken task and what it wakes run


class VirtualTime:
    def __init__(self, start_ms=0):
        self.ms = start_ms
        self._waiters = {}  # flag -> deadline

    def mono_ms(self):
        return self.ms

    def ticks_ms(self):
        return self.ms & 0x3FFFFFFF

    async def wait(self, flag, deadline=None):
        if deadline is not None:
            if deadline <= self.ms:
                return
            self._waiters[flag] = deadline
        await flag.wait()
        self._waiters.pop(flag, None)

    async def sleep_ms(self, ms):
        flag = asyncio.ThreadSafeFlag()
        await self.wait(flag, self.ms + ms)

    async def settle(self):
        for _ in range(_SETTLE):
            await asyncio.sleep_ms(0)

    async def advance(self, ms):
        target = self.ms + ms
        while True:
            due = None
            for f, d in self._waiters.items():
                if d <= target and (due is None or d < self._waiters[due]):
                    due = f
            if due is None:
                break
            self.ms = max(self.ms, self._waiters.pop(due))
            due.set()
            await self.settle()
        self.ms = target
        await self.settle()
