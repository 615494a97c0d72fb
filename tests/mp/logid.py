# The log id: made once on a blank flash, found again from the record files'
# names whatever small file is lost, taken over by the first firmware's files,
# and new after a wipe.
import os
import sys

import vfs
from simday import fresh_flash

from firmware import log, record, storage
from firmware.storage import LFS_OPTS
from hw.sim.flash import FileBlockDev

IMG = sys.argv[1]
bd = fresh_flash(IMG, 64)
lg = log.Log("/f")
first_id = lg.log_id
assert 0 <= first_id < 1 << 32
for i in range(100):  # three rolls: segment and journal both hold records
    lg.append(record.RATING, 1 + i % 4, 0, 1, 1000 + i)
lg.ack(40)
names = sorted(os.listdir("/f/log"))
tail = "%08x" % first_id
assert "j" + tail in names, names
assert [n for n in names if n[0] == "s" and n.endswith(tail)], names

# every small file gone: the id is still on the flash, and so is every record
storage.remove("/f/log/state")
lg = log.Log("/f")
assert lg.log_id == first_id, (lg.log_id, first_id)
assert [r[0] for r in lg.records()] == list(range(1, 101))

# the first firmware's log: "j" and "s<seq>" take an id, keep their records
for n in os.listdir("/f/log"):
    if len(n) == 17:
        os.rename("/f/log/" + n, "/f/log/" + n[:9])
    elif len(n) == 9 and n[0] == "j":
        os.rename("/f/log/" + n, "/f/log/j")
lg = log.Log("/f")
upgraded = lg.log_id
assert [r[0] for r in lg.records()] == list(range(1, 101))
assert all(len(n) in (5, 9, 17) for n in os.listdir("/f/log")), os.listdir("/f/log")
assert log.Log("/f").log_id == upgraded

# a wiped flash: a new log, a new id, seqs from 1
vfs.umount("/f")
bd.f.close()
bd = fresh_flash(IMG, 64)
lg = log.Log("/f")
assert lg.log_id != upgraded
assert lg.append(record.BOOT) == 1
vfs.umount("/f")
bd.f.close()
bd = FileBlockDev(IMG, 64)
vfs.mount(vfs.VfsLfs2(bd, **LFS_OPTS), "/f")
assert log.Log("/f").log_id == lg.log_id
print("log ids", "%08x" % first_id, "%08x" % upgraded, "%08x" % lg.log_id)
print("PASS")
