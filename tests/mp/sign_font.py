# micropython sign_font.py FONT_DIR
# Font.bitmap() on the device: fonts made smallest first (the shared glyph
# buffer grows), glyphs of both sizes drawn in turn, each bitmap as its record
# in the file; drawing a cached glyph allocates nothing. Prints one JSON object.
import json
import sys

import framebuf
import micropython

from firmware.font import load

d = sys.argv[1]
fonts = load(d + "/pj.pjf", ((16, 4), (48, 4)))
fonts = [fonts[16], fonts[48]]
out = {"checked": 0, "bad": [], "heap_locked_ok": False}


def record(f, i):
    """The bitmap bytes of cache slot i's glyph, straight from the file."""
    with open(d + "/pj.pjf", "rb") as r:
        r.seek(f._keys[len(f.widths) + i] + 1)  # the slot's record offset
        return r.read(f.stride * f.height)


for ch in "服务中窗口号B01":
    for f in fonts:
        i = f.slot(ord(ch))
        g = f.bitmap(i)
        w = 8 * f.stride
        got = bytearray(f.stride * f.height)
        framebuf.FrameBuffer(got, w, f.height, framebuf.MONO_HLSB).blit(g, 0, 0)
        if bytes(got) != record(f, i):
            out["bad"].append([f.height, ch])
        out["checked"] += 1

fb = framebuf.FrameBuffer(bytearray(400 * 64 // 8), 400, 64, framebuf.MONO_HLSB)
f = fonts[1]
cp = ord("服")
f.slot(cp)
micropython.heap_lock()
try:
    i = f.slot(cp)  # a hit
    fb.blit(f.bitmap(i), 10, 8, 1)
    out["heap_locked_ok"] = True
finally:
    micropython.heap_unlock()
print(json.dumps(out))
