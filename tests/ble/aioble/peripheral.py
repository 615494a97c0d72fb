# aioble double: advertising (the payload built as aioble builds it, overflowing into the
# scan response, ValueError when it cannot fit) and the central's connection.
import struct

from micropython import const

from .core import Flag, ble, ensure_active, register_irq_handler
from .device import Device, DeviceConnection, DeviceTimeout

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)

_ADV_TYPE_FLAGS = const(0x01)
_ADV_TYPE_NAME = const(0x09)
_ADV_TYPE_UUID16_COMPLETE = const(0x3)
_ADV_TYPE_UUID32_COMPLETE = const(0x5)
_ADV_TYPE_UUID128_COMPLETE = const(0x7)
_ADV_TYPE_APPEARANCE = const(0x19)
_ADV_TYPE_MANUFACTURER = const(0xFF)
_ADV_PAYLOAD_MAX_LEN = const(31)

_incoming_connection = None
_connect_event = None


def _peripheral_irq(event, data):
    global _incoming_connection
    if event == _IRQ_CENTRAL_CONNECT:
        conn_handle, addr_type, addr = data
        device = Device(addr_type, bytes(addr))
        _incoming_connection = DeviceConnection(device)
        _incoming_connection._conn_handle = conn_handle
        DeviceConnection._connected[conn_handle] = _incoming_connection
        if _connect_event:
            _connect_event.set()
    elif event == _IRQ_CENTRAL_DISCONNECT:
        conn_handle, _, _ = data
        connection = DeviceConnection._connected.get(conn_handle, None)
        if connection:
            connection._event.set()


def _peripheral_shutdown():
    global _incoming_connection, _connect_event
    _incoming_connection = None
    _connect_event = None


register_irq_handler(_peripheral_irq, _peripheral_shutdown)


def _append(adv_data, resp_data, adv_type, value):
    data = struct.pack("BB", len(value) + 1, adv_type) + value
    if len(data) + len(adv_data) < _ADV_PAYLOAD_MAX_LEN:
        adv_data += data
        return resp_data
    if len(data) + (len(resp_data) if resp_data else 0) < _ADV_PAYLOAD_MAX_LEN:
        if not resp_data:
            resp_data = bytearray()
        resp_data += data
        return resp_data
    raise ValueError("Advertising payload too long")


async def advertise(interval_us, adv_data=None, resp_data=None, connectable=True,
                    limited_disc=False, br_edr=False, name=None, services=None, appearance=0,
                    manufacturer=None, timeout_ms=None):
    import asyncio

    global _incoming_connection, _connect_event
    ensure_active()
    if not adv_data and not resp_data:
        adv_data = bytearray()
        resp_data = _append(adv_data, resp_data, _ADV_TYPE_FLAGS, struct.pack(
            "B", (0x01 if limited_disc else 0x02) + (0x18 if br_edr else 0x04)))
        if services:
            for uuid in services:
                b = bytes(uuid)
                kind = {2: _ADV_TYPE_UUID16_COMPLETE, 4: _ADV_TYPE_UUID32_COMPLETE,
                        16: _ADV_TYPE_UUID128_COMPLETE}.get(len(b))
                if kind:
                    resp_data = _append(adv_data, resp_data, kind, b)
        if name:
            resp_data = _append(adv_data, resp_data, _ADV_TYPE_NAME, name)
        if appearance:
            resp_data = _append(adv_data, resp_data, _ADV_TYPE_APPEARANCE,
                                struct.pack("<H", appearance))
        if manufacturer:
            resp_data = _append(adv_data, resp_data, _ADV_TYPE_MANUFACTURER,
                                struct.pack("<H", manufacturer[0]) + manufacturer[1])
    _connect_event = _connect_event or Flag()
    ble.gap_advertise(interval_us, adv_data=adv_data, resp_data=resp_data,
                      connectable=connectable)
    try:
        with DeviceTimeout(None, timeout_ms):
            await _connect_event.wait()
        result = _incoming_connection
        _incoming_connection = None
        result._run_task()
        return result
    except asyncio.CancelledError:
        ble.gap_advertise(None)  # stopped by whoever cancelled this task
    except asyncio.TimeoutError:
        ble.gap_advertise(None)
        raise
