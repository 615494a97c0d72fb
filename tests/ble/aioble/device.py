# aioble double: a peer device, its connection, and the timeout that every await uses.
import asyncio

from micropython import const

from .core import Flag, ble, log_error, register_irq_handler

_IRQ_MTU_EXCHANGED = const(21)


class DeviceDisconnectedError(Exception):
    pass


def _device_irq(event, data):
    if event == _IRQ_MTU_EXCHANGED:
        conn_handle, mtu = data
        device = DeviceConnection._connected.get(conn_handle, None)
        if device:
            device.mtu = mtu
            if device._mtu_event:
                device._mtu_event.set()


register_irq_handler(_device_irq, None)


class DeviceTimeout:
    """`with connection.timeout(ms):` (or DeviceTimeout(None, ms)): the await inside is
    cancelled after ms (asyncio.TimeoutError) or when the connection drops
    (DeviceDisconnectedError); either may be None."""

    def __init__(self, connection, timeout_ms):
        self._connection = connection
        self._timeout_ms = timeout_ms
        self._timeout_task = None
        self._task = asyncio.current_task()
        if connection:
            connection._timeouts.append(self)

    async def _timeout_sleep(self):
        try:
            await asyncio.sleep_ms(self._timeout_ms)
        except asyncio.CancelledError:
            return  # the operation finished first
        self._timeout_task = None  # tells __exit__ a timeout, not a disconnect
        self._task.cancel()

    def __enter__(self):
        if self._timeout_ms:
            self._timeout_task = asyncio.create_task(self._timeout_sleep())

    def __exit__(self, exc_type, exc_val, exc_traceback):
        if self._connection:
            self._connection._timeouts.remove(self)
        try:
            if exc_type == asyncio.CancelledError:
                if self._timeout_ms and self._timeout_task is None:
                    raise asyncio.TimeoutError
                if self._connection and self._connection._conn_handle is None:
                    raise DeviceDisconnectedError
                return  # cancelled by something else: let it through
        finally:
            if self._timeout_task:
                self._timeout_task.cancel()


class Device:
    def __init__(self, addr_type, addr):
        self.addr_type = addr_type
        self.addr = addr if len(addr) == 6 else bytes.fromhex(addr.replace(":", ""))
        self._connection = None

    def __eq__(self, rhs):
        return self.addr_type == rhs.addr_type and self.addr == rhs.addr

    def __hash__(self):
        return hash((self.addr_type, self.addr))

    def __str__(self):
        return "Device(%s, %s%s)" % ("ADDR_PUBLIC" if self.addr_type == 0 else "ADDR_RANDOM",
                                     self.addr_hex(), ", CONNECTED" if self._connection else "")

    def addr_hex(self):
        return ":".join("%02x" % b for b in self.addr)

    async def connect(self, timeout_ms=10000):
        raise OSError(95)  # the double is a peripheral only (aioble's central.py)


class DeviceConnection:
    _connected = {}  # conn handle -> connection, for the IRQs

    def __init__(self, device):
        self.device = device
        device._connection = self
        self.encrypted = False
        self.authenticated = False
        self.bonded = False
        self.key_size = False
        self.mtu = None
        self._conn_handle = None
        self._event = None
        self._mtu_event = None
        self._discover = None
        self._characteristics = {}
        self._task = None
        self._timeouts = []
        self._pair_event = None
        self._l2cap_channel = None

    async def device_task(self):
        assert self._conn_handle is not None
        await self._event.wait()  # the disconnect IRQ
        del DeviceConnection._connected[self._conn_handle]
        self._conn_handle = None
        self.device._connection = None
        for t in self._timeouts:
            t._task.cancel()

    def _run_task(self):
        self._event = self._event or Flag()
        self._task = asyncio.create_task(self.device_task())

    async def disconnect(self, timeout_ms=2000):
        await self.disconnected(timeout_ms, disconnect=True)

    async def disconnected(self, timeout_ms=60000, disconnect=False):
        if not self.is_connected():
            return
        assert self._task
        if disconnect:
            try:
                ble.gap_disconnect(self._conn_handle)
            except OSError as e:
                log_error("Disconnect", e)
        with DeviceTimeout(None, timeout_ms):
            await self._task

    def is_connected(self):
        return self._conn_handle is not None

    def timeout(self, timeout_ms):
        return DeviceTimeout(self, timeout_ms)

    async def exchange_mtu(self, mtu=None, timeout_ms=1000):
        if not self.is_connected():
            raise ValueError("Not connected")
        if mtu:
            ble.config(mtu=mtu)
        self._mtu_event = self._mtu_event or Flag()
        ble.gattc_exchange_mtu(self._conn_handle)
        with self.timeout(timeout_ms):
            await self._mtu_event.wait()
        return self.mtu

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc_val, exc_traceback):
        await self.disconnect()
