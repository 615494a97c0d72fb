# The real board: the ESP32's peripherals, the composition root main.py builds. Its
# parts are built by hw/esp32/bringup.py at boot; that module is dropped once they are,
# so only this small class stays in the heap with them.
from firmware import forget


class Board:
    """Real hardware. Import only on the ESP32 (needs machine)."""

    root = "/"
    ble = True  # the ESP32's radio, through aioble (frozen, or from mip into /lib)

    def __init__(self):
        from hw.esp32 import bringup

        try:
            bringup.build(self)
        finally:  # boot-only code: garbage once nothing names it
            forget("hw.esp32.bringup")

    def started(self):
        """The app's tasks run: this boot did not fail (hw/esp32/safemode.py)."""
        from hw.esp32 import safemode

        safemode.ran()
        # boot-only from here on (main.py dropped its name): the safe-mode state and the
        # pin map leave the heap (1.5 KB in place, more as .mpy files)
        forget("hw.esp32.safemode")
        forget("hw.esp32.wiring")
