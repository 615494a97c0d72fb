# The sync frame: one format for every transport (Wi-Fi, BLE, USB), the same
# module on MicroPython and CPython.
#
# Request (device -> collector), little-endian:
#   0  magic   b"PJ"
#   2  version u8
#   3  idlen   u8 (1-10)
#   4  id      idlen bytes, [A-Za-z0-9._-]
#      boot u32, first seq u32, count u16, settings version u16,
#      roster version u16, nonce u32
#      count raw 14-byte records (firmware/record.py), seqs increasing from first
#      HMAC-SHA256(key, everything before it), 32 bytes
# The header is at most 32 + 32 (MAC) = 64 bytes; a rating costs 14 bytes.
#
# Answer (collector -> device):
#   0  magic b"PA", version u8, flags u8 (1: settings, 2: roster)
#   4  echo  the request's MAC (binds the answer to that request: the nonce
#            makes every request unique, so an old answer never matches)
#  36  ack u32 (every record up to it is stored), time u32 (seconds since
#      2000 UTC, 0 unknown), settings length u16, roster length u16
#  48  settings JSON, roster JSON, then HMAC-SHA256 over all of it, 32 bytes
import struct
from hashlib import sha256

from firmware.record import SIZE as REC
from firmware.record import const, valid

MAGIC = b"PJ"
MAGIC_ANSWER = b"PA"
VERSION = const(1)
MAC_LEN = const(32)
ID_MAX = const(10)
MAX_RECORDS = const(1024)  # per frame; the device sends up to 256
HEADER_MAX = const(64)  # including the MAC
ANSWER_FIXED = const(48)
ANSWER_MAX = const(65536)  # settings + roster (254 staff) fit well below this
F_SETTINGS = const(1)
F_ROSTER = const(2)
_HDR_TAIL = "<IIHHHI"  # boot, first, count, settings version, roster version, nonce
_TAIL = const(18)
_ANS = "<IIHH"  # ack, time, settings length, roster length
_ID_CHARS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"


class FrameError(ValueError):
    """A frame that cannot be taken: reason is a short code (see REASONS), str()
    adds a short detail. Terse: every string is a qstr in the device's RAM."""

    def __init__(self, reason, detail=""):
        super().__init__(reason + (" " + detail if detail else ""))
        self.reason = reason


class Hmac:
    """HMAC-SHA256 (RFC 2104) from hashlib.sha256: MicroPython has no hmac module.
    The padded keys are made once; each digest allocates two small hashers."""

    def __init__(self, key):
        if len(key) > 64:
            key = sha256(key).digest()
        k = bytearray(64)
        k[: len(key)] = key
        self._ipad = bytes(b ^ 0x36 for b in k)
        self._opad = bytes(b ^ 0x5C for b in k)

    def digest(self, *parts):
        h = sha256(self._ipad)
        for p in parts:
            h.update(p)
        o = sha256(self._opad)
        o.update(h.digest())
        return o.digest()


def hmac_sha256(key, msg):
    return Hmac(key).digest(msg)


