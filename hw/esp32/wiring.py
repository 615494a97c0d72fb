# The ESP32 wiring (design.md section 1): the one place that names pins. The
# real board (hw/esp32/board.py) and the virtual one (hw/sim/board.py) are built
# from it; only the pin map is here, so the virtual device loads no ESP32 code.
from micropython import const

KEY_PINS = (32, 33, 25, 26)  # 非常满意, 满意, 基本满意, 不满意: active low, pull-up
LED_PINS = (13, 12, 14, 27)
INVITE_PIN = const(34)  # 请评价 (external pull-up)
STATUS_PIN = const(35)  # short press 请稍候, long press 暂停服务 (external pull-up)
BUZZER_PIN = const(2)
SPI_ID = const(2)
SCK = const(18)
MOSI = const(23)
MISO = const(19)
EINK_CS = const(5)
EINK_DC = const(17)
EINK_RST = const(16)
EINK_BUSY = const(4)
RFID_CS = const(15)
RFID_RST = const(21)
SPI_BAUD = const(4_000_000)
EINK_ROWS = const(16)  # the 4.2" frame is drawn in bands: 0.8 KB of RAM, not 15 KB

