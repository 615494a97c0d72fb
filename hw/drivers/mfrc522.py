# MFRC522 13.56 MHz reader on SPI: is a badge in the slot, and which.
# Each poll wakes the card (WUPA, so a halted card answers too), reads its
# UID by anticollision (4-byte UIDs; 7-byte ones through cascade level 2)
# and halts it again.
from micropython import const

_COMMAND = const(0x01)
_COMIRQ = const(0x04)
_ERROR = const(0x06)
_FIFODATA = const(0x09)
_FIFOLEVEL = const(0x0A)
_CONTROL = const(0x0C)
_BITFRAMING = const(0x0D)
_MODE = const(0x11)
_TXCONTROL = const(0x14)
_TXASK = const(0x15)
_TMODE = const(0x2A)
_TPRESCALER = const(0x2B)
_TRELOADH = const(0x2C)
_TRELOADL = const(0x2D)
_VERSION = const(0x37)

_IDLE = const(0x00)
_TRANSCEIVE = const(0x0C)
_SOFTRESET = const(0x0F)

_WUPA = const(0x52)
_ANTICOLL_CL1 = const(0x93)
_ANTICOLL_CL2 = const(0x95)
_HLTA = const(0x50)

_VERSIONS = const(b"\x88\x90\x91\x92\xb2")  # clones and MFRC522 v0/v1/v2


class ReaderError(OSError):
    pass


def crc_a(data):
    """ISO/IEC 14443-3 CRC_A, low byte first."""
    crc = 0x6363
    for b in data:
        b ^= crc & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)
    return bytes((crc & 0xFF, crc >> 8))


class MFRC522:
    def __init__(self, spi, cs, rst=None, timebase=None):
        self.spi = spi
        self.cs = cs
        self.rst = rst
        self._b2 = bytearray(2)
        self._r2 = bytearray(2)
        cs.value(1)
        if rst is not None:
            rst.value(0)
            rst.value(1)
        self._w(_COMMAND, _SOFTRESET)
        v = self._r(_VERSION)
        if v not in _VERSIONS:
            raise ReaderError("MFRC522 not answering (version 0x%02x): check SPI wiring" % v)
        self.version = v
        self._w(_TMODE, 0x8D)  # timer starts after transmission, ~25 ms timeout
        self._w(_TPRESCALER, 0x3E)
        self._w(_TRELOADH, 0)
        self._w(_TRELOADL, 30)
        self._w(_TXASK, 0x40)  # 100 % ASK
        self._w(_MODE, 0x3D)  # CRC preset 0x6363
        self._w(_TXCONTROL, self._r(_TXCONTROL) | 0x03)  # antenna on

    def _w(self, reg, val):
        b = self._b2
        b[0] = (reg << 1) & 0x7E
        b[1] = val
        self.cs.value(0)
        self.spi.write(b)
        self.cs.value(1)

    def _r(self, reg):
        b = self._b2
        b[0] = ((reg << 1) & 0x7E) | 0x80
        b[1] = 0
        self.cs.value(0)
        self.spi.write_readinto(b, self._r2)
        self.cs.value(1)
        return self._r2[1]

    def _transceive(self, data, bits=0):
        """Send a frame to the card; its answer as bytes, or None (no card, timeout, error)."""
        self._w(_COMMAND, _IDLE)
        self._w(_COMIRQ, 0x7F)
        self._w(_FIFOLEVEL, 0x80)  # flush
        for b in data:
            self._w(_FIFODATA, b)
        self._w(_BITFRAMING, bits)
        self._w(_COMMAND, _TRANSCEIVE)
        self._w(_BITFRAMING, bits | 0x80)  # StartSend
        for _ in range(200):
            irq = self._r(_COMIRQ)
            if irq & 0x30 or irq & 0x01:  # RxIRq | IdleIRq, or TimerIRq
                break
        else:
            irq = 0x01
        self._w(_BITFRAMING, bits)
        if not irq & 0x30 or irq & 0x01:
            return None
        if self._r(_ERROR) & 0x1B:
            return None
        n = self._r(_FIFOLEVEL)
        out = bytearray(n)
        for i in range(n):
            out[i] = self._r(_FIFODATA)
        self._r(_CONTROL)
        return out

    def read_uid(self):
        """Hex UID of the badge in the slot, or None."""
        atqa = self._transceive(b"\x52", 7)  # WUPA, short frame
        if atqa is None or len(atqa) != 2:
            return None
        uid = b""
        for cmd in (_ANTICOLL_CL1, _ANTICOLL_CL2):
            # anticollision at this cascade level: 4 UID bytes and their BCC, checked
            u = self._transceive(bytes((cmd, 0x20)))
            if u is None or len(u) != 5 or u[0] ^ u[1] ^ u[2] ^ u[3] != u[4]:
                return None
            if u[0] != 0x88:  # no cascade tag: the UID is complete
                uid += u[:4]
                break
            if cmd == _ANTICOLL_CL2:  # a 10-byte UID: not used for badges
                return None
            # cascade tag: select level 1, then the rest at level 2
            sel = bytes((cmd, 0x70)) + u
            sak = self._transceive(sel + crc_a(sel))
            if sak is None or not sak or not sak[0] & 0x04:
                return None
            uid = u[1:4]
        hlta = bytes((_HLTA, 0))
        self._transceive(hlta + crc_a(hlta))
        return uid.hex().upper()
