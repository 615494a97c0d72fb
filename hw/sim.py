# The virtual device's board for the unix port: the same pin map as hw/board.py,
# simulated keys, LEDs and buzzer, the real MFRC522 driver talking to a chip
# model, a littlefs flash image in a host file, and virtual time.
import vfs

from firmware.sign import TextSign
from hw import board as B
from hw.flashdev import LFS_OPTS, FileBlockDev
from hw.mfrc522 import MFRC522
from hw.mfrc522_model import MFRC522Model
from hw.net_sim import SimWLAN
from hw.simpins import SimPin, SimPWM, SimSPI
from hw.vtime import VirtualTime

ROOT = "/flash"


def mount_flash(path, blocks=384, mountpoint=ROOT):
    """Mount the littlefs image at path, formatting it if it holds none."""
    bdev = FileBlockDev(path, blocks)
    try:
        fs = vfs.VfsLfs2(bdev, **LFS_OPTS)
    except OSError:
        vfs.VfsLfs2.mkfs(bdev, **LFS_OPTS)
        fs = vfs.VfsLfs2(bdev, **LFS_OPTS)
    vfs.mount(fs, mountpoint)
    return bdev


class SimBoard:
    def __init__(self, flash_path, wall_s=None, blocks=384, sign=None, eink=None):
        self.timebase = VirtualTime()
        self.bdev = mount_flash(flash_path, blocks)
        self.root = ROOT
        self.keys = [SimPin(p, SimPin.IN, SimPin.PULL_UP) for p in B.KEY_PINS]
        self.keys.append(SimPin(B.INVITE_PIN))
        self.keys.append(SimPin(B.STATUS_PIN))
        self.leds = [SimPin(p, SimPin.OUT, value=0) for p in B.LED_PINS]
        self.buzzer = SimPWM(SimPin(B.BUZZER_PIN, SimPin.OUT, value=0))
        self.spi = SimSPI(B.SPI_ID)
        cs = SimPin(B.RFID_CS, SimPin.OUT, value=1)
        rst = SimPin(B.RFID_RST, SimPin.OUT, value=1)
        self.rfid = MFRC522Model(cs, rst)  # the chip; the slot's card is rfid.card
        self.spi.attach(cs, self.rfid)
        self.reader = MFRC522(self.spi, cs, rst)
        if sign is None and eink:  # "4.2" or "2.9": the e-ink sign on the panel model
            from hw.sim_sign import make_sign

            sign = make_sign(self.spi, self.timebase, eink, image_path=flash_path + ".sign.pbm")
        self.sign = sign if sign is not None else TextSign()
        self.wall_s = wall_s
        self.net = SimWLAN()  # real sockets to 127.0.0.1
        self.auto_sync = False  # scripted syncs only on `sync`: scripts stay deterministic

    async def press(self, k, ms=100, after_ms=40):
        """Hold key k (board.keys index) for ms of virtual time, then let it go."""
        tb = self.timebase
        self.keys[k].value(0)
        await tb.settle()
        await tb.advance(ms)
        self.keys[k].value(1)
        await tb.settle()
        await tb.advance(after_ms)  # past the debounce, so the release is taken

    def unmount(self):
        vfs.umount(ROOT)
        self.bdev.close()
