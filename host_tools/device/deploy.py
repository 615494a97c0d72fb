"""`pingjia deploy PORT`: the firmware onto MicroPython, exactly what the production
manifest (hw/esp32/manifest.py) freezes, as .mpy files, with lib/; aioble through mip.
Only files whose SHA-256 differs from the board's copy are sent (a second deploy sends
nothing), each is read back, and the command says what it did."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from host_tools.device.build import BUILD, ROOT, Manifest, compile_all
from host_tools.device.progress import bar
from host_tools.device.remote import TechError, mpremote, soft_reset

# prints "path sha256" for every path, "path -" for a missing one; 1 KB at a time, as a
# board's heap allows
_HASHES = """import hashlib, binascii
def _h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return '-'
    h = hashlib.sha256()
    b = bytearray(1024)
    with f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(memoryview(b)[:n])
    return binascii.hexlify(h.digest()).decode()
for p in {paths!r}:
    print(p, _h(p))"""


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


def device_hashes(port: str, paths: list[str]) -> dict[str, str]:
    """SHA-256 (hex) of each path on the device; "-" where it has none."""
    out = mpremote(port, "exec", _HASHES.format(paths=paths))
    return dict(line.rsplit(" ", 1) for line in out.splitlines() if " " in line)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mkdirs_code(paths: list[str]) -> str:
    dirs = sorted({str(Path(p).parent) for p in paths if "/" in p}, key=len)
    parts = []
    for d in dirs:  # every level: lib/x/y needs lib and lib/x first
        parts += ["/".join(d.split("/")[:i + 1]) for i in range(d.count("/") + 1)]
    dirs = sorted(set(parts), key=lambda p: (p.count("/"), p))
    return f"import os\nfor d in {dirs!r}:\n try:\n  os.mkdir(d)\n except OSError:\n  pass"


def _groups(files: list[tuple[Path, str]], limit: int = 65536) -> list[list[tuple[Path, str]]]:
    out: list[list[tuple[Path, str]]] = [[]]
    size = 0
    for local, dest in files:
        if out[-1] and size + local.stat().st_size > limit:
            out.append([])
            size = 0
        out[-1].append((local, dest))
        size += local.stat().st_size
    return [g for g in out if g]


def deploy(port: str, aioble: bool = True) -> dict[str, list[str]]:
    """Send what changed; {"copied": [...], "unchanged": [...], "installed": [...]}."""
    files = device_files()
    want = {dest: sha256(local) for local, dest in files}
    have = device_hashes(port, [d for _, d in files] + ["lib/aioble/__init__.mpy"])
    changed = [(local, dest) for local, dest in files if have.get(dest) != want[dest]]
    if changed:
        mpremote(port, "exec", _mkdirs_code([d for _, d in changed]))
    with bar(sum(local.stat().st_size for local, _ in changed), "deploy", "B") as progress:
        for group in _groups(changed):  # one mpremote session a group: a few files at a time
            args: list[str] = []
            for local, dest in group:
                args += ["fs", "cp", str(local), f":{dest}", "+"]
            mpremote(port, *args[:-1])
            progress.update(sum(local.stat().st_size for local, _ in group))
    if changed:  # read back what landed
        got = device_hashes(port, [d for _, d in changed])
        bad = [d for _, d in changed if got.get(d) != want[d]]
        if bad:
            raise TechError(f"deploy: files did not land whole: {', '.join(bad)}")
    installed = []
    # on a stock image the manifest's require()s come through mip, once
    if aioble and have.get("lib/aioble/__init__.mpy", "-") == "-":
        for package in Manifest().requires:
            mpremote(port, "mip", "install", package)
            installed.append(package)
    copied = [d for _, d in changed]
    return {"copied": copied, "unchanged": [d for _, d in files if d not in copied],
            "installed": installed}


def cmd_deploy(args: argparse.Namespace) -> int:
    r = deploy(args.port, aioble=not args.no_aioble)
    for d in r["copied"]:
        print(f"copied {d}")
    print(f"deployed to {args.port}: {len(r['copied'])} files copied, "
          f"{len(r['unchanged'])} unchanged"
          + (f", installed {', '.join(r['installed'])}" if r["installed"] else ""))
    soft_reset(args.port)
    return 0
