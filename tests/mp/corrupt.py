# A corrupted flash block: the record's CRC catches it, the rest of the log survives.
import sys

import vfs
from simday import fresh_flash

from firmware import log, record
from firmware.storage import LFS_OPTS
from hw.sim.flash import FileBlockDev

IMG = sys.argv[1]
bd = fresh_flash(IMG, 48)
lg = log.Log("/f")
for i in range(300):
    lg.append(record.RATING, 1 + i % 4, 0, 1, 1000 + i)
target = record.pack(150, record.RATING, 1 + 149 % 4, 0, 1, 1000 + 149)
vfs.umount("/f")
bd.f.close()

# flip one bit of record 150 where it sits in the image (bit rot in a data block)
buf = bytearray(4096)
found = 0
with open(IMG, "r+b") as f:
    for blk in range(48):
        f.seek(blk * 4096)
        f.readinto(buf)
        i = buf.find(target) if hasattr(buf, "find") else bytes(buf).find(target)
        while i >= 0:
            f.seek(blk * 4096 + i + 9)
            f.write(bytes((buf[i + 9] ^ 0x10,)))
            found += 1
            i = bytes(buf).find(target, i + 1)
assert found >= 1, "record 150 not found in the image"

bd = FileBlockDev(IMG, 48)
vfs.mount(vfs.VfsLfs2(bd, **LFS_OPTS), "/f")
lg = log.Log("/f")
seqs = [r[0] for r in lg.records()]
assert 150 not in seqs, "a corrupt record was read as good"
assert seqs == [s for s in range(1, 301) if s != 150], "records around the bad one were lost"
assert lg.corrupt == 1, lg.corrupt
assert lg.seq == 300
assert lg.append(record.BOOT) == 301
print("corrupt", lg.corrupt, "kept", len(seqs))
print("PASS")
