"""Shared fixtures: run device code on the real MicroPython unix port."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools.build import BUILD, compile_all

ROOT = Path(__file__).resolve().parents[1]
MP_DIR = ROOT / "tests" / "mp"
HEAP = "128k"  # design.md section 8: the device heap budget


def micropython_bin() -> str:
    local = Path(sys.executable).parent / "micropython"
    if local.exists():
        return str(local)
    found = shutil.which("micropython")
    if not found:
        raise RuntimeError("micropython not found: run `make test`, which installs it")
    return found


def mp_env() -> dict:
    """Device modules from the mpy-cross build (as deployed), test helpers from tests/mp."""
    env = dict(os.environ)
    env["MICROPYPATH"] = f"{BUILD}:{MP_DIR}:.frozen"
    return env


@pytest.fixture(scope="session", autouse=True)
def device_build():
    """Compile every device file with mpy-cross once per session (a failure fails the run)."""
    return compile_all()


def run_mp(script: str | Path, *args: str, heap: str = HEAP, timeout: float = 300,
           input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a MicroPython script (a path, or source text) under the heap budget."""
    cmd = [micropython_bin(), "-X", f"heapsize={heap}"]
    if isinstance(script, Path) or (len(script) < 200 and script.endswith(".py")):
        p = Path(script)
        cmd.append(str(p if p.is_absolute() else MP_DIR / p))
    else:
        cmd += ["-c", script]
    cmd += list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input,
                       env=mp_env(), cwd=str(BUILD))
    if check and p.returncode != 0:
        raise AssertionError(
            f"micropython exited {p.returncode}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}")
    return p


@pytest.fixture
def mp():
    return run_mp


@pytest.fixture
def shm_dir(tmp_path_factory):
    """A directory in RAM (tmpfs) for flash images, falling back to tmp."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    if base is None:
        return tmp_path_factory.mktemp("flash")
    d = Path(os.path.join(str(base), f"pingjia-{os.getpid()}-{os.urandom(4).hex()}"))
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)
