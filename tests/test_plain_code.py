"""The code written plainly (issue 10), read from the source: no function in the device
code over about 60 lines, no one-letter module aliases anywhere, one stand-in for
micropython.const, and the firmware's modules take const from it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEVICE = ("firmware", "hw")
LONGEST = 60  # lines a function may take in firmware/ and hw/


def sources(*folders: str) -> list[Path]:
    files = [f for d in folders for f in sorted((ROOT / d).rglob("*.py"))]
    assert files, folders
    return files


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def test_no_function_in_the_device_code_is_over_60_lines():
    long = [f"{f.relative_to(ROOT)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for f in sources(*DEVICE) for n in ast.walk(tree(f))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > LONGEST]
    assert long == []


def test_no_one_letter_module_aliases():
    files = sources("firmware", "hw", "host_tools", "tests", "bench")
    files += [ROOT / "boot.py", ROOT / "main.py"]
    found = [f"{f.relative_to(ROOT)}:{n.lineno} {a.name} as {a.asname}"
             for f in files for n in ast.walk(tree(f))
             if isinstance(n, (ast.Import, ast.ImportFrom))
             for a in n.names if a.asname and len(a.asname) == 1]
    assert found == []


def defines_const(path: Path) -> bool:
    return any(isinstance(n, ast.FunctionDef) and n.name == "const" for n in ast.walk(tree(path)))


def test_one_stand_in_for_micropython_const():
    assert [str(f.relative_to(ROOT)) for f in sources(*DEVICE) if defines_const(f)] == [
        "firmware/const.py"]


def const_sources(path: Path) -> set[str]:
    return {n.module or "" for n in ast.walk(tree(path)) if isinstance(n, ast.ImportFrom)
            and any(a.name == "const" for a in n.names)}


def test_firmware_takes_const_from_the_stand_in():
    """firmware/ also runs on CPython, so its modules import const from firmware/const.py;
    hw/ runs only on MicroPython (and its drivers import nothing of ours)."""
    bad = []
    for f in sources("firmware"):
        if f.name == "const.py":
            continue
        if const_sources(f) - {"firmware.const"}:
            bad.append(str(f.relative_to(ROOT)))
    for f in sources("hw"):
        if const_sources(f) - {"micropython"}:
            bad.append(str(f.relative_to(ROOT)))
    assert bad == []


def test_the_stand_in_is_the_identity_on_cpython():
    from firmware.const import const

    marker = object()
    assert const(marker) is marker
