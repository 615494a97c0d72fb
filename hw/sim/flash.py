# A flash chip kept in a host file, for the unix port (the virtual device's
# flash image; tests put it on tmpfs). Same block protocol as esp32.Partition:
# readblocks/writeblocks with offsets, ioctl 6 erases; like a partition it has
# no close (tests close the image file, self.f). littlefs may call it while the
# heap is locked (a file finalised during gc), so nothing here allocates.
import os

from micropython import const

_BLOCK = const(4096)
# erased flash, 64 bytes: an erase writes it 64 times (allocates nothing)
_FF = const(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")


class FileBlockDev:
    progs = erases = 0  # block programs and erases so far

    def __init__(self, path, blocks=384):
        try:
            size = os.stat(path)[6]
        except OSError:
            size = 0
        if size < blocks * _BLOCK:
            with open(path, "ab") as f:
                ff = b"\xff" * _BLOCK
                for _ in range(blocks - size // _BLOCK):
                    f.write(ff)
        self.blocks = blocks
        self.f = open(path, "r+b")

    def readblocks(self, block, buf, off=0):
        self.f.seek(block * _BLOCK + off)
        self.f.readinto(buf)

    def writeblocks(self, block, buf, off=None):
        f = self.f
        if off is None:  # erase first
            self.ioctl(6, block)
            off = 0
        self.progs += 1
        f.seek(block * _BLOCK + off)
        f.write(buf)

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return _BLOCK
        if op == 6:
            self.erases += 1
            self.f.seek(arg * _BLOCK)
            for _ in range(_BLOCK // 64):
                self.f.write(_FF)
        return 0
