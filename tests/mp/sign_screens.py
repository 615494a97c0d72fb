# micropython sign_screens.py SIZE FONT_DIR OUT_DIR [ROWS]
# Draws every reference screen with the firmware's layout and fonts, refreshes
# the panel model through the real driver (full refresh first, then partial
# ones), and writes what the panel shows as OUT_DIR/<name>.pbm. Prints one JSON
# line of counters.
import gc
import json
import sys

import sign_util

size, fonts, out = sys.argv[1], sys.argv[2], sys.argv[3]
rows = int(sys.argv[4]) if len(sys.argv) > 4 else None  # paged: bands of ROWS rows
tb, drv, model = sign_util.panel(size, rows=rows)
lay = sign_util.layout(drv, fonts)
gc.collect()
low = gc.mem_free()


async def main():
    global low
    first = True
    for name, screen in sign_util.SCREENS:
        await sign_util.until_done(tb, drv.show(first, lambda: lay.draw(screen)))
        first = False
        if not model.deep:
            raise AssertionError("panel not asleep after the update")
        sign_util.write_pbm(model, "%s/%s.pbm" % (out, name))
        gc.collect()
        low = min(low, gc.mem_free())


sign_util.run(main())
print(json.dumps({"full": model.full_refreshes, "partial": model.partial_refreshes,
                  "faults": model.faults, "mem_free_min": low,
                  "drv_full": drv.full_refreshes, "drv_partial": drv.partial_refreshes}))
