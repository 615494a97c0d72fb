# The sign's glyph file (lib/pj.pjf, made by `pingjia fontgen`: one PJF1 block
# a size, back to back; format in host_tools/sign/fontgen.py), open once for all
# fonts: a littlefs file object is 688 bytes of heap. A glyph is found through
# a small coarse index held in RAM and one 128-byte read of the file's index;
# a small FIFO cache keeps the
# glyph offset and width of the last code points looked up, so measuring a line
# and drawing it looks each glyph up once. A bitmap is read from the file into
# one buffer shared by all fonts when it is drawn: the font never sits in RAM.
from array import array

from firmware.const import const

try:
    import framebuf
except ImportError:  # CPython (host tools, tests): no drawing
    framebuf = None

_HEADER = const(16)
# a PJF1 block's header (host_tools/sign/fontgen.py): "PJF1", glyph count u16 at
# _H_COUNT, height in px at _H_PX, bytes per bitmap row at _H_STRIDE
_MAGIC = const(b"PJF1")
_H_COUNT = const(4)
_H_PX = const(6)
_H_STRIDE = const(7)
_GLYPH_FIXED = const(3)  # a glyph's bytes besides its bitmap: its index entry (u16), its width
_KEY_BYTES = const(8)  # a cache slot's two 32-bit numbers
_SLOT_BYTES = const(9)  # a cache slot's RAM: those and its width byte
_BMP_MAX = const(0xFFFF)  # fonts hold code points of the Basic Multilingual Plane
_ASCII_MAX = const(0x7E)  # a missing character up to this is half as wide as it is high
_BLOCK = const(64)  # index entries per coarse step (one 128-byte read)
_ibuf = bytearray(2 * _BLOCK)  # one index block: fonts look up one at a time
_gbuf = bytearray(0)  # the glyph being drawn, shared by fonts (see bitmap)


def load(path, slots):
    """{px: Font} of the glyph file at path for slots, ((px, glyph cache slots), ...),
    made in that order."""
    f = open(path, "rb")
    at = {}  # px -> where its block starts
    end = f.seek(0, 2)
    base = 0
    while base < end:
        f.seek(base)
        h = f.read(_HEADER)
        if h[:4] != _MAGIC:
            f.close()
            raise ValueError("no PJF1 glyph block at %d of %s" % (base, path))
        at[h[_H_PX]] = base
        count = h[_H_COUNT] | h[_H_COUNT + 1] << 8
        base += _HEADER + count * (_GLYPH_FIXED + h[_H_PX] * h[_H_STRIDE])
    fonts = {}
    for px, n in slots:
        if px not in at:
            raise ValueError("no %d px font in %s" % (px, path))
        fonts[px] = Font(f, n, at[px])
    return fonts


class Font:
    def __init__(self, f, slots=16, base=0):
        """f: the glyph file, open; this font's PJF1 block starts at base."""
        global _gbuf
        f.seek(base)
        h = f.read(_HEADER)
        self._f = f
        self._base = base = base + _HEADER  # the index; the glyph records follow it
        self.count = n = h[_H_COUNT] | h[_H_COUNT + 1] << 8
        self.height = h[_H_PX]
        self.stride = h[_H_STRIDE]  # bytes per bitmap row
        # coarse index: the code point at every _BLOCK-th entry
        self._coarse = c = array("H", bytes(2 * ((n + _BLOCK - 1) // _BLOCK)))
        b2 = memoryview(_ibuf)[:2]
        for k in range(len(c)):
            f.seek(base + 2 * k * _BLOCK)
            f.readinto(b2)
            c[k] = b2[0] | b2[1] << 8
        # the cache, per slot: code point (_keys[i]), glyph record offset (_keys[slots + i])
        # and width; one array for both numbers, and slots is len(widths)
        self._keys = k = array("i", bytes(_KEY_BYTES * slots))
        for i in range(slots):
            k[i] = -1
        self.widths = bytearray(slots)
        # instance attributes from the start: a cache hit allocates nothing
        self._next = self.hits = self.misses = 0
        if framebuf:
            bm = self.height * self.stride
            if len(_gbuf) < bm:  # a bigger font: a bigger shared buffer from now on
                _gbuf = bytearray(bm)
            self._g = framebuf.FrameBuffer(_gbuf, 8 * self.stride, self.height, framebuf.MONO_HLSB)

    def cache_bytes(self):
        """RAM held by the glyph cache's entries."""
        return _SLOT_BYTES * len(self.widths)

    def index(self, cp):
        """The glyph number of code point cp, or -1 when the font lacks it."""
        c = self._coarse
        lo, hi = 0, len(c) - 1
        if cp < c[0] or cp > _BMP_MAX:
            return -1
        while lo < hi:  # last block starting at or below cp
            mid = (lo + hi + 1) >> 1
            if c[mid] <= cp:
                lo = mid
            else:
                hi = mid - 1
        first = lo * _BLOCK
        f = self._f
        f.seek(self._base + 2 * first)
        b = _ibuf
        f.readinto(b)
        lo, hi = 0, min(_BLOCK, self.count - first) - 1
        while lo <= hi:
            mid = (lo + hi) >> 1
            v = b[2 * mid] | b[2 * mid + 1] << 8
            if v == cp:
                return first + mid
            if v < cp:
                lo = mid + 1
            else:
                hi = mid - 1
        return -1

    def slot(self, cp):
        """Cache slot of code point cp (looked up on a miss), or -1 if missing."""
        keys = self._keys
        n = len(self.widths)
        for i in range(n):
            if keys[i] == cp:
                self.hits += 1
                return i
        self.misses += 1
        g = self.index(cp)
        if g < 0:
            return -1
        i = self._next
        self._next = (i + 1) % n
        keys[i] = cp
        # where the glyph's record (width, then bitmap) starts
        keys[n + i] = g = self._base + 2 * self.count + g * (1 + self.stride * self.height)
        self._f.seek(g)
        self.widths[i] = self._f.read(1)[0]
        return i

    def advance(self, cp):
        """Width of code point cp in pixels (a missing one draws a box this wide)."""
        i = self.slot(cp)
        if i < 0:
            return self.height if cp > _ASCII_MAX else self.height // 2
        return self.widths[i]

    def bitmap(self, i):
        """A FrameBuffer with cache slot i's glyph read in (ink pixels are 1),
        valid until the next call on any font: they share its buffer."""
        self._f.seek(self._keys[len(self.widths) + i] + 1)
        self._f.readinto(self._g, self.stride * self.height)  # a FrameBuffer is a buffer
        return self._g
