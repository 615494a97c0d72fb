# micropython sign_day.py SIZE FONT_DIR SCENARIO
# Runs EinkSign (real driver, layout and fonts, on the panel model) through a
# scripted scenario in virtual time; the core's show() calls come at given
# times. Prints one JSON object: every panel update and the counters.
import asyncio
import gc
import json
import sys

import sign_util

from firmware.eink import EinkSign

size, fonts, scenario = sys.argv[1], sys.argv[2], sys.argv[3]
tb, drv, model = sign_util.panel(size, rows=64 if size == "4.2" else None)  # as the sim wires it
lay = sign_util.layout(drv, fonts)
log = []  # [start, end, full, screen name] (the basics scenario)
stats = {"updates": 0, "min_gap": None, "asleep": True, "drawn": {}}
_show = drv.show
_end = [None]


async def logged_show(full=False, draw=None):
    start = tb.mono_ms()
    await _show(full, draw)
    if _end[0] is not None:
        g = start - _end[0]
        if stats["min_gap"] is None or g < stats["min_gap"]:
            stats["min_gap"] = g
    _end[0] = tb.mono_ms()
    if scenario == "basics":
        log.append([start, _end[0], full])


drv.show = logged_show


def updated(sign):
    name = sign.shown[0]
    if scenario == "basics":
        log[-1].append(name)
    stats["updates"] += 1
    stats["drawn"][name] = stats["drawn"].get(name, 0) + 1
    stats["asleep"] = stats["asleep"] and model.deep


sign = EinkSign(drv, lay, updated)
S = {}
for _n, scr in sign_util.SCREENS:
    S.setdefault(scr[0], scr)
SERVING, WAIT, PAUSED, CLOSED = S["serving"], S["wait"], S["paused"], S["closed"]
INVITE, REASON, THANKS = S["invite"], S["reason"], S["thanks"]
MIN = 60_000
HOUR = 3_600_000


async def show(screen):
    """The core's call, then a few loop turns (as after any event)."""
    sign.show(screen)
    await tb.settle()


async def step(ms):
    await tb.advance(ms)


async def basics():
    """Marks in the output let the test check each part."""
    marks = {}
    await show(CLOSED)  # boot
    await step(10_000)
    marks["boot"] = len(log)
    await step(HOUR)  # idle
    marks["idle"] = len(log)
    await show(SERVING)  # badge in
    await step(10_000)
    marks["badge"] = len(log)
    # quick toggles that end where they began: nothing to draw
    for s in (WAIT, SERVING, WAIT, SERVING):
        await show(s)
        await step(50)
    await step(10_000)
    marks["toggle_back"] = len(log)
    # quick toggles ending elsewhere: drawn once, the last
    for s in (WAIT, SERVING, WAIT, SERVING, PAUSED):
        await show(s)
        await step(50)
    await step(10_000)
    marks["toggle_to"] = len(log)
    # changes during a refresh: the newest wins after the 2 s gap
    await show(SERVING)
    await step(400)  # the refresh has begun
    await show(INVITE)
    await step(100)
    await show(REASON)
    await step(100)
    await show(THANKS)
    await step(10_000)
    marks["during"] = len(log)
    # a rating every 30 s: invite, thanks, serving (partial ones; then the
    # full/partial rule decides)
    for _ in range(10):
        await show(INVITE)
        await step(5_000)
        await show(THANKS)
        await step(3_000)
        await show(SERVING)
        await step(22_000)
    marks["ratings"] = len(log)
    # a day and more without changes: one full refresh a day, nothing else
    await step(25 * HOUR)
    marks["day1"] = len(log)
    await step(24 * HOUR)
    marks["day2"] = len(log)
    return marks


async def office():
    """A working day: 09:00 badge in, 60 ratings with a reason now and then,
    waits and a lunch pause, 17:30 closed; then the night."""
    await show(CLOSED)
    await step(MIN)
    await show(SERVING)
    await step(10 * MIN)
    changes = 2
    for i in range(60):
        await show(INVITE)
        await step(6_000)
        if i % 10 == 3:
            await show(REASON)
            await step(4_000)
            changes += 1
        await show(THANKS)
        await step(3_000)
        await show(SERVING)
        changes += 3
        await step(5 * MIN)
        if i % 15 == 7:
            await show(WAIT)
            await step(2 * MIN)
            await show(SERVING)
            await step(MIN)
            changes += 2
        if i == 30:
            await show(PAUSED)
            await step(60 * MIN)
            await show(SERVING)
            await step(MIN)
            changes += 2
    await show(CLOSED)
    changes += 1
    await step(16 * HOUR)
    return {"changes": changes}


async def main():
    t = asyncio.create_task(sign.run(tb))
    await tb.settle()  # the sign task starts, as at boot
    marks = await (basics() if scenario == "basics" else office())
    t.cancel()
    gc.collect()
    # streamed: a 4.2" heap has no room for the whole text at once
    json.dump({"log": log, "stats": stats, "marks": marks, "counts": sign.counts(),
               "model": {"full": model.full_refreshes, "partial": model.partial_refreshes,
                         "faults": model.faults},
               "mem_free": gc.mem_free(), "ms": tb.mono_ms()}, sys.stdout)
    print()


sign_util.run(main())
