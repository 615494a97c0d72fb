# The sign's glyph files (lib/*.pjf, made by `pingjia fontgen`; format in
# host_tools/fontgen.py). A glyph is found through a small coarse index held in
# RAM and one 128-byte read of the file's index, then read into a slot of a
# small FIFO cache: the font itself never sits in RAM.
from array import array

try:
    import framebuf
    from micropython import const
except ImportError:  # CPython (host tools, tests): bitmaps as bytes only
    framebuf = None

    def const(x):
        return x

_HEADER = const(16)
_BLOCK = const(64)  # index entries per coarse step (one 128-byte read)


class Font:
    def __init__(self, path, slots=16):
        f = open(path, "rb")
        h = f.read(_HEADER)
        if h[:4] != b"PJF1":
            f.close()
            raise ValueError("not a PJF1 glyph file: %s" % path)
        self._f = f
        self.count = h[4] | h[5] << 8
        self.height = h[6]
        self.stride = h[7]
        self._rec = 1 + self.stride * self.height
        self._recs = _HEADER + 2 * self.count
        # coarse index: the code point at every _BLOCK-th entry
        n = (self.count + _BLOCK - 1) // _BLOCK
        self._coarse = array("H", bytes(2 * n))
        b2 = bytearray(2)
        for k in range(n):
            f.seek(_HEADER + 2 * k * _BLOCK)
            f.readinto(b2)
            self._coarse[k] = b2[0] | b2[1] << 8
        self._ibuf = bytearray(2 * _BLOCK)
        # the glyph cache: one buffer of slots, each seen by a FrameBuffer made once
        self.slots = slots
        self._keys = array("i", bytes(4 * slots))
        for i in range(slots):
            self._keys[i] = -1
        bm = self._rec - 1
        self._bm = bm
        self._cache = bytearray(slots * bm)
        self._widths = bytearray(slots)
        self._w1 = bytearray(1)
        mv = memoryview(self._cache)
        w = self.stride * 8
        self._fbs_mv = [mv[i * bm:(i + 1) * bm] for i in range(slots)]
        self._fbs = None
        if framebuf:
            self._fbs = [framebuf.FrameBuffer(m, w, self.height, framebuf.MONO_HLSB)
                         for m in self._fbs_mv]
        self._next = 0
        self.hits = 0
        self.misses = 0

    def cache_bytes(self):
        """RAM held by the glyph cache's bitmaps."""
        return self.slots * self._rec

    def close(self):
        self._f.close()

    def index(self, cp):
        """The glyph number of code point cp, or -1 when the font lacks it."""
        c = self._coarse
        lo, hi = 0, len(c) - 1
        if cp < c[0] or cp > 0xFFFF:
            return -1
        while lo < hi:  # last block starting at or below cp
            mid = (lo + hi + 1) >> 1
            if c[mid] <= cp:
                lo = mid
            else:
                hi = mid - 1
        first = lo * _BLOCK
        n = min(_BLOCK, self.count - first)
        f = self._f
        f.seek(_HEADER + 2 * first)
        b = self._ibuf
        f.readinto(b)
        lo, hi = 0, n - 1
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
        """Cache slot holding code point cp (loaded on a miss), or -1 if missing."""
        keys = self._keys
        for i in range(self.slots):
            if keys[i] == cp:
                self.hits += 1
                return i
        self.misses += 1
        g = self.index(cp)
        if g < 0:
            return -1
        i = self._next
        self._next = (i + 1) % self.slots
        f = self._f
        f.seek(self._recs + g * self._rec)
        f.readinto(self._w1)
        self._widths[i] = self._w1[0]
        f.readinto(self._fbs_mv[i])
        keys[i] = cp
        return i

    def advance(self, cp):
        """Width of code point cp in pixels (a missing one draws a box this wide)."""
        i = self.slot(cp)
        if i < 0:
            return self.height if cp > 0x7E else self.height // 2
        return self._widths[i]

    def has(self, cp):
        return self.index(cp) >= 0

    def bitmap(self, i):
        """(FrameBuffer, width) of cache slot i; ink pixels are 1."""
        return self._fbs[i], self._widths[i]

    def glyph(self, cp):
        """(width, MONO_HLSB bytes) of code point cp, or None when missing."""
        i = self.slot(cp)
        if i < 0:
            return None
        return self._widths[i], bytes(self._fbs_mv[i])
