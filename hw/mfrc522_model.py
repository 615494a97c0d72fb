# A chip-level model of the MFRC522 and of an ISO 14443-A card in its field.
# It decodes the SPI bytes the driver sends (address byte, then data) into
# register reads and writes, runs Transceive against the card's state machine
# (IDLE/READY/HALT) and answers like the chip: FIFO, ComIrqReg, ErrorReg.
from hw.mfrc522 import crc_a

_VERSION_V2 = 0x92

_IDLE, _READY, _HALT = 0, 1, 2


class MFRC522Model:
    def __init__(self, cs, rst=None):
        self.regs = bytearray(64)
        self.fifo = []
        self.card = None  # UID bytes of the card in the field
        self.card_state = _IDLE
        self._addr = None
        self._read = False
        self.transactions = 0
        self.faults = []
        self._reset()
        cs.listeners.append(self._cs)
        if rst is not None:
            rst.listeners.append(self._rst)

    def _reset(self):
        for i in range(64):
            self.regs[i] = 0
        self.regs[0x37] = _VERSION_V2
        self.regs[0x14] = 0x80
        self.fifo = []

    def _rst(self, pin, level):
        if level == 0:
            self._reset()

    def _cs(self, pin, level):
        self._addr = None  # every CS-low starts with an address byte
        if level == 0:
            self.transactions += 1

    def insert(self, uid):
        self.card = bytes(uid)
        self.card_state = _IDLE

    def remove(self):
        self.card = None

    def exchange(self, b):
        if self._addr is None:
            if b & 0x01:
                self.faults.append("address byte with bit 0 set")
            self._addr = (b >> 1) & 0x3F
            self._read = bool(b & 0x80)
            return 0
        if self._read:
            return self._read_reg(self._addr)
        self._write_reg(self._addr, b)
        return 0

    def _read_reg(self, a):
        if a == 0x09:
            return self.fifo.pop(0) if self.fifo else 0
        if a == 0x0A:
            return len(self.fifo)
        return self.regs[a]

    def _write_reg(self, a, v):
        if a == 0x09:
            if len(self.fifo) < 64:
                self.fifo.append(v)
            return
        if a == 0x0A:
            if v & 0x80:
                self.fifo = []
            return
        if a == 0x04:  # ComIrqReg: bit 7 set -> set the marked bits, else clear them
            if v & 0x80:
                self.regs[a] |= v & 0x7F
            else:
                self.regs[a] &= ~(v & 0x7F) & 0xFF
            return
        if a == 0x01:
            self.regs[a] = v & 0x3F
            if v & 0x0F == 0x0F:
                self._reset()
            return
        self.regs[a] = v
        if a == 0x0D and v & 0x80 and self.regs[0x01] & 0x0F == 0x0C:
            self._transceive(v & 0x07)

    def _transceive(self, bits):
        frame = bytes(self.fifo)
        self.fifo = []
        if not self.regs[0x14] & 0x03:
            self.faults.append("transceive with the antenna off")
        answer = self._card(frame, bits)
        self.regs[0x06] = 0
        if answer is None:
            self.regs[0x04] |= 0x01  # TimerIRq: nothing answered
        else:
            self.fifo = list(answer)
            self.regs[0x04] |= 0x30  # RxIRq | IdleIRq
        self.regs[0x01] = 0

    def _card(self, frame, bits):
        c = self.card
        if c is None or not self.regs[0x14] & 0x03:
            return None
        st = self.card_state
        if bits == 7 and len(frame) == 1:
            if frame[0] == 0x26 and st == _IDLE or frame[0] == 0x52 and st in (_IDLE, _HALT):
                self.card_state = _READY
                return b"\x04\x00"  # ATQA: single-size UID
            return None
        if st == _READY and frame == b"\x93\x20":
            part = c[:4] if len(c) == 4 else b"\x88" + c[:3]
            return part + bytes((part[0] ^ part[1] ^ part[2] ^ part[3],))
        if st == _READY and len(c) == 7 and len(frame) == 9 and frame[:2] == b"\x93\x70":
            if frame[7:] != crc_a(frame[:7]) or frame[3:6] != c[:3]:
                self.card_state = _IDLE
                return None
            sak = b"\x04"  # cascade bit: the UID is not complete
            return sak + crc_a(sak)
        if st == _READY and len(c) == 7 and frame == b"\x95\x20":
            part = c[3:7]
            return part + bytes((part[0] ^ part[1] ^ part[2] ^ part[3],))
        if len(frame) == 4 and frame[:2] == b"\x50\x00":
            if frame[2:] == crc_a(frame[:2]):
                self.card_state = _HALT
            return None
        self.card_state = _IDLE  # anything unexpected sends the card back to IDLE
        return None
