# micropython sign_sim.py FONT_DIR IMAGE_PATH SIZE
# The virtual device's sign as hw/sim/board.py wires it: make_sign() on a shared
# SimSPI bus (another chip on its own CS sees none of the panel's bytes), the
# sign task running in virtual time, a PBM of the panel kept current, and the
# terminal rendering. Prints one JSON object.
import asyncio
import json
import sys

import sign_util

from hw.esp32 import wiring
from hw.sim.machine import SimPin, SimSPI
from hw.sim.sign import blocks, make_sign
from hw.sim.vtime import VirtualTime

fonts, image, size = sys.argv[1], sys.argv[2], sys.argv[3]


class Other:
    """Another chip on the bus (the badge reader's place)."""

    n = 0

    def exchange(self, b):
        self.n += 1
        return 0


tb = VirtualTime()
spi = SimSPI(wiring.SPI_ID)
other = Other()
spi.chips.append((SimPin(wiring.RFID_CS, SimPin.OUT, value=1), other))
seen = []
sign = make_sign(spi, tb, size, fonts=fonts, image_path=image,
                 on_update=lambda s: seen.append(s.shown[0]))


async def main():
    sign.show(sign_util.SCREENS[0][1])  # before the task starts, as at boot
    t = asyncio.create_task(sign.run(tb))
    await tb.settle()
    await tb.advance(5000)
    sign.show(sign_util.SCREENS[1][1])
    await tb.settle()
    await tb.advance(5000)
    t.cancel()
    print(json.dumps({"seen": seen, "counts": sign.counts(), "other": other.n,
                      "faults": sign.model.faults, "text": sign.text(),
                      "blocks": blocks(sign.model)}))


asyncio.run(main())
