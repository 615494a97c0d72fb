"""`pingjia fontgen`: rasterise a CJK font into the sign's 1-bit glyph file, lib/pj.pjf:
one "PJF1" block a size (SIZES), back to back.

Block format "PJF1" (little endian), read by firmware/font.py with seek/readinto:

    0   4  magic b"PJF1"
    4   2  count: number of glyphs
    6   1  height: rows per glyph (the line height)
    7   1  stride: bytes per row (the widest glyph fits in stride*8 pixels)
    8   8  reserved (0)
    16     index: count x u16 code points, ascending
    ...    records: count x (1 + stride*height) bytes: advance width, then the
           bitmap MONO_HLSB (row major, MSB = leftmost pixel, 1 = ink)

A record has a fixed size, so glyph i sits at 16 + 2*count + i*(1 + stride*height)
from the block's start, and the next block starts at 16 + count*(3 + stride*height).
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from host_tools.device.build import ROOT
from host_tools.errors import PingjiaError

LIB = ROOT / "lib"
FONT = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
MAGIC = b"PJF1"
FILE = "pj.pjf"  # on the device: /lib/pj.pjf
HEADER = 16

ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
# fixed texts not in firmware/texts.py that layouts draw
EXTRA = "服务窗口号工：，。、/·（）"
# characters outside GB2312 that are common in given names (GBK / Unicode);
# a name with any other such character shows a box in its place. U+00B7: the
# middle dot of transcribed names (GB2312's A1A4 decodes to U+30FB instead)
NAME_EXTRA = "\u00b7彧犇堃喆玥珺昇赟頔甯琍瑄雯晧珏琰璟玙瑢婧姮昱淏浛煊炅焜燚垚鑫淼沄泓汭祎禕芃苡茜萱蕙喆嘉懿"

# (pixel size, face index in the .ttc, charset): the name size carries all of
# GB2312; the large sizes only the fixed texts.
SIZES = (
    (16, 2, "gb2312"),  # Zen Hei Sharp: hand-tuned 16 px bitmaps
    (24, 0, "fixed"),
    (32, 0, "fixed"),
    (48, 0, "fixed"),
)


def gb2312_chars() -> str:
    out = []
    for b1 in range(0xA1, 0xF8):
        for b2 in range(0xA1, 0xFF):
            try:
                out.append(bytes((b1, b2)).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    return "".join(out)


def fixed_chars() -> str:
    """Every character of the sign's fixed texts (firmware/texts.py)."""
    from firmware import texts

    s = EXTRA + texts.ALL
    return "".join(c for c in s if ord(c) > 0x7E and ord(c) <= 0xFFFF)


def charset(kind: str) -> list[int]:
    chars = set(ASCII) | set(gb2312_chars() + NAME_EXTRA if kind == "gb2312" else fixed_chars())
    return sorted(ord(c) for c in chars if ord(c) <= 0xFFFF)


def render(font: ImageFont.FreeTypeFont, size: int, cp: int, dy: int) -> tuple[int, Image.Image]:
    ch = chr(cp)
    wide = cp > 0x7E
    adv = size if wide else max(1, round(font.getlength(ch)))
    img = Image.new("1", (max(adv, size), size), 0)
    d = ImageDraw.Draw(img)
    d.fontmode = "1"  # FreeType mono rendering: crisp strokes, no threshold blur
    d.text((0, dy), ch, font=font, fill=1)
    return adv, img


def build(size: int, face: int, kind: str, font_path: str = FONT) -> bytes:
    """One PJF1 block: the glyphs of charset kind at size px."""
    font = ImageFont.truetype(font_path, size, index=face)
    top, bottom = font.getbbox("国")[1], font.getbbox("国")[3]
    dy = -top + (size - (bottom - top)) // 2  # centre the ideograph box in the cell
    cps = charset(kind)
    glyphs = [render(font, size, cp, dy) for cp in cps]
    stride = (max(max(a, g.width) for a, g in glyphs) + 7) // 8
    head = MAGIC + struct.pack("<HBB8x", len(cps), size, stride)
    body = bytearray(head)
    body += struct.pack(f"<{len(cps)}H", *cps)
    for adv, img in glyphs:
        canvas = Image.new("1", (stride * 8, size), 0)
        canvas.paste(img.crop((0, 0, min(img.width, stride * 8), size)), (0, 0))
        body.append(min(adv, stride * 8))
        body += canvas.tobytes()  # mode "1" rows are MSB-first, padded to bytes
    return bytes(body)


def build_all(out: Path = LIB, font_path: str = FONT) -> tuple[Path, list[int]]:
    """lib/pj.pjf, the blocks of SIZES back to back (the device opens one file for
    all sizes); (its path, each block's size)."""
    blocks = [build(size, face, kind, font_path) for size, face, kind in SIZES]
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILE
    path.write_bytes(b"".join(blocks))
    return path, [len(b) for b in blocks]


def blocks(data: bytes) -> list[tuple[int, int, int]]:
    """The blocks of a glyph file's bytes: (px, start, size) each, in file order."""
    out = []
    base = 0
    while base < len(data):
        count, height, stride = struct.unpack_from("<HBB", data, base + 4)
        size = HEADER + count * (3 + stride * height)
        out.append((height, base, size))
        base += size
    return out


def run(args: argparse.Namespace) -> int:
    font = args.font or FONT
    try:
        ImageFont.truetype(font, 12)
    except OSError:  # Pillow says only "cannot open resource"
        raise PingjiaError(f"--font {font}: not a TrueType font or collection that can be "
                           "read (Debian: apt-get install fonts-wqy-zenhei)") from None
    try:
        path, sizes = build_all(Path(args.out or LIB), font)
    except OSError as e:
        raise PingjiaError(f"--out {args.out or LIB}: {e.strerror}") from None
    for (px, _face, kind), n in zip(SIZES, sizes, strict=True):
        print(f"{px:2d} px ({kind}): {n} bytes")
    print(f"{path}: {path.stat().st_size} bytes")
    return 0
