# Draws a screen (name, fields) from Core.current_screen() on the sign's driver
# (hw/drivers/ssd168x.py), laid out for the 4.2" 400x300 and the 2.9" 296x128 panel.
# Colours follow the SSD168x RAM: 1 is white paper, 0 black ink. Text comes
# from a size's glyph file, falling back to the name font scaled up for a
# character it lacks (a name in a large line), then to a box.
import gc

from firmware import texts
from firmware.const import const
from firmware.font import load

_INK = const(0)
_PAPER = const(1)
_NAME = const(16)  # the glyph file with all of GB2312 (names, window names)
# blit palette of ink text: glyph bit 1 -> ink, 0 -> paper (the key: skipped);
# paper text needs none. (b"\x80", 2, 1, MONO_HLSB): a 2x1 frame, pixels 1, 0
_INV = const((b"\x80", 2, 1, 3))


def _cps(s):
    """The code points of s, from its UTF-8. (Iterating a str interns each character
    it meets as a qstr, for good: names drawn over the years would fill the heap.)"""
    b = s.encode()
    i = 0
    while i < len(b):
        c = b[i]
        n = 0 if c < 0x80 else 1 if c < 0xE0 else 2 if c < 0xF0 else 3
        c &= 0x7F >> n
        for j in range(i + 1, i + 1 + n):
            c = c << 6 | b[j] & 0x3F
        i += 1 + n
        yield c


