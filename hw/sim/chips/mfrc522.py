# A chip-level model of the MFRC522 and of an ISO 14443-A card in its field.
# It decodes the SPI bytes the driver sends (address byte, then data) into
# register reads and writes, runs Transceive against the card's state machine
# (IDLE/READY/HALT) and answers like the chip: FIFO, ComIrqReg, ErrorReg.
from micropython import const

from hw.drivers.mfrc522 import crc_a

_IDLE = const(0)
_READY = const(1)
_HALT = const(2)


class MFRC522Model:
    card = None  # UID bytes of the card in the field
    state = _IDLE  # the card's
    faults = ()  # what a real chip would not take from the driver

    def __init__(self, cs, rst=None):
        self.regs = bytearray(64)
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
        for i in range(64):
            r[i] = 0
        r[0x37] = 0x92  # VersionReg: MFRC522 v2
        r[0x14] = 0x80  # TxControlReg
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
            if b & 0x01:
                self.faults += ("address bit 0 set",)
            self._addr = b  # bit 7: read; bits 6-1: the register
            return 0
        a = (ab >> 1) & 0x3F
        r = self.regs
        fifo = self.fifo
        if ab & 0x80:
            if a == 0x09:  # FIFODataReg
                return fifo.pop(0) if fifo else 0
            return len(fifo) if a == 0x0A else r[a]
        if a == 0x09:
            if len(fifo) < 64:
                fifo.append(b)
        elif a == 0x0A:  # FIFOLevelReg: bit 7 flushes
            if b & 0x80:
                self.fifo = []
        elif a == 0x04:  # ComIrqReg: bit 7 set -> set the marked bits, else clear them
            r[a] = r[a] | b & 0x7F if b & 0x80 else r[a] & ~b & 0x7F
        elif a == 0x01:  # CommandReg
            r[a] = b & 0x3F
            if b & 0x0F == 0x0F:  # SoftReset
                self.reset()
        else:
            r[a] = b
            if a == 0x0D and b & 0x80 and r[0x01] & 0x0F == 0x0C:  # StartSend in Transceive
                if not r[0x14] & 0x03:
                    self.faults += ("antenna off",)
                answer = self._card(bytes(fifo), b & 0x07)
                r[0x06] = 0  # ErrorReg
                if answer is None:
                    self.fifo = []
                    r[0x04] |= 0x01  # TimerIRq: nothing answered
                else:
                    self.fifo = list(answer)
                    r[0x04] |= 0x30  # RxIRq | IdleIRq
                r[0x01] = 0  # back to Idle
        return 0

    def _card(self, frame, bits):
        """The card's answer to a frame (bits: valid bits of its last byte), or None."""
        c = self.card
        if c is None or not self.regs[0x14] & 0x03:
            return None
        st = self.state
        if bits == 7 and len(frame) == 1:
            if frame[0] == 0x26 and st == _IDLE or frame[0] == 0x52 and st != _READY:
                self.state = _READY
                return b"\x04\x00"  # ATQA: single-size UID
            return None
        part = None  # anticollision: the UID part of a cascade level (4-byte UIDs: one level)
        if st == _READY and frame == b"\x93\x20":
            part = c[:4] if len(c) == 4 else b"\x88" + c[:3]  # 0x88: cascade tag
        if st == _READY and len(c) == 7 and frame == b"\x95\x20":
            part = c[3:7]
        if part:  # with its check byte
            return part + bytes((part[0] ^ part[1] ^ part[2] ^ part[3],))
        if st == _READY and len(c) == 7 and len(frame) == 9 and frame[:2] == b"\x93\x70":
            if frame[7:] != crc_a(frame[:7]) or frame[3:6] != c[:3]:
                self.state = _IDLE
                return None
            return b"\x04" + crc_a(b"\x04")  # SAK with the cascade bit: UID not complete
        if len(frame) == 4 and frame[:2] == b"\x50\x00":  # HLTA
            if frame[2:] == crc_a(frame[:2]):
                self.state = _HALT
            return None
        self.state = _IDLE  # anything unexpected sends the card back to IDLE
        return None
