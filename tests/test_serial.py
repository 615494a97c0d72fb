"""`pingjia sim --serial`: real mpremote against the virtual device's REPL on a pty."""

import subprocess
import sys
from pathlib import Path

from conftest import EXAMPLES, MONDAY_9, ROOT


def mpremote(port: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "mpremote"
    p = subprocess.run([str(exe), "connect", port, "resume", *args], capture_output=True,
                       text=True, timeout=60)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_mpremote_reads_the_flash_and_a_soft_reset_reboots(tmp_path):
    sim = subprocess.Popen(
        [sys.executable, "-m", "host_tools.cli", "sim", "--serial", "--script", "--roster",
         str(EXAMPLES / "staff.csv"), "--start", MONDAY_9],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT)
    try:
        first = sim.stdout.readline()
        assert first.startswith("serial: "), first + sim.stderr.read()
        port = first.split(" ", 1)[1].strip()
        sim.stdin.write("badge 0A1B2C3D\ninvite\nkey 2\nstatus\n")
        sim.stdin.flush()
        answers = [sim.stdout.readline() for _ in range(4)]
        assert '"screen": "thanks"' in answers[3], answers

        ls = mpremote(port, "fs", "ls", ":").stdout
        assert "settings.json" in ls and "roster.txt" in ls and "log/" in ls
        assert '"window": "B01"' in mpremote(port, "fs", "cat", ":settings.json").stdout
        out = mpremote(port, "exec", "import os; print(sorted(os.listdir('log')))").stdout
        assert "'j'" in out and "'state'" in out
        (tmp_path / "settings.json").write_text('{"window": "B09"}')
        mpremote(port, "fs", "cp", str(tmp_path / "settings.json"), ":settings.json")
        mpremote(port, "soft-reset", check=False)  # ends the unix process, as design.md says

        sim.stdin.write("status\nlog\nquit\n")
        sim.stdin.flush()
        rest, err = sim.communicate(timeout=60)
        assert "soft reset and has booted again" in rest, rest + err
        assert '"window": "B09"' in rest  # the new settings, after the reboot
        assert '"level": 2' in rest  # the rating survived
        assert '"clock": "2026-11-23T09:00' in rest  # the RTC survives a soft reset
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait()


def test_deploy_puts_the_firmware_on_the_virtual_device():
    sim = subprocess.Popen(
        [sys.executable, "-m", "host_tools.cli", "sim", "--serial", "--script",
         "--start", MONDAY_9],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT)
    try:
        port = sim.stdout.readline().split(" ", 1)[1].strip()
        p = subprocess.run([sys.executable, "-m", "host_tools.cli", "deploy", port,
                            "--no-aioble"], capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "deployed" in p.stdout
        sim.stdin.write("status\nquit\n")
        sim.stdin.flush()
        rest, _ = sim.communicate(timeout=60)
        assert "booted again" in rest  # deploy ends with a reset
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait()


def test_flash_checks_the_image_and_builds_esptool_commands(tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"\x00" * 64)
    p = subprocess.run([sys.executable, "-m", "host_tools.cli", "flash", "/dev/ttyUSB0",
                        "--firmware", str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and "not an ESP32 firmware image" in p.stderr
    good = tmp_path / "mp.bin"
    good.write_bytes(b"\xe9" + b"\x00" * 63)
    p = subprocess.run([sys.executable, "-m", "host_tools.cli", "flash", "/dev/ttyUSB0",
                        "--firmware", str(good), "--dry-run"], capture_output=True, text=True,
                       cwd=ROOT)
    assert p.returncode == 0
    lines = p.stdout.splitlines()
    assert "erase-flash" in lines[0] and "write-flash -z 0x1000" in lines[1]
    v = subprocess.run([sys.executable, "-m", "esptool", "version"], capture_output=True,
                       text=True)
    assert v.returncode == 0  # the real esptool is installed


def _serial_sim(db, *extra):
    sim = subprocess.Popen(
        [sys.executable, "-m", "host_tools.cli", "sim", "--serial", "--script", "--db", str(db),
         "--roster", str(EXAMPLES / "staff.csv"), "--start", MONDAY_9, "--sign", "text", *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT)
    first = sim.stdout.readline()
    assert first.startswith("serial: "), first + sim.stderr.read()
    return sim, first.split(" ", 1)[1].strip()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "host_tools.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_pull_usb_ingests_the_log_like_a_sync(tmp_path):
    db = tmp_path / "hall.db"
    sim, port = _serial_sim(db)
    try:
        sim.stdin.write("badge 0A1B2C3D\ninvite U1\nkey 3\ninvite U2\nkey 4\nkey 2\nsleep 30\n")
        sim.stdin.flush()
        for _ in range(7):
            sim.stdout.readline()
        p = _cli("pull", "--usb", port, "--db", str(db))
        assert p.returncode == 0, p.stderr
        assert "pulled" in p.stdout and "sim-1" in p.stdout
        p2 = _cli("pull", "--usb", port, "--db", str(db))  # again: nothing twice
        assert p2.returncode == 0, p2.stderr
        rows = _cli("export", "--db", str(db), "--format", "csv").stdout.splitlines()
        assert rows[1:] == [
            "2026-11-23T09:00:00+08:00,B01,sim-1,SB0101,张伟,U1,3,基本满意,",
            "2026-11-23T09:00:00+08:00,B01,sim-1,SB0101,张伟,U2,4,不满意,服务态度不好"]
    finally:
        sim.kill()
        sim.wait()


def test_pull_usb_of_an_unknown_device_is_refused(tmp_path):
    sim, port = _serial_sim(tmp_path / "a.db")
    try:
        p = _cli("pull", "--usb", port, "--db", str(tmp_path / "other.db"))
        assert p.returncode == 2 and "not in" in p.stderr
    finally:
        sim.kill()
        sim.wait()


def test_provision_writes_identity_settings_and_roster(tmp_path):
    db = tmp_path / "hall.db"
    sim, port = _serial_sim(db)
    try:
        p = _cli("provision", port, "--device", "b02-7", "--window", "B02", "--db", str(db),
                 "--ssid", "hall-wifi", "--password", "secret")
        assert p.returncode == 0, p.stderr
        sim.stdin.write("badge 12131415\nstatus\n")
        sim.stdin.flush()
        rest = [sim.stdout.readline() for _ in range(3)]
        assert "booted again" in rest[0], rest
        assert '"window": "B02"' in rest[2] and '"staff_no": "SB0207"' in rest[2], rest
        dev = mpremote(port, "fs", "cat", ":device.json").stdout
        assert "b02-7" in dev and "hall-wifi" in dev
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait()
