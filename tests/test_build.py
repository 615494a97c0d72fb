"""Every device file compiles with mpy-cross, and the device code stays off `machine`."""

import subprocess

from host_tools.device.build import ROOT, device_sources, mpy_cross


def test_every_device_file_compiles_with_mpy_cross(tmp_path):
    files = device_sources() + [ROOT / "boot.py", ROOT / "main.py"]
    assert len(files) > 20
    for src in files:
        p = subprocess.run([mpy_cross(), "-o", str(tmp_path / "out.mpy"), str(src)],
                           capture_output=True, text=True)
        assert p.returncode == 0, f"{src}: {p.stderr}"


def test_firmware_never_imports_machine():
    for src in (ROOT / "firmware").glob("*.py"):
        text = src.read_text()
        assert "import machine" not in text and "from machine" not in text, src
