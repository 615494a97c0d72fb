# The sync frame on MicroPython: HMAC vectors and refusals, printed as JSON
# lines for the host test to compare with CPython.
import json
import sys

from firmware import frame, record

KEY = b"0123456789abcdef"


def hexs(b):
    return "".join("%02x" % x for x in b)


vectors = []
for key, msg in ((b"key", b"The quick brown fox jumps over the lazy dog"), (b"", b""),
                 (b"k" * 64, b"x" * 200), (b"K" * 100, b"msg"), (KEY, bytes(range(256)))):
    vectors.append([hexs(key), hexs(msg), hexs(frame.Hmac(key).digest(msg))])
print(json.dumps({"hmac": vectors}))

recs = record.pack(5, record.RATING, 2, 0, 1, 1000) + record.pack(6, record.RATING, 4, 0, 1, 1001)
good = frame.request(KEY, "dev-1", 0x1234ABCD, 3, 5, recs, 1, 2, 99)
print(json.dumps({"frame": hexs(good)}))


def refuse(name, body, key=KEY):
    try:
        frame.parse_request(body, lambda d: key if d == "dev-1" else None)
        print(json.dumps({name: "accepted"}))
    except frame.FrameError as e:
        print(json.dumps({name: e.reason}))


flipped = bytearray(good)
flipped[30] ^= 1
refuse("ok_parse_is_fine", good)
refuse("forged", bytes(flipped))
refuse("wrong_key", good, b"fedcba9876543210")
refuse("truncated", good[:-1])
refuse("oversized", good + b"\x00")
refuse("huge", b"PJ" + bytes(15000))
refuse("bad_magic", b"XX" + good[2:])
refuse("unknown", frame.request(KEY, "dev-2", 0x1234ABCD, 3, 5, recs))
q = frame.parse_request(good, lambda d: KEY)
ans = frame.answer(KEY, q.mac, 6, 12345, b'{"a":1}', None)
hm = frame.Hmac(KEY)
print(json.dumps({"answer": list(frame.parse_answer(ans, hm, q.mac)[:2])}))
other = frame.parse_request(frame.request(KEY, "dev-1", 0x1234ABCD, 3, 5, recs, 1, 2, 100), lambda d: KEY)
for name, body, mac in (("replayed", ans, other.mac), ("answer_truncated", ans[:-3], q.mac),
                        ("answer_forged", ans[:40] + b"\x07" + ans[41:], q.mac)):
    try:
        frame.parse_answer(body, hm, mac)
        print(json.dumps({name: "accepted"}))
    except frame.FrameError as e:
        print(json.dumps({name: e.reason}))
sys.exit(0)
