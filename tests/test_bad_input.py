"""Bad input gets a clear message and loses nothing already stored."""

import subprocess
import sys

import pytest
from conftest import EXAMPLES, ROOT

from host_tools.collector import rostercsv

GOOD = (EXAMPLES / "staff.csv").read_text()


def test_roster_with_bom_as_excel_writes_it():
    staff = rostercsv.parse("\ufeff" + GOOD.replace("\n", "\r\n"))
    assert [s.staff_no for s in staff] == ["SB0101", "SB0102", "SB0207"]
    assert staff[0].windows == ["B01", "B02"]
    assert rostercsv.device_roster(staff, "B01").decode() == (
        "PJR1 1\n0A1B2C3D\tSB0101\t张伟\n0E0F1011\tSB0102\t刘洋\n")


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


def test_sim_refuses_a_bad_roster_clearly(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("badge_uid,staff_no\n0A1B2C3D,SB1\n")
    p = subprocess.run([sys.executable, "-m", "host_tools.cli", "sim", "--script", "--roster",
                        str(bad)], input="status\n", capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2
    assert "missing column(s)" in p.stderr


def test_sim_refuses_bad_options(tmp_path):
    p = subprocess.run([sys.executable, "-m", "host_tools.cli", "sim", "--script", "--start",
                        "yesterday"], input="", capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and "bad --start" in p.stderr
    p = subprocess.run([sys.executable, "-m", "host_tools.cli", "sim", "--script", "--set",
                        "invite_s=500"], input="", capture_output=True, text=True, cwd=ROOT)
    assert p.returncode != 0 and "invite_s must be" in p.stderr
    p = subprocess.run([sys.executable, "-m", "host_tools.cli", "nonsense"],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and "invalid choice" in p.stderr


def test_corrupt_settings_file_boots_with_defaults_and_keeps_the_log(sim, tmp_path):
    flash = str(tmp_path / "flash.img")
    r = sim("badge 0A1B2C3D\ninvite\nkey 1\nquit", flash=flash)
    assert r.of(2)[0].startswith("ok: key 1 counted")
    # corrupt settings.json inside the littlefs image through the device itself
    from conftest import run_mp

    run_mp(f"""
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


def test_settings_validation_names_the_problem():
    from firmware.settings import validate

    for bad, msg in [({"invite_s": 3}, "invite_s must be"), ({"mode": "x"}, "mode must be"),
                     ({"hours": ["9-8"] * 7}, "span ends before"), ({"colour": 1}, "unknown"),
                     ({"holidays": ["2026-13-45"]}, "no such date")]:
        with pytest.raises(ValueError, match=msg):
            validate(bad)


def test_device_roster_is_packed_and_exact(mp):
    """254 staff on the device: every badge finds its slot, every slot its entry, and the
    whole roster stays in a few KB of heap; texts that would break the packing are refused."""
    p = mp("roster.py")
    assert p.stdout.strip().splitlines()[-1] == "PASS", p.stdout
    assert p.stdout.count("refused:") == 7
