# A flash chip kept in a host file, for the unix port (the virtual device's
# flash image; tests put it on tmpfs). Same block protocol as esp32.Partition:
# readblocks/writeblocks with offsets, ioctl 6 erases; like a partition it has
# no close (tests close the image file, self.f). littlefs may call it while the
# heap is locked (a file finalised during gc), so nothing here allocates.
import os

from micropython import const

_BLOCK = const(4096)
BLOCKS = const(384)  # 1.5 MB: the log's partition (design.md section 1)
# block device ioctls (vfs's protocol)
_BLOCK_COUNT = const(4)
_BLOCK_SIZE = const(5)
_BLOCK_ERASE = const(6)
_FF_LEN = const(64)  # the bytes of _FF
_ST_SIZE = const(6)  # os.stat(): the size
# erased flash, 64 bytes: an erase writes it 64 times (allocates nothing)
_FF = const(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")


def written(bd):
    """True if any block of bd holds something other than erased flash (0xFF)."""
    buf = bytearray(_BLOCK)
    for n in range(bd.blocks):
        bd.readblocks(n, buf)
        for b in buf:
            if b != 0xFF:
                return True
    return False


def keep_copy(path, to):
    """Copy the file at path to to, a block at a time."""
    buf = bytearray(_BLOCK)
    with open(path, "rb") as src, open(to, "wb") as dst:
        while True:
            n = src.readinto(buf)
            if not n:
                break
            dst.write(memoryview(buf)[:n])


class FileBlockDev:
    def __init__(self, path, blocks=BLOCKS):
        try:
            size = os.stat(path)[_ST_SIZE]
        except OSError:
            size = 0
        if size < blocks * _BLOCK:
            with open(path, "ab") as f:
                ff = b"\xff" * _BLOCK
                for _ in range(blocks - size // _BLOCK):
                    f.write(ff)
        self.blocks = blocks
        self.f = open(path, "r+b")
        # counters, set here: littlefs may write with the heap locked, when a
        # first `+= 1` could not add the attribute
        self.progs = 0  # block programs
        self.erases = 0  # block erases

    def readblocks(self, block, buf, off=0):
        self.f.seek(block * _BLOCK + off)
        self.f.readinto(buf)

    def writeblocks(self, block, buf, off=None):
        f = self.f
        if off is None:  # erase first
            self.ioctl(_BLOCK_ERASE, block)
            off = 0
        self.progs += 1
        f.seek(block * _BLOCK + off)
        f.write(buf)

    def ioctl(self, op, arg):
        if op == _BLOCK_COUNT:
            return self.blocks
        if op == _BLOCK_SIZE:
            return _BLOCK
        if op == _BLOCK_ERASE:
            self.erases += 1
            self.f.seek(arg * _BLOCK)
            for _ in range(_BLOCK // _FF_LEN):
                self.f.write(_FF)
        return 0
