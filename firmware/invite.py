# The queue system's invitation (叫号系统 → collector → device, design.md section 2): a
# signed UDP datagram from the collector to the address the device last synced from, and
# the device's signed reply. Why a datagram: the device already tells the collector where
# it is at every sync (its address, and its invitation port in a header), a datagram
# reaches it within milliseconds with no connection held open (a held-open request would
# keep a socket, its buffers and a task on a 112 KB heap all day), and the reply tells the
# queue system at once whether the window took it. The same module on MicroPython and
# CPython: the device's half here (the checks, the reply), the collector's half (making
# invitations, checking replies) in host_tools/collector/invite.py, off the device's heap.
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
FRESH_S = const(30)  # an invitation older or newer than this by the device's clock: stale
TICKET_MAX = const(28)  # bytes (record.TICKET_MAX)
INVITE_MAX = const(4 + 10 + 9 + 28 + 32)
REPLY_SIZE = const(9 + 32)
PORT_HEADER = "X-Pingjia-Invite"  # the device's invitation port, sent with every sync
VERSION = const(1)
MAC_LEN = const(32)


def parse_invitation(data, hm, dev_id):
    """(counter, time, ticket text or None) of an invitation to dev_id signed with the key
    of hm; None if it is not one (wrong magic, size, device or MAC)."""
    n = len(data)
    if n < 4 + MAC_LEN or bytes(data[0:2]) != b"PQ" or data[2] != VERSION:
        return None
    k = data[3]
    if bytes(data[4 : 4 + k]) != dev_id or n < 4 + k + 9 + MAC_LEN:
        return None
    counter, time, tl = struct.unpack_from("<IIB", data, 4 + k)
    end = 4 + k + 9 + tl
    if n != end + MAC_LEN:
        return None
    mv = memoryview(data)
    if not frame.same(hm.digest(mv[:end]), mv[end:]):
        return None
    return counter, time, bytes(mv[end - tl : end]).decode() if tl else None


def reply(hm, status, counter, state):
    body = struct.pack("<2sBBIB", b"PR", VERSION, status, counter, state)
    return body + hm.digest(body)
