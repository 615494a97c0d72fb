"""The sync frame (firmware/frame.py) on CPython and on the real MicroPython."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware import frame, record

KEY = b"0123456789abcdef"


def recs(first: int, n: int) -> bytes:
    return b"".join(record.pack(first + i, record.RATING, 1 + i % 4, 0, 1, 1000 + i) for i in range(n))


def good(n: int = 2, nonce: int = 99) -> bytes:
    return frame.request(KEY, "dev-1", 0x1234ABCD, 3, 5, recs(5, n), 1, 2, nonce)


def keys(d: str) -> bytes | None:
    return KEY if d == "dev-1" else None


def reason(body: bytes, key_for=keys) -> str:
    with pytest.raises(frame.FrameError) as e:
        frame.parse_request(body, key_for)
    return e.value.reason


@given(st.binary(max_size=100), st.binary(max_size=300))
def test_hmac_equals_cpython_hmac(key, msg):
    assert frame.Hmac(key).digest(msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_micropython_agrees(mp):
    out = [json.loads(x) for x in mp("sync_frame.py").stdout.splitlines()]
    got = {k: v for d in out for k, v in d.items()}
    for key, msg, mac in got["hmac"]:
        assert hmac.new(bytes.fromhex(key), bytes.fromhex(msg), hashlib.sha256).hexdigest() == mac
    same = record.pack(5, record.RATING, 2, 0, 1, 1000) + record.pack(6, record.RATING, 4, 0, 1, 1001)
    assert bytes.fromhex(got["frame"]) == frame.request(KEY, "dev-1", 0x1234ABCD, 3, 5, same, 1, 2, 99)
    assert got["ok_parse_is_fine"] == "accepted"
    assert got["forged"] == "bad_mac"
    assert got["wrong_key"] == "bad_mac"
    assert got["truncated"] == "truncated"
    assert got["oversized"] == "oversized"
    assert got["huge"] == "oversized"
    assert got["bad_magic"] == "bad_magic"
    assert got["unknown"] == "unknown_device"
    assert got["answer"] == [6, 12345]
    assert got["replayed"] == "replayed"
    assert got["answer_truncated"] == "truncated"
    assert got["answer_forged"] == "bad_mac"


def test_header_budget():
    # the longest id: header and MAC within 64 bytes, 14 bytes a record
    f = frame.request(KEY, "a" * frame.ID_MAX, 0x1234ABCD, 1, 1, recs(1, 100))
    assert len(f) - 100 * record.SIZE <= 64  # design.md section 8
    with pytest.raises(frame.FrameError):
        frame.check_id("a" * (frame.ID_MAX + 1))


def test_request_round_trip():
    q = frame.parse_request(good(3), keys)
    assert (q.device, q.boot, q.first, q.count, q.settings_version, q.roster_version,
            q.nonce) == ("dev-1", 3, 5, 3, 1, 2, 99)
    assert q.records == recs(5, 3)
    assert frame.parse_request(frame.request(KEY, "dev-1", 0x1234ABCD, 1, 9, b""), keys).count == 0


def test_refusals():
    g = good()
    assert reason(g[:-1]) == "truncated"
    assert reason(g[:3]) == "truncated"
    assert reason(g + b"x") == "oversized"
    assert reason(b"PJ" + bytes(frame.frame_size(frame.ID_MAX, frame.MAX_RECORDS))) == "oversized"
    assert reason(b"GET / HTTP/1.1\r\n\r\n" + bytes(60)) == "bad_magic"
    assert reason(g[:2] + b"\x09" + g[3:]) == "bad_version"
    assert reason(g, lambda d: None) == "unknown_device"
    assert reason(g, lambda d: b"another key 16by") == "bad_mac"
    bad = bytearray(g)
    bad[40] ^= 0x80  # a record byte
    assert reason(bytes(bad)) == "bad_mac"
    # signed but broken records: bad CRC, seqs out of order
    r = bytearray(recs(5, 2))
    r[13] ^= 1
    assert reason(frame.request(KEY, "dev-1", 0x1234ABCD, 3, 5, bytes(r))) == "bad_record"
    swapped = recs(6, 1) + recs(5, 1)
    assert reason(frame.request(KEY, "dev-1", 0x1234ABCD, 3, 6, swapped)) == "bad_record"
    assert reason(frame.request(KEY, "dev-1", 0x1234ABCD, 3, 4, recs(5, 1))) == "bad_record"


def test_answer_bound_to_its_request():
    q1 = frame.parse_request(good(nonce=1), keys)
    q2 = frame.parse_request(good(nonce=2), keys)  # same records, new nonce: a new MAC
    assert q1.mac != q2.mac
    a1 = frame.answer(KEY, q1.mac, 6, 5000, None, b'{"version": 2, "staff": []}')
    hm = frame.Hmac(KEY)
    assert frame.parse_answer(a1, hm, q1.mac) == (6, 5000, None, b'{"version": 2, "staff": []}')
    for body, mac, why in ((a1, q2.mac, "replayed"), (a1[:-1], q1.mac, "truncated"),
                           (a1 + b"x", q1.mac, "oversized"),
                           (a1[:37] + b"\xff" + a1[38:], q1.mac, "bad_mac")):
        with pytest.raises(frame.FrameError) as e:
            frame.parse_answer(body, hm, mac)
        assert e.value.reason == why
    with pytest.raises(frame.FrameError):
        frame.parse_answer(a1, frame.Hmac(b"x" * 16), q1.mac)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_fuzz_random_bodies(body):
    try:
        frame.parse_request(b"PJ\x01" + body, keys)
    except frame.FrameError:
        pass
    try:
        frame.parse_request(body, keys)
    except frame.FrameError:
        pass


@settings(max_examples=400)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=4),
       st.integers(0, 200))
def test_fuzz_mutated_frames(flips, cut):
    g = good(4)
    b = bytearray(g)
    for pos, val in flips:
        if pos < len(b):
            b[pos] = val
    body = bytes(b[: len(b) - cut % 3])
    try:
        q = frame.parse_request(body, keys)
    except frame.FrameError:
        return
    assert body == g and q.count == 4  # only the untouched frame gets through
