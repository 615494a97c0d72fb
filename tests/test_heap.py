"""Device heap (design.md section 8) on the real MicroPython binary: a day of 500
ratings leaves no growth in use after gc, and nothing the day shows stays interned.

Both runs are held to the 128 KB budget: the firmware with the text sign, and the
whole firmware with the e-ink sign (glyph file read from the littlefs flash) and the
Wi-Fi link syncing every 50 ratings to a real collector. On this 64-bit unix port
every module's bytecode sits in the heap with 8-byte pointers, and the simulated board
(pins, SPI, the MFRC522 model, the flash block device) is Python on the same heap; on
the ESP32 those are C and frozen or ROMFS modules stay in flash. make bench prints the
figures and the smallest heap the full day runs in."""

from conftest import HEAP
from heapday_host import run_day


def _check(r):
    # interned strings stay as they were: nothing the day shows (24 staff names on
    # the sign) is kept as a qstr, which no gc could free
    assert len(r["qstrs"]) == 2 and r["qstrs"][0] == r["qstrs"][1], r
    assert r["ratings"] == 500 and r["staff"] == 24, r


def test_firmware_runs_a_500_rating_day_in_128k_without_growth(tmp_path):
    assert HEAP == "128k"
    _check(run_day(tmp_path, full=False, heap=HEAP))


def test_with_eink_sign_and_synced_link_no_growth(tmp_path):
    assert HEAP == "128k"
    r = run_day(tmp_path, full=True, heap=HEAP)
    _check(r)
    assert r["stored"] == 500 and r["acked"] == r["seq"], r  # every rating reached the collector
    assert r["sent"] == r["seq"], r  # each record sent once: no sync failed and resent
    assert r["frames"] >= 10, r
