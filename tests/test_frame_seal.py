"""The answer's settings and roster travel sealed (firmware/frame.py): AES-256-CBC with a
key from the device's key, encrypt-then-MAC, a new IV for every answer; opened in place
by cryptolib on MicroPython (the same bytes as the host's cryptography package), and
what opening a full roster costs the 32-bit heap."""

from __future__ import annotations

import hashlib
import json

import pytest

from firmware import frame, record
from firmware import roster as roster_mod

KEY = b"0123456789abcdef"
SETTINGS = b'{"sync_url":"http://10.0.0.5:8080/api/v1/sync","window":"B01"}'


def full_roster() -> bytes:
    return roster_mod.dumps(7, [(f"{0x0A000000 + i:08X}", f"SB{i:04d}", "张伟" + str(i))
                                for i in range(1, 255)])


def request_mac(nonce: int = 5) -> bytes:
    return frame.request(KEY, "dev-1", 7, 1, 1, record.pack(1, record.RATING, 1, 0, 1, 1000),
                     nonce=nonce)[-32:]


def test_nothing_of_the_roster_or_settings_in_clear():
    roster = full_roster()
    mac = request_mac()
    ans = frame.answer(KEY, mac, 1, 2, SETTINGS, roster)
    for secret in (b"0A000001", "张伟1".encode(), b"SB0001", b"10.0.0.5", b"sync_url"):
        assert secret not in ans
    assert frame.parse_answer(ans, frame.Hmac(KEY), mac) == (1, 2, SETTINGS, roster)
    assert len(ans) == 48 + (len(SETTINGS) + len(roster) + 15) // 16 * 16 + 32
    # the same content for another request: other bytes (a new IV)
    other = request_mac(6)
    ans2 = frame.answer(KEY, other, 1, 2, SETTINGS, roster)
    assert ans2[48:80] != ans[48:80]
    # a flipped bit of the ciphertext: refused by the MAC before any decrypting
    bad = bytearray(ans)
    bad[60] ^= 1
    with pytest.raises(frame.FrameError) as e:
        frame.parse_answer(bytes(bad), frame.Hmac(KEY), mac)
    assert e.value.reason == "bad_mac"
    # the wrong key neither opens nor passes it
    with pytest.raises(frame.FrameError):
        frame.parse_answer(ans, frame.Hmac(b"x" * 16), mac)
    # no settings, no roster: nothing sealed, nothing padded
    plain = frame.answer(KEY, mac, 3, 4)
    assert len(plain) == 48 + 32 and frame.parse_answer(plain, frame.Hmac(KEY), mac) == (3, 4, None,
                                                                                  None)
    # opened in place in a bytearray, as the device reads it
    buf = bytearray(ans)
    assert frame.parse_answer(buf, frame.Hmac(KEY), mac)[3] == roster


@pytest.mark.parametrize("binary", ["unix64", "micropython32"])
def test_micropython_opens_and_seals_the_same(mp, tmp_path, binary):
    from pathlib import Path

    mac = request_mac()
    case = {"mac": mac.hex(), "small": frame.answer(KEY, mac, 9, 10, SETTINGS).hex(),
            "roster": frame.answer(KEY, mac, 11, 12, SETTINGS, full_roster()).hex()}
    p = tmp_path / "case.json"
    p.write_text(json.dumps(case))
    if binary == "micropython32":
        m32 = Path("/work/shared/tools/micropython32")
        if not m32.exists():
            pytest.fail("the 32-bit MicroPython (../shared/tools/micropython32) is missing")
        import subprocess

        from conftest import BUILD, mp_env

        r = subprocess.run([str(m32), "-X", "heapsize=256k", "-m", "frame_seal", str(p)],
                           capture_output=True, text=True, timeout=120, env=mp_env(),
                           cwd=str(BUILD))
        assert r.returncode == 0, r.stderr
        out = r.stdout
    else:
        out = mp("frame_seal.py", str(p), heap="256k").stdout  # the harness's hex input
    got = {k: v for line in out.splitlines() for k, v in json.loads(line).items()}
    def digest(b: bytes) -> str:
        return hashlib.sha256(b).hexdigest()

    assert got["small"] == [9, 10, digest(SETTINGS), None]
    assert got["roster"] == [11, 12, digest(SETTINGS), digest(full_roster())]
    assert got["flipped"] == "bad_mac"
    ack, t, s, r = frame.parse_answer(bytes.fromhex(got["mine"]), frame.Hmac(KEY), mac)
    assert (ack, t) == (7, 8) and b"10.0.0.5" in s and r.startswith(b"PJR1 3\n")
    assert b"10.0.0.5" not in bytes.fromhex(got["mine"])
    # opening a full roster's answer in place: a few small objects (digests, the AES
    # context, views), no second buffer of the answer's size
    size = len(case["roster"]) // 2
    assert got["roster_heap"] < 4096 < size, (got["roster_heap"], size)
    print(f"{binary}: heap to open a sealed {size}-byte 254-staff answer: "
          f"{got['roster_heap']} B besides the settings and roster it hands back")
