# Device-side flash bench on the real MicroPython unix port: bytes and flash
# operations per rating with the journal log, against a naive baseline (one
# littlefs file, append + flush per record) in the same process; key press to
# durable record; capacity of a 1.5 MB partition.
import gc
import sys
import time

import vfs
from simday import fresh_flash

from firmware import log, record

DIR = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 2000


def fresh(name, blocks=384):
    return fresh_flash(DIR + "/" + name, blocks, "/b")


def done(bd):
    vfs.umount("/b")
    bd.f.close()


# --- the log: journal + segments ---
bd = fresh("log.img")
lg = log.Log("/b")
bd.progs = bd.erases = 0
t0 = time.ticks_us()
for i in range(N):
    lg.append(record.RATING, 1 + i % 4, 0, 1, 1000 + i)
dt = time.ticks_diff(time.ticks_us(), t0)
log_progs, log_erases, log_us = bd.progs / N, bd.erases / N, dt / N
done(bd)

# --- baseline: one file, append + flush per record ---
bd = fresh("naive.img")
f = open("/b/naive", "ab")
rec = record.pack(1, record.RATING, 1, 0, 1, 1000)
bd.progs = bd.erases = 0
t0 = time.ticks_us()
for i in range(N):
    f.write(rec)
    f.flush()
dt = time.ticks_diff(time.ticks_us(), t0)
f.close()
base_progs, base_erases, base_us = bd.progs / N, bd.erases / N, dt / N
done(bd)

print("record_bytes", record.SIZE)
print("log_progs_per_rating %.3f" % log_progs)
print("log_erases_per_rating %.3f" % log_erases)
print("log_us_per_rating %.1f" % log_us)
print("naive_progs_per_rating %.3f" % base_progs)
print("naive_erases_per_rating %.3f" % base_erases)
print("naive_us_per_rating %.1f" % base_us)

# --- capacity of a 1.5 MB partition (384 x 4 KB blocks) ---
bd = fresh("cap.img")
lg = log.Log("/b")
n = 0
while not lg.full:
    lg.append(record.RATING, 1 + n % 4, 0, 1, 1000 + n)
    n += 1
    if n % 5000 == 0:
        gc.collect()
used = lg.seq
done(bd)
print("capacity_ratings", n)
print("flash_bytes_per_rating %.2f" % (1572864 / n))
