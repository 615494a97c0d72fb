"""`pingjia pull --ble [ADDRESS]`: a device's log over BLE from its GATT service
(firmware/ble.py), ingested frame by frame as a Wi-Fi sync is, each frame acked on the
device only once the collector stored it; the clock set from the collector's answer.

Two centrals, one protocol: bleak on the OS's adapter (the default), or bumble with any
bumble transport (`--hci usb:0` for a dongle, `--hci tcp-client:127.0.0.1:PORT` for the
virtual device's controller, printed by `pingjia sim --ble`). A pull that drops half way
starts again from what the device has acked: nothing lost, nothing stored twice."""

from __future__ import annotations

import argparse
import asyncio
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from host_tools.device.progress import bar
from host_tools.errors import PingjiaError

SERVICE = "8d7e0001-5a1b-4c3e-9f20-706a6a696101"
STATUS = "8d7e0002-5a1b-4c3e-9f20-706a6a696101"
CONTROL = "8d7e0003-5a1b-4c3e-9f20-706a6a696101"
DATA = "8d7e0004-5a1b-4c3e-9f20-706a6a696101"
NAME_PREFIX = "pingjia-"
BATCH = 64  # records a frame (the device sends at most its own batch)
WINDOW = 8  # answer pieces between the device's "P" messages
CENTRAL_ADDRESS = "C0:98:E5:49:00:01"  # the bumble central's random static address


class BleError(PingjiaError, RuntimeError):
    pass


def double_dir() -> Path:
    """The aioble double (and its `bluetooth`), compiled for the unix port: the directory
    to put on MICROPYPATH for a device without a real `bluetooth` module."""
    from host_tools.device import build

    sources = build.ROOT / "tests" / "ble"  # the checkout's, or pingjia_device's when installed
    out = build._OUT / "ble-double"
    build._compile(sorted(sources.rglob("*.py")), sources, out)
    return out


def device_ble(micropython: str):
    """For `pingjia sim --ble`: (the bumble radio, started; what the device process needs:
    the radio's address and, unless that MicroPython has a real `bluetooth` module and finds
    aioble on MICROPYPATH, the double's directory)."""
    import subprocess

    from host_tools.device.ble_radio import BleRadio

    has_bt = subprocess.run([micropython, "-c", "import bluetooth"], capture_output=True,
                            timeout=30).returncode == 0
    radio = BleRadio().start()
    return radio, {"radio": radio.radio, "path": None if has_bt else str(double_dir())}


@dataclass
class Status:
    device: str
    boot: int
    seq: int
    acked: int
    control_max: int
    clock_known: bool
    state: int

    @classmethod
    def parse(cls, b: bytes) -> Status:
        if len(b) < 4 or b[:2] != b"PS":
            raise BleError("the device's status is not a pingjia one (not our device?)")
        n = b[3]
        try:
            boot, seq, acked, cmax, clock, state = struct.unpack_from("<IIIHBB", b, 4 + n)
        except struct.error:
            raise BleError("the device's status is cut short") from None
        return cls(b[4:4 + n].decode(), boot, seq, acked, cmax, bool(clock), state)


# ---- centrals -----------------------------------------------------------------------------
class Central:
    """A connected central: the status read, control writes, data notifications."""

    mtu = 23
    address = ""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()

    async def read_status(self) -> bytes:
        raise NotImplementedError

    async def write(self, data: bytes) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def is_connected(self) -> bool:
        raise NotImplementedError


