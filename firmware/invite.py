# The queue system's invitation (叫号系统 → collector → device, design.md section 2): a
# signed UDP datagram from the collector to the address the device last synced from, and
# the device's signed reply. Why a datagram: the device already tells the collector where
# it is at every sync (its address, and its invitation port in a header), a datagram
# reaches it within milliseconds with no connection held open (a held-open request would
# keep a socket, its buffers and a task on a 112 KB heap all day), and the reply tells the
# queue system at once whether the window took it. The same module on MicroPython and
# CPython (the collector builds invitations and checks replies with it).
#
# Invitation (collector -> device), little-endian:
#   0 "PQ", version u8, id length u8, id, counter u32 (per device, strictly increasing),
#     time u32 (the collector's clock, seconds since 2000 UTC), ticket length u8, ticket,
#     HMAC-SHA256 with the device key over everything before it (32)
# Reply (device -> collector):
#   0 "PR", version u8, status u8 (OK, NOT_SERVING, REPLAYED, STALE, CLOCK_UNKNOWN,
#     BAD_TICKET), counter u32 (the invitation's), state u8 (the window's), HMAC (32)
# A copy of an invitation sent again carries a counter the device has seen: refused; one
# kept and sent later carries an old time: refused (the device's clock is the collector's,
# set at every sync); a forged one fails its MAC and gets no reply at all.
import struct

from firmware import frame
from firmware.const import const

OK = const(0)
NOT_SERVING = const(1)
REPLAYED = const(2)
STALE = const(3)
CLOCK_UNKNOWN = const(4)
BAD_TICKET = const(5)
STATUS_NAMES = ("ok", "not_serving", "replayed", "stale", "clock_unknown", "bad_ticket")
FRESH_S = const(30)  # an invitation older or newer than this by the device's clock: stale
TICKET_MAX = const(28)  # bytes (record.TICKET_MAX)
INVITE_MAX = const(4 + 10 + 9 + 28 + 32)
REPLY_SIZE = const(9 + 32)
PORT_HEADER = "X-Pingjia-Invite"  # the device's invitation port, sent with every sync
_VERSION = const(1)
_MAC = const(32)


def invitation(key, dev_id, counter, time, ticket):
    """The collector's signed invitation (bytes)."""
    dev_id = frame.check_id(dev_id)
    t = ticket.encode() if isinstance(ticket, str) else bytes(ticket or b"")
    if len(t) > TICKET_MAX:
        raise ValueError("ticket longer than %d bytes" % TICKET_MAX)
    body = (struct.pack("<2sBB", b"PQ", _VERSION, len(dev_id)) + dev_id
            + struct.pack("<IIB", counter, time, len(t)) + t)
    return body + frame.Hmac(key).digest(body)


def parse_invitation(data, hm, dev_id):
    """(counter, time, ticket text or None) of an invitation to dev_id signed with the key
    of hm; None if it is not one (wrong magic, size, device or MAC)."""
    n = len(data)
    if n < 4 + _MAC or bytes(data[0:2]) != b"PQ" or data[2] != _VERSION:
        return None
    k = data[3]
    if bytes(data[4 : 4 + k]) != dev_id or n < 4 + k + 9 + _MAC:
        return None
    counter, time, tl = struct.unpack_from("<IIB", data, 4 + k)
    end = 4 + k + 9 + tl
    if n != end + _MAC:
        return None
    mv = memoryview(data)
    if not frame.same(hm.digest(mv[:end]), mv[end:]):
        return None
    return counter, time, bytes(mv[end - tl : end]).decode() if tl else None


def reply(hm, status, counter, state):
    body = struct.pack("<2sBBIB", b"PR", _VERSION, status, counter, state)
    return body + hm.digest(body)


def parse_reply(data, key, counter):
    """(status, state) of the device's reply to invitation counter; ValueError otherwise."""
    if len(data) != REPLY_SIZE or data[0:2] != b"PR" or data[2] != _VERSION:
        raise ValueError("not a reply")
    status, got, state = struct.unpack_from("<BIB", data, 3)
    if got != counter:
        raise ValueError("a reply to another invitation")
    if not frame.same(frame.Hmac(key).digest(data[:9]), data[9:]):
        raise ValueError("reply fails its MAC")
    return status, state
