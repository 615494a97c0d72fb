# The append-only record log on littlefs.
#
# New records go to a small journal file that littlefs keeps inline in its
# directory metadata, so a durable append costs about one flash program and
# no erase. Every _JREC records the journal is appended to the current segment
# file (named by its first seq) and emptied. A power cut between the two
# leaves records in both; readers skip seqs they have already seen.
#
# The log's id (32 random bits, made when a log starts on a blank or wiped
# flash) is in the name of every file that holds its records: the journal
# "j<id>" and the segments "s<first seq><id>", all in 8 hex digits. So it is
# found on the flash as long as any record is, whatever small file is lost, and
# costs no record and no write of its own. Files of the first firmware ("j",
# "s<first seq>") are renamed at boot, once.
#
# Records stay until the collector acks them; fully acked segments are
# deleted only when space runs low. When the partition is full, ratings are
# kept as per-hour counts in a small file (never dropped) and `full` is set
# so the sign can raise a technician alert.
import os

from firmware import forget, record, storage
from firmware.const import const

_JREC = const(30)  # records per journal before it is rolled into a segment
_JMAX = const(36)  # journal capacity (a batch may overshoot _JREC); 504 bytes stay inline
_SEG_RECS = const(4080)  # records per segment: 57120 B, 14 whole 4 KB blocks with littlefs pointers
_RESERVE_BLOCKS = const(8)  # kept free for settings, roster and the overflow file
_CHUNK = const(16)  # records read at a time (224 B of heap, read again for a sync)
_TIDY_BLOCKS = const(3 * _RESERVE_BLOCKS)  # fewer free blocks: acked segments go
_RESUME_BLOCKS = const(_RESERVE_BLOCKS + 4)  # a full log takes records again with these free
_HOUR_S = const(3600)
_COUNT_MAX = const(0xFFFF)  # an overflow record's count (arg | staff << 8)
_LOST = const(0xFF)  # an overflow record's level: records that were not ratings, lost
_ST_SIZE = const(6)  # os.stat(): the file's size
_F_BFREE = const(3)  # os.statvfs(): free blocks


