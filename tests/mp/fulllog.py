# A full log: ratings beyond the space are kept as per-hour counts, never
# silently dropped; the sign raises log_full; acks free space and the counts
# come back as OVERFLOW records.
import os
import sys

from daywork import Ms, boot
from simday import fresh_flash

from firmware import log, record

IMG = sys.argv[1]
fresh_flash(IMG, 24)
lg = log.Log("/f")
ms = Ms()
core = boot(lg, ms)
core.badge("0A1B2C3D")
made = 0
extra = 0
levels = [0, 0, 0, 0, 0]
for i in range(20000):
    core.invite()
    core.key(1 + i % 4)
    if i % 4 == 3:
        core.key(2)
    levels[1 + i % 4] += 1
    made += 1
    ms.ms += 20000
    core.tick()
    if lg.full:
        extra += 1
        if extra >= 50:
            break
assert lg.full, "the log never filled"
name, f = core.current_screen()
assert f["alert"] == "log_full", f
stored = sum(1 for r in lg.records() if r[1] == record.RATING)
over = lg.over["counts"]
counted = sum(n for k, n in over.items() if not k.endswith(":0"))
assert stored + counted == made, (stored, counted, made)
assert lg.unsynced() >= counted
print("made", made, "stored", stored, "counted", counted, "seq", lg.seq)

# the collector acks everything: space comes back, counts become records
lg.ack(lg.seq)
assert not lg.full
core.tick()
core.invite()
core.key(1)
rows = [r for r in lg.records() if r[1] == record.OVERFLOW]
assert sum(r[3] | r[4] << 8 for r in rows if 0 < r[2] < 5) == counted, rows
assert "over" not in os.listdir("/f/log")
name, f = core.current_screen()
assert f["alert"] != "log_full", f
print("overflow records", len(rows))
print("PASS")
