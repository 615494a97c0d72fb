"""`make bench`, the links of issue 13: pulling 10 000 records over BLE at MTU 23 and 185
(through bumble's virtual link) and over USB (mpremote on the virtual device's pty), each
beside its link's own throughput measured in the same run, and the queue system's
invitation latency between a `pingjia serve` and a virtual device.

How the BLE link is timed: bumble's LocalLink moves each link-layer packet as soon as the
asyncio loop runs it, with no connection interval and no radio time. So the baseline is
that same link's notification throughput, measured here: a bumble peripheral on the same
kind of radio notifying MTU - 3 bytes at a time, as fast as its stack allows, to the same
bumble central. The pull's ratio to it is what the pingjia protocol (frames of 64
records, an answer written back per frame) and the MicroPython device cost on top. What
a real air link would give is printed beside it, computed, not measured: a 30 ms
connection interval carrying 4 notifications per event."""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N = int(os.getenv("BENCH_LINK_RECORDS", "10000"))  # records: 5 000 ratings, each with its ticket record
AIR_INTERVAL_MS = 30.0
AIR_PER_EVENT = 4


class Sim:
    """`pingjia sim --script` as a child process, every read bounded."""

    def __init__(self, *args: str, timeout: float = 120):
        self.timeout = timeout
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "sim", "--script", "--sign", "text",
             "--roster", str(ROOT / "examples" / "staff.csv"), "--start",
             "2026-11-23T09:00:00+08:00", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=ROOT)
        self.buf = b""
        self.port = self.hci = ""
        if "--serial" in args:
            self.port = self.line().split(" ", 1)[1].strip()
        if "--ble" in args:
            self.hci = self.line().split(" ", 1)[1].strip()

    def line(self) -> str:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            if not select.select([fd], [], [], self.timeout)[0]:
                raise SystemExit("bench: the virtual device stopped answering")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise SystemExit("bench: the virtual device ended: " + self.proc.stderr.read())
            self.buf += chunk
        out, _, self.buf = self.buf.partition(b"\n")
        return out.decode()

    def run(self, *commands: str) -> dict:
        """Commands, then status: the status."""
        self.proc.stdin.write("".join(c + "\n" for c in (*commands, "status")))
        self.proc.stdin.flush()
        while True:
            s = self.line()
            if s.startswith('{"screen"'):
                return json.loads(s)

    def rate(self, n: int) -> dict:
        st = self.run("badge 0A1B2C3D")
        for start in range(0, n, 200):  # in batches: the answers must not fill the pipe
            cmds = []
            for i in range(start, min(n, start + 200)):
                cmds += [f"invite T{i}", f"key {1 + i % 3}"]
            st = self.run(*cmds)
        return st

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


