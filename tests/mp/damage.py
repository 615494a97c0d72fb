# Damage one small file on a virtual device's flash image, as a power cut, bit
# rot or a newer firmware could leave it:
#   micropython damage.py IMG BLOCKS PATH missing|truncated|garbage|newer
import os
import sys

import vfs

from firmware.storage import LFS_OPTS
from hw.sim.flash import FileBlockDev

img, blocks, path, how = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
bd = FileBlockDev(img, blocks)
vfs.mount(vfs.VfsLfs2(bd, **LFS_OPTS), "/f")
full = "/f/" + path
with open(full, "rb") as f:
    data = f.read()
if how == "missing":
    os.remove(full)
else:
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "garbage":
        data = bytes((b * 7 + 13) & 0xFF for b in data)
    else:  # what a newer firmware might write: a format this one does not know
        data = b"PJR2 99\n\x01\x02" if path.endswith(".txt") else b'{"format": 2, "data": [1]}'
    with open(full, "wb") as f:
        f.write(data)
vfs.umount("/f")
print("PASS")