class Layout:
    """Screens for one panel. fb: the driver, drawn on in whole-panel coordinates
    (blank white at each draw; a paged driver shifts each call to its band);
    folder: where the glyph file is (lib/pj.pjf)."""

    def __init__(self, fb, folder):
        self.fb = fb
        self.big = big = fb.height >= 200  # 4.2" 400x300, else 2.9" 296x128
        # glyph cache slots per size (9 bytes each): a screen's glyphs at that
        # size fit (the reasons take 32 at 32 px), so each band of a paged
        # frame finds them without a lookup in the file's index; the biggest
        # caches first, while the heap is whole
        gc.collect()
        self.fonts = fonts = load(folder + "/pj.pjf", ((48, 16), (32, 32), (24, 24), (16, 32))
                                  if big else ((32, 32), (24, 24), (16, 32)))
        self.names = fonts[_NAME]
        self._kpx = self._rpx = None  # label sizes, chosen once (the texts are fixed)

    # --- text
    def width(self, s, px):
        f = self.fonts[px]
        k = px // _NAME or 1
        w = 0
        for cp in _cps(s):
            i = f.slot(cp)
            w += f.widths[i] if i >= 0 else self.names.advance(cp) * k
        return w

    def text(self, s, x, y, px, color=_INK, w=0):
        """Draw s with its top-left at (x, y), or centred in the w pixels from x;
        returns the x after it."""
        fb = self.fb
        if y >= fb.oy + fb.rows or y + px <= fb.oy:
            return x + self.width(s, px)  # paged: the line is outside this band
        if w:
            # too long even at the smallest size: keep its start, clip the end
            x += max(0, (w - self.width(s, px)) // 2)
        f = self.fonts[px]
        n = self.names
        k = px // _NAME or 1
        pal = _INV if color == _INK else None
        for cp in _cps(s):
            i = f.slot(cp)
            if i >= 0:
                fb.blit(f.bitmap(i), x, y, 1 - color, pal)
                x += f.widths[i]
                continue
            i = n.slot(cp)
            if i < 0:  # in no glyph file: a box, never a crash
                w = n.advance(cp) * k
                fb.rect(x + k, y + k, w - 2 * k, px - 2 * k, color)
                x += w
                continue
            g = n.bitmap(i)
            w = n.widths[i]
            oy = y + (px - _NAME * k) // 2
            if k == 1:
                fb.blit(g, x, oy, 1 - color, pal)
            else:
                for r in range(_NAME):
                    for c in range(w):
                        if g.pixel(c, r):
                            fb.fill_rect(x + c * k, oy + r * k, k, k, color)
            x += w * k
        return x

    def fit(self, items, sizes, room, sq=0):
        """The largest of sizes at which each of items fits in room pixels
        (sq=1: items are "N text" labels, their text beside a numbered square
        as tall as the text)."""
        for px in sizes:
            for s in items:
                if self.width(s[2 * sq:], px) + sq * px > room:
                    break
            else:
                return px
        return sizes[-1]

    # --- screens
    def draw(self, screen):
        name, f = screen
        fb = self.fb
        w = fb.width
        h = fb.height
        big = self.big
        # a technician alert along the bottom, white on black (parts drawn once
        # a screen are inline here: a method costs heap)
        bottom = h
        a = f.get("alert")
        if a:
            msg = texts.get(a, a)
            bh = 36 if big else 20
            bottom -= bh
            fb.fill_rect(0, bottom, w, bh, _INK)
            px = self.fit((msg,), (24, 16) if big else (16,), w - bh - 8)
            # a warning triangle with "!" before the text
            tw = self.width(msg, px)
            s = bh - 10
            x = (w - tw - s - 6) // 2
            cy = bottom + 5
            for i in range(s):  # filled triangle, one row at a time
                half = i // 2
                fb.fill_rect(x + s // 2 - half, cy + i, 2 * half + 1, 1, _PAPER)
            fb.fill_rect(x + s // 2, cy + s // 3, 1, s // 3, _INK)
            fb.fill_rect(x + s // 2, cy + s - 3, 1, 1, _INK)
            self.text(msg, x + s + 6, bottom + (bh - px) // 2, px, _PAPER)
        hint = texts.get(name + "_hint")
        if name in ("invite", "reason"):
            title = texts.get(name)
            y = 6 if big else 2
            px = 32 if big else 24
            if name == "invite":
                # two lines, split after the comma
                a, b = title.split("，", 1)
                self.text(a + "，", 0, y + (8 if big else 0), px, _INK, w)
                self.text(b, 0, y + (52 if big else 26), px, _INK, w)
                # the key labels, the key number in a black square: a 2x2 grid
                y += 100 if big else 54
                gap = 10 if big else 4
                cw = (w - 3 * gap) // 2
                ch = (bottom - (8 if big else 2) - y - gap) // 2
                # one size for all four labels: the largest at which the longest fits
                keys = texts.get("keys").split("|")
                px = self._kpx
                if px is None:
                    px = self._kpx = self.fit(keys, (32, 24, 16) if big else (16,), cw - 22, 1)
                sq = min(px + 8, ch - 4)
                for i, label in enumerate(keys):
                    cx = gap + (i % 2) * (cw + gap)
                    cy = y + (i // 2) * (ch + gap)
                    fb.rect(cx, cy, cw, ch, _INK)
                    sy = cy + (ch - sq) // 2
                    fb.fill_rect(cx + 4, sy, sq, sq, _INK)
                    # a slice: indexing a str interns the character as a qstr
                    self.text(label[:1], cx + 4, sy + (sq - px) // 2, px, _PAPER, sq)
                    self.text(label[2:], cx + sq + 10, cy + (ch - px) // 2, px)
            else:
                self.text(title, 0, y + (8 if big else 0), px, _INK, w)
                top = y + (52 if big else 30)
                fb.fill_rect(20, top - (6 if big else 3), w - 40, 1, _INK)
                # the reasons, numbered, one a row (some are long)
                items = texts.get("reasons").split("|")
                rh = (bottom - (4 if big else 0) - top) // len(items)
                x0 = 14 if big else 16
                px = self._rpx
                if px is None:
                    sizes = (32, 24) if big and rh >= 40 else (24, 16) if big else (16,)
                    px = self._rpx = self.fit(items, sizes, w - x0 - 18, 1)
                sq = px + 6
                for i, label in enumerate(items):
                    ry = top + i * rh + (rh - px - 6) // 2
                    fb.fill_rect(x0, ry, sq, sq, _INK)
                    self.text(label[:1], x0, ry + 3, px, _PAPER, sq)
                    self.text(label[2:], x0 + sq + 12, ry + 3, px)
            return
        if name == "thanks":
            px = 48 if big else 32
            y = (bottom - px) // 2 - (16 if big else 10)
            self.text(texts.get(name), 0, y, px, _INK, w)
            if hint:
                self.text(hint, 0, y + px + (16 if big else 6), 24 if big else 16, _INK, w)
            return
        # the header: a black band with the window's name, white
        label = (texts.window_label(f.get("window")),)
        top = 68 if big else 30
        fb.fill_rect(0, 0, w, top, _INK)
        px = self.fit(label, (48, 32, 16) if big else (24, 16), w - (24 if big else 12))
        self.text(label[0], 0, (top - px) // 2, px, _PAPER, w)
        title = texts.get(name, name)
        tpx = self.fit((title,), (48, 32) if big else (32, 24), w - 16)
        staff = name in ("serving", "wait", "overtime") and f.get("staff_name")
        notice = f.get("notice")
        if not big and bottom < h:
            hint = None  # the 2.9" has room for the alert or the hint
        frame = 6 if name == "serving" else 0
        gap = 20 if big else 6
        # the block's height, centred between the header and the bottom
        hgt = tpx + 2 * frame
        if staff:
            hgt += gap + (48 + 6 + 32 if big else 32)
        elif notice:
            hgt += gap + (32 if big else 16) + 4
        elif hint:
            hgt += gap + (24 if big else 16)
        y = top + (bottom - top - hgt) // 2 + frame
        if frame:
            # the state in a frame: the window is open
            tw = self.width(title, tpx)
            pad = 16 if big else 8
            x = (w - tw) // 2 - pad
            fb.rect(x, y - frame, tw + 2 * pad, tpx + 2 * frame, _INK)
            fb.rect(x + 1, y - frame + 1, tw + 2 * pad - 2, tpx + 2 * frame - 2, _INK)
        self.text(title, 0, y, tpx, _INK, w)
        y += tpx + frame + gap
        if staff:
            # the staff name (name font, scaled) and number
            no = "%s %s" % (texts.get("staff_no"), f.get("staff_no") or "")
            if big:
                # the name font tripled: names must read from three metres
                px = self.fit((staff,), (48, 32, 16), w - 24)
                self.text(staff, 0, y, px, _INK, w)
                self.text(no, 0, y + px + 6, 32, _INK, w)
                return
            # one line: the name doubled (name font) and the number at 24 px
            room = w - 8
            npx, nopx = 32, 24
            if bottom < h or self.width(staff, 32) + self.width(no, 24) + 16 > room:
                npx = 16  # a long name, or the alert banner needs the room
            if self.width(staff, npx) + self.width(no, nopx) + 16 > room:
                nopx = 16
            gap = 16 if self.width(staff, npx) + self.width(no, nopx) + 16 <= room else 6
            tw = self.width(staff, npx) + gap + self.width(no, nopx)
            x = self.text(staff, max(2, (w - tw) // 2), y, npx) + gap
            self.text(no, x, y + (npx - nopx) // 2, nopx)
        elif notice:
            msg = texts.get(notice, notice)
            npx = 32 if big else 16
            tw = self.width(msg, npx)
            fb.fill_rect((w - tw) // 2 - 10, y - 2, tw + 20, npx + 4, _INK)
            self.text(msg, 0, y, npx, _PAPER, w)
        elif hint:
            self.text(hint, 0, y, 24 if big else 16, _INK, w)
