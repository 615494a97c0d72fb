"""`pingjia deploy PORT`: the firmware onto MicroPython, exactly what the production
manifest (hw/esp32/manifest.py) freezes, as .mpy files, with lib/; aioble through mip."""

from __future__ import annotations

import argparse
from pathlib import Path

from host_tools.device.build import BUILD, ROOT, Manifest, compile_all
from host_tools.device.remote import TechError, mpremote, soft_reset


def device_files() -> list[tuple[Path, str]]:
    """(local file, device path) for everything deploy puts on a board: what the
    production manifest freezes, as .mpy files (boot.py and main.py as source: the
    board runs those two by file name), and lib/."""
    compile_all()
    out = []
    for src, rel in Manifest().files:
        if "/" in rel:
            mpy = str(Path(rel).with_suffix(".mpy"))
            out.append((BUILD / mpy, mpy))
        else:
            out.append((src, rel))
    lib = ROOT / "lib"
    if lib.is_dir():
        for f in sorted(lib.rglob("*")):
            if f.is_file() and not f.name.startswith("."):
                out.append((f, f"lib/{f.relative_to(lib)}"))
    return out


def _mkdirs_code(paths: list[str]) -> str:
    dirs = sorted({str(Path(p).parent) for p in paths if "/" in p}, key=len)
    return f"import os\nfor d in {dirs!r}:\n try:\n  os.mkdir(d)\n except OSError:\n  pass"


def deploy(port: str, aioble: bool = True) -> list[str]:
    files = device_files()
    mpremote(port, "exec", _mkdirs_code([d for _, d in files]))
    args: list[str] = []
    for local, dest in files:
        args += ["fs", "cp", str(local), f":{dest}", "+"]
    mpremote(port, *args[:-1])
    # check what landed: names and sizes
    names = [d for _, d in files]
    sizes = mpremote(port, "exec", f"import os\nfor p in {names!r}:\n print(p, os.stat(p)[6])")
    got = dict(line.rsplit(" ", 1) for line in sizes.splitlines() if " " in line)
    bad = [d for local, d in files if got.get(d) != str(local.stat().st_size)]
    if bad:
        raise TechError(f"deploy: files did not land whole: {', '.join(bad)}")
    if aioble:  # on a stock image the manifest's require()s come through mip
        for package in Manifest().requires:
            mpremote(port, "mip", "install", package)
    return [d for _, d in files]


def cmd_deploy(args: argparse.Namespace) -> int:
    files = deploy(args.port, aioble=not args.no_aioble)
    print(f"deployed {len(files)} files to {args.port}"
          + ("" if args.no_aioble else " and installed aioble"))
    soft_reset(args.port)
    return 0
