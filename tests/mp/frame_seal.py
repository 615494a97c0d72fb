# The sealed answer on MicroPython: decrypt a host-made answer in place in its own
# buffer (as the link reads it), seal one here for the host to open, and measure what
# opening a full roster's answer costs the heap. Prints JSON lines (SHA-256 of what it
# opened: the roster itself would not fit a line on a small heap).
import gc
import json
import sys
from hashlib import sha256

from firmware import frame

KEY = b"0123456789abcdef"


def hexs(b):
    return "".join("%02x" % x for x in b)


with open(sys.argv[1]) as f:
    case = json.loads(f.read())
hm = frame.Hmac(KEY)
mac = bytes.fromhex(case["mac"])
for name in ("small", "roster"):
    raw = bytes.fromhex(case[name])
    body = bytearray(len(raw))
    body[:] = raw
    raw = None
    gc.collect()
    before = gc.mem_alloc()
    ack, t, s, r = frame.parse_answer(body, hm, mac)
    used = gc.mem_alloc() - before
    out = len(s or b"") + len(r or b"")  # the copies parse_answer hands back
    print(json.dumps({name: [ack, t, hexs(sha256(s).digest()) if s else None,
                             hexs(sha256(r).digest()) if r else None],
                      name + "_heap": used - out}))
    s = r = None
mine = frame.answer(KEY, mac, 7, 8, b'{"sync_url":"http://10.0.0.5/api/v1/sync"}',
                b"PJR1 3\n0A1B2C3D\tSB1\t\xe5\xbc\xa0\xe4\xbc\x9f\n")
print(json.dumps({"mine": hexs(mine)}))
flipped = bytearray(bytes.fromhex(case["small"]))
flipped[50] ^= 1
try:
    frame.parse_answer(flipped, hm, mac)
    print(json.dumps({"flipped": "accepted"}))
except frame.FrameError as e:
    print(json.dumps({"flipped": e.reason}))
