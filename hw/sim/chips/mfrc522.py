# A chip-level model of the MFRC522 and of an ISO 14443-A card in its field.
# It decodes the SPI bytes the driver sends (address byte, then data) into
# register reads and writes, runs Transceive against the card's state machine
# (IDLE/READY/HALT) and answers like the chip: FIFO, ComIrqReg, ErrorReg.
from micropython import const

from hw.drivers.mfrc522 import crc_a

# the card's states
_IDLE = const(0)
_READY = const(1)
_HALT = const(2)

# registers
_COMMAND = const(0x01)
_COMIRQ = const(0x04)
_ERROR = const(0x06)
_FIFODATA = const(0x09)
_FIFOLEVEL = const(0x0A)
_BITFRAMING = const(0x0D)
_TXCONTROL = const(0x14)
_VERSION = const(0x37)
_REGS = const(64)
# their values and bits
_V2 = const(0x92)  # VersionReg: MFRC522 version 2
_TX_RESET = const(0x80)  # TxControlReg after a reset
_ANTENNA = const(0x03)  # TxControlReg: Tx1RFEn | Tx2RFEn
_READ = const(0x80)  # address byte: a read
_ADDR_BIT0 = const(0x01)  # address byte: must be 0
_FLUSH = const(0x80)  # FIFOLevelReg
_SET = const(0x80)  # ComIrqReg: set the marked bits (else clear them)
_IRQ_BITS = const(0x7F)
_RX_IDLE_IRQ = const(0x30)  # ComIrqReg: RxIRq | IdleIRq
_TIMER_IRQ = const(0x01)
_START_SEND = const(0x80)  # BitFramingReg
_TX_LAST_BITS = const(0x07)  # BitFramingReg: valid bits of the last byte sent
_CMD_BITS = const(0x3F)  # CommandReg
_CMD = const(0x0F)  # CommandReg: the command
_TRANSCEIVE = const(0x0C)
_SOFTRESET = const(0x0F)
_FIFO_SIZE = const(64)

# ISO 14443-3 (the card's side)
_REQA = const(0x26)
_WUPA = const(0x52)
_SHORT_FRAME = const(7)  # bits of REQA's and WUPA's one byte
_ATQA = const(b"\x04\x00")  # the answer to a request: single-size UID
_SEL_CL1 = const(b"\x93\x20")  # anticollision, cascade level 1
_SEL_CL2 = const(b"\x95\x20")  # and level 2
_SELECT_CL1 = const(b"\x93\x70")  # select at level 1
_SELECT_LEN = const(9)  # select: SEL, NVB, 4 UID bytes, BCC, CRC_A
_CASCADE_TAG = const(0x88)
_SAK_MORE = const(b"\x04")  # SAK: the UID is not complete
_HLTA = const(b"\x50\x00")


class MFRC522Model:
    def __init__(self, cs, rst=None):
        self.card = None  # UID bytes of the card in the field
        self.state = _IDLE  # the card's
        self.faults = []  # what a real chip would not take from the driver
        self.regs = bytearray(_REGS)
        self._addr = None  # this CS-low transaction's address byte; None: it comes next
        self.reset()
        cs.listen(self._cs)
        if rst is not None:
            rst.listen(self.reset)

    def reset(self, pin=None, level=0):
        """Power-on state; as a listener of the RST line, when it goes low."""
        if level:
            return
        r = self.regs
        for i in range(_REGS):
            r[i] = 0
        r[_VERSION] = _V2
        r[_TXCONTROL] = _TX_RESET
        self.fifo = []

    def _cs(self, pin, level):
        self._addr = None  # every CS-low starts with an address byte

    def insert(self, uid=None):
        """A card with this UID goes into the field; None: the field is empty."""
        self.card = uid and bytes(uid)
        self.state = _IDLE

    remove = insert  # remove(): insert(None)

    def exchange(self, b):
        ab = self._addr
        if ab is None:
            if b & _ADDR_BIT0:
                self.faults.append("address bit 0 set")
            self._addr = b  # bit 7: read; bits 6-1: the register
            return 0
        a = (ab >> 1) & (_REGS - 1)
        r = self.regs
        fifo = self.fifo
        if ab & _READ:
            if a == _FIFODATA:
                return fifo.pop(0) if fifo else 0
            return len(fifo) if a == _FIFOLEVEL else r[a]
        if a == _FIFODATA:
            if len(fifo) < _FIFO_SIZE:
                fifo.append(b)
        elif a == _FIFOLEVEL:
            if b & _FLUSH:
                self.fifo = []
        elif a == _COMIRQ:
            r[a] = r[a] | b & _IRQ_BITS if b & _SET else r[a] & ~b & _IRQ_BITS
        elif a == _COMMAND:
            r[a] = b & _CMD_BITS
            if b & _CMD == _SOFTRESET:
                self.reset()
        else:
            r[a] = b
            if a == _BITFRAMING and b & _START_SEND and r[_COMMAND] & _CMD == _TRANSCEIVE:
                self._transceive(b & _TX_LAST_BITS)
        return 0

    def _transceive(self, bits):
        """Send the FIFO to the card (bits: valid bits of its last byte); its answer
        into the FIFO, or the timer's IRQ when nothing answers."""
        r = self.regs
        if not r[_TXCONTROL] & _ANTENNA:
            self.faults.append("antenna off")
        answer = self._card(bytes(self.fifo), bits)
        r[_ERROR] = 0
        if answer is None:
            self.fifo = []
            r[_COMIRQ] |= _TIMER_IRQ  # nothing answered
        else:
            self.fifo = list(answer)
            r[_COMIRQ] |= _RX_IDLE_IRQ
        r[_COMMAND] = 0  # back to Idle

    def _card(self, frame, bits):
        """The card's answer to a frame (bits: valid bits of its last byte), or None."""
        c = self.card
        if c is None or not self.regs[_TXCONTROL] & _ANTENNA:
            return None
        st = self.state
        if bits == _SHORT_FRAME and len(frame) == 1:
            if frame[0] == _REQA and st == _IDLE or frame[0] == _WUPA and st != _READY:
                self.state = _READY
                return _ATQA
            return None
        part = None  # anticollision: the UID part of a cascade level (4-byte UIDs: one level)
        if st == _READY and frame == _SEL_CL1:
            part = c[:4] if len(c) == 4 else bytes((_CASCADE_TAG,)) + c[:3]
        if st == _READY and len(c) == 7 and frame == _SEL_CL2:
            part = c[3:7]
        if part:  # with its check byte
            return part + bytes((part[0] ^ part[1] ^ part[2] ^ part[3],))
        if st == _READY and len(c) == 7 and len(frame) == _SELECT_LEN and frame[:2] == _SELECT_CL1:
            if frame[7:] != crc_a(frame[:7]) or frame[3:6] != c[:3]:
                self.state = _IDLE
                return None
            return _SAK_MORE + crc_a(_SAK_MORE)
        if len(frame) == 4 and frame[:2] == _HLTA:
            if frame[2:] == crc_a(frame[:2]):
                self.state = _HALT
            return None
        self.state = _IDLE  # anything unexpected sends the card back to IDLE
        return None
