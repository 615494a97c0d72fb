# The virtual device's board for the unix port: the same pin map as hw/esp32/wiring.py,
# simulated keys, LEDs and buzzer, the real MFRC522 driver talking to a chip
# model, a littlefs flash image in a host file, and virtual time.
import vfs

from firmware.storage import LFS_OPTS
from hw.drivers.mfrc522 import MFRC522
from hw.esp32 import wiring
from hw.sim.chips.mfrc522 import MFRC522Model
from hw.sim.flash import BLOCKS, FileBlockDev, keep_copy, written
from hw.sim.machine import SimPin, SimPWM, SimSPI
from hw.sim.network import SimWLAN
from hw.sim.vtime import VirtualTime

ROOT = "/flash"


class SimBoard:
    root = ROOT
    auto_sync = False  # scripted syncs only on `sync`: scripts stay deterministic

    def __init__(self, flash_path, wall_s=None, blocks=BLOCKS, sign=None, eink=None):
        """sign: the sign to use; None: the e-ink one on the panel model if eink
        ("4.2" or "2.9") is given, else a text sign; False: none yet (the caller
        sets board.sign before it builds the App, as hw/esp32/board.py builds the sign)."""
        self.timebase = VirtualTime()
        # the littlefs image at flash_path, formatted if it holds none
        bd = FileBlockDev(flash_path, blocks)
        opts = LFS_OPTS
        try:
            fs = vfs.VfsLfs2(bd, **opts)
        except OSError:
            if written(bd):  # garbled, not blank: its bytes stay for `pingjia pull --image`
                keep = flash_path + ".unmountable"
                keep_copy(flash_path, keep)
                print("flash: %s holds no littlefs that mounts; its bytes are kept in %s, "
                      "and a new log starts on a formatted flash" % (flash_path, keep))
            vfs.VfsLfs2.mkfs(bd, **opts)
            fs = vfs.VfsLfs2(bd, **opts)
        vfs.mount(fs, ROOT)
        Pin = SimPin
        # loops, not comprehensions: each of those is one more function on the heap
        self.keys = keys = []
        for p in wiring.KEY_PINS + (wiring.INVITE_PIN, wiring.STATUS_PIN):
            keys.append(Pin(p, Pin.IN))  # pulled up (inside or outside): a SimPin idles at 1
        self.leds = leds = []
        for p in wiring.LED_PINS:
            leds.append(Pin(p, Pin.OUT, value=0))
        self.buzzer = SimPWM(Pin(wiring.BUZZER_PIN, Pin.OUT, value=0))
        self.spi = SimSPI(wiring.SPI_ID)
        cs = Pin(wiring.RFID_CS, Pin.OUT, value=1)
        rst = Pin(wiring.RFID_RST, Pin.OUT, value=1)
        self.rfid = MFRC522Model(cs, rst)  # the chip; the slot's card is rfid.card
        self.spi.chips.append((cs, self.rfid))
        self.reader = MFRC522(self.spi, cs, rst)
        if sign is None:
            if eink:  # the e-ink sign on the panel model
                from hw.sim.sign import make_sign

                sign = make_sign(self.spi, self.timebase, eink,
                                 image_path=flash_path + ".sign.pbm")
            else:
                from firmware.sign import TextSign

                sign = TextSign()
        self.sign = sign
        self.wall_s = wall_s
        self.net = SimWLAN()  # real sockets to 127.0.0.1

    async def press(self, k, ms=100, after_ms=40):
        """Hold key k (board.keys index) for ms of virtual time, then let it go."""
        tb = self.timebase
        for v, t in ((0, ms), (1, after_ms)):  # after_ms: the release is past the debounce
            self.keys[k].value(v)
            await tb.settle()
            await tb.advance(t)