class BumbleCentral(Central):
    """bumble's host stack on an HCI transport (a dongle, or a virtual controller)."""

    def __init__(self, spec: str):
        super().__init__()
        self.spec = spec
        self.transport = None
        self.connection = None

    async def open(self, address: str | None, window: str | None, timeout: float,
                   mtu: int | None) -> None:
        from bumble.device import Device, Peer
        from bumble.hci import Address
        from bumble.transport import open_transport

        try:
            self.transport = await asyncio.wait_for(open_transport(self.spec), timeout)
        except (OSError, asyncio.TimeoutError, ValueError) as e:
            raise BleError(f"no HCI transport at {self.spec}: {e or 'timed out'}") from None
        _no_delay(self.transport)
        self.device = Device.with_hci("pingjia-pull", Address(CENTRAL_ADDRESS),
                                      self.transport.source, self.transport.sink)
        await asyncio.wait_for(self.device.power_on(), timeout)
        target = await self._find(address, window, timeout)
        try:
            # bumble's own connect timeout waits on the controller's cancel, which a
            # controller with nobody at that address may never confirm: bound it here too
            self.connection = await asyncio.wait_for(
                self.device.connect(target, timeout=timeout), timeout + 1)
        except (Exception, asyncio.TimeoutError) as e:  # bumble's timeout and link errors
            raise BleError(f"could not connect to {target}: "
                           f"{e or 'nobody answered'} within {timeout:g} s") from None
        self.address = str(target)
        peer = Peer(self.connection)
        if mtu:
            self.mtu = await asyncio.wait_for(peer.request_mtu(mtu), timeout)
        await asyncio.wait_for(peer.discover_services([SERVICE]), timeout)
        services = peer.get_services_by_uuid(_uuid(SERVICE))
        if not services:
            raise BleError(f"{target} has no pingjia service (not our device)")
        await asyncio.wait_for(services[0].discover_characteristics(), timeout)
        chars = {str(c.uuid).lower(): c for c in services[0].characteristics}
        try:
            self.status_c, self.control_c, self.data_c = (
                chars[STATUS], chars[CONTROL], chars[DATA])
        except KeyError:
            raise BleError(f"{target}: its pingjia service lacks a characteristic") from None
        await asyncio.wait_for(self.data_c.subscribe(self.inbox.put_nowait), timeout)

    async def _find(self, address: str | None, window: str | None, timeout: float):
        from bumble.core import AdvertisingData
        from bumble.hci import Address

        if address:
            try:
                return Address(address)
            except (ValueError, TypeError):
                raise BleError(f"{address!r} is not a Bluetooth address") from None
        want = NAME_PREFIX + window if window else None
        found: asyncio.Future = asyncio.get_running_loop().create_future()

        def on_adv(adv) -> None:
            name = adv.data.get(AdvertisingData.COMPLETE_LOCAL_NAME)
            if isinstance(name, bytes):
                name = name.decode(errors="replace")
            if name and name.startswith(NAME_PREFIX) and (want is None or name == want) \
                    and not found.done():
                found.set_result(adv.address)

        self.device.on(self.device.EVENT_ADVERTISEMENT, on_adv)
        await self.device.start_scanning(filter_duplicates=True)
        try:
            return await asyncio.wait_for(found, timeout)
        except asyncio.TimeoutError:
            raise BleError(f"no device advertising {want or NAME_PREFIX + '*'} within "
                           f"{timeout:g} s") from None
        finally:
            await self.device.stop_scanning()

    async def read_status(self) -> bytes:
        return bytes(await self.status_c.read_value())

    async def write(self, data: bytes) -> None:
        await self.control_c.write_value(data, with_response=True)

    def is_connected(self) -> bool:
        return self.connection is not None and self.connection.handle is not None and \
            self.connection in self.device.connections.values()

    async def close(self) -> None:
        try:
            if self.connection is not None and self.is_connected():
                await asyncio.wait_for(self.connection.disconnect(), 5)
        except Exception:  # gone already
            pass
        if self.transport is not None:
            await self.transport.close()


class BleakCentral(Central):
    """bleak on the OS's Bluetooth adapter (BlueZ, CoreBluetooth, WinRT)."""

    async def open(self, address: str | None, window: str | None, timeout: float,
                   mtu: int | None) -> None:
        try:
            from bleak import BleakClient, BleakScanner
            from bleak.exc import BleakError
        except ImportError:
            raise BleError("bleak is not installed (pip install bleak)") from None
        try:
            if address:
                dev = await BleakScanner.find_device_by_address(address, timeout=timeout)
            else:
                want = NAME_PREFIX + window if window else None
                dev = await BleakScanner.find_device_by_filter(
                    lambda d, adv: bool(adv.local_name) and adv.local_name.startswith(
                        NAME_PREFIX) and (want is None or adv.local_name == want),
                    timeout=timeout)
        except (BleakError, OSError) as e:
            raise BleError(f"the OS's Bluetooth adapter: {e} (or use --hci SPEC)") from None
        if dev is None:
            raise BleError(f"no device {'at ' + address if address else 'advertising'} "
                           f"{'' if address else (NAME_PREFIX + (window or '*'))} within "
                           f"{timeout:g} s")
        self.client = BleakClient(dev, timeout=timeout)
        try:
            await self.client.connect()
            self.mtu = self.client.mtu_size
            await self.client.start_notify(DATA, lambda _c, data: self.inbox.put_nowait(
                bytes(data)))
        except (BleakError, OSError, asyncio.TimeoutError) as e:
            raise BleError(f"{dev.address}: {e}") from None
        self.address = dev.address

    async def read_status(self) -> bytes:
        return bytes(await self.client.read_gatt_char(STATUS))

    async def write(self, data: bytes) -> None:
        await self.client.write_gatt_char(CONTROL, data, response=True)

    def is_connected(self) -> bool:
        return self.client.is_connected

    async def close(self) -> None:
        try:
            await self.client.disconnect()
        except Exception:
            pass


def _no_delay(transport) -> None:
    """TCP_NODELAY on a bumble TCP transport (tcp-client sets none): an ATT request held
    back for Nagle's delayed ACK costs 40 ms a round trip."""
    import socket

    tcp = getattr(getattr(transport, "sink", None), "transport", None)
    sock = tcp.get_extra_info("socket") if tcp is not None else None
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _uuid(s: str):
    from bumble.core import UUID

    return UUID(s)


# ---- the pull -----------------------------------------------------------------------------
@dataclass
class BlePull:
    device: str = ""
    address: str = ""
    mtu: int = 23
    frames: int = 0
    records: int = 0
    frame_bytes: int = 0  # frame bytes notified (the records, their headers and MACs)
    acked: int = 0
    seq: int = 0
    clock_set: bool = False
    seconds: float = 0.0
    notifications: int = 0
    log: list[str] = field(default_factory=list)


