# Opening the log (firmware/log.py) after a boot: its id and files found on the flash,
# the first firmware's files renamed, the small state files checked, the journal's
# records kept or dropped, the boot number found. It runs once a boot: Log imports it
# for that and drops it after, so its code does not stay in the heap all day.
import os

from firmware import record, storage
from firmware.const import const

_SEG_NAME_LEN = const(17)  # "s", the first seq and the log id, 8 hex digits each
_OLD_SEG_LEN = const(9)  # "s" and the first seq: the first firmware's segments
_JNAME_LEN = const(9)  # "j" and the log id


def open_log(log):
    """What the flash holds, onto log: its id and files, the state and overflow
    files, the segments, the last seq and the journal's records, the boot number."""
    log.log_id = _find_id(log)
    log._jpath = "%s/j%08x" % (log.dir, log.log_id)
    log._spath = log.dir + "/state"
    log._opath = log.dir + "/over"
    # the small files are trusted only whole and of the shape this firmware
    # writes: else the records on flash are the truth (damaged names them
    # for the technician alert)
    log.damaged = None
    st = _load_small(log, log._spath)
    try:
        log.acked = int(st["acked"]) if st else 0
        log.boot = int(st["boot"]) + 1 if st else 0
    except (KeyError, TypeError, ValueError):
        log.acked = log.boot = 0
    if st is not None and not log.boot:
        log.damaged = "log_state"
    o = _load_small(log, log._opath)  # {"counts": {...}, "lost": n}
    if o is not None and not (isinstance(o.get("counts"), dict)
                              and isinstance(o.get("lost"), int)):
        o = {"counts": {}, "lost": 0}  # the log was full; its counts are lost
        log.damaged = "log_counts"
    log.over = o
    log.full = log.over is not None  # before a roll checks the space
    log._segs = _find_segments(log)
    log.seq = _last_in_segments(log)
    log.corrupt = 0  # counted when the log is read, not at this scan
    log._jn = _load_journal(log)
    if not log.boot:  # no state: past the last boot on flash, never one again
        log.boot = _last_boot(log) + 1
        if log.seq:
            log.damaged = log.damaged or "log_state"  # lost: the records were there
    log.seq = max(log.seq, log.acked)  # seqs never go back, even after a wipe
    storage.save_json(log._spath, {"boot": log.boot, "acked": log.acked})


def _hex(text):
    try:
        int(text, 16)
        return True
    except ValueError:
        return False


def _load_small(log, path):
    """A small JSON object file: the dict, None if missing, {} if damaged."""
    try:
        obj = storage.load_json(path, None)
    except ValueError:
        obj = {}
    if obj is not None and not isinstance(obj, dict):
        obj = {}
    if obj == {}:
        log.damaged = "log_state" if path == log._spath else "log_counts"
    return obj

def _last_boot(log):
    """The number of the last BOOT record on flash (0: none): the journal,
    then the segments from the newest back, each read once at most."""
    last = 0
    for i in range(log._jn):
        r = record.unpack(log._jbuf, i * record.SIZE)
        if r and r[1] == record.BOOT:
            last = r[2] | r[3] << 8 | r[4] << 16
    for first in reversed(log._segs):
        if last:
            break
        for r in log._seg_records(first):
            if r[1] == record.BOOT:
                last = r[2] | r[3] << 8 | r[4] << 16
    log.corrupt = 0
    return last

def _find_id(log):
    """The log id from the journal's or the newest segment's name; a new one
    if no file has it (a blank or wiped flash, or the first firmware's log,
    whose files then take it)."""
    names = os.listdir(log.dir)
    found = None
    for name in names:
        try:
            if name[0] == "j" and len(name) == _JNAME_LEN:
                return int(name[1:], 16)
            if name[0] == "s" and len(name) == _SEG_NAME_LEN:
                if found is None or int(name[1:9], 16) > found[0]:
                    found = (int(name[1:9], 16), int(name[9:], 16))
        except ValueError:
            pass
    log_id = found[1] if found else int.from_bytes(os.urandom(4), "little")
    for name in names:  # the first firmware's files, or a cut in this renaming
        if name == "j":
            os.rename(log.dir + "/j", "%s/j%08x" % (log.dir, log_id))
        elif name[0] == "s" and len(name) == _OLD_SEG_LEN and _hex(name[1:]):
            os.rename(log.dir + "/" + name, "%s/%s%08x" % (log.dir, name, log_id))
    return log_id

def _find_segments(log):
    """The first seqs of this log's segment files, sorted."""
    segs = []
    tail = "%08x" % log.log_id
    for name in os.listdir(log.dir):
        if len(name) == _SEG_NAME_LEN and name[0] == "s" and name[9:] == tail:
            try:
                segs.append(int(name[1:9], 16))
            except ValueError:
                pass
    segs.sort()
    return segs

def _last_in_segments(log):
    """The last seq in the segments; an empty last segment (created, then a
    power cut before its data) is removed."""
    segs = log._segs
    seq = 0
    while segs and not seq:
        for r in log._seg_records(segs[-1]):
            seq = r[0]
        if not seq:
            storage.remove(log._seg_path(segs.pop()))
    return seq

def _load_journal(log):
    """Keep only the journal's records newer than the segments (a roll may have
    been cut after the segment got them and before the journal was emptied);
    moves log.seq on to the last of them and returns how many there are."""
    try:
        with open(log._jpath, "rb") as f:
            n = f.readinto(log._jbuf)
    except OSError:
        n = 0
    keep = 0
    jb = log._jbuf
    size = record.SIZE
    for i in range(n // size):
        off = i * size
        if not record.valid(jb, off):
            log.corrupt += 1
            continue
        s = record.seq_of(jb, off)
        if s <= log.seq:
            continue
        if off != keep * size:
            jb[keep * size : (keep + 1) * size] = jb[off : off + size]
        keep += 1
        log.seq = s
    if keep * size != n:
        with open(log._jpath, "wb") as f:
            f.write(memoryview(jb)[: keep * size])
    return keep
