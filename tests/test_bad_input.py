"""Bad input gets a clear message and loses nothing already stored.

On the command line (issue 10): an unknown command or option, a --db that cannot be opened,
a roster file that cannot be read: one line on stderr, exit 2, no traceback, and the
database as it was. A reader that stops early (`pingjia report | head -1`) is no error."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools.collector import rostercsv

GOOD = (Path(__file__).resolve().parents[1] / "examples" / "staff.csv").read_text()


def refused(p: subprocess.CompletedProcess, *words: str) -> str:
    """The one line a refused command prints; exit 2, no traceback, nothing on stdout."""
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pingjia: "), p.stderr
    assert p.stdout == "", p.stdout
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def contents(folder: Path, db: str = "") -> dict[str, str]:
    """Every file under folder and what it holds: SQLite files as their SQL dump (what the
    database says), the others as a hash of their bytes; and a PostgreSQL database db,
    every table's rows read through the collector's Database."""
    out = {}
    if db.startswith("postgresql://"):
        from host_tools.collector.db import Database

        d = Database(db)
        try:
            for (t,) in d.all("SELECT table_name FROM information_schema.tables WHERE "
                              "table_schema = 'public' ORDER BY table_name"):
                out["pg:" + t] = repr(sorted(map(repr, d.all(f"SELECT * FROM {t}"))))
        finally:
            d.close()
    for f in sorted(folder.rglob("*")):
        if f.is_dir():
            out[str(f.relative_to(folder)) + "/"] = ""
        elif f.suffix == ".db" and f.read_bytes()[:16] == b"SQLite format 3\x00":
            with sqlite3.connect(f) as con:
                out[str(f.relative_to(folder))] = "\n".join(con.iterdump())
            con.close()
        else:
            out[str(f.relative_to(folder))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture
def hall_db(tmp_path, db_url) -> str:
    """The hall's collector database: hall.db in the hall's folder, or a PostgreSQL one."""
    return db_url if db_url.startswith("postgresql://") else str(tmp_path / "hall" / "hall.db")


@pytest.fixture
def hall(tmp_path, cli, roster_csv, hall_db) -> Path:
    """A folder with a collector database (hall_db) that holds a device and the example
    roster."""
    d = tmp_path / "hall"
    d.mkdir()
    db = hall_db
    assert cli("device", "add", "b01-1", "--window", "B01", "--db", db).returncode == 0
    assert cli("roster", "import", roster_csv, "--db", db).returncode == 0
    return d


# ---- the command line ----------------------------------------------------------------------
@pytest.mark.parametrize("args, words", [
    (["nonsense"], ["invalid choice: 'nonsense'", "pingjia --help"]),
    (["device", "remove", "x"], ["invalid choice: 'remove'"]),
    (["report", "--colour", "red"], ["unrecognized arguments: --colour red"]),
    (["export", "--format", "xml"], ["invalid choice: 'xml'"]),
    (["--nonsense", "report"], ["unrecognized arguments: --nonsense"]),
    (["device", "add", "b01-2"], ["required: --window"]),
    ([], ["required: COMMAND"]),
    (["serve", "--port", "99999"], ["invalid TCP port (1-65535) value: '99999'"]),
    (["serve", "--port", "http"], ["invalid TCP port (1-65535) value: 'http'"]),
    (["report", "--day", "2026-11-23", "--from", "2026-11-01"], ["not both"]),
    (["export", "--day", "2026-11-23", "--to", "2026-11-30"], ["not both"]),
])
def test_unknown_commands_and_options_are_one_line(hall, hall_db, cli, args, words):
    before = contents(hall, hall_db)
    refused(cli(*args, "--db", hall_db, cwd=hall) if args else cli(cwd=hall), *words)
    assert contents(hall, hall_db) == before


DB_COMMANDS = [
    ["device", "list"], ["device", "add", "b01-9", "--window", "B01"], ["report"],
    ["export"], ["settings", "set", "invite_s", "20"], ["settings", "show"],
    ["roster", "import", "ROSTER"], ["serve", "--port", "PORT"], ["case", "list"],
]


@pytest.mark.parametrize("bad", ["a directory", "in a missing folder", "not SQLite",
                                 "postgres nobody runs"])
@pytest.mark.parametrize("command", DB_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_db_that_cannot_be_opened_is_one_line_and_changes_nothing(tmp_path, cli, roster_csv,
                                                                     free_port, command, bad):
    work = tmp_path / "work"
    work.mkdir()
    if bad == "a directory":
        (work / "hall.db").mkdir()
        db = str(work / "hall.db")
    elif bad == "in a missing folder":
        db = str(work / "no-such-folder" / "hall.db")
    elif bad == "not SQLite":
        (work / "hall.db").write_text("badge_uid,staff_no,name\n" * 200)
        db = str(work / "hall.db")
    else:
        db = f"postgresql://pj@127.0.0.1:{free_port()}/postgres"
    before = contents(work)
    args = [roster_csv if a == "ROSTER" else str(free_port()) if a == "PORT" else a
            for a in command]
    line = refused(cli(*args, "--db", db, cwd=work, timeout=60), "cannot open the database")
    assert db in line
    assert contents(work) == before  # no file made, none changed, no folder made


@pytest.mark.parametrize("problem", ["missing", "a directory", "not UTF-8", "wrong columns",
                                     "a bad badge"])
@pytest.mark.parametrize("command", ["roster import", "sim --roster"])
def test_an_unreadable_roster_is_one_line_and_changes_nothing(hall, hall_db, cli, command,
                                                              problem):
    roster = hall.parent / "staff.csv"
    words = {"missing": "No such file", "a directory": "Is a directory",
             "not UTF-8": "not UTF-8", "wrong columns": "missing column(s): department, windows",
             "a bad badge": "line 3: bad badge_uid"}[problem]
    if problem == "a directory":
        roster.mkdir()
    elif problem == "not UTF-8":  # what Excel's plain "CSV" saves on a Chinese Windows
        roster.write_bytes(GOOD.encode("gb18030"))
    elif problem == "wrong columns":
        roster.write_text("badge_uid,staff_no,name\n0A1B2C3D,SB1,张三\n")
    elif problem == "a bad badge":
        roster.write_text(GOOD.splitlines()[0] + "\n" + GOOD.splitlines()[1] + "\n"
                          "0A1B2C3Z,SB9,李四,社保,B01\n")
    before = contents(hall, hall_db)
    for db in (hall_db, hall / "new.db"):  # a database that is there, one that is not
        if command == "roster import":
            p = cli("roster", "import", roster, "--db", db, cwd=hall)
        else:
            p = cli("sim", "--script", "--roster", roster, "--db", db, "--device", "b01-2",
                    input="status\n", cwd=hall, timeout=120)
        assert str(roster) in refused(p, words)
        assert contents(hall, hall_db) == before


@pytest.fixture(scope="module")
def busy_hall(tmp_path_factory, device_log, clock_at, t0) -> Path:
    """A database with 30 000 ratings over 42 days at 6 windows: the JSON report (with its
    bounded 差评 lists) and every export are more than a pipe's buffer (64 KiB)."""
    from host_tools.collector.store import Collector

    db = tmp_path_factory.mktemp("busy") / "hall.db"
    c = Collector(str(db), clock_at(t0 + 50 * 86400))
    for w in range(6):
        d = device_log(c, f"b0{w}-1", f"B0{w}")
        for i in range(5000):
            d.rating(1 + i % 4, t0 + i * 725 + w)  # every 12 minutes, day and night
            if d.seq % 1000 == 0:
                d.send(d.seq - 999)
    c.db.close()
    return db


