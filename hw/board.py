# The ESP32 wiring (design.md section 1): the one place that names pins.
# build() makes the real drivers; the virtual device (hw/sim.py) uses the same
# pin map with simulated chips.
from micropython import const

KEY_PINS = (32, 33, 25, 26)  # 非常满意, 满意, 基本满意, 不满意: active low, pull-up
LED_PINS = (13, 12, 14, 27)
INVITE_PIN = const(34)  # 请评价 (external pull-up)
STATUS_PIN = const(35)  # short press 请稍候, long press 暂停服务 (external pull-up)
BUZZER_PIN = const(2)
SPI_ID = const(2)
SCK, MOSI, MISO = 18, 23, 19
EINK_CS, EINK_DC, EINK_RST, EINK_BUSY = 5, 17, 16, 4
RFID_CS, RFID_RST = 15, 21
SPI_BAUD = const(4_000_000)
EINK_ROWS = const(32)  # the 4.2" frame is drawn in bands: 1.6 KB of RAM, not 15 KB


class Board:
    """Real hardware. Import only on the ESP32 (needs machine)."""

    def __init__(self):
        import machine
        import vfs

        from firmware.sign import TextSign
        from firmware.timebase import RealTime
        from hw.flashdev import LFS_OPTS
        from hw.mfrc522 import MFRC522

        Pin = machine.Pin
        self.timebase = RealTime()
        self.root = "/"
        # remount the root littlefs with the log's cache sizes (see hw/flashdev.py)
        try:
            import esp32

            bdev = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="vfs")[0]
            vfs.umount("/")
            vfs.mount(vfs.VfsLfs2(bdev, **LFS_OPTS), "/")
        except Exception as e:
            print("flash: keeping default mount:", e)
        self.keys = [Pin(p, Pin.IN, Pin.PULL_UP) for p in KEY_PINS]
        self.keys.append(Pin(INVITE_PIN, Pin.IN))
        self.keys.append(Pin(STATUS_PIN, Pin.IN))
        self.leds = [Pin(p, Pin.OUT, value=0) for p in LED_PINS]
        self.buzzer = machine.PWM(Pin(BUZZER_PIN), freq=2700, duty_u16=0)
        self.spi = machine.SPI(SPI_ID, baudrate=SPI_BAUD, sck=Pin(SCK), mosi=Pin(MOSI),
                               miso=Pin(MISO))
        cs = Pin(RFID_CS, Pin.OUT, value=1)
        self.reader = MFRC522(self.spi, cs, Pin(RFID_RST, Pin.OUT, value=1))
        from firmware import eink
        from hw.ssd168x import SSD1683

        panel = SSD1683(self.spi, Pin(EINK_CS, Pin.OUT, value=1), Pin(EINK_DC, Pin.OUT, value=1),
                        Pin(EINK_RST, Pin.OUT, value=1), Pin(EINK_BUSY, Pin.IN), self.timebase,
                        rows=EINK_ROWS)
        try:
            self.sign = eink.build(panel, "/lib")
        except OSError as e:  # glyph files missing: the sign's text on the console
            print("sign:", e)
            self.sign = TextSign(print)
        rtc_ok = machine.RTC().datetime()[0] >= 2025  # kept over a soft reset only
        self.wall_s = _time_2000() if rtc_ok else None
        import network

        self.net = network.WLAN(network.STA_IF)  # credentials: device.json ssid/password


def _time_2000():
    import time

    t = time.time()
    return t if time.gmtime(0)[0] == 2000 else t - 946684800
