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

# Measures in pixels, the 4.2" (_B) and the 2.9" (_S) panel's where they differ.
# Text sizes are written as numbers: they are the glyph file's sizes (16, 24,
# 32, 48 px), as fonts[px] names them.
_MARGIN_B = const(12)  # either side of a line that must fit the width
_MARGIN_S = const(6)
_ALERT_B = const(36)  # the alert band's height
_ALERT_S = const(20)
_ALERT_INSET = const(5)  # the warning sign inside the band, above and below
_ALERT_GAP = const(6)  # between the warning sign and the text
_ALERT_ROOM = const(8)  # the text's room: the width less the band's height and this
_HEADER_B = const(68)  # the black band with the window's name
_HEADER_S = const(30)
_TITLE_ROOM = const(16)  # the state's title: the width less this
_FRAME = const(6)  # the frame around 服务中, above and below the title
_FRAME_PAD_B = const(16)  # the frame, either side of the title
_FRAME_PAD_S = const(8)
_GAP_B = const(20)  # between the title and what is under it
_GAP_S = const(6)
_STAFF_NO_GAP = const(6)  # 4.2": between the name and the staff number
_LINE_MARGIN = const(4)  # 2.9": the staff line, either side
_LINE_GAP = const(16)  # 2.9": between the name and the number
_LINE_GAP_TIGHT = const(6)  # when the line is too long for _LINE_GAP
_LINE_MIN_X = const(2)
_NOTICE_X = const(10)  # the notice's bar, either side of the text
_NOTICE_PAD = const(2)  # and above and below it
_PROMPT_Y_B = const(6)  # the prompts' (invite, reason) first line
_PROMPT_Y_S = const(2)
_LINE1_B = const(8)  # their titles' first line, below _PROMPT_Y
_LINE1_S = const(0)
_LINE2_B = const(52)  # the invite's second line
_LINE2_S = const(26)
_KEYS_Y_B = const(100)  # the key grid, below _PROMPT_Y
_KEYS_Y_S = const(54)
_KEYS_END_B = const(8)  # the key grid ends this far above the bottom
_KEYS_END_S = const(2)
_KEY_GAP_B = const(10)  # between the keys and around them
_KEY_GAP_S = const(4)
_KEY_INSET = const(4)  # a key's number square from its left edge
_KEY_SQ_PAD = const(8)  # a key's number square: the text size and this
_KEY_SQ_MARGIN = const(4)  # and at most the key's height less this
_KEY_TEXT_X = const(10)  # a key's label after its square
_KEY_ROOM = const(22)  # a key's label: the key's width less this besides the square
_REASONS_Y_B = const(52)  # the reasons, below _PROMPT_Y
_REASONS_Y_S = const(30)
_RULE_X = const(20)  # the rule above the reasons, in from either side
_RULE_UP_B = const(6)  # the rule, above the reasons
_RULE_UP_S = const(3)
_REASONS_END_B = const(4)  # the reasons end this far above the bottom
_REASON_X_B = const(14)  # the reasons' number squares
_REASON_X_S = const(16)
_REASON_SQ_PAD = const(3)  # a reason's number square: the text with this around it
_REASON_TEXT_X = const(12)  # a reason's text after its square
_REASON_ROOM = const(18)  # a reason's text: the width less the square's x and this
_ROW_32 = const(40)  # 4.2": reason rows at least this high may take 32 px text
_THANKS_UP_B = const(16)  # the thank-you, above the centre
_THANKS_UP_S = const(10)
_HINT_GAP_B = const(16)  # the thank-you's hint under it
_HINT_GAP_S = const(6)


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
        # caches first, while the heap is whole; 16 px (names, small print) keeps 16: a
        # miss there is one index read, and the heap with the code in place is tight
        gc.collect()
        self.fonts = fonts = load(folder + "/pj.pjf", ((48, 16), (32, 32), (24, 24), (16, 16))
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

    # --- screens: one method a part of the screen, the 4.2" and the 2.9" each
    # with its own measures (the pairs of constants above)
    def draw(self, screen):
        name, f = screen
        bottom = self._alert(f.get("alert"))  # what is left above the alert band
        if name == "invite":
            self._invite(bottom)
        elif name == "reason":
            self._reason(bottom)
        elif name == "thanks":
            self._thanks(bottom)
        else:
            self._status(name, f, bottom)

    def _alert(self, alert):
        """A technician alert along the bottom, white on black, after a warning
        sign; returns the y where the band starts (the panel's height: no alert)."""
        fb = self.fb
        w = fb.width
        if not alert:
            return fb.height
        big = self.big
        msg = texts.get(alert, alert)
        bh = _ALERT_B if big else _ALERT_S
        top = fb.height - bh
        fb.fill_rect(0, top, w, bh, _INK)
        px = self.fit((msg,), (24, 16) if big else (16,), w - bh - _ALERT_ROOM)
        s = bh - 2 * _ALERT_INSET  # the warning sign's size
        x = (w - self.width(msg, px) - s - _ALERT_GAP) // 2
        self._warning(x, top + _ALERT_INSET, s)
        self.text(msg, x + s + _ALERT_GAP, top + (bh - px) // 2, px, _PAPER)
        return top

    def _warning(self, x, y, s):
        """A white triangle with a black "!", s pixels high, its top-left at (x, y)."""
        fb = self.fb
        for i in range(s):  # filled, one row at a time
            half = i // 2
            fb.fill_rect(x + s // 2 - half, y + i, 2 * half + 1, 1, _PAPER)
        fb.fill_rect(x + s // 2, y + s // 3, 1, s // 3, _INK)
        fb.fill_rect(x + s // 2, y + s - 3, 1, 1, _INK)

    def _number(self, label, x, y, sq, px):
        """The number of an "N text" label, white in a black square of sq pixels."""
        self.fb.fill_rect(x, y, sq, sq, _INK)
        # a slice: indexing a str interns the character as a qstr
        self.text(label[:1], x, y + (sq - px) // 2, px, _PAPER, sq)

    def _invite(self, bottom):
        """The prompt in two lines (split after the comma), then the four keys."""
        big = self.big
        w = self.fb.width
        y = _PROMPT_Y_B if big else _PROMPT_Y_S
        px = 32 if big else 24
        a, b = texts.get("invite").split("，", 1)
        self.text(a + "，", 0, y + (_LINE1_B if big else _LINE1_S), px, _INK, w)
        self.text(b, 0, y + (_LINE2_B if big else _LINE2_S), px, _INK, w)
        self._keys(y + (_KEYS_Y_B if big else _KEYS_Y_S), bottom)

    def _keys(self, y, bottom):
        """The key labels from y down to bottom in a 2x2 grid, each key's number in
        a black square, all at one size: the largest at which the longest fits."""
        fb = self.fb
        big = self.big
        gap = _KEY_GAP_B if big else _KEY_GAP_S
        cw = (fb.width - 3 * gap) // 2
        ch = (bottom - (_KEYS_END_B if big else _KEYS_END_S) - y - gap) // 2
        keys = texts.get("keys").split("|")
        px = self._kpx
        if px is None:
            px = self._kpx = self.fit(keys, (32, 24, 16) if big else (16,), cw - _KEY_ROOM, 1)
        sq = min(px + _KEY_SQ_PAD, ch - _KEY_SQ_MARGIN)
        for i, label in enumerate(keys):
            cx = gap + (i % 2) * (cw + gap)
            cy = y + (i // 2) * (ch + gap)
            fb.rect(cx, cy, cw, ch, _INK)
            self._number(label, cx + _KEY_INSET, cy + (ch - sq) // 2, sq, px)
            self.text(label[2:], cx + sq + _KEY_TEXT_X, cy + (ch - px) // 2, px)

    def _reason(self, bottom):
        """The question, a rule, then the reasons, numbered, one a row (some are long)."""
        fb = self.fb
        big = self.big
        w = fb.width
        y = _PROMPT_Y_B if big else _PROMPT_Y_S
        self.text(texts.get("reason"), 0, y + (_LINE1_B if big else _LINE1_S), 32 if big else 24,
                  _INK, w)
        top = y + (_REASONS_Y_B if big else _REASONS_Y_S)
        fb.fill_rect(_RULE_X, top - (_RULE_UP_B if big else _RULE_UP_S), w - 2 * _RULE_X, 1, _INK)
        items = texts.get("reasons").split("|")
        rh = (bottom - (_REASONS_END_B if big else 0) - top) // len(items)
        x0 = _REASON_X_B if big else _REASON_X_S
        px = self._rpx
        if px is None:
            sizes = (32, 24) if big and rh >= _ROW_32 else (24, 16) if big else (16,)
            px = self._rpx = self.fit(items, sizes, w - x0 - _REASON_ROOM, 1)
        sq = px + 2 * _REASON_SQ_PAD
        for i, label in enumerate(items):
            ry = top + i * rh + (rh - sq) // 2
            self._number(label, x0, ry, sq, px)
            self.text(label[2:], x0 + sq + _REASON_TEXT_X, ry + _REASON_SQ_PAD, px)

    def _thanks(self, bottom):
        big = self.big
        w = self.fb.width
        px = 48 if big else 32
        y = (bottom - px) // 2 - (_THANKS_UP_B if big else _THANKS_UP_S)
        self.text(texts.get("thanks"), 0, y, px, _INK, w)
        hint = texts.get("thanks_hint")
        if hint:
            self.text(hint, 0, y + px + (_HINT_GAP_B if big else _HINT_GAP_S), 24 if big else 16,
                      _INK, w)

    def _header(self, window):
        """The window's name, white in a black band across the top; returns its height."""
        fb = self.fb
        big = self.big
        w = fb.width
        label = (texts.window_label(window),)
        top = _HEADER_B if big else _HEADER_S
        fb.fill_rect(0, 0, w, top, _INK)
        px = self.fit(label, (48, 32, 16) if big else (24, 16), w - 2 * (_MARGIN_B if big else _MARGIN_S))
        self.text(label[0], 0, (top - px) // 2, px, _PAPER, w)
        return top

    def _status(self, name, f, bottom):
        """A window's state: the header, then its title (framed while serving) and
        under it the staff on duty, a notice or the state's hint, the block
        centred between the header and the bottom."""
        big = self.big
        w = self.fb.width
        top = self._header(f.get("window"))
        title = texts.get(name, name)
        tpx = self.fit((title,), (48, 32) if big else (32, 24), w - _TITLE_ROOM)
        staff = name in ("serving", "wait", "overtime") and f.get("staff_name")
        notice = f.get("notice")
        hint = texts.get(name + "_hint")
        if not big and bottom < self.fb.height:
            hint = None  # the 2.9" has room for the alert or the hint
        frame = _FRAME if name == "serving" else 0
        gap = _GAP_B if big else _GAP_S
        hgt = tpx + 2 * frame  # the block's height
        if staff:
            hgt += gap + (48 + _STAFF_NO_GAP + 32 if big else 32)
        elif notice:
            hgt += gap + (32 if big else 16) + 2 * _NOTICE_PAD
        elif hint:
            hgt += gap + (24 if big else 16)
        y = top + (bottom - top - hgt) // 2 + frame
        if frame:
            self._frame(title, tpx, y, frame)
        self.text(title, 0, y, tpx, _INK, w)
        y += tpx + frame + gap
        if staff:
            no = "%s %s" % (texts.get("staff_no"), f.get("staff_no") or "")
            if big:
                self._staff(staff, no, y)
            else:
                self._staff_line(staff, no, y, bottom)
        elif notice:
            self._notice(texts.get(notice, notice), y)
        elif hint:
            self.text(hint, 0, y, 24 if big else 16, _INK, w)

    def _frame(self, title, px, y, frame):
        """A double frame around the title at y: the window is open."""
        fb = self.fb
        tw = self.width(title, px)
        pad = _FRAME_PAD_B if self.big else _FRAME_PAD_S
        x = (fb.width - tw) // 2 - pad
        fb.rect(x, y - frame, tw + 2 * pad, px + 2 * frame, _INK)
        fb.rect(x + 1, y - frame + 1, tw + 2 * pad - 2, px + 2 * frame - 2, _INK)

    def _staff(self, name, no, y):
        """4.2": the name in the name font tripled (names must read from three
        metres), the staff number under it."""
        w = self.fb.width
        px = self.fit((name,), (48, 32, 16), w - 2 * _MARGIN_B)
        self.text(name, 0, y, px, _INK, w)
        self.text(no, 0, y + px + _STAFF_NO_GAP, 32, _INK, w)

    def _staff_line(self, name, no, y, bottom):
        """2.9": one line, the name doubled (name font) and the number at 24 px,
        each smaller when the line would not fit."""
        fb = self.fb
        w = fb.width
        room = w - 2 * _LINE_MARGIN
        npx, nopx = 32, 24
        if bottom < fb.height or self.width(name, 32) + self.width(no, 24) + _LINE_GAP > room:
            npx = 16  # a long name, or the alert banner needs the room
        if self.width(name, npx) + self.width(no, nopx) + _LINE_GAP > room:
            nopx = 16
        fits = self.width(name, npx) + self.width(no, nopx) + _LINE_GAP <= room
        gap = _LINE_GAP if fits else _LINE_GAP_TIGHT
        tw = self.width(name, npx) + gap + self.width(no, nopx)
        x = self.text(name, max(_LINE_MIN_X, (w - tw) // 2), y, npx) + gap
        self.text(no, x, y + (npx - nopx) // 2, nopx)

    def _notice(self, msg, y):
        """A notice (未登记的工牌), white on a black bar."""
        fb = self.fb
        w = fb.width
        px = 32 if self.big else 16
        tw = self.width(msg, px)
        fb.fill_rect((w - tw) // 2 - _NOTICE_X, y - _NOTICE_PAD, tw + 2 * _NOTICE_X,
                     px + 2 * _NOTICE_PAD, _INK)
        self.text(msg, 0, y, px, _PAPER, w)
