# Small helpers shared by the device-side tests and benches.
import os

import vfs

from hw.flashdev import LFS_OPTS, FileBlockDev


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


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
