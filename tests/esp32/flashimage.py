# Writes a board's flash as `pingjia deploy` and `provision` leave it: a fresh
# littlefs on the vfs partition's image, then the files of a JSON list of
# [host path, path on the board].   micropython flashimage.py IMAGE LIST.json
import json
import os
import sys

import esp32
import vfs


def makedirs(path):
    """The folders of path (a file's), as mpremote's `fs cp` makes them."""
    cur = ""
    for part in path.strip("/").split("/")[:-1]:
        cur += "/" + part
        try:
            os.mkdir(cur)
        except OSError:
            pass  # there already


def main(image, listing):
    import world

    world.config()["flash"] = image
    bdev = esp32.flash()
    vfs.VfsLfs2.mkfs(bdev)
    with open(listing) as f:
        files = json.load(f)
    vfs.mount(vfs.VfsLfs2(bdev), "/board")
    buf = bytearray(4096)
    for src, dest in files:
        makedirs("/board/" + dest)
        with open(src, "rb") as a, open("/board/" + dest, "wb") as b:
            while True:
                n = a.readinto(buf)
                if not n:
                    break
                b.write(memoryview(buf)[:n])
    vfs.umount("/board")
    print("flashed", len(files))


main(sys.argv[1], sys.argv[2])