class Session:
    """The pingjia protocol over a connected central (firmware/ble.py has the format)."""

    def __init__(self, central: Central, timeout: float):
        self.c = central
        self.timeout = timeout
        self.buf = b""
        self.notifications = 0

    async def message(self) -> tuple[str, bytes]:
        while True:
            if len(self.buf) >= 3:
                kind, n = struct.unpack_from("<BH", self.buf)
                if len(self.buf) >= 3 + n:
                    body, self.buf = self.buf[3:3 + n], self.buf[3 + n:]
                    return chr(kind), body
            try:
                chunk = await asyncio.wait_for(self.c.inbox.get(), self.timeout)
            except asyncio.TimeoutError:
                raise BleError("the device stopped answering (the link dropped?)") from None
            self.notifications += 1
            self.buf += chunk

    async def expect(self, want: str) -> bytes:
        kind, body = await self.message()
        if kind == "E":
            raise BleError(f"the device refused: {body.decode(errors='replace')}")
        if kind != want:
            raise BleError(f"the device sent {kind!r}, not {want!r}")
        return body

    async def frame(self, since: int, most: int = BATCH) -> bytes:
        await self.write(struct.pack("<cIH", b"R", since, most))
        return await self.expect("F")

    async def answer(self, answer: bytes, piece: int) -> tuple[int, int, bool]:
        await self.write(struct.pack("<cH", b"A", len(answer)))
        pieces = [answer[i:i + piece] for i in range(0, len(answer), piece)]
        for i, p in enumerate(pieces):
            await self.write(b"a" + p)
            if (i + 1) % WINDOW == 0 and i + 1 < len(pieces):
                await self.expect("P")  # aioble's capture queue holds 10 writes
        body = await self.expect("K")
        acked, seq, clock = struct.unpack("<IIB", body)
        return acked, seq, bool(clock)

    async def write(self, data: bytes) -> None:
        try:
            await asyncio.wait_for(self.c.write(data), self.timeout)
        except asyncio.TimeoutError:
            raise BleError("a write to the device timed out (the link dropped?)") from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this pull itself is being cancelled
            # bumble cancels the requests of a connection that went down
            raise BleError("the link dropped during a write") from None
        except Exception as e:  # the stacks' own errors for a link that is gone
            if self.c.is_connected():
                raise
            raise BleError(f"the link dropped during a write ({type(e).__name__})") from None


async def pull(central: Central, db: str, timeout: float, stop_after: int | None = None,
               collector=None) -> BlePull:
    """Frames until the device has nothing unacked; stop_after: frames (a test's cut)."""
    from firmware import frame, record
    from host_tools.collector.api import open_collector

    r = BlePull(address=central.address, mtu=central.mtu)
    t0 = time.perf_counter()
    s = Session(central, timeout)
    st = Status.parse(await asyncio.wait_for(central.read_status(), timeout))
    r.device = st.device
    col = collector or open_collector(db)
    if col.device_key(st.device) is None:
        raise BleError(f"{central.address} is device {st.device}, which is not in {db} "
                       "(not our device, or pingjia device add)")
    piece = min(central.mtu - 3, st.control_max) - 1
    since = st.acked
    r.acked, r.seq = st.acked, st.seq
    with bar(max(st.seq - st.acked, 0), "pull", "rec") as progress:
        while stop_after is None or r.frames < stop_after:
            request = await s.frame(since)
            try:
                answer = col.ingest(request)
            except frame.FrameError as e:
                hint = " (a wrong key: this device is not the one registered as " \
                       f"{st.device} in {db})" if e.reason == "bad_mac" else ""
                raise BleError(f"the collector refused the device's frame: {e}{hint}") \
                    from None
            # the records between the header and the MAC (whatever the header's layout)
            count = (len(request) - frame.HEAD_FIXED - request[3] - frame.MAC_LEN) // record.SIZE
            r.frames += 1
            r.records += count
            r.frame_bytes += len(request)
            acked, seq, clock = await s.answer(answer, piece)
            r.clock_set = clock
            progress.update(max(acked - since, 0))
            r.acked, r.seq = acked, seq
            if count == 0 or acked >= seq or acked <= since:
                break
            since = acked
    r.seconds = time.perf_counter() - t0
    r.notifications = s.notifications
    return r


async def _run(args: argparse.Namespace) -> BlePull:
    central: BumbleCentral | BleakCentral
    central = BumbleCentral(args.hci) if args.hci else BleakCentral()
    try:
        await central.open(args.ble or None, getattr(args, "window", None), args.timeout,
                           getattr(args, "mtu", None) or 247)
        return await pull(central, args.db, args.timeout)
    finally:
        await central.close()


def cmd_pull_ble(args: argparse.Namespace) -> int:
    r = asyncio.run(_run(args))
    print(f"pulled {r.records} records of {r.device} over BLE ({r.address}, MTU {r.mtu}) "
          f"into {args.db} in {r.frames} frames, {r.seconds:.1f} s; device acked up to seq "
          f"{r.acked}" + (", clock set" if r.clock_set else ""))
    return 0
