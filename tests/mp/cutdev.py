# A flash that dies at its Nth write (program or erase): a power cut.
# The cut program leaves its first half written (a torn write) and raises;
# later writes (files closed while unwinding, finalisers) never reach the chip.
from hw.sim.flash import FileBlockDev


class PowerCut(OSError):
    pass


class CutBlockDev(FileBlockDev):
    def __init__(self, path, blocks, die_at=0):
        super().__init__(path, blocks)
        self.path = path
        self.die_at = die_at
        self.ops = 0
        self.dead = False

    def _cut(self):
        self.ops += 1
        if self.die_at and self.ops >= self.die_at:
            self.dead = True
            return True
        return False

    def writeblocks(self, block, buf, off=None):
        if self.dead:
            return
        if off is None:
            self.ioctl(6, block)
            off = 0
        if self._cut():
            self.f.seek(block * 4096 + off)
            self.f.write(buf, 0, len(buf) // 2)
            raise PowerCut(5)
        super().writeblocks(block, buf, off)

    def ioctl(self, op, arg):
        if op == 6:
            if self.dead:
                return 0
            if self._cut():
                raise PowerCut(5)
        return super().ioctl(op, arg)

    def divert(self, scratch, copy):
        """After the cut: point this chip at a scratch copy, so files littlefs
        still holds can be finalised without touching the image under test."""
        self.f.close()
        copy(self.path, scratch)
        self.f = open(scratch, "r+b")
        self.dead = False
        self.die_at = 0
