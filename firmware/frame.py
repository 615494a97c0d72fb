# The sync frame: one format for every transport (Wi-Fi, BLE, USB), the same
# module on MicroPython and CPython (the collector parses what the device seals).
# Errors are short codes (FrameError.reason) that both sides test on.
#
# Request (device -> collector), little-endian:
#   0  magic   b"PJ"
#   2  version u8
#   3  idlen   u8 (1-8)
#   4  id      idlen bytes, [A-Za-z0-9._-]
#      log id u32, boot u16, first seq u32, count u16, settings version u16,
#      roster version u16, nonce u32 (next_nonce: the device's clock, or
#      bit 31 and noise while the clock is unknown)
#      count raw 14-byte records (firmware/record.py), seqs increasing from first
#      HMAC-SHA256(key, everything before it), 32 bytes
# The header is at most 24 + 8 (id) + 32 (MAC) = 64 bytes; a rating costs 14 bytes.
# Version 2 added the log id (firmware/log.py): boot went from u32 to u16 (the
# boot's whole number is on its BOOT record; the header's is the low 16 bits)
# and the fixed part from 22 to 24 bytes, so ids went from 10 to 8 characters
# to keep the header budget (design.md section 8). The nonce stays u32 and
# the device's clock: a counter of 16 bits would wrap within one long boot,
# and the collector's replay window (host_tools/collector/store.py) needs
# nonces that only increase. Version 1 (no log id, boot u32) is still parsed:
# log_id None, the log a device had before it.
#
# Answer (collector -> device):
#   0  magic b"PA", version u8, flags u8 (1: settings, 2: roster, 4: sealed)
#   4  echo  the request's MAC (binds the answer to that request: the nonce
#            makes every request unique, so an old answer never matches)
#  36  ack u32 (every record up to it is stored), time u32 (seconds since
#      2000 UTC, 0 unknown), settings length u16, roster length u16
#  48  settings JSON, roster text (firmware/roster.py); sealed: both together
#      AES-256-CBC encrypted, zero-padded to 16 bytes (badge UIDs, names and
#      the sync URL never cross the network in clear), then HMAC-SHA256 over
#      all of it, 32 bytes (encrypt, then MAC)
# The seal's key is HMAC(device key, "pingjia seal"), its IV the first 16 bytes
# of HMAC(device key, "iv" + the request's MAC): new for every answer, and
# known to no one without the key. On the device AES is cryptolib's, in place
# in the answer's buffer; on the host, the cryptography package's.
import struct
from hashlib import sha256

from firmware import record
from firmware.const import const

try:
    from cryptolib import aes as _aes  # MicroPython
except ImportError:  # CPython: the collector
    _aes = None

