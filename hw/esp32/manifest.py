# The production image: MicroPython's ESP32_GENERIC with the device code and
# aioble frozen in, so the code runs in place from flash (design.md section 8:
# <= 48 KB of heap). Build it from a MicroPython checkout with ESP-IDF set up:
#   cd micropython/ports/esp32 && make submodules &&
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=$PWD/../../../pingjia/hw/esp32/manifest.py
# `pingjia deploy` copies exactly these folders as .mpy files onto a stock image
# instead (host_tools reads this file), so the two paths cannot drift apart.
include("$(PORT_DIR)/boards/manifest.py")
require("aioble")
module("boot.py", base_path="../..")
module("main.py", base_path="../..")
package("firmware", base_path="../..")
package("hw", files=("__init__.py",), base_path="../..")
package("hw/drivers", base_path="../..")
# the board's files, not this manifest (a build file, never imported on the board)
package("hw/esp32", files=("__init__.py", "board.py", "bringup.py", "safemode.py", "wiring.py"),
        base_path="../..")
