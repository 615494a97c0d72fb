# Log.records(since) starts reading a segment near since + 1 (a seek, as a sync
# does), and from the segment's start when seqs jumped inside it (acked above
# the last seq after a lost journal): it yields what a full read filtered would.
#   logseek.py IMG
import sys

from simday import fresh_flash

from firmware import log, record, storage

fresh_flash(sys.argv[1], 64)
lg = log.Log("/f")
for i in range(100):
    lg.append(record.RATING, 1 + i % 4, 0, 1, 1000 + i)
# the collector acked up to 500: seqs go on from there, in the same segment
storage.save_json("/f/log/state", {"boot": lg.boot, "acked": 500})
lg = log.Log("/f")
for i in range(40):
    lg.append(record.RATING, 1, 0, 1, 2000 + i)
every = [r[0] for r in lg.records()]
assert len(every) == 140 and every[100] == 501, every
jumps = 0
for since in range(0, every[-1] + 2):
    got = [r[0] for r in lg.records(since)]
    assert got == [s for s in every if s > since], (since, got)
    jumps += since in (100, 250, 505)
print("checked", every[-1] + 2, "jumps", jumps)
print("PASS")