def same(a, b):
    """Compare MACs in time independent of where they differ."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


def check_id(dev_id):
    """Device id as bytes; FrameError if it cannot go in a frame."""
    b = dev_id.encode() if isinstance(dev_id, str) else bytes(dev_id)
    if not 1 <= len(b) <= ID_MAX:
        raise FrameError("bad_id", "1-%d chars" % ID_MAX)
    for c in b:
        if c not in _ID_CHARS:
            raise FrameError("bad_id", "A-Z a-z 0-9 . _ - only")
    return b


def header_size(id_len):
    """Bytes before the records (without the MAC)."""
    return 4 + id_len + _TAIL


def frame_size(id_len, count):
    return header_size(id_len) + count * REC + MAC_LEN


def seal_request(buf, hm, dev_id, boot, first, count, sver, rver, nonce):
    """Write the header and MAC around count records already placed at
    buf[header_size(len(dev_id)):]; returns the frame's length. No allocation
    besides the MAC."""
    n = len(dev_id)
    buf[0:2] = MAGIC
    buf[2] = VERSION
    buf[3] = n
    buf[4 : 4 + n] = dev_id
    struct.pack_into(_HDR_TAIL, buf, 4 + n, boot, first, count, sver, rver, nonce)
    end = header_size(n) + count * REC
    mv = memoryview(buf)
    buf[end : end + MAC_LEN] = hm.digest(mv[:end])
    return end + MAC_LEN


def request(key, dev_id, boot, first, records, sver=0, rver=0, nonce=0):
    """A whole request frame as bytes (host side, tests, BLE and USB pulls)."""
    dev_id = check_id(dev_id)
    count = len(records) // REC
    hs = header_size(len(dev_id))
    buf = bytearray(hs + len(records) + MAC_LEN)
    buf[hs : hs + len(records)] = records
    n = seal_request(buf, Hmac(key), dev_id, boot, first, count, sver, rver, nonce)
    return bytes(buf[:n])


class Request:
    def __init__(self, dev_id, boot, first, count, sver, rver, nonce, records, mac):
        self.device = dev_id
        self.boot = boot
        self.first = first
        self.count = count
        self.settings_version = sver
        self.roster_version = rver
        self.nonce = nonce
        self.records = records  # count * 14 raw bytes
        self.mac = mac

    def record(self, i):
        return self.records[i * REC : (i + 1) * REC]


def peek_id(body):
    """The device id a request claims (not yet authenticated)."""
    if len(body) < 4:
        raise FrameError("truncated", "%d bytes" % len(body))
    if bytes(body[0:2]) != MAGIC:
        raise FrameError("bad_magic")
    if body[2] != VERSION:
        raise FrameError("bad_version", "%d" % body[2])
    n = body[3]
    if not 1 <= n <= ID_MAX:
        raise FrameError("bad_id", "length %d" % n)
    if len(body) < header_size(n) + MAC_LEN:
        raise FrameError("truncated", "%d bytes" % len(body))
    raw = bytes(body[4 : 4 + n])
    for c in raw:
        if c not in _ID_CHARS:
            raise FrameError("bad_id")
    return raw.decode()


def parse_request(body, key_for):
    """Check a request frame. key_for(device id) gives the device's key or None.
    Raises FrameError: bad_magic, bad_version, bad_id, truncated, oversized,
    unknown_device, bad_mac, bad_record."""
    if len(body) > frame_size(ID_MAX, MAX_RECORDS):
        raise FrameError("oversized", "%d bytes" % len(body))
    dev_id = peek_id(body)
    n = len(dev_id)
    boot, first, count, sver, rver, nonce = struct.unpack_from(_HDR_TAIL, body, 4 + n)
    if count > MAX_RECORDS:
        raise FrameError("oversized", "%d records" % count)
    want = frame_size(n, count)
    if len(body) < want:
        raise FrameError("truncated", "%d of %d bytes" % (len(body), want))
    if len(body) > want:
        raise FrameError("oversized", "%d of %d bytes" % (len(body), want))
    key = key_for(dev_id)
    if key is None:
        raise FrameError("unknown_device", dev_id)
    end = want - MAC_LEN
    mv = memoryview(body)
    mac = bytes(mv[end:want])
    if not same(Hmac(key).digest(mv[:end]), mac):
        raise FrameError("bad_mac", dev_id)
    hs = header_size(n)
    last = first - 1
    for i in range(count):
        off = hs + i * REC
        if not valid(body, off):
            raise FrameError("bad_record", "CRC %d" % i)
        seq = struct.unpack_from("<I", body, off)[0]
        if (i == 0 and seq != first) or seq <= last:
            raise FrameError("bad_record", "seq %d" % i)
        last = seq
    return Request(dev_id, boot, first, count, sver, rver, nonce, bytes(mv[hs:end]), mac)


def answer(key, req_mac, ack, time, settings=None, roster=None):
    """The collector's signed answer to one request (bytes)."""
    s = settings or b""
    r = roster or b""
    flags = (F_SETTINGS if settings is not None else 0) | (F_ROSTER if roster is not None else 0)
    head = bytearray(ANSWER_FIXED)
    head[0:2] = MAGIC_ANSWER
    head[2] = VERSION
    head[3] = flags
    head[4 : 4 + MAC_LEN] = req_mac
    struct.pack_into(_ANS, head, 36, ack, time, len(s), len(r))
    body = bytes(head) + s + r
    return body + Hmac(key).digest(body)


def parse_answer(body, hm, req_mac):
    """(ack, time, settings bytes or None, roster bytes or None) from an answer
    to the request whose MAC is req_mac. FrameError otherwise."""
    if len(body) < ANSWER_FIXED + MAC_LEN:
        raise FrameError("truncated", "%d bytes" % len(body))
    if len(body) > ANSWER_MAX:
        raise FrameError("oversized", "%d bytes" % len(body))
    if bytes(body[0:2]) != MAGIC_ANSWER:
        raise FrameError("bad_magic")
    if body[2] != VERSION:
        raise FrameError("bad_version", "%d" % body[2])
    ack, time, sl, rl = struct.unpack_from(_ANS, body, 36)
    end = ANSWER_FIXED + sl + rl
    if len(body) != end + MAC_LEN:
        raise FrameError("truncated" if len(body) < end + MAC_LEN else "oversized",
                         "%d of %d bytes" % (len(body), end + MAC_LEN))
    mv = memoryview(body)
    if not same(mv[4 : 4 + MAC_LEN], req_mac):
        raise FrameError("replayed")
    if not same(hm.digest(mv[:end]), mv[end:]):
        raise FrameError("bad_mac")
    flags = body[3]
    s = bytes(mv[ANSWER_FIXED : ANSWER_FIXED + sl]) if flags & F_SETTINGS else None
    r = bytes(mv[ANSWER_FIXED + sl : end]) if flags & F_ROSTER else None
    return ack, time, s, r
