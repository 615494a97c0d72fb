# Draws a screen (name, fields) from Core.current_screen() into the sign's
# framebuffer, laid out for the 4.2" 400x300 and the 2.9" 296x128 panel.
# Colours follow the SSD168x RAM: 1 is white paper, 0 black ink.
import framebuf
from micropython import const

from firmware import texts

INK = const(0)
PAPER = const(1)
NAME_PX = const(16)  # the glyph file with all of GB2312 (names, window names)

FONT_FILES = {16: "pj16.pjf", 24: "pj24.pjf", 32: "pj32.pjf", 48: "pj48.pjf"}
# glyph cache slots per size: the longest line at that size fits, so
# measuring a line and then drawing it reads each glyph once
_SLOTS = {16: 16, 24: 12, 32: 12, 48: 8}


def font_sizes(height):
    """The glyph sizes a panel of this height draws with."""
    return (16, 24, 32, 48) if height >= 200 else (16, 24, 32)


def load_fonts(folder, sizes=(16, 24, 32, 48)):
    import gc

    from firmware.font import Font

    fonts = {}
    for s in sorted(sizes, reverse=True):  # the biggest caches while the heap is whole
        gc.collect()
        fonts[s] = Font("%s/%s" % (folder, FONT_FILES[s]), _SLOTS[s])
    return fonts


