# aioble double: the radio, IRQ dispatch to the modules that registered for it, logging.
import asyncio

import bluetooth

log_level = 1


def log_error(*args):
    if log_level > 0:
        print("[aioble] E:", *args)


def log_warn(*args):
    if log_level > 1:
        print("[aioble] W:", *args)


def log_info(*args):
    if log_level > 2:
        print("[aioble] I:", *args)


class GattError(Exception):
    def __init__(self, status):
        self._status = status


def ensure_active():
    if not ble.active():
        ble.active(True)


def config(*args, **kwargs):
    ensure_active()
    return ble.config(*args, **kwargs)


_irq_handlers = []
_shutdown_handlers = []


def register_irq_handler(irq, shutdown):
    if irq:
        _irq_handlers.append(irq)
    if shutdown:
        _shutdown_handlers.append(shutdown)


def stop():
    ble.active(False)
    for handler in _shutdown_handlers:
        handler()


def ble_irq(event, data):
    log_info(event, data)
    for handler in _irq_handlers:
        result = handler(event, data)
        if result is not None:
            return result


ble = bluetooth.BLE()
ble.irq(ble_irq)


class Flag(asyncio.Event):
    """aioble waits on ThreadSafeFlags set from the stack's IRQ, which runs outside the
    event loop. The double's IRQs come from its radio task, on the loop, so an asyncio
    Event with the flag's clear-on-wait does the same without one more stream in the unix
    port's poller (each one costs every loop turn). A subclass rather than a wrapper: one
    object and its wait queue, nearer the flag's one small object."""

    async def wait(self):
        await asyncio.Event.wait(self)
        self.clear()