# ---- BLE ----------------------------------------------------------------------------------
def ble_pull(mtu: int) -> dict:
    from host_tools.device.ble import BumbleCentral, pull

    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "b.db"
        sim = Sim("--ble", "--db", str(db))
        try:
            seq = sim.rate(N // 2)["seq"]

            async def go():
                c = BumbleCentral(sim.hci)
                try:
                    await c.open(None, "B01", 10, mtu if mtu > 23 else None)
                    return await pull(c, str(db), 10)
                finally:
                    await c.close()

            r = asyncio.run(go())
        finally:
            sim.close()
        with sqlite3.connect(db) as c:
            stored = c.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    assert r.mtu == mtu and r.acked >= seq and stored >= seq, (r, stored, seq)
    return {"mtu": mtu, "records": r.records, "seconds": r.seconds, "frame_bytes": r.frame_bytes,
            "notifications": r.notifications, "frames": r.frames}


def ble_baseline(mtu: int, count: int = 3000) -> float:
    """Payload bytes a second of bare notifications over bumble's virtual link at mtu."""
    from bumble.core import UUID, AdvertisingData
    from bumble.gatt import Characteristic, CharacteristicValue, Service

    from host_tools.device.ble import BumbleCentral
    from host_tools.device.ble_radio import BleRadio

    uuid_s, uuid_c = "8d7e00f1-5a1b-4c3e-9f20-706a6a696101", "8d7e00f2-5a1b-4c3e-9f20-706a6a696101"
    radio = BleRadio().start()
    try:
        ch = Characteristic(uuid_c, Characteristic.Properties.NOTIFY, Characteristic.READABLE,
                            CharacteristicValue(read=lambda c: b""))

        async def serve():
            radio.device.add_services([Service(uuid_s, [ch])])
            adv = bytes(AdvertisingData([(AdvertisingData.COMPLETE_LOCAL_NAME, b"pingjia-B01")]))
            await radio.device.start_advertising(advertising_data=adv)

        asyncio.run_coroutine_threadsafe(serve(), radio.loop).result(10)
        payload = bytes(mtu - 3)

        async def flood(conn):
            for _ in range(count):
                await radio.device.notify_subscriber(conn, ch, payload, force=True)

        async def measure():
            from bumble.device import Peer

            c = BumbleCentral(radio.hci)
            try:
                await _connect_only(c, mtu)
                peer = Peer(c.connection)
                await peer.discover_services([uuid_s])
                svc = peer.get_services_by_uuid(UUID(uuid_s))[0]
                await svc.discover_characteristics()
                got = asyncio.Queue()
                await svc.characteristics[0].subscribe(got.put_nowait)
                conn = next(iter(radio.device.connections.values()))
                t0 = time.perf_counter()
                asyncio.run_coroutine_threadsafe(flood(conn), radio.loop)
                for _ in range(count):
                    await asyncio.wait_for(got.get(), 10)
                return count * (mtu - 3) / (time.perf_counter() - t0)
            finally:
                await c.close()

        return asyncio.run(measure())
    finally:
        radio.stop()


async def _connect_only(c, mtu: int) -> None:
    """Connect a BumbleCentral to the advertiser named pingjia-B01 (no pingjia service)."""
    from bumble.device import Device, Peer
    from bumble.hci import Address
    from bumble.transport import open_transport

    from host_tools.device.ble import CENTRAL_ADDRESS, _no_delay

    c.transport = await open_transport(c.spec)
    _no_delay(c.transport)  # as the pull's central does
    c.device = Device.with_hci("bench", Address(CENTRAL_ADDRESS), c.transport.source,
                               c.transport.sink)
    await c.device.power_on()
    target = await c._find(None, "B01", 10)
    c.connection = await c.device.connect(target, timeout=10)
    if mtu > 23:
        await Peer(c.connection).request_mtu(mtu)


# ---- USB -----------------------------------------------------------------------------------
def usb_pull() -> dict:
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "u.db"
        sim = Sim("--serial", "--db", str(db))
        try:
            seq = sim.rate(N // 2)["seq"]
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", "host_tools.cli", "pull", "--usb", sim.port,
                                "--db", str(db)], capture_output=True, text=True, cwd=ROOT,
                               timeout=600)
            seconds = time.perf_counter() - t0
            if p.returncode:
                raise SystemExit("bench: pull --usb failed: " + p.stderr)
            sim.run()  # boots it again after the pull's reset
            # the link's own rate: mpremote copying the same bytes, one file, no ingest
            big = Path(d) / "blob"
            size = sum(sim_sizes(sim.port).values())
            big.write_bytes(os.urandom(size))
            exe = str(Path(sys.executable).parent / "mpremote")
            t1 = time.perf_counter()
            subprocess.run([exe, "connect", sim.port, "resume", "fs", "cp", str(big), ":blob"],
                           capture_output=True, timeout=600, check=True)
            raw = time.perf_counter() - t1
            subprocess.run([exe, "connect", sim.port, "resume", "soft-reset"],
                           capture_output=True, timeout=60)
            sim.run()
        finally:
            sim.close()
    return {"records": seq, "seconds": seconds, "bytes": size, "raw_seconds": raw}


