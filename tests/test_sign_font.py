"""The sign's glyph file (lib/pj.pjf): coverage, flash budget, format, and that
the committed file is what `pingjia fontgen` makes from the Debian font."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from firmware import texts
from firmware.font import Font, load
from host_tools.cli import main
from host_tools.sign import fontgen

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib"
BUDGET = 400 * 1024  # flash left to the glyphs; the log needs the rest


def glyph(f: Font, cp: int) -> tuple[int, bytes] | None:
    """(width, MONO_HLSB bitmap) of code point cp as the device draws it: the
    cache slot's width, the bitmap read from the slot's record (its offset is
    the cache's second half)."""
    i = f.slot(cp)
    if i < 0:
        return None
    bm = f.stride * f.height
    f._f.seek(f._keys[len(f.widths) + i] + 1)
    return f.widths[i], f._f.read(bm)


def font(px: int, slots: int = 16) -> Font:
    return load(str(LIB / fontgen.FILE), ((px, slots),))[px]


def test_font_file_fits_the_flash_budget():
    assert (LIB / fontgen.FILE).stat().st_size <= BUDGET


def test_every_gb2312_character_at_the_name_size():
    f = font(16)
    chars = fontgen.gb2312_chars()
    assert len(chars) == 7445
    missing = [c for c in chars if f.index(ord(c)) < 0]
    assert missing == []
    for c in "欧阳晓燕张伟刘洋陈静窦淼" + fontgen.NAME_EXTRA:  # and names beyond GB2312
        w, bm = glyph(f, ord(c))
        assert w == 16 and any(bm)


def _fixed_texts() -> list[str]:
    out = [texts.window_label(""), texts.window_label("B01")]
    for line in texts.ALL.strip().splitlines():
        out += line.split(" ", 1)[1].split("|")
    return out


@pytest.mark.parametrize("px", (24, 32, 48))
def test_every_fixed_text_at_the_large_sizes(px):
    f = font(px)
    for s in _fixed_texts():
        for c in s:
            assert f.index(ord(c)) >= 0, (px, s, c)
    for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        assert f.index(ord(c)) >= 0


def test_missing_characters_are_reported_not_raised():
    f = font(48, slots=4)
    assert f.index(ord("燕")) == -1  # not a fixed text: drawn from the name font
    assert glyph(f, 0x1F600) is None and f.index(0x1F600) == -1
    assert f.advance(0x1F600) == 48  # a placeholder box keeps the line's width
    assert f.index(0) == -1


def test_format_blocks_headers_and_sorted_indexes():
    data = (LIB / fontgen.FILE).read_bytes()
    base = 0
    for px, _face, _kind in fontgen.SIZES:  # one block a size, back to back
        assert data[base : base + 4] == b"PJF1"
        count, height, stride = struct.unpack_from("<HBB", data, base + 4)
        assert height == px
        cps = struct.unpack_from(f"<{count}H", data, base + 16)
        assert list(cps) == sorted(set(cps))
        base += 16 + 2 * count + count * (1 + stride * height)
    assert base == len(data)


def test_a_file_that_is_not_glyphs_is_refused(tmp_path):
    data = (LIB / fontgen.FILE).read_bytes()
    _px, _start, size = fontgen.blocks(data)[0]
    bad = tmp_path / "pj.pjf"  # the 16 px block, then no block
    bad.write_bytes(data[:size] + b"not a glyph block")
    with pytest.raises(ValueError, match="no PJF1 glyph block"):
        load(str(bad), ((16, 8),))


def test_glyph_cache_is_bounded():
    f = font(16, slots=8)
    for c in fontgen.gb2312_chars()[:500]:
        glyph(f, ord(c))
    # code point (4 bytes), glyph offset (4) and width (1) a slot; no bitmaps
    assert f.cache_bytes() == 8 * 9
    assert len(f._keys) == 2 * len(f.widths) == 16  # code points and glyph offsets
    assert f.misses >= 500
    glyph(f, ord(fontgen.gb2312_chars()[499]))
    assert f.hits >= 1


def test_bitmaps_on_the_device(mp_json):
    """Fonts made smallest first share one glyph buffer that grows; every bitmap
    drawn is its record, and drawing a cached glyph allocates nothing."""
    got = mp_json("sign_font.py", str(LIB))
    assert got["checked"] == 2 * len("服务中窗口号B01")
    assert got["bad"] == []
    assert got["heap_locked_ok"]


def test_committed_file_is_what_fontgen_makes(tmp_path):
    """`pingjia fontgen` makes exactly the committed glyph file, and nothing else."""
    assert main(["fontgen", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [fontgen.FILE]
    assert (tmp_path / fontgen.FILE).read_bytes() == (LIB / fontgen.FILE).read_bytes(), (
        f"lib/{fontgen.FILE} is stale: run `pingjia fontgen`")
