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

_WUPA = const(b"\x52")  # wake up, type A: a short frame
_ANTICOLL_CL1 = const(0x93)
_ANTICOLL_CL2 = const(0x95)
_HLTA = const(0x50)

_VERSIONS = const(b"\x88\x90\x91\x92\xb2")  # clones and MFRC522 v0/v1/v2

# register bits and values
_READ = const(0x80)  # address byte: a read
_ADDR = const(0x7E)  # address byte: the register's bits
_FLUSH = const(0x80)  # FIFOLevelReg: empty the FIFO
_START_SEND = const(0x80)  # BitFramingReg: start the transmission
_ALL_IRQS = const(0x7F)  # ComIrqReg: clear every request bit
_RX_IDLE_IRQ = const(0x30)  # ComIrqReg: RxIRq | IdleIRq, an answer came
_TIMER_IRQ = const(0x01)  # ComIrqReg: the timer ran out, nothing came
_ERRORS = const(0x1B)  # ErrorReg: buffer overflow, collision, CRC, protocol errors
_ANTENNA_ON = const(0x03)  # TxControlReg: Tx1RFEn | Tx2RFEn
_TIMER_AUTO = const(0x8D)  # TModeReg: the timer starts after sending; prescaler high bits
_PRESCALER = const(0x3E)  # TPrescalerReg: with those, ~25 ms for the reload below
_RELOAD = const(30)
_ASK_100 = const(0x40)  # TxASKReg: 100 % ASK modulation
_CRC_6363 = const(0x3D)  # ModeReg: CRC preset 0x6363 (ISO 14443-3)
_IRQ_POLLS = const(200)  # reads of ComIrqReg before a transceive gives up

# ISO 14443-3 frames
_SHORT_FRAME = const(7)  # bits of WUPA's one byte
_NVB_ANTICOLL = const(0x20)  # anticollision: no UID bits known yet
_NVB_SELECT = const(0x70)  # select: the whole UID part and its check byte
_CASCADE_TAG = const(0x88)  # the UID goes on at the next cascade level
_SAK_MORE = const(0x04)  # SAK: the UID is not complete


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
        self._w(_TMODE, _TIMER_AUTO)
        self._w(_TPRESCALER, _PRESCALER)
        self._w(_TRELOADH, 0)
        self._w(_TRELOADL, _RELOAD)
        self._w(_TXASK, _ASK_100)
        self._w(_MODE, _CRC_6363)
        self._w(_TXCONTROL, self._r(_TXCONTROL) | _ANTENNA_ON)

    def _w(self, reg, val):
        b = self._b2
        b[0] = (reg << 1) & _ADDR
        b[1] = val
        self.cs.value(0)
        self.spi.write(b)
        self.cs.value(1)

    def _r(self, reg):
        b = self._b2
        b[0] = ((reg << 1) & _ADDR) | _READ
        b[1] = 0
        self.cs.value(0)
        self.spi.write_readinto(b, self._r2)
        self.cs.value(1)
        return self._r2[1]

    def _transceive(self, data, bits=0):
        """Send a frame to the card; its answer as bytes, or None (no card, timeout, error)."""
        self._w(_COMMAND, _IDLE)
        self._w(_COMIRQ, _ALL_IRQS)
        self._w(_FIFOLEVEL, _FLUSH)
        for b in data:
            self._w(_FIFODATA, b)
        self._w(_BITFRAMING, bits)
        self._w(_COMMAND, _TRANSCEIVE)
        self._w(_BITFRAMING, bits | _START_SEND)
        for _ in range(_IRQ_POLLS):
            irq = self._r(_COMIRQ)
            if irq & (_RX_IDLE_IRQ | _TIMER_IRQ):
                break
        else:
            irq = _TIMER_IRQ
        self._w(_BITFRAMING, bits)
        if not irq & _RX_IDLE_IRQ or irq & _TIMER_IRQ:
            return None
        if self._r(_ERROR) & _ERRORS:
            return None
        n = self._r(_FIFOLEVEL)
        out = bytearray(n)
        for i in range(n):
            out[i] = self._r(_FIFODATA)
        self._r(_CONTROL)
        return out

    def read_uid(self):
        """Hex UID of the badge in the slot, or None."""
        atqa = self._transceive(_WUPA, _SHORT_FRAME)
        if atqa is None or len(atqa) != 2:
            return None
        uid = b""
        for cmd in (_ANTICOLL_CL1, _ANTICOLL_CL2):
            # anticollision at this cascade level: 4 UID bytes and their BCC, checked
            u = self._transceive(bytes((cmd, _NVB_ANTICOLL)))
            if u is None or len(u) != 5 or u[0] ^ u[1] ^ u[2] ^ u[3] != u[4]:
                return None
            if u[0] != _CASCADE_TAG:  # the UID is complete
                uid += u[:4]
                break
            if cmd == _ANTICOLL_CL2:  # a 10-byte UID: not used for badges
                return None
            # cascade tag: select level 1, then the rest at level 2
            sel = bytes((cmd, _NVB_SELECT)) + u
            sak = self._transceive(sel + crc_a(sel))
            if sak is None or not sak or not sak[0] & _SAK_MORE:
                return None
            uid = u[1:4]
        hlta = bytes((_HLTA, 0))
        self._transceive(hlta + crc_a(hlta))
        return uid.hex().upper()