def sim_sizes(port: str) -> dict[str, int]:
    exe = str(Path(sys.executable).parent / "mpremote")
    out = subprocess.run([exe, "connect", port, "resume", "exec",
                          "import os\nprint({n: os.stat('log/' + n)[6] for n in os.listdir('log')})"],
                         capture_output=True, text=True, timeout=60).stdout
    return {k: v for k, v in eval(out.strip().splitlines()[-1]).items()  # noqa: S307
            if k != "state"}


# ---- the queue invitation ------------------------------------------------------------------
def invite_latency(n: int = 50) -> list[float]:
    import socket

    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "q.db"
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        tokens = {}
        for role in ("admin", "queue"):  # serve wants an admin; the queue system its token
            tokens[role] = subprocess.run(
                [sys.executable, "-m", "host_tools.cli", "user", "add", f"{role}-1", "--role",
                 role, "--db", str(db)], capture_output=True, text=True, cwd=ROOT,
                check=True).stdout.split()[0]
        srv = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "serve", "--db", str(db),
                                "--port", str(port)], cwd=d, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            sim = Sim("--db", str(db), "--collector", f"http://127.0.0.1:{port}")
            try:
                sim.run("badge 0A1B2C3D", "sync")
                out = []
                for i in range(n):
                    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/invite",
                                                 data=json.dumps({"window": "B01",
                                                                  "ticket": f"Q{i}"}).encode(),
                                                 method="POST", headers={
                                                     "Authorization": f"Bearer {tokens['queue']}"})
                    t = time.perf_counter()
                    with urllib.request.urlopen(req, timeout=5) as r:
                        assert r.status == 200
                    out.append((time.perf_counter() - t) * 1000)
                    sim.run("key 1")
            finally:
                sim.close()
        finally:
            srv.terminate()
            srv.wait(timeout=10)
    return out


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)
    print(f"== links (issue 13): {N} records pulled over BLE (bumble's virtual link) and USB")
    for mtu in (23, 185):
        r = ble_pull(mtu)
        base = ble_baseline(mtu)
        rate = r["records"] * 14 / r["seconds"]
        air = AIR_PER_EVENT * (mtu - 3) / (AIR_INTERVAL_MS / 1000)
        print(f"BLE MTU {mtu:<3}  {r['records']} records in {r['seconds']:.1f} s, "
              f"{r['frame_bytes']} B of frames ({r['frame_bytes'] / r['records']:.1f} B a record, "
              f"{r['frames']} frames, {r['notifications']} notifications): "
              f"{rate / 1024:.1f} KB/s of records")
        print(f"            the link's own notifications at MTU {mtu}: {base / 1024:.1f} KB/s "
              f"(the pull {rate / base:.2f}x of it, frame bytes "
              f"{r['frame_bytes'] / r['seconds'] / base:.2f}x); on air at a "
              f"{AIR_INTERVAL_MS:g} ms interval, {AIR_PER_EVENT} a event: "
              f"{air / 1024:.1f} KB/s, {r['frame_bytes'] / air:.0f} s for these frames")
    u = usb_pull()
    print(f"USB         {u['records']} records in {u['seconds']:.1f} s ({u['bytes']} B of log "
          f"files, {u['bytes'] / u['records']:.1f} B a record, with the ack and the reboot); "
          f"mpremote copying the same bytes {u['raw_seconds']:.1f} s "
          f"(the pull {u['seconds'] / u['raw_seconds']:.2f}x of it)")
    lat = invite_latency()
    lat.sort()
    print(f"queue invitation POST to the device's signed reply: median "
          f"{statistics.median(lat):.1f} ms, 95th percentile {lat[int(len(lat) * 0.95) - 1]:.1f} "
          f"ms, max {lat[-1]:.1f} ms over {len(lat)} (budget 1 s)")
    return 0


if __name__ == "__main__":
    shutil.which("socat") or sys.exit("bench: socat is needed (make setup installs it)")
    sys.exit(main())
