# Stored record format: 14 bytes, the same on flash and on the air.
# Runs unchanged on MicroPython and CPython (the collector imports it).
#
#   0  seq    u32   strictly increasing across reboots
#   4  kind   u8
#   5  val    u8
#   6  arg    u8
#   7  staff  u8    roster slot (0: nobody)
#   8  time   u32   seconds since 2000-01-01 UTC; bit 31 set: seconds since boot
#                   (the boot is the last BOOT record before it)
#  12  crc    u16   low 16 bits of CRC-32 over bytes 0-11
import struct

from firmware.const import const

try:
    from binascii import crc32
except ImportError:  # pragma: no cover
    from zlib import crc32

SIZE = const(14)
_FMT = "<IBBBBI"
REL = const(0x80000000)  # time flag: seconds since boot

# kinds
BOOT = const(1)  # data24 = boot number
CLOCK_SET = const(2)  # time = absolute; data24 = seconds since boot then
STATUS = const(3)  # val = to | from << 4; arg = why | FLAGGED; staff
RATING = const(4)  # val = level 1-4; arg = mode (0 invite, 1 free); staff
NO_RATING = const(5)  # arg = 0 timeout, 1 cancelled; staff
REASON = const(6)  # val = reason 1-4; time = seq of its rating; staff
TICKET = const(7)  # bytes 5-11: a chunk of the ticket of the next rating/no_rating
STRAY = const(8)  # time = hour start; data16 = presses with no open invitation
DROPPED = const(9)  # time = hour start; data16 = presses not counted (repeat, min interval)
FLAG = const(10)  # val = FLAG_*; staff
OVERFLOW = const(11)  # time = hour start; val = level (0 no_rating); data16 in arg|staff<<8
CONFIG = const(12)  # val = 1 settings, 2 roster; arg|staff<<8 = version
UNKNOWN_BADGE = const(13)  # data24 = the badge's tag (core.py: keyed, not the UID)
BOOT_WHY = const(14)  # val = BOOT_*: why this boot happened (right after its BOOT record)
ALERT = const(15)  # val = its index in ALERT_NAMES; arg = 1 raised, 0 cleared


# what a record's fields hold
INVITED = const(0)  # a rating's arg: keyed in an invitation
FREE = const(1)  # a rating's arg: keyed in free mode
TIMED_OUT = const(0)  # a no_rating's arg: the invitation ran out
CANCELLED = const(1)  # a no_rating's arg: a change of state or a new invitation ended it
CONFIG_SETTINGS = const(1)  # a config record's val
CONFIG_ROSTER = const(2)
DATA24_MAX = const(0xFFFFFF)  # the most val | arg << 8 | staff << 16 holds

# window states (status records, screens)
NO_STATE = const(0)  # before the first status record of a boot
SERVING = const(1)
WAIT = const(2)
PAUSED = const(3)
CLOSED = const(4)
OVERTIME = const(5)
STATE_NAMES = ("none", "serving", "wait", "paused", "closed", "overtime")

# why a status changed
WHY_BOOT = const(0)
WHY_KEY = const(1)
WHY_BADGE = const(2)
WHY_TIMEOUT = const(3)
WHY_SCHEDULE = const(4)
WHY_CLOCK = const(5)
WHY_SETTINGS = const(6)
FLAGGED = const(0x80)  # status arg bit: a pause with no badge in working hours

# why a boot happened (BOOT_WHY records; the board knows, hw/esp32/board.py)
BOOT_POWER_ON = const(1)
BOOT_WATCHDOG = const(2)  # the watchdog reset a device whose tasks stopped
BOOT_FAILED_START = const(3)  # a reset after the app failed to start
BOOT_SAFE_KEY = const(4)  # the first normal boot after safe mode by the 请评价 key
BOOT_SAFE_CRASHES = const(5)  # ... after safe mode by three failed boots
BOOT_RESET = const(6)  # the reset button, machine.reset() or a deep sleep
BOOT_NAMES = ("", "power_on", "watchdog", "failed_start", "safe_mode_key", "safe_mode_crashes",
              "reset")

# technician alerts the log records as they come and go (others are known by
# their own records: log_full by overflow records, clock_unknown by times)
ALERT_NAMES = ("", "sync_failing", "settings_corrupt", "roster_corrupt", "identity_corrupt",
               "log_damaged", "reader_fault", "sign_fault")

# FLAG record values
FLAG_WAIT_LONG = const(1)

TICKET_CHUNK = const(7)
TICKET_MAX = const(28)


def pack_into(buf, off, seq, kind, val, arg, staff, time):
    struct.pack_into(_FMT, buf, off, seq, kind, val, arg, staff, time)
    crc = crc32(memoryview(buf)[off : off + 12]) & 0xFFFF
    buf[off + 12] = crc & 0xFF
    buf[off + 13] = crc >> 8


def pack(seq, kind, val=0, arg=0, staff=0, time=0):
    b = bytearray(SIZE)
    pack_into(b, 0, seq, kind, val, arg, staff, time)
    return b


def valid(buf, off=0):
    crc = crc32(memoryview(buf)[off : off + 12]) & 0xFFFF
    return buf[off + 12] == crc & 0xFF and buf[off + 13] == crc >> 8


def unpack(buf, off=0):
    """(seq, kind, val, arg, staff, time), or None if the CRC fails."""
    if not valid(buf, off):
        return None
    return struct.unpack_from(_FMT, buf, off)


def seq_of(buf, off=0):
    return struct.unpack_from("<I", buf, off)[0]


def split24(n):
    return n & 0xFF, (n >> 8) & 0xFF, (n >> 16) & 0xFF


def ticket_chunks(text):
    """Ticket text -> a TICKET record's (val, arg, staff, time) for each 7-byte chunk:
    pack(seq, TICKET, *chunk)."""
    b = text.encode()[:TICKET_MAX]
    out = []
    for i in range(0, len(b), TICKET_CHUNK):
        c = b[i : i + TICKET_CHUNK] + bytes(TICKET_CHUNK)
        out.append((c[0], c[1], c[2], c[3] | c[4] << 8 | c[5] << 16 | c[6] << 24))
    return out
