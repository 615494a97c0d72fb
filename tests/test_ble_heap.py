"""The device heap with BLE running too (design.md section 8: the device code and its
data, aioble, with the e-ink sign, the Wi-Fi link and BLE all running): the heap day of
tests/test_heap.py with the BLE link on the aioble double, advertising and serving a host
that pulls over bumble's virtual link all day, beside the Wi-Fi link's syncs. aioble's
code counts in the device's share; the `bluetooth` double (C on the board) does not."""

import pytest


def check_day(day, growth_max):
    """As tests/test_heap.py checks its days: 500 ratings by 24 staff, no name interned,
    every module loaded in its stage, no growth after gc."""
    r = day.raw
    assert r["ratings"] == 500 and r["staff"] == 24, r
    assert len(day.qstrs) == 2 and day.qstrs[0] == day.qstrs[1], day.qstrs
    assert r["late_imports"] == [], r
    assert day.growth < growth_max, (r["base"], r["end"])
    assert day.spread < growth_max, r["samples"]


def check_ble(day):
    r = day.raw
    # every rating reached the collector; the last answers' clock_set records (the day's
    # collector keeps its clock at 09:00 while the device's runs on) may come after the
    # last sync
    assert day.stored == 500 and r["seq"] - r["acked"] <= 4, r
    # the two links shared the records (one both carried is stored once); no Wi-Fi sync
    # failed and resent
    b = r["ble"]
    assert r["seq"] <= r["sent"] + b["sent"] <= r["seq"] + 64 * (b["frames"] + r["frames"]), r
    assert r["frames"] >= 10, r
    # BLE ran all day: frames went out over bumble's link, each one acked on the device
    assert b["connections"] >= 1 and b["acks"] == b["frames"] > 100 and b["sent"] > 500, b
    assert r["aioble"] and day.aioble > 0 and day.radio > 0, day.stages


def test_mpy_files_with_ble_hold_96k_without_growth(heap_day, tmp_path):
    day = heap_day.run_day(tmp_path, ble=True)
    check_day(day, heap_day.GROWTH_MAX)
    check_ble(day)
    print(f"device's share with BLE (.mpy): {day.peak / 1024:.1f} KB at its peak, aioble "
          f"{day.aioble / 1024:.1f} KB of it; the radio's double {day.radio / 1024:.1f} KB apart")
    assert day.peak <= day.budget, (day.peak, day.budget, day.stages)


@pytest.mark.xfail(strict=True, reason="over budget: 55.6 KB on micropython32 (device code "
                   "28.3 KB, aioble 7.8 KB, data 19.5 KB); the same day without BLE 45.3 KB. "
                   "BLE's 10.3 KB is mostly fixed: aioble in place (module, class and function "
                   "objects, raw-code records, qstr pool entries) 7.8 KB, firmware/ble.py 1.4 KB, "
                   "its service, flags, tasks and a connection's state about 2 KB. The "
                   "production image freezes the code (hw/esp32/manifest.py): less its qstr "
                   "pools and raw-code records, 44.2 KB (bench/heap.py: Day.frozen_peak), but "
                   "no frozen 32-bit build is at hand to measure it. A strict xfail: bringing "
                   "the ROMFS day within 48 KB fails here until this mark is removed")
def test_code_in_place_from_romfs_with_ble_holds_48k(heap_day, tmp_path):
    day = heap_day.run_day(tmp_path, romfs=True, ble=True)
    check_day(day, heap_day.GROWTH_MAX)
    check_ble(day)
    assert day.raw["from_romfs"] == day.raw["code_modules"] > 20, day.raw
    print(f"device's share with BLE (ROMFS): {day.peak / 1024:.1f} KB at its peak")
    assert day.peak <= day.budget, (day.peak, day.budget, day.stages)
