# The real board: the ESP32's drivers on hw/esp32/wiring.py's pin map (main.py builds
# it). Apart from the pin map so the virtual device, which imports that, does
# not hold this code on its heap.
from hw.esp32 import wiring


class Board:
    """Real hardware. Import only on the ESP32 (needs machine)."""

    def __init__(self):
        import machine
        import vfs

        from firmware.sign import TextSign
        from firmware.storage import LFS_OPTS
        from firmware.timebase import RealTime
        from hw.drivers.mfrc522 import MFRC522

        Pin = machine.Pin
        self.timebase = RealTime()
        self.root = "/"
        # remount the root littlefs with the log's cache sizes (see hw/sim/flash.py)
        try:
            import esp32

            bdev = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="vfs")[0]
            vfs.umount("/")
            vfs.mount(vfs.VfsLfs2(bdev, **LFS_OPTS), "/")
        except Exception as e:
            print("flash: keeping default mount:", e)
        self.keys = [Pin(p, Pin.IN, Pin.PULL_UP) for p in wiring.KEY_PINS]
        self.keys.append(Pin(wiring.INVITE_PIN, Pin.IN))
        self.keys.append(Pin(wiring.STATUS_PIN, Pin.IN))
        self.leds = [Pin(p, Pin.OUT, value=0) for p in wiring.LED_PINS]
        self.buzzer = machine.PWM(Pin(wiring.BUZZER_PIN), freq=2700, duty_u16=0)
        self.spi = machine.SPI(wiring.SPI_ID, baudrate=wiring.SPI_BAUD, sck=Pin(wiring.SCK), mosi=Pin(wiring.MOSI),
                               miso=Pin(wiring.MISO))
        cs = Pin(wiring.RFID_CS, Pin.OUT, value=1)
        self.reader = MFRC522(self.spi, cs, Pin(wiring.RFID_RST, Pin.OUT, value=1))
        from firmware import eink
        from hw.drivers.ssd168x import SSD1683

        out = Pin.OUT
        panel = SSD1683(self.spi, Pin(wiring.EINK_CS, out, value=1), Pin(wiring.EINK_DC, out, value=1),
                        Pin(wiring.EINK_RST, out, value=1), Pin(wiring.EINK_BUSY, Pin.IN), self.timebase,
                        rows=wiring.EINK_ROWS)
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
