"""`pingjia sim --serial`: real mpremote against the virtual device's REPL on a pty."""

import subprocess
import sys
from pathlib import Path


def mpremote(port: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "mpremote"
    p = subprocess.run([str(exe), "connect", port, "resume", *args], capture_output=True,
                       text=True, timeout=60)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_mpremote_reads_the_flash_and_a_soft_reset_reboots(tmp_path, pingjia_sim):
    sim = pingjia_sim("--serial", "--db", tmp_path / "pingjia.db")
    sim.send("badge 0A1B2C3D", "invite", "key 2", "status")
    answers = sim.answers(4)
    assert '"screen": "thanks"' in answers[3], answers

    ls = mpremote(sim.port, "fs", "ls", ":").stdout
    assert "settings.json" in ls and "roster.txt" in ls and "log/" in ls
    assert '"window": "B01"' in mpremote(sim.port, "fs", "cat", ":settings.json").stdout
    out = mpremote(sim.port, "exec", "import os; print(sorted(os.listdir('log')))").stdout
    assert "'j" in out and "'state'" in out  # the journal: j and the log id
    (tmp_path / "settings.json").write_text('{"window": "B09"}')
    mpremote(sim.port, "fs", "cp", str(tmp_path / "settings.json"), ":settings.json")
    mpremote(sim.port, "soft-reset", check=False)  # ends the unix process, as design.md says

    rest = sim.finish("status", "log", "quit")
    assert "soft reset and has booted again" in rest, rest
    assert '"window": "B09"' in rest  # the new settings, after the reboot
    assert '"level": 2' in rest  # the rating survived
    assert '"clock": "2026-11-23T09:00' in rest  # the RTC survives a soft reset


def test_deploy_puts_the_firmware_on_the_virtual_device(tmp_path, pingjia_sim, cli):
    sim = pingjia_sim("--serial", "--db", tmp_path / "pingjia.db")
    p = cli("deploy", sim.port, "--no-aioble")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "deployed" in p.stdout
    rest = sim.finish("status", "quit")
    assert "booted again" in rest  # deploy ends with a reset


def test_flash_checks_the_image_and_drives_the_real_esptool(tmp_path, cli, esp32_bin):
    port = str(tmp_path / "ttyUSB0")  # no board here: esptool gets as far as opening it
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"\x00" * 64)
    p = cli("flash", port, "--firmware", bad)
    assert p.returncode == 2 and "not an ESP32 firmware image" in p.stderr
    good = esp32_bin[0]  # made by esptool's own tools (tests/test_usb.py checks the checks)
    p = cli("flash", port, "--firmware", good, "--dry-run")
    assert p.returncode == 0
    lines = [x for x in p.stdout.splitlines() if not x.startswith("checked ")]
    assert "erase-flash" in lines[0] and "write-flash -z 0x1000" in lines[1]
    # for real: the commands are ones esptool takes (a wrong option would be a usage
    # error), and it stops at the missing port, which pingjia reports as one line
    p = cli("flash", port, "--firmware", good, "--no-erase")
    assert "Could not open " + port in p.stdout + p.stderr, p.stdout + p.stderr
    assert "No such option" not in p.stdout + p.stderr
    assert p.returncode == 2 and p.stderr.splitlines()[-1].startswith("pingjia: esptool failed")


def test_pull_usb_ingests_the_log_like_a_sync(db_url, pingjia_sim, cli):
    db = db_url
    sim = pingjia_sim("--serial", "--db", db, "--sign", "text")
    sim.send("badge 0A1B2C3D", "invite U1", "key 3", "invite U2", "key 4", "key 2", "sleep 30")
    sim.answers(7)
    p = cli("pull", "--usb", sim.port, "--db", db)
    assert p.returncode == 0, p.stderr
    assert "pulled" in p.stdout and "sim-1" in p.stdout
    sim.send("status")  # the pull ended with a reset: the device boots again
    assert "booted again" in sim.answers(2)[0]
    p2 = cli("pull", "--usb", sim.port, "--db", db)  # again: nothing twice
    assert p2.returncode == 0, p2.stderr
    rows = cli("export", "--db", db, "--format", "csv").stdout.splitlines()
    assert rows[1:] == [
        "2026-11-23T09:00:00+08:00,B01,sim-1,SB0101,张伟,U1,3,基本满意,",
        "2026-11-23T09:00:00+08:00,B01,sim-1,SB0101,张伟,U2,4,不满意,服务态度不好"]


def test_pull_usb_of_an_unknown_device_is_refused(tmp_path, pingjia_sim, cli):
    sim = pingjia_sim("--serial", "--db", tmp_path / "a.db", "--sign", "text")
    p = cli("pull", "--usb", sim.port, "--db", tmp_path / "other.db")
    assert p.returncode == 2 and "not in" in p.stderr


def test_provision_writes_identity_settings_and_roster(tmp_path, pingjia_sim, cli):
    db = tmp_path / "hall.db"
    sim = pingjia_sim("--serial", "--db", db, "--sign", "text")
    p = cli("provision", sim.port, "--device", "b02-7", "--window", "B02", "--db", db,
            "--ssid", "hall-wifi", "--password", "secret")
    assert p.returncode == 0, p.stderr
    sim.send("badge 12131415", "status")
    rest = sim.answers(3)
    assert "booted again" in rest[0], rest
    assert '"window": "B02"' in rest[2] and '"staff_no": "SB0207"' in rest[2], rest
    dev = mpremote(sim.port, "fs", "cat", ":device.json").stdout
    assert "b02-7" in dev and "hall-wifi" in dev
