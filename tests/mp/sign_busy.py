# micropython sign_busy.py SIZE
# A stuck BUSY line: show() resets the panel and raises PanelBusyError within
# its timeout (no hang); the panel works again after. And the keypad task keeps
# its turns while show() waits for a refresh. Prints one JSON object.
import asyncio
import json
import sys

import sign_util

from hw.drivers.ssd168x import PanelBusyError

size = sys.argv[1]
tb, drv, model = sign_util.panel(size)
out = {}


async def stuck(case):
    t0 = tb.mono_ms()
    resets = model.hw_resets
    err = None
    try:
        await sign_util.until_done(tb, drv.show(full=True), limit_ms=60_000)
    except PanelBusyError as e:
        err = str(e)
    out[case] = {"error": err, "ms": tb.mono_ms() - t0, "resets": model.hw_resets - resets,
                 "drv_resets": drv.resets, "rst_level": drv.rst()}
    model.stuck = False


async def keypad():
    """A task like the keypad's: it counts its turns while the panel refreshes."""
    turns = [0]
    done = [False]

    async def keys():
        while not done[0]:
            turns[0] += 1
            await tb.sleep_ms(10)

    k = asyncio.create_task(keys())
    t0 = tb.mono_ms()
    await sign_util.until_done(tb, drv.show(full=True), step_ms=10)
    ms = tb.mono_ms() - t0
    n_full = turns[0]
    turns[0] = 0
    t0 = tb.mono_ms()
    await sign_util.until_done(tb, drv.show(full=False), step_ms=10)
    out["keypad"] = {"full_ms": ms, "full_turns": n_full, "partial_ms": tb.mono_ms() - t0,
                     "partial_turns": turns[0]}
    done[0] = True
    await tb.advance(20)
    await k


async def main():
    # BUSY high from the start: the reset's wait gives up
    model.stuck = True
    await stuck("at_reset")
    # BUSY never falls after the refresh starts
    model.on_refresh = lambda m: setattr(m, "stuck", True)
    await stuck("at_refresh")
    model.on_refresh = None
    # the panel works again: a full refresh after the fault
    await sign_util.until_done(tb, drv.show(full=True))
    out["recovered"] = {"full": model.full_refreshes, "faults": model.faults,
                        "deep": model.deep}
    await keypad()
    out["faults"] = model.faults


sign_util.run(main())
print(json.dumps(out))
