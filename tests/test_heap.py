"""Device heap (design.md section 8), measured as the board holds it: the whole firmware
(e-ink sign with its glyph file on the littlefs flash, the Wi-Fi link syncing to a real
collector on 127.0.0.1, 24 staff) through a 500-rating day on micropython32, the ESP32's
pointer size, in the 112 KB heap of a stock ESP32_GENERIC. The device's share (its code,
its data, aioble) is what the day holds less the virtual board's own code and objects,
the harness and a ROMFS image's bytes (all measured in the same run, tests/mp/heapday.py):
<= 96 KB with the code as .mpy files, <= 48 KB with the same code run in place from a
ROMFS image; no growth over the day. Without micropython32 the 64-bit port measures and
the budgets are scaled (bench/heap.py); the heap_day fixture warns. make bench prints the
split and the smallest heap the day runs in."""

from __future__ import annotations


def check_day(day, growth_max):
    r = day.raw
    assert r["ratings"] == 500 and r["staff"] == 24, r
    # interned strings stay as they were: nothing the day shows (24 staff names on the
    # sign) is kept as a qstr, which no gc could free
    assert len(day.qstrs) == 2 and day.qstrs[0] == day.qstrs[1], day.qstrs
    # the split is whole: every device module, aioble's and the radio's were loaded in
    # their stages (aioble only in a day with BLE: tests/test_ble_heap.py), none later
    assert r["late_imports"] == [] and r["aioble"] == (r["ble"] is not None), r
    # no growth after gc: from boot to the day's end, and between samples every 50 ratings
    assert day.growth < growth_max, (r["base"], r["end"])
    assert day.spread < growth_max, r["samples"]


def check_link(day):
    r = day.raw
    assert day.stored == 500 and r["acked"] == r["seq"], r  # every rating reached the collector
    assert r["sent"] == r["seq"], r  # each record sent once: no sync failed and resent
    assert r["frames"] >= 10, r


def test_mpy_files_hold_96k_without_growth(heap_day, tmp_path):
    day = heap_day.run_day(tmp_path)
    check_day(day, heap_day.GROWTH_MAX)
    check_link(day)
    assert day.raw["from_romfs"] == 0, day.raw  # the .mpy files, no image
    assert day.peak <= day.budget, (day.peak, day.budget, day.raw["stages"])


def test_code_in_place_from_romfs_holds_48k_without_growth(heap_day, tmp_path):
    day = heap_day.run_day(tmp_path, romfs=True)
    check_day(day, heap_day.GROWTH_MAX)
    check_link(day)
    # every device module ran from the image, none from the .mpy files beside it
    assert day.raw["from_romfs"] == day.raw["code_modules"] > 20, day.raw
    # the image sat in this heap (flash on the board) and was left out of the share
    assert day.image >= (tmp_path / "device.romfs").stat().st_size, day.raw["stages"]
    assert day.peak <= day.budget, (day.peak, day.budget, day.raw["stages"])


def test_text_sign_without_network_holds_96k_without_growth(heap_day, tmp_path):
    day = heap_day.run_day(tmp_path, full=False)
    check_day(day, heap_day.GROWTH_MAX)
    assert day.peak <= day.budget, (day.peak, day.budget, day.raw["stages"])