MAC_LEN = const(32)
ID_MAX = const(8)
MAX_RECORDS = const(1024)  # per frame taken; the device's link sends up to 64 (firmware/sync.py)
HEAD_FIXED = const(24)  # header bytes besides the id: the records start at HEAD_FIXED + idlen
ANSWER_MAX = const(65536)  # settings + roster (254 staff) fit well below this
_VERSION = const(2)  # requests
_V1 = const(1)  # requests without a log id; answers
_ANSWER_FIXED = const(48)
_F_SETTINGS = const(1)
_F_ROSTER = const(2)
_REQUEST = const(b"PJ")  # the magics
_ANSWER = const(b"PA")
_HMAC_BLOCK = const(64)  # SHA-256's block: keys longer than this are hashed first
_IPAD = const(0x36)  # RFC 2104's inner and outer pads
_OPAD = const(0x5C)
_F_SEALED = const(4)
_CBC = const(2)  # cryptolib's mode number
_SEAL_LABEL = const(b"pingjia seal")
_HDR_TAIL = const("<IHIHHHI")  # log id, boot, first, count, settings version, roster version, nonce
_HDR_V1 = const("<IIHHHI")  # boot, first, count, settings version, roster version, nonce
_V1_FIXED = const(22)  # a version 1 header's bytes besides the id
_ANS = const("<2sBB32sIIHH")  # magic .. roster length: the answer's fixed part
_ID_CHARS = const(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
NONCE_UNTIMED = const(0x80000000)  # nonce bit 31: made while the device's clock was unknown


class FrameError(ValueError):
    """A frame that cannot be taken: reason is a short code (bad_magic, bad_version,
    bad_id, truncated, oversized, unknown_device, bad_mac, bad_record, replayed);
    str() adds a short detail."""

    def __init__(self, reason, detail=""):
        super().__init__(reason + (" " + detail if detail else ""))
        self.reason = reason


class Hmac:
    """HMAC-SHA256 (RFC 2104) from hashlib.sha256: MicroPython has no hmac module.
    The padded keys are made once; each digest allocates two small hashers."""

    def __init__(self, key):
        if len(key) > _HMAC_BLOCK:
            key = sha256(key).digest()
        self._pads = p = bytearray(2 * _HMAC_BLOCK)  # inner pad, outer pad
        for n in range(_HMAC_BLOCK):
            k = key[n] if n < len(key) else 0
            p[n] = k ^ _IPAD
            p[_HMAC_BLOCK + n] = k ^ _OPAD

    def digest(self, msg):
        p = memoryview(self._pads)
        h = sha256(p[:_HMAC_BLOCK])
        h.update(msg)
        o = sha256(p[_HMAC_BLOCK:])
        o.update(h.digest())
        return o.digest()


def same(a, b):
    """Compare MACs in time independent of where they differ."""
    d = len(a) ^ len(b)
    for i in range(min(len(a), len(b))):
        d |= a[i] ^ b[i]
    return d == 0


def check_id(dev_id):
    """Device id as bytes; FrameError bad_id if it cannot go in a frame."""
    b = dev_id.encode() if isinstance(dev_id, str) else bytes(dev_id)
    if not 1 <= len(b) <= ID_MAX or b.strip(_ID_CHARS):  # left after the allowed ones
        raise FrameError("bad_id", "1-8 of A-Z a-z 0-9 . _ -")
    return b


def next_nonce(wall, last, noise):
    """A request's nonce. With the clock known (wall: seconds since 2000) it is the
    time, or one more than the last nonce when that is not earlier (several frames in
    a second), so a device's nonces only increase and the collector can tell an old
    frame from a new one; with the clock unknown (wall None) bit 31 and 31 bits of
    noise (4 random bytes), which the collector remembers for good."""
    if wall is None:
        return NONCE_UNTIMED | int.from_bytes(noise, "little") & 0x7FFFFFFF
    if last < NONCE_UNTIMED and wall <= last:
        return last + 1
    return wall & 0x7FFFFFFF


def frame_size(id_len, count):
    return HEAD_FIXED + id_len + count * record.SIZE + MAC_LEN


def seal_request(buf, hm, dev_id, log_id, boot, first, count, sver, rver, nonce):
    """Write the header and MAC around count records already placed at
    buf[HEAD_FIXED + len(dev_id):]; returns the frame's length. No allocation
    besides the MAC. boot: its low 16 bits go out."""
    n = len(dev_id)
    struct.pack_into("<2sBB", buf, 0, _REQUEST, _VERSION, n)
    buf[4 : 4 + n] = dev_id
    struct.pack_into(_HDR_TAIL, buf, 4 + n, log_id, boot & 0xFFFF, first, count, sver, rver,
                     nonce)
    end = HEAD_FIXED + n + count * record.SIZE
    buf[end : end + MAC_LEN] = hm.digest(memoryview(buf)[:end])
    return end + MAC_LEN


def request(key, dev_id, log_id, boot, first, records, sver=0, rver=0, nonce=0):
    """A whole request frame as bytes (host side, tests, BLE and USB pulls)."""
    dev_id = check_id(dev_id)
    hs = HEAD_FIXED + len(dev_id)
    buf = bytearray(hs + len(records) + MAC_LEN)
    buf[hs : hs + len(records)] = records
    n = seal_request(buf, Hmac(key), dev_id, log_id, boot, first, len(records) // record.SIZE,
                     sver, rver, nonce)
    return bytes(buf[:n])


class Request:
    """A request that parse_request took: device, log_id (None: a version 1
    frame), boot, first, count, settings_version, roster_version, nonce,
    records (count * 14 raw bytes), mac."""


def _check(body, magic, want, exact=False, version=_V1):
    """The checks requests and answers share: magic, version, and a length of at
    least (or exactly) want bytes."""
    n = len(body)
    if bytes(body[0:2]) != magic:
        raise FrameError("bad_magic")
    if n > 2 and body[2] != version:
        raise FrameError("bad_version")
    if n < want or exact and n > want:
        raise FrameError("truncated" if n < want else "oversized", "%d of %d bytes" % (n, want))


def parse_request(body, key_for):
    """Check a request frame; a Request. key_for(device id) gives the device's key
    or None. FrameError (see its reasons) if it cannot be taken."""
    if len(body) > frame_size(ID_MAX, MAX_RECORDS):
        raise FrameError("oversized", "%d bytes" % len(body))
    n = body[3] if len(body) > 3 else 0
    version = _V1 if len(body) > 2 and body[2] == _V1 else _VERSION
    hs = (_V1_FIXED if version == _V1 else HEAD_FIXED) + n
    _check(body, _REQUEST, hs + MAC_LEN, False, version)
    q = Request()
    q.device = check_id(bytes(body[4 : 4 + n])).decode()
    if version == _V1:
        q.log_id = None
        q.boot, q.first, count, q.settings_version, q.roster_version, q.nonce = \
            struct.unpack_from(_HDR_V1, body, 4 + n)
    else:
        (q.log_id, q.boot, q.first, count, q.settings_version, q.roster_version,
         q.nonce) = struct.unpack_from(_HDR_TAIL, body, 4 + n)
    q.count = count
    # a count over MAX_RECORDS: longer than any body taken
    want = hs + count * record.SIZE + MAC_LEN
    _check(body, _REQUEST, want, True, version)
    key = key_for(q.device)
    if key is None:
        raise FrameError("unknown_device", q.device)
    end = want - MAC_LEN
    mv = memoryview(body)
    q.mac = bytes(mv[end:])
    if not same(Hmac(key).digest(mv[:end]), q.mac):
        raise FrameError("bad_mac", q.device)
    last = q.first - 1
    for i in range(count):
        off = hs + i * record.SIZE
        seq = record.seq_of(body, off)
        # the first record's seq is first, and seqs only increase
        if not record.valid(body, off) or (seq != last + 1 if i == 0 else seq <= last):
            raise FrameError("bad_record", "record %d" % i)
        last = seq
    q.records = bytes(mv[hs:end])
    return q


def _seal(hm, req_mac, data, encrypt):
    """AES-256-CBC over data (a writable buffer, a multiple of 16 bytes), in place."""
    key = hm.digest(_SEAL_LABEL)
    iv = hm.digest(b"iv" + bytes(req_mac))[:16]
    if _aes is not None:
        c = _aes(key, _CBC, iv)
        if encrypt:
            c.encrypt(data, data)
        else:
            c.decrypt(data, data)
        return
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    c = Cipher(algorithms.AES(key), modes.CBC(iv))
    x = c.encryptor() if encrypt else c.decryptor()
    data[:] = x.update(bytes(data)) + x.finalize()


def answer(key, req_mac, ack, time, settings=None, roster=None):
    """The collector's signed answer to one request (bytes); settings and roster sealed."""
    s = settings or b""
    r = roster or b""
    flags = (_F_SETTINGS if settings is not None else 0) | (_F_ROSTER if roster is not None else 0)
    hm = Hmac(key)
    payload = bytearray(s + r)
    if payload:
        flags |= _F_SEALED
        payload += bytes(-len(payload) % 16)
        _seal(hm, req_mac, memoryview(payload), True)
    body = struct.pack(_ANS, _ANSWER, _V1, flags, req_mac, ack, time, len(s), len(r)) + payload
    return body + hm.digest(body)


def parse_answer(body, hm, req_mac):
    """(ack, time, settings bytes or None, roster bytes or None) from an answer
    to the request whose MAC is req_mac. FrameError otherwise. A sealed answer is
    decrypted in body itself when it is a bytearray (as the device reads it: no
    second buffer of the answer's size), else in a copy."""
    if len(body) > ANSWER_MAX:
        raise FrameError("oversized", "%d bytes" % len(body))
    _check(body, _ANSWER, _ANSWER_FIXED + MAC_LEN)
    _, _, flags, echo, ack, time, sl, rl = struct.unpack_from(_ANS, body)
    plain = _ANSWER_FIXED + sl + rl
    end = _ANSWER_FIXED + (sl + rl + 15) // 16 * 16 if flags & _F_SEALED else plain
    _check(body, _ANSWER, end + MAC_LEN, True)
    if echo != bytes(req_mac):  # no secret here: the request's MAC went out in clear
        raise FrameError("replayed")
    mv = memoryview(body)
    if not same(hm.digest(mv[:end]), mv[end:]):
        raise FrameError("bad_mac")
    if flags & _F_SEALED and end > _ANSWER_FIXED:
        if not isinstance(body, bytearray):
            mv = memoryview(bytearray(body))
        _seal(hm, req_mac, mv[_ANSWER_FIXED:end], False)
    s = bytes(mv[_ANSWER_FIXED : _ANSWER_FIXED + sl]) if flags & _F_SETTINGS else None
    r = bytes(mv[_ANSWER_FIXED + sl : plain]) if flags & _F_ROSTER else None
    return ack, time, s, r
