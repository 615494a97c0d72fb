# Power cut at every flash write: replay a day's workload on littlefs over a
# flash that dies at write N, for every N; remount the same bytes and check
# that every acknowledged record is there, unchanged, and the log reads cleanly;
# and that the small files written on the way (the log's state at boot and ack,
# settings and roster as a sync pushes them, their last good copies) are each
# whole, or stood in for by their copy, and that a boot number never repeats.
import gc
import json
import os
import sys

import vfs
from cutdev import CutBlockDev
from daywork import Ms, boot, day
from simday import copy_file

from firmware import log, record, roster, settings, storage
from firmware.storage import LFS_OPTS
from hw.sim.flash import FileBlockDev

IMG = sys.argv[1]
TEMPLATE = IMG + ".tpl"
BLOCKS = 48
RATINGS = int(sys.argv[2]) if len(sys.argv) > 2 else 24
STEP = int(sys.argv[3]) if len(sys.argv) > 3 else 1
buf = bytearray(4096)


def copy(src, dst):
    copy_file(src, dst, buf)


def make_template():
    for p in (TEMPLATE, IMG):
        try:
            os.remove(p)
        except OSError:
            pass
    bd = FileBlockDev(TEMPLATE, BLOCKS)
    vfs.VfsLfs2.mkfs(bd, **LFS_OPTS)
    bd.f.close()


written = bytearray()  # every record whose append returned, in seq order


class WatchedLog(log.Log):
    def append(self, *args, **kw):
        start = self._jn * record.SIZE
        seq0 = self.seq
        seq = super().append(*args, **kw)
        # append may roll the journal; the bytes stay in the buffer until the next write
        if seq:
            written.extend(memoryview(self._jbuf)[start:start + (seq - seq0) * record.SIZE])
        return seq


def push(version):
    """What a sync that brings settings and a roster writes (App.push_config),
    then the last good copies the next boot makes (App._trusted)."""
    s = settings.validate({"window": "B01", "version": version})
    r = roster.dumps(version, [["0A1B2C3D", "SB0101", "x%d" % version]])
    storage.replace_all((("/f/roster.txt", r), ("/f/settings.json", json.dumps(s).encode())))
    for name in ("roster.txt", "settings.json"):
        storage.keep_copy("/f/" + name, "/f/" + name + ".good")


def run(die_at):
    """Boot, then a day; returns the number of flash writes it made."""
    copy(TEMPLATE, IMG)
    bd = CutBlockDev(IMG, BLOCKS, die_at)
    vfs.mount(vfs.VfsLfs2(bd, **LFS_OPTS), "/f")
    written[:] = b""
    try:
        lg = WatchedLog("/f")
        ms = Ms()
        push(1)
        core = boot(lg, ms)
        day(core, ms, RATINGS)
        lg.ack(lg.seq // 2)
        push(2)
        lg2 = None
        vfs.umount("/f")
        # a second boot on the same flash: seqs must go on increasing
        vfs.mount(vfs.VfsLfs2(bd, **LFS_OPTS), "/f")
        lg2 = WatchedLog("/f")
        core = boot(lg2, Ms(), None)
        day(core, Ms(), 3)
    except OSError:
        pass
    try:
        vfs.umount("/f")
    except OSError:
        pass
    bd.divert(IMG + ".scratch", copy)
    gc.collect()  # files littlefs still holds are finalised on the scratch copy
    bd.f.close()
    return bd.ops


def check(n):
    bd = FileBlockDev(IMG, BLOCKS)
    vfs.mount(vfs.VfsLfs2(bd, **LFS_OPTS), "/f")
    lg = log.Log("/f")
    last = 0
    count = len(written) // record.SIZE
    i = 0
    for r in lg.records():
        assert r[0] > last, "cut %d: seq %d after %d" % (n, r[0], last)
        last = r[0]
        if i < count and r[0] == record.seq_of(written, i * record.SIZE):
            assert record.pack(*r[:6]) == written[i * record.SIZE:(i + 1) * record.SIZE], \
                "cut %d: record %d changed" % (n, r[0])
            i += 1
    assert lg.corrupt == 0, "cut %d: %d corrupt records" % (n, lg.corrupt)
    boots = [r[2] | r[3] << 8 | r[4] << 16 for r in lg.records() if r[1] == record.BOOT]
    assert boots == sorted(set(boots)), "cut %d: boot numbers %r" % (n, boots)
    for name, load in (("settings.json", settings.load), ("roster.txt", roster.load)):
        path = "/f/" + name
        if storage.read(path) is not None and load(path)[1]:
            assert not load(path + ".good")[1], "cut %d: %s and its copy broken" % (n, name)
    assert i == count, "cut %d: acknowledged record %d lost" % (
        n, record.seq_of(written, i * record.SIZE))
    # the device goes on: the next record gets a larger seq
    top = max(lg.seq, record.seq_of(written, (count - 1) * record.SIZE) if count else 0)
    s = lg.append(record.BOOT, 0, 0, 0, 0)
    assert s > top, "cut %d: seq went back" % n
    vfs.umount("/f")
    bd.f.close()
    return count


make_template()
total = run(0)
check(0)
print("writes", total)
cuts = 0
acked = 0
for n in range(1, total + 1, STEP):
    run(n)
    acked += check(n)
    cuts += 1
print("cuts", cuts, "acknowledged", acked)
print("PASS")
