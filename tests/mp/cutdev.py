# A flash that dies at its Nth write (program or erase): a power cut.
# The cut program leaves its first half written (a torn write).
from hw.flashdev import FileBlockDev


class PowerCut(OSError):
    pass


class CutBlockDev(FileBlockDev):
    def __init__(self, path, blocks, die_at=0):
        super().__init__(path, blocks)
        self.die_at = die_at
        self.ops = 0
        self.dead = False

    def _cut(self):
        self.ops += 1
        if self.dead or (self.die_at and self.ops >= self.die_at):
            self.dead = True
            return True
        return False

    def writeblocks(self, block, buf, off=None):
        if off is None:
            self.ioctl(6, block)
            off = 0
        if self._cut():
            self.f.seek(block * 4096 + off)
            self.f.write(buf, 0, len(buf) // 2)
            raise PowerCut(5)
        super().writeblocks(block, buf, off)

    def ioctl(self, op, arg):
        if op == 6 and self._cut():
            raise PowerCut(5)
        return super().ioctl(op, arg)