class Log:
    def __init__(self, root):
        self.dir = root.rstrip("/") + "/log"
        storage.makedirs(self.dir)
        self._jbuf = bytearray(_JMAX * record.SIZE)
        self._rbuf = bytearray(_CHUNK * record.SIZE)
        # counters
        self.corrupt = 0  # records whose CRC failed when read
        self.writes = 0  # durable appends since open
        self.roll_errors = 0  # journal rolls that failed (the records stayed in the journal)
        from firmware import logopen  # once a boot: dropped after (sys.modules too)

        try:
            logopen.open_log(self)
        finally:
            forget("firmware.logopen")
        if self._jn >= _JREC:
            self._roll()
        self._check_space()

    def _seg_path(self, first):
        return "%s/s%08x%08x" % (self.dir, first, self.log_id)

    # ---- writing -------------------------------------------------------
    def append(self, kind, val=0, arg=0, staff=0, time=0, ticket=None):
        """Store one record durably, a rating or no_rating with its ticket chunks
        in the same write; returns its seq (0 if the log is full)."""
        if self.full:  # ratings become per-hour counts, anything else is counted lost
            o = self.over
            if kind == record.RATING or kind == record.NO_RATING:
                h = (time & record.REL) | ((time & ~record.REL) // _HOUR_S * _HOUR_S)
                key = "%d:%d" % (h, val if kind == record.RATING else 0)
                o["counts"][key] = o["counts"].get(key, 0) + 1
            else:
                o["lost"] = o["lost"] + 1
            storage.save_json(self._opath, o)
            return 0
        chunks = record.ticket_chunks(ticket) if ticket else ()
        if self._jn + len(chunks) + 1 > _JMAX:
            self._roll()  # the roll after the last append failed: now, or nothing is stored
        seq = self.seq
        start = off = self._jn * record.SIZE
        for c in chunks:
            seq += 1
            record.pack_into(self._jbuf, off, seq, record.TICKET, *c)
            off += record.SIZE
        seq += 1
        record.pack_into(self._jbuf, off, seq, kind, val, arg, staff, time)
        with open(self._jpath, "ab") as f:
            f.write(memoryview(self._jbuf)[start : off + record.SIZE])
        # durable from here
        self._jn += seq - self.seq
        self.seq = seq
        self.writes += 1
        if self._jn >= _JREC:
            try:
                self._roll()
            except (OSError, MemoryError):  # the records are safe in the journal; the
                self.roll_errors += 1  # next append rolls again (readers skip repeats)
        return seq

    def _roll(self):
        segs = self._segs
        try:
            n = os.stat(self._seg_path(segs[-1]))[_ST_SIZE] // record.SIZE if segs else _SEG_RECS
        except OSError:
            n = 0
        if n + self._jn > _SEG_RECS:
            segs.append(record.seq_of(self._jbuf, 0))
        with open(self._seg_path(self._segs[-1]), "ab") as f:
            f.write(memoryview(self._jbuf)[: self._jn * record.SIZE])
        with open(self._jpath, "wb"):
            pass
        self._jn = 0
        self._check_space()

    # ---- space ---------------------------------------------------------
    def _free_blocks(self):
        return os.statvfs(self.dir)[_F_BFREE]

    def _check_space(self):
        if self._free_blocks() >= _TIDY_BLOCKS:
            return
        self._free_acked()
        if self._free_blocks() < _RESERVE_BLOCKS:
            if not self.full:
                self.full = True
                self.over = {"counts": {}, "lost": 0}
                storage.save_json(self._opath, self.over)

    def _free_acked(self):
        # a segment is wholly acked when the next one starts at or below acked+1;
        # the last one when everything before the journal is acked
        segs = self._segs
        while segs and (self._segs[1] <= self.acked + 1 if len(segs) > 1
                        else self.acked >= self.seq - self._jn):
            storage.remove(self._seg_path(segs.pop(0)))

    def ack(self, seq):
        """The collector holds every record up to seq."""
        seq = min(seq, self.seq)
        if seq <= self.acked:
            return
        self.acked = seq
        storage.save_json(self._spath, {"boot": self.boot, "acked": self.acked})
        if self.full:
            self._free_acked()
            if self._free_blocks() < _RESUME_BLOCKS:
                return
            # space again: the counts come back as overflow records
            o = self.over
            self.full = False
            self.over = None
            for key, n in o["counts"].items():
                h, lvl = key.split(":")
                while n > 0:
                    c = min(n, _COUNT_MAX)
                    self.append(record.OVERFLOW, int(lvl), c & 0xFF, c >> 8, int(h))
                    n -= c
            if o["lost"]:
                lost = o["lost"]
                self.append(record.OVERFLOW, _LOST, lost & 0xFF, min(lost >> 8, 0xFF), 0)
            storage.remove(self._opath)

    def unsynced(self):
        n = self.seq - self.acked
        if self.over:
            n += sum(self.over["counts"].values())
        return n

    # ---- reading -------------------------------------------------------
    def _seg_records(self, first, since=0):
        """Valid records of one segment as tuples, from about seq since + 1 on."""
        try:
            f = open(self._seg_path(first), "rb")
        except OSError:
            return
        buf = self._rbuf
        # seqs rise by at least one a record along a segment, so every record
        # before one whose seq is at most since + 1 is older than since: start at
        # since + 1 - first (the segment's last record if that is past its end)
        # when the record there shows it, else (seqs jumped before it: a wiped
        # log's acked seq) from the start
        skip = since - first + 1
        with f:
            if skip > 0:
                skip = min(skip, f.seek(0, 2) // record.SIZE - 1)
                f.seek(max(skip, 0) * record.SIZE)
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                if skip > 0:
                    skip = 0
                    if not record.valid(buf) or record.seq_of(buf) > since + 1:
                        f.seek(0)
                        continue
                for off in range(0, n - n % record.SIZE, record.SIZE):
                    r = record.unpack(buf, off)
                    if r is None:
                        self.corrupt += 1
                    else:
                        yield r

    def records(self, since=0):
        """Every stored record with seq > since, oldest first, as
        (seq, kind, val, arg, staff, time, raw bytes)."""
        last = since
        segs = self._segs
        for i in range(len(segs)):
            if i + 1 < len(segs) and segs[i + 1] <= since + 1:
                continue
            for r in self._seg_records(segs[i], since):
                if r[0] > last:
                    last = r[0]
                    yield r
        jb = self._jbuf
        for i in range(self._jn):
            r = record.unpack(jb, i * record.SIZE)
            if r is not None and r[0] > last:
                last = r[0]
                yield r
