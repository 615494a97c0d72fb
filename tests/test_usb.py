"""The technician's USB path against the virtual device's REPL on a pty, with the real
mpremote: provision and read back, deploy twice (the second copies nothing), pull with
ack and clock, a pull cut half way."""

import json
import os
import signal
import subprocess
import sys
import time

from conftest import ROOT

from host_tools.collector.db import Database


def _mpremote(port, *args, check=True):
    exe = os.path.join(os.path.dirname(sys.executable), "mpremote")
    p = subprocess.run([exe, "connect", port, "resume", *args], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 or not check, p.stderr
    return p.stdout


def test_provision_writes_and_reads_back(serial_sim, cli, tmp_path):
    db = tmp_path / "hall.db"
    sim = serial_sim(db)
    p = cli("provision", sim.port, "--device", "b02-7", "--window", "B02", "--db", str(db),
            "--ssid", "hall-wifi", "--password", "secret")
    assert p.returncode == 0, p.stderr
    assert "read back and checked" in p.stdout
    out = sim.send("badge 12131415")
    assert "booted again" in out[0], out
    st = json.loads(out[-1])
    assert st["window"] == "B02" and st["staff_no"] == "SB0207", st
    dev = json.loads(_mpremote(sim.port, "fs", "cat", ":device.json"))
    assert dev["id"] == "b02-7" and dev["ssid"] == "hall-wifi"


def test_deploy_twice_the_second_copies_nothing(serial_sim, cli):
    sim = serial_sim()
    first = cli("deploy", sim.port, "--no-aioble")
    assert first.returncode == 0, first.stdout + first.stderr
    n = int(first.stdout.split(" files copied")[0].rsplit(" ", 1)[1])
    assert n > 20 and "copied firmware/app.mpy" in first.stdout and " 0 unchanged" in first.stdout
    assert "booted again" in sim.send()[0]
    second = cli("deploy", sim.port, "--no-aioble")
    assert second.returncode == 0, second.stderr
    assert f"0 files copied, {n} unchanged" in second.stdout, second.stdout
    assert "copied " not in second.stdout.replace("files copied", "")
    assert "booted again" in sim.send()[0]
    _mpremote(sim.port, "fs", "rm", ":firmware/texts.mpy")  # one file lost on the board
    third = cli("deploy", sim.port, "--no-aioble")
    assert third.returncode == 0, third.stderr
    assert "copied firmware/texts.mpy\n" in third.stdout
    assert f"1 files copied, {n - 1} unchanged" in third.stdout, third.stdout


def _acked(sim):
    """The device's acked seq from its log state (mpremote stops the app: reboot it)."""
    # the unix port ends at a soft reset: mpremote loses the line then (check=False)
    out = _mpremote(sim.port, "fs", "cat", ":log/state", "+", "soft-reset", check=False)
    assert "booted again" in sim.send()[0]
    return json.loads(out.strip().splitlines()[0])["acked"]


def _rate(sim, n, first_ticket=0):
    cmds = []
    for i in range(n):
        cmds += [f"invite T{first_ticket + i}", f"key {1 + i % 4}"]
        if i % 4 == 3:
            cmds.append("key 2")  # the reason after 不满意
    sim.send(*cmds)


def _device_records(sim):
    lines = sim.send("log")[:-1]
    return [json.loads(x) for x in lines if x.startswith("{")]


def test_pull_usb_acks_and_sets_the_clock(serial_sim, cli, db_url):
    db = db_url
    sim = serial_sim(db)
    sim.send("badge 0A1B2C3D")
    _rate(sim, 3)
    sim.send("power off", "power on")  # the clock is lost with the power
    assert sim.status()["clock"] is None
    _rate(sim, 2, 10)
    seq = sim.status()["seq"]
    p = cli("pull", "--usb", sim.port, "--db", str(db))
    assert p.returncode == 0, p.stderr
    assert f"device acked up to seq {seq}, clock set" in p.stdout, p.stdout
    out = sim.send()
    assert "booted again" in out[0], out
    # the clock came from the pull: the app wrote its clock_set record before the reboot
    kinds = [r["kind"] for r in _device_records(sim) if r["seq"] > seq]
    assert kinds[0] == "clock_set", kinds
    assert _acked(sim) == seq
    assert cli("pull", "--usb", sim.port, "--db", str(db)).returncode == 0
    sim.send()
    rows = cli("export", "--db", str(db), "--format", "csv").stdout.splitlines()[1:]
    assert [r.split(",")[5] for r in rows] == ["T0", "T1", "T2", "T10", "T11"]
    # the ratings made while the clock was unknown have a time now, from that clock_set
    assert all(r.split(",")[0] for r in rows), rows


def test_pull_usb_cut_half_way_loses_nothing(serial_sim, cli, db_url):
    db = db_url
    sim = serial_sim(db)
    sim.send("badge 0A1B2C3D")
    _rate(sim, 1200)
    cuts = 0
    for delay in (0.4, 0.9, 1.6, 2.5):
        p = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "pull", "--usb", sim.port,
                              "--db", str(db)], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
        time.sleep(delay)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)  # the cable pulled: pingjia and its mpremote
            cuts += 1
        p.wait(timeout=30)
        out = sim.send()  # reboots a device that was reset; one left at its REPL is cut off
        if any("app is stopped" in x or "device is off" in x for x in out):
            sim.send("power on")
        c = Database(db)
        stored = {r[0] for r in c.all("SELECT seq FROM records")}
        c.close()
        acked = _acked(sim)
        assert all(s in stored for s in range(1, acked + 1)), "acked before stored"
    assert cuts >= 2
    p = cli("pull", "--usb", sim.port, "--db", str(db))
    assert p.returncode == 0, p.stderr
    sim.send()
    device = {r["seq"]: r for r in _device_records(sim)}
    c = Database(db)
    stored = [r[0] for r in c.all("SELECT seq FROM records ORDER BY seq")]
    ratings = c.one("SELECT COUNT(*), COUNT(DISTINCT ticket) FROM events "
                    "WHERE kind = 'rating'")
    c.close()
    acked = _acked(sim)
    assert set(stored) <= set(device)  # nothing the device did not write
    assert [s for s in device if s <= acked] == [s for s in stored if s <= acked]
    assert ratings == (1200, 1200)  # each rating once, none lost


