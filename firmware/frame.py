# The sync frame: one format for every transport (Wi-Fi, BLE, USB), the same
# module on MicroPython and CPython (the collector parses what the device seals).
# Errors are short codes (FrameError.reason) that both sides test on.
#
# Request (device -> collector), little-endian:
#   0  magic   b"PJ"
#   2  version u8
#   3  idlen   u8 (1-10)
#   4  id      idlen bytes, [A-Za-z0-9._-]
#      log id u32, boot u16, first seq u32, count u16, settings version u16,
#      roster version u16, nonce u16
#      count raw 14-byte records (firmware/record.py), seqs increasing from first
#      HMAC-SHA256(key, everything before it), 32 bytes
# The header is at most 32 + 32 (MAC) = 64 bytes; a rating costs 14 bytes.
# Version 2 added the log id (firmware/log.py) in the same 22 fixed bytes:
# boot and nonce went from u32 to u16. The boot's whole number is on its BOOT
# record; the header's is the low 16 bits, and what makes a request unique is
# (log id, boot, nonce): the device counts nonces from a random start in every
# boot, and a boot number never repeats within a log, so 65536 requests a boot
# pass before a nonce could come back. Version 1 (no log id, boot and nonce
# u32) is still parsed: log_id None, the log a device had before it.
#
# Answer (collector -> device):
#   0  magic b"PA", version u8, flags u8 (1: settings, 2: roster)
#   4  echo  the request's MAC (binds the answer to that request: the nonce
#            makes every request unique, so an old answer never matches)
#  36  ack u32 (every record up to it is stored), time u32 (seconds since
#      2000 UTC, 0 unknown), settings length u16, roster length u16
#  48  settings JSON, roster text (firmware/roster.py), then HMAC-SHA256 over
#      all of it, 32 bytes
import struct
from hashlib import sha256

from firmware import record
from firmware.const import const

MAC_LEN = const(32)
ID_MAX = const(10)
MAX_RECORDS = const(1024)  # per frame taken; the device's link sends up to 64 (firmware/sync.py)
HEAD_FIXED = const(22)  # header bytes besides the id: the records start at HEAD_FIXED + idlen
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
_HDR_TAIL = const("<IHIHHHH")  # log id, boot, first, count, settings version, roster version, nonce
_HDR_V1 = const("<IIHHHI")  # boot, first, count, settings version, roster version, nonce
_ANS = const("<2sBB32sIIHH")  # magic .. roster length: the answer's fixed part
_ID_CHARS = const(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


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
        raise FrameError("bad_id", "1-10 of A-Z a-z 0-9 . _ -")
    return b


def frame_size(id_len, count):
    return HEAD_FIXED + id_len + count * record.SIZE + MAC_LEN


def seal_request(buf, hm, dev_id, log_id, boot, first, count, sver, rver, nonce):
    """Write the header and MAC around count records already placed at
    buf[HEAD_FIXED + len(dev_id):]; returns the frame's length. No allocation
    besides the MAC. boot and nonce: their low 16 bits go out."""
    n = len(dev_id)
    struct.pack_into("<2sBB", buf, 0, _REQUEST, _VERSION, n)
    buf[4 : 4 + n] = dev_id
    struct.pack_into(_HDR_TAIL, buf, 4 + n, log_id, boot & 0xFFFF, first, count, sver, rver,
                     nonce & 0xFFFF)
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
    hs = HEAD_FIXED + n
    version = _V1 if len(body) > 2 and body[2] == _V1 else _VERSION
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
    want = frame_size(n, count)  # a count over MAX_RECORDS: longer than any body taken
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


def answer(key, req_mac, ack, time, settings=None, roster=None):
    """The collector's signed answer to one request (bytes)."""
    s = settings or b""
    r = roster or b""
    flags = (_F_SETTINGS if settings is not None else 0) | (_F_ROSTER if roster is not None else 0)
    body = struct.pack(_ANS, _ANSWER, _V1, flags, req_mac, ack, time, len(s), len(r)) + s + r
    return body + Hmac(key).digest(body)


def parse_answer(body, hm, req_mac):
    """(ack, time, settings bytes or None, roster bytes or None) from an answer
    to the request whose MAC is req_mac. FrameError otherwise."""
    if len(body) > ANSWER_MAX:
        raise FrameError("oversized", "%d bytes" % len(body))
    _check(body, _ANSWER, _ANSWER_FIXED + MAC_LEN)
    _, _, flags, echo, ack, time, sl, rl = struct.unpack_from(_ANS, body)
    end = _ANSWER_FIXED + sl + rl
    _check(body, _ANSWER, end + MAC_LEN, True)
    if echo != bytes(req_mac):  # no secret here: the request's MAC went out in clear
        raise FrameError("replayed")
    mv = memoryview(body)
    if not same(hm.digest(mv[:end]), mv[end:]):
        raise FrameError("bad_mac")
    s = bytes(mv[_ANSWER_FIXED : _ANSWER_FIXED + sl]) if flags & _F_SETTINGS else None
    r = bytes(mv[_ANSWER_FIXED + sl : end]) if flags & _F_ROSTER else None
    return ack, time, s, r
