"""`pingjia pull --image FILE`: a littlefs partition image (what `esptool read-flash` saves
of a board that no longer boots) read with littlefs-python and ingested as a sync is."""

import os
import shutil
import sqlite3
import subprocess
import sys

from conftest import EXAMPLES, _partition_table

from host_tools.collector.db import Database


def _records(db):
    c = Database(str(db))
    try:
        return c.all("SELECT device, seq, kind, val, arg, staff, time FROM records "
                     "ORDER BY seq")
    finally:
        c.close()


def _stop_app(port):
    """mpremote interrupts the app: the device sits at its REPL and writes nothing."""
    exe = os.path.join(os.path.dirname(sys.executable), "mpremote")
    p = subprocess.run([exe, "connect", port, "resume", "exec", "pass"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_image_gives_exactly_what_usb_gives(serial_sim, cli, tmp_path, db_url):
    flash = tmp_path / "flash.img"
    db_usb, db_img = tmp_path / "usb.db", db_url  # the image's pull on each backend
    sim = serial_sim(db_usb, "--flash", str(flash))
    cmds = ["badge 0A1B2C3D"]
    for i in range(40):
        cmds += [f"invite Q{i}", f"key {1 + i % 4}"] + (["key 3"] if i % 4 == 3 else [])
    sim.send(*cmds, "power off", "power on", "invite", "key 1", "sleep 20")
    _stop_app(sim.port)
    shutil.copy(flash, tmp_path / "snap.img")  # the board's flash as read-flash saves it
    p = cli("pull", "--usb", sim.port, "--db", str(db_usb))
    assert p.returncode == 0, p.stderr
    # the image's device must be known to the collector it goes into, with its key
    with sqlite3.connect(db_usb) as c:
        key = c.execute("SELECT key FROM devices WHERE id = 'sim-1'").fetchone()[0]
    assert cli("device", "add", "sim-1", "--window", "B01", "--key", key, "--db",
               str(db_img)).returncode == 0
    assert cli("roster", "import", str(EXAMPLES / "staff.csv"), "--db",
               str(db_img)).returncode == 0
    p = cli("pull", "--image", str(tmp_path / "snap.img"), "--db", str(db_img))
    assert p.returncode == 0, p.stderr
    assert "read-flash 0x200000 0x200000" in p.stdout  # ESP32_GENERIC's vfs partition
    usb, img = _records(db_usb), _records(db_img)
    assert len(usb) > 90 and usb == img
    exp = [cli("export", "--db", str(d), "--format", "csv").stdout for d in (db_usb, db_img)]
    assert exp[0] == exp[1] and exp[0].count("\n") == 42
    again = cli("pull", "--image", str(tmp_path / "snap.img"), "--db", str(db_img))
    assert again.returncode == 0 and _records(db_img) == img  # nothing stored twice


def _lfs(path):
    from littlefs import LittleFS

    data = path.read_bytes()
    fs = LittleFS(block_size=4096, block_count=len(data) // 4096, read_size=128,
                  prog_size=128, lookahead_size=32, mount=False)
    fs.context.buffer = bytearray(data)
    fs.mount()
    return fs


def test_bad_images_are_refused_with_a_clear_message(sim, cli, tmp_path, esp32_bin):
    flash = tmp_path / "flash.img"
    r = sim("badge 0A1B2C3D\n" + "invite\nkey 2\n" * 20 + "quit", flash=str(flash),
            device="img-1")
    assert len(r.answers) == 42
    db = tmp_path / "pingjia.db"  # the sim's collector: it knows img-1 and its key

    missing = cli("pull", "--image", str(tmp_path / "none.img"), "--db", str(db),
                  "--firmware", str(esp32_bin[0]))
    assert missing.returncode == 2
    assert ("esptool --chip esp32 --port PORT read-flash 0x200000 0x200000" in missing.stderr
            and "partition table of ESP32_GENERIC.bin" in missing.stderr), missing.stderr

    junk = tmp_path / "junk.img"
    junk.write_bytes(os.urandom(64 * 4096))
    p = cli("pull", "--image", str(junk), "--db", str(db))
    assert p.returncode == 2 and "not a littlefs partition image" in p.stderr, p.stderr

    other = cli("pull", "--image", str(flash), "--db", str(tmp_path / "other.db"))
    assert other.returncode == 2 and "img-1 is not in" in other.stderr, other.stderr

    # one record's CRC broken in the journal: skipped and counted, the rest stored
    fs = _lfs(flash)
    journal = "/log/" + next(n for n in fs.listdir("/log") if n.startswith("j"))  # j<log id>
    with fs.open(journal, "rb") as f:
        j = bytearray(f.read())
    j[14 * 3 + 5] ^= 0xFF
    with fs.open(journal, "wb") as f:
        f.write(j)
    fs.unmount()
    bad = tmp_path / "bad.img"
    bad.write_bytes(bytes(fs.context.buffer))
    p = cli("pull", "--image", str(bad), "--db", str(db))
    assert p.returncode == 0, p.stderr
    assert "(1 corrupt records skipped)" in p.stdout
    with sqlite3.connect(db) as c:
        n = c.execute("SELECT COUNT(*) FROM records WHERE device = 'img-1'").fetchone()[0]
    assert n == int(p.stdout.split("pulled ")[1].split()[0]) > 20

    # a whole-flash dump: the partition found through the dump's own partition table
    whole = bytearray(b"\xff" * 0x400000)
    whole[0x8000:0x8C00] = _partition_table([("factory", 0, 0, 0x10000, 0x1F0000),
                                             ("vfs", 1, 0x81, 0x200000, 0x200000)])
    img = flash.read_bytes()
    whole[0x200000:0x200000 + len(img)] = img
    dump = tmp_path / "dump.bin"
    dump.write_bytes(whole)
    p = cli("pull", "--image", str(dump), "--db", str(db))
    assert p.returncode == 0, p.stderr
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*) FROM records WHERE device = 'img-1'").fetchone()[0] \
            == n + 1  # the record whose CRC failed before, and nothing twice