@pytest.mark.parametrize("args", [["report", "--by", "hour", "--json"],
                                  ["export"], ["export", "--format", "json"]],
                         ids=" ".join)
def test_a_reader_that_stops_early_is_no_error(busy_hall, tmp_path, args):
    """`pingjia report | head -1`: the first line, exit 0, nothing on stderr."""
    pingjia = Path(sys.executable).parent / "pingjia"
    full = subprocess.run([str(pingjia), *args, "--db", str(busy_hall)], capture_output=True,
                          timeout=120)
    assert full.returncode == 0 and len(full.stdout) > 65536, len(full.stdout)
    cmd = f"'{pingjia}' {' '.join(args)} --db '{busy_hall}' | head -1; echo \"${{PIPESTATUS[0]}}\""
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    first, status = p.stdout.splitlines()
    assert first == full.stdout.decode().splitlines()[0]
    assert status == "0" and p.stderr == "", p.stderr


# ---- the roster CSV and the settings, as the collector reads them ---------------------------
def test_roster_with_bom_as_excel_writes_it():
    staff = rostercsv.parse("\ufeff" + GOOD.replace("\n", "\r\n"))
    assert [s.staff_no for s in staff] == ["SB0101", "SB0102", "SB0207"]
    assert staff[0].windows == ["B01", "B02"]
    assert rostercsv.device_roster(staff, "B01").decode() == (
        "PJR1 1 2\n0A1B2C3D\tSB0101\t张伟\n0E0F1011\tSB0102\t刘洋\n")


