# The real board's bring-up: its parts built on hw/esp32/wiring.py's pin map, once at
# boot. hw/esp32/board.py runs build() and then drops this module, so its code does not
# stay in the heap all day (2 KB of bytecode as a .mpy file). Each part is built on its
# own, so a loose cable (a reader or panel that does not answer) is a technician alert on
# the sign (board.faults), never a device that does not start.
from micropython import const

from hw.esp32 import wiring

_RTC_VALID_YEAR = const(2025)  # an RTC below this was never set since power-on
_BUZZER_HZ = const(2700)
_WATCHDOG_MS = const(10_000)  # no feed for this long (a hung loop): the chip resets
_PANELS = ("4.2", "2.9")


def build(board):
    """The board's parts onto board: a part that does not answer is an alert in
    board.faults, not a boot that stops."""
    import machine

    from firmware.timebase import RealTime

    board.timebase = RealTime()
    board.faults = []  # alert names for the app: what did not come up
    remount_flash()
    pin = machine.Pin
    board.keys = [pin(p, pin.IN, pin.PULL_UP) for p in wiring.KEY_PINS]
    # GPIO 34 and 35 have no pull resistors: the keypad board pulls them up
    board.keys.append(pin(wiring.INVITE_PIN, pin.IN))
    board.keys.append(pin(wiring.STATUS_PIN, pin.IN))
    board.leds = [pin(p, pin.OUT, value=0) for p in wiring.LED_PINS]
    board.buzzer = machine.PWM(pin(wiring.BUZZER_PIN), freq=_BUZZER_HZ, duty_u16=0)
    # both chip selects high before the bus carries a byte: a select left
    # floating would let the other chip take the reader's commands
    board.rfid_cs = pin(wiring.RFID_CS, pin.OUT, value=1)
    board.eink_cs = pin(wiring.EINK_CS, pin.OUT, value=1)
    board.spi = machine.SPI(wiring.SPI_ID, baudrate=wiring.SPI_BAUD, sck=pin(wiring.SCK),
                            mosi=pin(wiring.MOSI), miso=pin(wiring.MISO))
    board.reader = _reader(board, pin)
    board.sign = _sign(board, pin, panel_size(board.root + "settings.json"))
    board.wall_s = rtc_time(machine.RTC())
    import network

    board.net = network.WLAN(network.STA_IF)  # credentials: device.json ssid/password
    board.watchdog = machine.WDT(timeout=_WATCHDOG_MS)  # the app feeds it
    board.boot_reason = boot_reason(machine)  # a record of this boot (firmware/app.py)


def _reader(board, pin):
    from hw.drivers.mfrc522 import MFRC522

    try:
        return MFRC522(board.spi, board.rfid_cs, pin(wiring.RFID_RST, pin.OUT, value=1))
    except Exception as e:  # not answering: staff cannot sign in, the sign says so
        print("reader:", e)
        board.faults.append("reader_fault")
        return None


def _sign(board, pin, size):
    from firmware import eink
    from firmware.sign import TextSign
    from hw.drivers.ssd168x import SSD168x

    out = pin.OUT
    try:
        panel = SSD168x(board.spi, board.eink_cs, pin(wiring.EINK_DC, out, value=1),
                        pin(wiring.EINK_RST, out, value=1), pin(wiring.EINK_BUSY, pin.IN),
                        board.timebase, rows=wiring.EINK_ROWS if size == "4.2" else None,
                        size=size)
        return eink.build(panel, "/lib")
    except Exception as e:  # glyph file missing, no RAM: the sign's text on the console
        print("sign:", e)
        board.faults.append("sign_fault")
        return TextSign(print)


def boot_reason(machine):
    """Why this boot happened, as a record.BOOT_* code: safe mode's reason first
    (the boot after it is normal, the reset cause a plain one), then the chip's."""
    from firmware import record
    from hw.esp32 import safemode

    if safemode.previous == safemode.KEY:
        return record.BOOT_SAFE_KEY
    if safemode.previous == safemode.CRASHES:
        return record.BOOT_SAFE_CRASHES
    cause = machine.reset_cause()
    if cause == machine.WDT_RESET:
        return record.BOOT_WATCHDOG
    if safemode.after_failed:  # the app did not start, and reset (machine.reset)
        return record.BOOT_FAILED_START
    if cause == machine.PWRON_RESET:
        return record.BOOT_POWER_ON
    return record.BOOT_RESET


def remount_flash():
    """The root littlefs again with the log's cache sizes (littlefs keeps no cache
    sizes in its superblock; the port mounted it with its defaults)."""
    import esp32
    import vfs

    from firmware.storage import LFS_OPTS

    try:
        bdev = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="vfs")[0]
        vfs.umount("/")
        vfs.mount(vfs.VfsLfs2(bdev, **LFS_OPTS), "/")
    except Exception as e:
        print("flash: keeping default mount:", e)


def panel_size(settings_path):
    """The panel fitted to this board (setting "panel": "4.2" or "2.9"): a setting,
    since one image serves both signs."""
    from firmware import storage

    try:
        size = (storage.load_json(settings_path, {}) or {}).get("panel", "4.2")
    except (ValueError, AttributeError):  # a corrupt file: the app raises that alert
        size = "4.2"
    return size if size in _PANELS else "4.2"


def rtc_time(rtc):
    """Seconds since 2000 if the RTC still holds a time (kept over a reset, lost
    with the power), else None: the clock is unknown until a sync."""
    if rtc.datetime()[0] < _RTC_VALID_YEAR:
        return None
    import time

    from firmware.clock import EPOCH_UNIX

    t = time.time()
    return t if time.gmtime(0)[0] == 2000 else t - EPOCH_UNIX  # the port's epoch, or Unix's
