"""Compile the device files with mpy-cross (what goes to the board, and what
the virtual device and the device tests run: compiling .py on a 128 KB heap
would not fit, as on the real board)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEVICE_DIRS = ("firmware", "hw")
BUILD = ROOT / "build" / "mpy"


def tool(name: str) -> str:
    """A tool the venv installs (micropython, mpy-cross, mpremote): beside this Python, else
    on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: `make setup` installs it into .venv")
    return found


def mpy_cross() -> str:
    return tool("mpy-cross")


def micropython_bin() -> str:
    return tool("micropython")


def device_sources() -> list[Path]:
    files = []
    for d in DEVICE_DIRS:
        files += sorted((ROOT / d).glob("*.py"))
    return files


def compile_all(out: Path = BUILD, arch: str | None = None) -> list[Path]:
    """Compile every device module into out/<dir>/<name>.mpy (only when stale)."""
    tool = mpy_cross()
    done = []
    for src in device_sources():
        rel = src.relative_to(ROOT)
        dst = out / rel.with_suffix(".mpy")
        if not dst.exists() or dst.stat().st_mtime < src.stat().st_mtime:
            dst.parent.mkdir(parents=True, exist_ok=True)
            cmd = [tool, "-o", str(dst), "-s", str(rel)]
            if arch:
                cmd.append(f"-march={arch}")
            cmd.append(str(rel))
            p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"mpy-cross rejects {rel}:\n{p.stderr}")
        done.append(dst)
    return done


if __name__ == "__main__":
    for p in compile_all():
        print(p.relative_to(ROOT))