@pytest.mark.parametrize("text, message", [
    ("badge_uid,staff_no,name\n0A1B2C3D,SB1,张三\n", "missing column(s): department, windows"),
    ("badge_uid,staff_no,name,department,windows\nXYZ,SB1,张三,d,B01\n", "line 2: bad badge_uid"),
    ("badge_uid,staff_no,name,department,windows\n0A1B2C,SB1,张三,d,B01\n", "line 2: bad badge_uid"),
    ("badge_uid,staff_no,name,department,windows\n0A1B2C3D,SB1,张三,d,B01\n"
     "0a:1b:2c:3d,SB2,李四,d,B01\n", "line 3: badge 0A1B2C3D already on line 2"),
    ("badge_uid,staff_no,name,department,windows\n0A1B2C3D,,张三,d,B01\n", "line 2: staff_no and name"),
])
def test_bad_roster_csv_is_named_by_line(text, message):
    with pytest.raises(rostercsv.RosterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rostercsv.parse(text)


def test_sim_refuses_bad_options(cli):
    refused(cli("sim", "--script", "--start", "yesterday", input=""), "bad --start")
    refused(cli("sim", "--script", "--set", "invite_s=500", input=""), "invite_s must be")
    refused(cli("sim", "--script", "--micropython", "./no-such-port", input=""),
            "--micropython ./no-such-port: no such program")


def test_settings_validation_names_the_problem():
    from firmware.settings import validate

    for bad, msg in [({"invite_s": 3}, "invite_s must be"), ({"mode": "x"}, "mode must be"),
                     ({"hours": ["9-8"] * 7}, "span ends before"), ({"colour": 1}, "unknown"),
                     ({"holidays": ["2026-13-45"]}, "no such date")]:
        with pytest.raises(ValueError, match=msg):
            validate(bad)


# ---- the device ---------------------------------------------------------------------------------
def test_a_device_that_never_answers_is_an_error_in_time(tmp_path):
    """The virtual device's launcher waits for every answer with a deadline: a MicroPython
    that hangs at boot is a DeviceError when it passes (and is not left running)."""
    import time

    from host_tools.device.sim import DeviceError, DeviceProcess

    hangs = tmp_path / "micropython"
    hangs.write_text("#!/bin/sh\nexec sleep 600\n")
    hangs.chmod(0o755)
    t = time.monotonic()
    with pytest.raises(DeviceError, match="no answer") as e:
        DeviceProcess(str(hangs), tmp_path / "flash.img", None, None, None, timeout=2)
    assert 2 <= time.monotonic() - t < 20
    assert "in 2 s" in str(e.value)


def test_corrupt_settings_file_boots_with_defaults_and_keeps_the_log(sim, mp, tmp_path):
    flash = str(tmp_path / "flash.img")
    r = sim("badge 0A1B2C3D\ninvite\nkey 1\nquit", flash=flash)
    assert r.of(2)[0].startswith("ok: key 1 counted")
    # corrupt settings.json inside the littlefs image through the device itself
    mp(f"""
import vfs
from firmware.storage import LFS_OPTS
from hw.sim.flash import FileBlockDev
bd = FileBlockDev({flash!r})
vfs.mount(vfs.VfsLfs2(bd, **LFS_OPTS), '/f')
with open('/f/settings.json', 'wb') as f:
    f.write(b'{{"window": "B01", "invite_s": ')
vfs.umount('/f')
""")
    r = sim("status\nlog", flash=flash)
    st = r.statuses()[0]
    assert "settings_corrupt" in st["alerts"]
    assert st["alert"] == "settings_corrupt"
    assert "设置文件损坏" in st["sign"]
    assert [x["level"] for x in r.ratings()] == [1]  # nothing stored was lost
    assert [x["value"] for x in r.kinds("boot")] == [1, 2]


def test_device_roster_is_packed_and_exact(mp_pass):
    """254 staff on the device: every badge finds its slot, every slot its entry, and the
    whole roster stays in a few KB of heap; texts that would break the packing are refused."""
    assert mp_pass("roster.py").count("refused:") == 9