class Pen:
    """Text on a framebuffer: a size's glyph file, falling back to the name font
    scaled up for a character it lacks (a name in a large line), then to a box."""

    def __init__(self, fb, fonts):
        self.fb = fb
        self.fonts = fonts
        self.names = fonts[NAME_PX]
        # blit palettes: glyph bit 1 -> colour, 0 -> the other (the key: skipped)
        self._pal = []
        for c in (0, 1):
            p = framebuf.FrameBuffer(bytearray(1), 2, 1, framebuf.MONO_HLSB)
            p.pixel(0, 0, 1 - c)
            p.pixel(1, 0, c)
            self._pal.append(p)

    def width(self, s, px):
        f = self.fonts[px]
        w = 0
        for ch in s:
            cp = ord(ch)
            if f.slot(cp) >= 0:
                w += f.advance(cp)
            else:
                k = max(1, px // NAME_PX)
                w += self.names.advance(cp) * k
        return w

    def text(self, s, x, y, px, color=INK):
        """Draw s with its top-left at (x, y); returns the x after it."""
        fb = self.fb
        vis = getattr(fb, "visible", None)
        if vis is not None and not vis(y, px):
            return x + self.width(s, px)  # paged: the line is outside this band
        f = self.fonts[px]
        pal = self._pal[color]
        for ch in s:
            cp = ord(ch)
            i = f.slot(cp)
            if i >= 0:
                g, w = f.bitmap(i)
                fb.blit(g, x, y, 1 - color, pal)
                x += w
                continue
            k = max(1, px // NAME_PX)
            n = self.names
            i = n.slot(cp)
            if i < 0:  # in no glyph file: a box, never a crash
                w = n.advance(cp) * k
                fb.rect(x + k, y + k, w - 2 * k, px - 2 * k, color)
                x += w
                continue
            g, w = n.bitmap(i)
            oy = y + (px - NAME_PX * k) // 2
            if k == 1:
                fb.blit(g, x, oy, 1 - color, pal)
            else:
                for r in range(NAME_PX):
                    for c in range(w):
                        if g.pixel(c, r):
                            fb.fill_rect(x + c * k, oy + r * k, k, k, color)
            x += w * k
        return x

    def center(self, s, y, px, color=INK, x0=0, w=None):
        if w is None:
            w = self.fb_w - x0
        tw = self.width(s, px)
        # too long even at the smallest size: keep its start, clip the end
        self.text(s, x0 + max(0, (w - tw) // 2), y, px, color)
        return tw

    def fit(self, s, sizes, maxw):
        """The largest of sizes at which s fits in maxw pixels."""
        for px in sizes:
            if px in self.fonts and self.width(s, px) <= maxw:
                return px
        return sizes[-1]


class Layout:
    """Screens for one panel size. fb: where to draw, with width and height: the
    driver's canvas (the driver itself, or its band in paged mode)."""

    def __init__(self, fb, fonts):
        self.fb = fb
        self.w = fb.width
        self.h = fb.height
        self.big = self.h >= 200  # 4.2" 400x300, else 2.9" 296x128
        self.pen = Pen(fb, fonts)
        self.pen.fb_w = self.w
        self._sizes = {}  # label sizes chosen once (the texts are fixed)

    def _choose(self, items, sizes, room, square):
        """The largest size at which every "N text" item fits: text plus its
        numbered square (square: times the size) within room pixels."""
        pen = self.pen
        for p in sizes:
            ok = True
            for t in items:
                if pen.width(t.split(" ", 1)[1], p) + square * p > room:
                    ok = False
                    break
            if ok:
                return p
        return sizes[-1]

    # --- parts
    def _header(self, f):
        """Black band with the window's name, white."""
        fb, pen, w = self.fb, self.pen, self.w
        label = texts.window_label(f.get("window"))
        if self.big:
            fb.fill_rect(0, 0, w, 68, INK)
            px = pen.fit(label, (48, 32, 16), w - 24)
            pen.center(label, (68 - px) // 2, px, PAPER)
            return 68
        fb.fill_rect(0, 0, w, 30, INK)
        px = pen.fit(label, (24, 16), w - 12)
        pen.center(label, (30 - px) // 2, px, PAPER)
        return 30

    def _staff(self, f, y):
        """Staff name (name font, scaled on the big panel) and number."""
        if not f.get("staff_name"):
            return
        pen = self.pen
        name = f["staff_name"]
        no = "%s %s" % (texts.SIGN["staff_no"], f.get("staff_no") or "")
        if self.big:
            # the name font tripled: names must read from three metres
            px = pen.fit(name, (48, 32, 16), self.w - 24)
            pen.center(name, y, px)
            pen.center(no, y + px + 6, 32)
        else:
            # one line: the name doubled (name font) and the number at 24 px
            room = self.w - 8
            npx, nopx = 32, 24
            if f.get("alert") or pen.width(name, 32) + pen.width(no, 24) + 16 > room:
                npx = 16  # a long name, or the alert banner needs the room
            if pen.width(name, npx) + pen.width(no, nopx) + 16 > room:
                nopx = 16
            gap = 16 if pen.width(name, npx) + pen.width(no, nopx) + 16 <= room else 6
            tw = pen.width(name, npx) + gap + pen.width(no, nopx)
            x = pen.text(name, max(2, (self.w - tw) // 2), y, npx) + gap
            pen.text(no, x, y + (npx - nopx) // 2, nopx)

    def _banner(self, f):
        """Technician alert along the bottom, white on black; returns its top."""
        a = f.get("alert")
        if not a:
            return self.h
        fb, pen, w, h = self.fb, self.pen, self.w, self.h
        msg = texts.ALERTS.get(a, a)
        bh = 36 if self.big else 20
        top = h - bh
        fb.fill_rect(0, top, w, bh, INK)
        px = pen.fit(msg, (24, 16) if self.big else (16,), w - bh - 8)
        # a warning triangle with "!" before the text
        tw = pen.width(msg, px)
        s = bh - 10
        x = (w - tw - s - 6) // 2
        cy = top + 5
        for i in range(s):  # filled triangle, one row at a time
            half = i // 2
            fb.hline(x + s // 2 - half, cy + i, 2 * half + 1, PAPER)
        fb.vline(x + s // 2, cy + s // 3, s // 3, INK)
        fb.pixel(x + s // 2, cy + s - 3, INK)
        pen.text(msg, x + s + 6, top + (bh - px) // 2, px, PAPER)
        return top

    def _keys(self, items, y, bottom):
        """Key labels with the key number in a black square: a 2x2 grid."""
        fb, pen, w = self.fb, self.pen, self.w
        gap = 10 if self.big else 4
        cw = (w - 3 * gap) // 2
        ch = (bottom - y - gap) // 2
        # one size for all four labels: the largest at which the longest fits
        px = self._sizes.get("keys")
        if px is None:
            px = self._choose(items, (32, 24, 16) if self.big else (16,), cw - 22, 1)
            self._sizes["keys"] = px
        sq = min(px + 8, ch - 4)
        for i, label in enumerate(items):
            num, text = label.split(" ", 1)
            cx = gap + (i % 2) * (cw + gap)
            cy = y + (i // 2) * (ch + gap)
            fb.rect(cx, cy, cw, ch, INK)
            sy = cy + (ch - sq) // 2
            fb.fill_rect(cx + 4, sy, sq, sq, INK)
            pen.center(num, sy + (sq - px) // 2, px, PAPER, cx + 4, sq)
            pen.text(text, cx + sq + 10, cy + (ch - px) // 2, px)

    def _rows(self, items, y, bottom):
        """Numbered choices, one a row (the reasons: some are long)."""
        fb, pen = self.fb, self.pen
        n = len(items)
        rh = (bottom - y) // n
        x0 = 14 if self.big else 16
        px = self._sizes.get("rows")
        if px is None:
            sizes = (32, 24) if self.big and rh >= 40 else (24, 16) if self.big else (16,)
            px = self._choose(items, sizes, self.w - x0 - 18, 1)
            self._sizes["rows"] = px
        for i, label in enumerate(items):
            num, text = label.split(" ", 1)
            ry = y + i * rh + (rh - px - 6) // 2
            sq = px + 6
            fb.fill_rect(x0, ry, sq, sq, INK)
            pen.center(num, ry + 3, px, PAPER, x0, sq)
            pen.text(text, x0 + sq + 12, ry + 3, px)

    # --- screens
    def draw(self, screen):
        name, f = screen
        fb, pen = self.fb, self.pen
        fb.fill(PAPER)
        bottom = self._banner(f)
        big = self.big
        hint = texts.SIGN.get(name + "_hint")
        if name in ("invite", "reason"):
            title = texts.TITLES[name]
            y = 6 if big else 2
            if name == "invite":
                # two lines, split after the comma
                a, b = title.split("，", 1)
                px = 32 if big else 24
                pen.center(a + "，", y + (8 if big else 0), px)
                pen.center(b, y + (52 if big else 26), px)
                top = y + (100 if big else 54)
                self._keys(texts.KEYS, top, bottom - (8 if big else 2))
            else:
                px = 32 if big else 24
                pen.center(title, y + (8 if big else 0), px)
                top = y + (52 if big else 30)
                fb.hline(20, top - (6 if big else 3), self.w - 40, INK)
                self._rows(texts.REASONS, top, bottom - (4 if big else 0))
            return
        if name == "thanks":
            body = bottom
            px = 48 if big else 32
            y = (body - px) // 2 - (16 if big else 10)
            pen.center(texts.TITLES[name], y, px)
            if hint:
                pen.center(hint, y + px + (16 if big else 6), 24 if big else 16)
            return
        top = self._header(f)
        title = texts.TITLES.get(name, name)
        tpx = pen.fit(title, (48, 32) if big else (32, 24), self.w - 16)
        staff = name in ("serving", "wait", "overtime") and f.get("staff_name")
        notice = f.get("notice")
        if not big and bottom < self.h:
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
            tw = pen.width(title, tpx)
            pad = 16 if big else 8
            x = (self.w - tw) // 2 - pad
            fb.rect(x, y - frame, tw + 2 * pad, tpx + 2 * frame, INK)
            fb.rect(x + 1, y - frame + 1, tw + 2 * pad - 2, tpx + 2 * frame - 2, INK)
        pen.center(title, y, tpx)
        y += tpx + frame + gap
        if staff:
            self._staff(f, y)
        elif notice:
            msg = texts.NOTICES.get(notice, notice)
            npx = 32 if big else 16
            tw = pen.width(msg, npx)
            fb.fill_rect((self.w - tw) // 2 - 10, y - 2, tw + 20, npx + 4, INK)
            pen.center(msg, y, npx, PAPER)
        elif hint:
            pen.center(hint, y, 24 if big else 16)