def test_flash_checks_the_image_with_esptool_before_writing(esp32_bin, cli, tmp_path):
    merged, app = esp32_bin
    p = cli("flash", "/dev/ttyUSB0", "--firmware", str(merged), "--dry-run")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "bootloader: 2 segments, checksum and digest valid" in lines[0]
    assert "partition table, 4 partitions" in lines[1]
    assert "app at 0x10000: 2 segments, checksum and digest valid" in lines[2]
    assert "erase-flash" in lines[3] and "write-flash -z 0x1000" in lines[4]
    p = cli("flash", "/dev/ttyUSB0", "--firmware", str(app), "--dry-run", "--no-erase")
    assert p.returncode == 0, p.stderr
    assert "(app image)" in p.stdout and "write-flash -z 0x10000" in p.stdout
    damaged = tmp_path / "damaged.bin"
    data = bytearray(merged.read_bytes())
    data[0xF000 + 0x200] ^= 0x40  # one bit in the app's first segment
    damaged.write_bytes(data)
    p = cli("flash", "/dev/ttyUSB0", "--firmware", str(damaged))  # not a dry run: refused first
    assert p.returncode == 2 and "the file is damaged" in p.stderr, p.stderr
    assert "write-flash" not in p.stdout
    short = tmp_path / "short.bin"
    short.write_bytes(merged.read_bytes()[:0x9000])
    p = cli("flash", "/dev/ttyUSB0", "--firmware", str(short))
    assert p.returncode == 2 and "cut short" in p.stderr, p.stderr
    zero = tmp_path / "x.bin"
    zero.write_bytes(b"\0" * 64)
    p = cli("flash", "/dev/ttyUSB0", "--firmware", str(zero))
    assert p.returncode == 2 and "not an ESP32 firmware image" in p.stderr
