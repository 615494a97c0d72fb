# micropython sign_faults.py SIZE
# Sequences a real SSD168x would not take: the panel model must refuse each.
# Prints one JSON object: case -> the fault message (or null if none came).
import gc
import json
import sys

import sign_util

from hw.sim.chips.ssd168x import PanelFault

size = sys.argv[1]
out = {}
_state = {}


def fresh():
    """The same chip and driver, power-cycled (a new 4.2" pair would not fit
    the heap next to the old one's garbage)."""
    if "p" not in _state:
        gc.collect()
        _state["p"] = sign_util.panel(size)
    tb, drv, model = _state["p"]
    model.power_cycle()
    drv.init = real_init
    drv._planes = real_planes
    return tb, drv, model


real_init = real_planes = None


async def reset(tb, drv):
    await sign_util.until_done(tb, drv._hw_reset())


async def swreset(tb, drv):
    await reset(tb, drv)
    drv._command(0x12)
    await sign_util.until_done(tb, drv._wait_busy(1000))


async def ram_before_swreset(tb, drv, model):
    await reset(tb, drv)
    drv._command(0x24, b"\x00")


async def activation_without_0x22(tb, drv, model):
    await swreset(tb, drv)
    drv._command(0x20)


async def command_while_busy(tb, drv, model):
    await reset(tb, drv)
    drv._command(0x12)
    drv._command(0x01, b"\x00\x00\x00")  # no wait for BUSY after the SW reset


async def command_in_deep_sleep(tb, drv, model):
    await sign_util.until_done(tb, drv.show(full=True))
    drv._command(0x12)  # asleep: only a hardware reset wakes it


async def window_beyond_ram(tb, drv, model):
    await swreset(tb, drv)
    drv._command(0x44, b"\x00\x40")


async def ram_write_overruns_window(tb, drv, model):
    await swreset(tb, drv)
    drv._command(0x44, b"\x00\x00")
    drv._command(0x45, b"\x00\x00\x00\x00")
    drv._command(0x4E, b"\x00")
    drv._command(0x4F, b"\x00\x00")
    drv._command(0x24, b"\x00\x00")  # the window is one byte


async def ram_counter_outside_window(tb, drv, model):
    await swreset(tb, drv)
    drv._command(0x44, b"\x00\x01")
    drv._command(0x4E, b"\x05")
    drv._command(0x24, b"\x00")


async def partial_without_old_image(tb, drv, model):
    await sign_util.until_done(tb, drv.show(full=False))  # a partial refresh first, after power-on


async def partial_with_stale_old_image(tb, drv, model):
    drv.fill(1)
    await sign_util.until_done(tb, drv.show(full=True))

    def skip_red(planes, draw):  # a driver that forgets to keep RAM 0x26 current
        real_planes(tuple(c for c in planes if c != 0x26), draw)

    drv._planes = skip_red
    drv.fill(0)
    await sign_util.until_done(tb, drv.show(full=False))
    drv.fill(1)
    await sign_util.until_done(tb, drv.show(full=False))


async def wrong_gate_count(tb, drv, model):
    drv.init = b"\x01\x03\x00\x01\x00" + real_init[5:]  # 0x01 first: 257 gates
    await sign_util.until_done(tb, drv.show(full=True))


async def missing_parameter(tb, drv, model):
    await swreset(tb, drv)
    drv._command(0x45, b"\x00\x00")  # 0x45 takes 4 bytes
    drv._command(0x4E, b"\x00")


async def main():
    global real_init, real_planes
    _state["p"] = sign_util.panel(size)
    real_init = _state["p"][1].init
    real_planes = _state["p"][1]._planes
    for case in (ram_before_swreset, activation_without_0x22, command_while_busy,
                 command_in_deep_sleep, window_beyond_ram, ram_write_overruns_window,
                 ram_counter_outside_window, partial_without_old_image,
                 partial_with_stale_old_image, wrong_gate_count, missing_parameter):
        tb, drv, model = fresh()
        msg = None
        try:
            await case(tb, drv, model)
        except PanelFault as e:
            msg = str(e)
        out[case.__name__] = msg


sign_util.run(main())
print(json.dumps(out))
