# The packed roster on the device: a full window roster (254 staff, 4-, 7- and
# 10-byte UIDs, Chinese names) looked up and read back exactly, in little heap.
import gc

from firmware.roster import Roster, dumps

NAMES = "张伟王芳李娜刘洋陈静杨帆赵磊黄敏周杰吴刚徐丽孙强马超朱红胡军郭燕何平高峰林涛罗琳"


def uid(i):
    return ("%08X" % (0x0A000000 + i)) + ("" if i % 3 == 0 else "11223344AABB"[: 6 * (i % 3)])


def entry(i):
    return [uid(i), "SB%04d" % i, NAMES[i % 20] + NAMES[(i * 7) % 20 + 20]]


assert dumps(1, [entry(1)]) == ("PJR1 1 1\n%s\t%s\t%s\n" % tuple(entry(1))).encode()
buf = bytearray(b"PJR1 7\n")  # line by line: a list of 254 entries would not fit in 128 KB
for i in range(254):
    buf.extend(dumps(0, [entry(i)]).split(b"\n", 1)[1])
text = bytes(buf)
del buf
gc.collect()
a = gc.mem_alloc()
r = Roster(text)
n = len(text)
del text
gc.collect()
held = gc.mem_alloc() - a + n  # the roster alone, once the file's bytes are gone
print("roster_bytes", held)
assert held < 12 * 1024, held
assert r.version == 7 and r.count == 254
for i in range(254):
    e = entry(i)
    assert r.lookup(e[0]) == i + 1, (i, e)
    assert r.entry(i + 1) == tuple(e), (i, r.entry(i + 1), e)
assert r.lookup("0A000001") == 0  # the first 4 bytes of a 7-byte UID are not that UID
assert r.lookup("FFFFFFFF") == 0
assert r.entry(0) is None and r.entry(255) is None
BAD = (b"PJR1 1\n0A1B2C3D\tSB1\ta\tb\n", b"PJR1 1\n0A1B2C3D\tSB1\n", b"PJR1 1\n0A1B2C\tSB1\tx\n",
       b"PJR1 1\n0a1b2c3d\tSB1\tx\n", b'{"version": 1, "staff": []}', b"PJR1 1\n0A1B2C3D\tSB1\t\xff\n",
       b"PJR1 1\n" + b"0A1B2C3D\tSB1\tx\n" * 255, b"PJR1 1 2\n0A1B2C3D\tSB1\tx\n",
       b"PJR1 1 1\n0A1B2C3D\tSB1\tx")
for bad in BAD:
    try:
        Roster(bad)
    except ValueError as e:
        print("refused:", e)
    else:
        raise AssertionError(bad)
print("PASS")
