"""BLE sync through bumble's virtual link: the virtual device (`pingjia sim --ble`: the
firmware's BLE link on the aioble double, its radio a bumble controller) and bumble's
host stack as the central, on another controller of the same LocalLink."""

import asyncio
import json
import statistics
import threading
import time

import pytest

from firmware import frame
from host_tools.collector.db import Database
from host_tools.device.ble import BleError, BumbleCentral, Session, pull


def _rate(sim, n):
    cmds = ["badge 0A1B2C3D"]
    for i in range(n):
        cmds += [f"invite T{i}", f"key {1 + i % 3}"]
    return json.loads(sim.send(*cmds)[-1])


async def _pull(hci, db, mtu=None, central=None, **kw):
    c = central or BumbleCentral(hci)
    try:
        await c.open(None, "B01", 10, mtu)
        return await pull(c, str(db), 5, **kw)
    finally:
        await c.close()


def _stored(db, device="sim-1"):
    c = Database(str(db))
    try:
        seqs = [r[0] for r in c.all("SELECT seq FROM records WHERE device = ? ORDER BY seq",
                                    (device,))]
        tickets = [r[0] for r in c.all("SELECT ticket FROM events WHERE kind = 'rating' "
                                       "ORDER BY seq")]
    finally:
        c.close()
    return seqs, tickets


