"""The virtual device's BLE radio: bumble virtual controllers on one bumble LocalLink.

On the board, aioble drives the ESP32's controller through MicroPython's `bluetooth`
module (C). On the unix port there is none, so the virtual device runs aioble's public
API from the double (tests/ble/aioble, over tests/ble/bluetooth.py), whose radio is this
bridge: the MicroPython process connects to it over TCP on 127.0.0.1 and speaks a small
binary protocol (below); the bridge carries the device's GATT service on a bumble Device
attached to controller "device", and a second controller, "host", on the same link is open
to any bumble host as an HCI transport: `tcp-client:127.0.0.1:PORT` (what `pingjia sim
--ble` prints as `hci: SPEC` for `pingjia pull --ble --hci SPEC`).

So the central is a real Bluetooth host stack (bumble's) talking HCI to a real (virtual)
controller, link-layer packets cross bumble's LocalLink, and the peripheral's GATT server,
ATT MTU exchange, notifications and disconnections are bumble's; only the step from the
device's aioble calls to that GATT server is this bridge, where the board has NimBLE.

Radio protocol, little-endian, each message u16 length (of what follows), u8 op, payload:
  from the device: R services (JSON: [[uuid, [[uuid, flags, handle], ...]], ...])
                   A advertise (JSON: interval_us, adv, resp as hex, connectable)  a stop
                   W handle u16, value (the local value, served to reads)
                   N conn u16, handle u16, value (a notification)
                   D conn u16 (disconnect)
  to the device:   C conn u16, addr type u8, addr 6 (a central connected)
                   X conn u16 (disconnected)
                   w conn u16, handle u16, value (a central wrote)
                   M conn u16, mtu u16 (ATT MTU exchanged)
                   n count u16 (notifications sent on the link: transmit slots free again)
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import threading
from typing import Any

logging.getLogger("bumble").setLevel(logging.WARNING)

DEVICE_ADDRESS = "F0:F1:F2:F3:F4:F5"


class BleRadio:
    """Bumble's virtual link with the device's controller and the host's; serves one
    MicroPython device at a time (a reboot reconnects). Runs its own event loop in a
    thread: start() then .hci (the spec for the host side) and .radio (for the device)."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pingjia-ble",
                                       daemon=True)
        self.hci_port = 0
        self.radio_port = 0
        self.notified = 0  # notifications put on the link
        self.connections = 0  # centrals that connected
        self._writer: asyncio.StreamWriter | None = None
        self._conns: dict[int, Any] = {}  # conn handle -> bumble Connection
        self._chars: dict[int, Any] = {}  # the device's value handle -> bumble Characteristic
        self._values: dict[int, bytes] = {}
        self._next_conn = 1
        self._started = threading.Event()
        self._error: BaseException | None = None

    # ---- life ----------------------------------------------------------------------
    def start(self) -> BleRadio:
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        fut.result(timeout=30)
        return self

    @property
    def hci(self) -> str:
        return f"tcp-client:{self.host}:{self.hci_port}"

    @property
    def radio(self) -> str:
        return f"{self.host}:{self.radio_port}"

    def stop(self) -> None:
        async def _stop():
            for c in list(self._conns.values()):
                try:
                    await c.disconnect()
                except Exception:  # gone already
                    pass
            if self._writer:
                self._writer.close()
            self._server.close()
            self._hci_server.close()

        if self.thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(_stop(), self.loop).result(timeout=10)
            except Exception:  # a loop already wedged: the thread is a daemon
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)

    def __enter__(self) -> BleRadio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start(self) -> None:
        from bumble.controller import Controller
        from bumble.device import Device
        from bumble.hci import Address
        from bumble.host import Host
        from bumble.link import LocalLink
        from bumble.transport.common import AsyncPipeSink, StreamPacketSink, StreamPacketSource

        self.link = LocalLink()
        self.controller = Controller("device", link=self.link, public_address=DEVICE_ADDRESS)
        self.device = Device(address=Address(DEVICE_ADDRESS),
                             host=Host(self.controller, AsyncPipeSink(self.controller)))
        self.device.on(self.device.EVENT_CONNECTION, self._on_connection)
        await self.device.power_on()
        # the host side: a controller on the same link behind an HCI-over-TCP server, a new
        # one for each host that connects (a dongle plugged in afresh: a host that went
        # away mid-connect leaves no pending connection for the next one)
        radio = self

        class HciClient(asyncio.Protocol):
            def connection_made(self, transport):
                sock = transport.get_extra_info("socket")
                if sock is not None:  # HCI packets one by one, not held for Nagle
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.source = StreamPacketSource()
                self.controller = Controller("host", host_source=self.source,
                                             host_sink=StreamPacketSink(transport),
                                             link=radio.link)

            def data_received(self, data):
                self.source.data_received(data)

            def connection_lost(self, exc):
                radio.link.remove_controller(self.controller)

        self._hci_server = await asyncio.get_running_loop().create_server(
            HciClient, self.host, 0)
        self.hci_port = self._hci_server.sockets[0].getsockname()[1]
        self._server = await asyncio.start_server(self._serve_device, self.host, 0)
        self.radio_port = self._server.sockets[0].getsockname()[1]

    # ---- the device side -------------------------------------------------------------
    async def _serve_device(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        if self._writer is not None:  # the device rebooted: its old link is gone
            await self._reset()
        self._writer = writer
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readexactly(3)
                n, op = struct.unpack("<HB", head)
                body = await reader.readexactly(n - 1) if n > 1 else b""
                await self._device_said(op, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if self._writer is writer:
                await self._reset()

    async def _reset(self) -> None:
        """The device is gone (power cut, reboot): so is its side of every link."""
        self._writer = None
        try:
            await self.device.stop_advertising()
        except Exception:  # not advertising
            pass
        for c in list(self._conns.values()):
            try:
                await c.disconnect()
            except Exception:
                pass
        self._conns.clear()

    def _send(self, op: bytes, payload: bytes = b"") -> None:
        if self._writer is not None:
            self._writer.write(struct.pack("<H", len(payload) + 1) + op + payload)

    async def _device_said(self, op: int, body: bytes) -> None:
        if op == ord("R"):
            self._register(json.loads(body))
        elif op == ord("A"):
            a = json.loads(body)
            try:
                await self.device.stop_advertising()
            except Exception:
                pass
            await self.device.start_advertising(
                advertising_data=bytes.fromhex(a["adv"]),
                scan_response_data=bytes.fromhex(a["resp"]),
                advertising_interval_min=max(20.0, a["interval_us"] / 1000),
                advertising_interval_max=max(20.0, a["interval_us"] / 1000))
        elif op == ord("a"):
            try:
                await self.device.stop_advertising()
            except Exception:
                pass
        elif op == ord("W"):
            (h,) = struct.unpack_from("<H", body)
            self._values[h] = body[2:]
        elif op == ord("N"):
            conn, h = struct.unpack_from("<HH", body)
            c, ch = self._conns.get(conn), self._chars.get(h)
            if c is not None and ch is not None:
                try:
                    await self.device.notify_subscriber(c, ch, body[4:], force=True)
                    self.notified += 1
                except Exception:  # the link dropped under it: the device hears 'X'
                    pass
            self._send(b"n", struct.pack("<H", 1))
        elif op == ord("D"):
            (conn,) = struct.unpack_from("<H", body)
            c = self._conns.get(conn)
            if c is not None:
                await c.disconnect()

    def _register(self, services: list) -> None:
        """The device's services on the bumble GATT server. A device that reboots registers
        the same layout again: its handles are mapped onto the attributes made the first
        time (a GATT server keeps its attributes for its life, as a central's cache does)."""
        from bumble.gatt import Characteristic, CharacteristicValue, Service

        layout = [[s, [[c, f] for c, f, _h in chars]] for s, chars in services]
        if getattr(self, "_layout", None) is not None:
            if layout != self._layout:
                raise ValueError("the device registered other services than at its first "
                                 "boot on this radio")
            made = iter(self._made)
            self._chars = {h: next(made) for _s, chars in services for _c, _f, h in chars}
            return
        out = []
        self._chars.clear()
        self._made = []
        for suuid, chars in services:
            group = []
            for cuuid, flags, handle in chars:
                perms = 0
                if flags & 0x02:
                    perms |= Characteristic.READABLE
                if flags & 0x0C:
                    perms |= Characteristic.WRITEABLE
                ch = Characteristic(cuuid, Characteristic.Properties(flags & 0x3E), perms,
                                    CharacteristicValue(read=self._reader(ch_index := len(self._made)),
                                                        write=self._writer_for(ch_index)))
                self._chars[handle] = ch
                self._made.append(ch)
                group.append(ch)
            out.append(Service(suuid, group))
        self._layout = layout
        self.device.add_services(out)

    def _handle_of(self, index: int) -> int | None:
        ch = self._made[index]
        return next((h for h, c in self._chars.items() if c is ch), None)

    def _reader(self, index: int):
        return lambda connection: self._values.get(self._handle_of(index), b"")

    def _writer_for(self, index: int):
        return lambda connection, value: self._write(connection, self._handle_of(index), value)

    def _write(self, connection: Any, handle: int, value: bytes) -> None:
        conn = next((k for k, c in self._conns.items() if c is connection), None)
        if conn is not None:
            self._send(b"w", struct.pack("<HH", conn, handle) + bytes(value))

    # ---- the link -------------------------------------------------------------------
    def _on_connection(self, connection: Any) -> None:
        conn = self._next_conn
        self._next_conn = self._next_conn % 0xFFFE + 1
        self._conns[conn] = connection
        self.connections += 1
        addr = bytes(reversed(bytes(connection.peer_address)))[:6]
        self._send(b"C", struct.pack("<HB", conn, connection.peer_address.address_type & 1)
                   + addr)

        def on_mtu() -> None:
            self._send(b"M", struct.pack("<HH", conn, connection.att_mtu))

        def on_disconnection(*_: object) -> None:
            if self._conns.get(conn) is connection:
                del self._conns[conn]
                self._send(b"X", struct.pack("<H", conn))

        connection.on(connection.EVENT_CONNECTION_ATT_MTU_UPDATE, on_mtu)
        connection.on(connection.EVENT_DISCONNECTION, on_disconnection)
