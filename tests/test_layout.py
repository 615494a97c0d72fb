"""The house's layout, read from the imports: folders say who runs the code.

firmware/ is the product logic and never touches hardware or the host; hw/drivers/ take
buses and pins and import nothing of ours; hw/esp32/ is the board and never the virtual
one; what reaches the board (deploy) is exactly what the production manifest freezes, and
no file of the virtual board is in it."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from host_tools.device.build import ROOT, Manifest, mpy_cross
from host_tools.device.deploy import device_files

OURS = ("firmware", "hw", "host_tools")


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (also inside functions), dotted."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def files_under(folder: str) -> list[Path]:
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"{folder}/ holds no Python files"
    return files


def offending(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{f.relative_to(ROOT)} imports {mod}" for f in files_under(folder)
            for mod in sorted(imports_of(f)) if mod.split(".")[0] in forbidden]


def test_firmware_imports_neither_hardware_nor_host():
    assert offending("firmware", ("hw", "host_tools", "machine", "network", "esp32")) == []


def test_drivers_import_nothing_of_ours():
    assert offending("hw/drivers", OURS) == []


def test_the_board_never_imports_the_virtual_board():
    bad = [f"{f.relative_to(ROOT)} imports {m}" for f in files_under("hw/esp32")
           for m in imports_of(f) if m.startswith("hw.sim")]
    assert bad == []


def test_entry_points_build_the_real_board():
    assert "hw.esp32.board" in imports_of(ROOT / "main.py")
    assert not any(m.startswith("hw.sim") for m in imports_of(ROOT / "main.py"))
    assert not any(m.startswith("hw.sim") for m in imports_of(ROOT / "boot.py"))


def test_imports_name_modules_that_exist():
    """A moved module leaves no import behind pointing at its old place."""
    missing = []
    for folder in ("firmware", "hw"):
        for f in files_under(folder):
            for mod in imports_of(f):
                if mod.split(".")[0] not in ("firmware", "hw"):
                    continue
                parts = mod.split(".")
                as_module = ROOT.joinpath(*parts).with_suffix(".py")
                as_package = ROOT.joinpath(*parts) / "__init__.py"
                as_name = ROOT.joinpath(*parts[:-1]).with_suffix(".py")  # from X import name
                in_package = ROOT.joinpath(*parts[:-1]) / "__init__.py"  # from package import name
                if not (as_module.exists() or as_package.exists() or as_name.exists()
                        or in_package.exists() and parts[-1] in in_package.read_text()):
                    missing.append(f"{f.relative_to(ROOT)}: {mod}")
    assert missing == []


def test_deploy_copies_exactly_what_the_manifest_freezes():
    frozen = {str(Path(rel).with_suffix(".mpy")) if "/" in rel else rel
              for _, rel in Manifest().files}
    deployed = {dest for _, dest in device_files()}
    assert {d for d in deployed if not d.startswith("lib/")} == frozen
    assert "lib/pj.pjf" in deployed


def test_no_file_of_the_virtual_board_reaches_the_board():
    deployed = [dest for _, dest in device_files()]
    assert [d for d in deployed if d.startswith("hw/sim")] == []
    assert [rel for _, rel in Manifest().files if rel.startswith("hw/sim")] == []


def test_the_manifest_freezes_whole_folders_of_device_code():
    frozen = {rel for _, rel in Manifest().files}
    for folder in ("firmware", "hw/drivers"):
        for f in files_under(folder):
            assert str(f.relative_to(ROOT)) in frozen
    board = {str(f.relative_to(ROOT)) for f in files_under("hw/esp32")} - {
        "hw/esp32/manifest.py"}
    assert board <= frozen
    assert {"boot.py", "main.py", "hw/__init__.py"} <= frozen
    assert Manifest().requires == ["aioble"]


@pytest.mark.parametrize("rel", sorted(rel for _, rel in Manifest().files))
def test_every_file_that_reaches_the_board_compiles(rel, tmp_path):
    p = subprocess.run([mpy_cross(), "-o", str(tmp_path / "out.mpy"), rel], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