@pytest.mark.parametrize("mtu", [23, 185])
def test_full_pull_of_1000_records(serial_sim, tmp_path, mtu):
    db = tmp_path / "hall.db"
    sim = serial_sim(db, "--ble", serial=False)
    st = _rate(sim, 500)  # a ticket record and a rating each
    assert st["seq"] >= 1000 and st["clock"]
    sim.send("power off", "power on")  # the clock is lost: the pull sets it
    assert sim.status()["clock"] is None
    r = asyncio.run(_pull(sim.hci, db, mtu if mtu > 23 else None))
    assert r.mtu == mtu
    seq = sim.status()["seq"]
    assert r.acked == r.seq and r.records == seq and r.frames == -(-seq // 64)
    seqs, tickets = _stored(db)
    assert seqs == list(range(1, seq + 1))
    assert tickets == [f"T{i}" for i in range(500)]
    st = sim.status()
    assert st["unsynced"] == 0 and st["clock"], st  # its clock_set record went too
    assert r.clock_set
    assert r.notifications >= r.frame_bytes // (mtu - 3)


class DroppingCentral(BumbleCentral):
    """A central whose link drops after `after` notifications (mid-frame)."""

    def __init__(self, hci, after):
        super().__init__(hci)
        central = self

        class Inbox(asyncio.Queue):
            n = 0

            def put_nowait(self, item):
                Inbox.n += 1
                if Inbox.n == after:
                    asyncio.get_running_loop().create_task(central.connection.disconnect())
                super().put_nowait(item)

        self.inbox = Inbox()


def test_a_pull_cut_half_way_resumes_with_nothing_lost_or_doubled(serial_sim, db_url):
    db = db_url
    sim = serial_sim(db, "--ble", serial=False)
    _rate(sim, 500)
    seq = sim.status()["seq"]
    with pytest.raises(BleError, match="stopped answering|dropped"):
        asyncio.run(_pull(sim.hci, db, central=DroppingCentral(sim.hci, 400)))
    first, _ = _stored(db)
    st = sim.status()
    acked = st["seq"] - st["unsynced"]
    assert 0 < len(first) < seq and acked <= len(first)  # acked only what was stored
    r = asyncio.run(_pull(sim.hci, db))  # again: from the device's acked seq
    seqs, tickets = _stored(db)
    assert seqs == list(range(1, sim.status()["seq"] + 1)), "a record lost"
    assert tickets == [f"T{i}" for i in range(500)], "a rating lost or doubled"
    assert r.acked == r.seq and sim.status()["unsynced"] == 0


def test_a_wrong_key_is_refused_both_ways(serial_sim, cli, tmp_path):
    db = tmp_path / "hall.db"
    sim = serial_sim(db, "--ble", serial=False)
    _rate(sim, 10)
    other = tmp_path / "other.db"  # a collector that has sim-1 with another key
    assert cli("device", "add", "sim-1", "--window", "B01", "--db", str(other)).returncode == 0
    p = cli("pull", "--ble", "--hci", sim.hci, "--db", str(other), "--timeout", "10")
    assert p.returncode == 2 and "wrong key" in p.stderr, p.stderr
    st = sim.status()
    assert _stored(other) == ([], []) and st["unsynced"] == st["seq"]  # nothing acked

    async def forged():  # an answer signed with another key acks nothing on the device
        c = BumbleCentral(sim.hci)
        try:
            await c.open(None, "B01", 10, None)
            s = Session(c, 5)
            request = await s.frame(0)
            bad = frame.answer(b"k" * 16, request[-frame.MAC_LEN:], 10**6, 1)
            with pytest.raises(BleError, match="refused: bad_mac"):
                await s.answer(bad, 19)
            replay = frame.answer(b"k" * 16, b"\0" * 32, 10**6, 1)
            await s.frame(0)
            with pytest.raises(BleError, match="refused: replayed"):
                await s.answer(replay, 19)
        finally:
            await c.close()

    asyncio.run(forged())
    st = sim.status()
    assert st["unsynced"] == st["seq"]  # nothing acked


def test_bad_input_unknown_address_and_a_device_not_ours(serial_sim, cli, tmp_path):
    sim = serial_sim(tmp_path / "hall.db", "--ble", serial=False)
    p = cli("pull", "--ble", "11:22:33:44:55:66", "--hci", sim.hci, "--db",
            str(tmp_path / "hall.db"), "--timeout", "2")
    assert p.returncode == 2 and "could not connect to 11:22:33:44:55:66" in p.stderr, p.stderr
    p = cli("pull", "--ble", "--hci", sim.hci, "--db", str(tmp_path / "empty.db"),
            "--timeout", "5")
    assert p.returncode == 2 and "sim-1, which is not in" in p.stderr, p.stderr
    p = cli("pull", "--ble", "--window", "Z99", "--hci", sim.hci, "--db",
            str(tmp_path / "hall.db"), "--timeout", "2")
    assert p.returncode == 2 and "no device advertising pingjia-Z99" in p.stderr, p.stderr
    p = cli("pull", "--ble", "--hci", "tcp-client:127.0.0.1:1", "--db", str(tmp_path / "h.db"),
            "--timeout", "2")
    assert p.returncode == 2 and "no HCI transport" in p.stderr, p.stderr


def _key_ms(sim, n):
    """Wall-clock ms from `key 1` to its answer, n times (each in a fresh invitation)."""
    out = []
    for _ in range(n):
        sim.send("invite")
        t = time.perf_counter()
        sim.proc.stdin.write("key 1\n")
        sim.proc.stdin.flush()
        line = sim.readline()
        out.append((time.perf_counter() - t) * 1000)
        assert line.startswith("ok: key 1 counted"), line
    return out


def test_a_key_during_a_transfer_is_answered_as_fast_as_idle(serial_sim, tmp_path):
    db = tmp_path / "hall.db"
    sim = serial_sim(db, "--ble", serial=False)
    _rate(sim, 1500)
    idle = _key_ms(sim, 15)
    result = {}

    def transfer():
        result["r"] = asyncio.run(_pull(sim.hci, db))

    th = threading.Thread(target=transfer)
    th.start()
    time.sleep(0.5)  # the link is up and frames flow
    busy = _key_ms(sim, 15)
    still = th.is_alive()
    th.join(timeout=120)
    r = result["r"]
    assert still, "the transfer ended before the key presses: make it longer"
    assert r.acked == r.seq
    i, b = statistics.median(idle), statistics.median(busy)
    print(f"key answered: idle {i:.2f} ms, during the transfer {b:.2f} ms (median of 15)")
    assert b <= 2 * i + 5, (idle, busy)
