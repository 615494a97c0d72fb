# Small helpers shared by the device-side tests and benches.
import os

import vfs

from firmware.storage import LFS_OPTS
from hw.sim.flash import FileBlockDev


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def copy_file(src, dst, buf):
    """Copy src to dst through buf (a file bigger than the heap goes a buffer at a time)."""
    with open(src, "rb") as a, open(dst, "wb") as b:
        while True:
            n = a.readinto(buf)
            if not n:
                break
            b.write(buf, 0, n) if n < len(buf) else b.write(buf)


def fresh_flash(path, blocks, mountpoint="/f"):
    """A new littlefs image at path, formatted and mounted; its block device."""
    remove(path)
    bd = FileBlockDev(path, blocks)
    vfs.VfsLfs2.mkfs(bd, **LFS_OPTS)
    vfs.mount(vfs.VfsLfs2(bd, **LFS_OPTS), mountpoint)
    return bd


async def serve_one(board, i):
    """One citizen on the virtual board: 请评价, a key (every 4th a 不满意 and its
    reason), then 20 s until the next."""
    tb = board.timebase
    await board.press(4)  # 请评价
    await tb.advance(1500)
    await board.press(i % 4)
    if i % 4 == 3:
        await board.press(0)  # the reason
    await tb.advance(20000)
