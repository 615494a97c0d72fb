"""The virtual device's e-ink sign (hw/sim/sign.py) and `pingjia sign preview`
(`pingjia fontgen`: tests/test_sign_font.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from host_tools.cli import main

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib"
REF = ROOT / "tests" / "data" / "sign"


@pytest.mark.parametrize("size", ("4.2", "2.9"))
def test_make_sign_on_the_shared_bus(mp_json, tmp_path, size):
    img = tmp_path / "sign.pbm"
    # the virtual device's heap (host_tools/device/sim.py): the chip models ride along
    d = mp_json("sign_sim.py", str(LIB), str(img), size, heap="192k")
    assert d["seen"] == ["closed", "serving"]
    assert (d["counts"]["full"], d["counts"]["partial"]) == (1, 1)
    assert d["other"] == 0  # the badge reader's chip saw none of the panel's bytes
    assert d["faults"] == []
    assert "服务中" in d["text"]
    # the PBM the sim keeps current is the panel as shown: the serving reference
    assert img.read_bytes() == (REF / size / "serving.pbm").read_bytes()
    rows = d["blocks"].splitlines()
    assert 10 < len(rows) <= 40 and any("█" in r for r in rows)


def test_preview_writes_a_png_per_screen_drawn_by_the_firmware(tmp_path):
    assert main(["sign", "preview", "--out", str(tmp_path), "--size", "2.9"]) == 0
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == 11
    for p in pngs:
        im = Image.open(p)
        assert im.size == (296, 128)
        ref = Image.open(REF / "2.9" / (p.stem + ".pbm")).convert("L")
        assert im.convert("L").tobytes() == ref.tobytes(), p.name


@pytest.mark.parametrize("size,rows,budget_kb", (("4.2", "", 24), ("4.2", "64", 12),
                                                ("2.9", "", 12)))
def test_sign_heap_is_bounded_and_does_not_grow(mp, size, rows, budget_kb):
    """Driver, fonts, layout and EinkSign on the device's 128 KB heap (no chip model):
    the framebuffer (15 KB full frame on the 4.2", 3.2 KB in bands of 64 rows) and
    a few KB besides; no glyph bitmap stays in RAM."""
    p = mp("sign_bench.py", size, str(LIB), *([rows] if rows else []))
    f = dict(line.split(" ", 1) for line in p.stdout.splitlines())
    assert float(f["sign_bytes"]) <= budget_kb * 1024
    assert int(f["glyph_cache_bytes"]) <= 1024
    assert int(f["growth_bytes"]) <= 0  # drawing every screen again keeps nothing
