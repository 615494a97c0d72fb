"""The SSD168x drivers against the panel model, on the real MicroPython unix port
(128 KB heap): every screen decodes to its committed reference image, wrong
sequences are refused, a stuck BUSY raises a named error in time, and the
keypad task keeps running while the panel refreshes.

Reference images: tests/data/sign/<size>/<screen>.pbm. After a deliberate
layout or font change, look at the new previews, then regenerate them with
`python tests/test_sign_driver.py --regen` and commit them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib"
REF = ROOT / "tests" / "data" / "sign"
SIZES = ("4.2", "2.9")
DIMS = {"4.2": (400, 300), "2.9": (296, 128)}
SCREENS = ("closed", "serving", "wait", "paused", "paused_unknown_badge", "overtime",
           "invite", "reason", "thanks", "serving_alert", "closed_alert", "missing_glyph",
           "long_names")


def ink(pbm: bytes) -> int:
    """Black pixels of a PBM (P4) image."""
    body = pbm.split(b"\n", 2)[2]
    return sum(bin(b).count("1") for b in body)


@pytest.mark.parametrize("size,rows", (("4.2", None), ("4.2", 64), ("2.9", None), ("2.9", 32)))
def test_every_screen_decodes_to_its_reference(mp_json, tmp_path, size, rows):
    """Full frame, and paged (bands of rows): the same image on the panel."""
    args = (size, str(LIB), str(tmp_path)) + ((str(rows),) if rows else ())
    info = mp_json("sign_screens.py", *args)
    assert info["faults"] == []
    # the first update is a full refresh, every later one partial; the driver
    # and the chip agree on what happened
    assert (info["full"], info["partial"]) == (1, len(SCREENS) - 1)
    assert (info["drv_full"], info["drv_partial"]) == (1, len(SCREENS) - 1)
    assert info["mem_free_min"] > 0  # ran under the 128 KB heap
    w, h = DIMS[size]
    for name in SCREENS:
        got = (tmp_path / f"{name}.pbm").read_bytes()
        want = (REF / size / f"{name}.pbm").read_bytes()
        assert got.startswith(b"P4\n%d %d\n" % (w, h))
        # a screen is text on white: some ink, far less than half the panel (a blank
        # or inverted panel, or a reference regenerated from one, fails here)
        assert 500 < ink(got) < w * h // 2, (size, name, ink(got))
        assert got == want, f"{size}/{name}: the panel shows another image than the reference"


EXPECTED_FAULTS = {
    "ram_before_swreset": "before SW reset",
    "activation_without_0x22": "without display update control",
    "command_while_busy": "while BUSY",
    "command_in_deep_sleep": "deep sleep",
    "window_beyond_ram": "window",
    "ram_write_overruns_window": "overruns the window",
    "ram_counter_outside_window": "outside the window",
    "partial_without_old_image": "no old image",
    "partial_with_stale_old_image": "not the image shown",
    "wrong_gate_count": "gates",
    "missing_parameter": "got 2 of 4",
}


@pytest.mark.parametrize("size", SIZES)
def test_wrong_sequences_are_refused(mp_json, size):
    got = mp_json("sign_faults.py", size)
    assert set(got) == set(EXPECTED_FAULTS)
    for case, words in EXPECTED_FAULTS.items():
        assert got[case] is not None, f"{case}: the model took it"
        assert words in got[case], (case, got[case])


@pytest.fixture(scope="module", params=SIZES)
def busy(request, mp_json):
    """sign_busy.py at one size: a BUSY stuck at reset and at refresh, the recovery, and the
    keypad task's turns during refreshes."""
    return mp_json("sign_busy.py", request.param)


def test_stuck_busy_raises_a_named_error_in_time(busy):
    got = busy
    poll, reset = 15, 10
    a = got["at_reset"]
    assert a["error"] and "BUSY stuck" in a["error"]
    assert 1000 <= a["ms"] <= 1000 + 2 * reset + 4 * poll + 40
    b = got["at_refresh"]
    assert b["error"] and "10000 ms" in b["error"]
    assert 10000 <= b["ms"] <= 10000 + 300
    for x in (a, b):
        assert x["resets"] >= 2  # the wake-up reset and the recovery reset
        assert x["rst_level"] == 1  # reset released
    assert (a["drv_resets"], b["drv_resets"]) == (1, 2)
    r = got["recovered"]
    assert r["faults"] == [] and r["deep"]
    assert got["faults"] == []


def test_keypad_task_keeps_running_during_a_refresh(busy):
    k = busy["keypad"]
    assert k["full_ms"] >= 3000 and k["partial_ms"] >= 500  # the model's refresh times
    # a task sleeping 10 ms at a time gets nearly every one of its turns
    assert k["full_turns"] >= 0.9 * k["full_ms"] / 10
    assert k["partial_turns"] >= 0.9 * k["partial_ms"] / 10


def _regen() -> None:
    import shutil
    import subprocess
    import tempfile

    sys.path.insert(0, str(ROOT))  # this tree, not an installed one
    from host_tools.device.build import BUILD, compile_all, mp_command, mp_env

    compile_all()
    for size in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(mp_command("sign_screens.py", size, str(LIB), tmp), check=True,
                           env=mp_env(), cwd=BUILD, timeout=300)
            (REF / size).mkdir(parents=True, exist_ok=True)
            for name in SCREENS:
                shutil.copy(Path(tmp) / f"{name}.pbm", REF / size / f"{name}.pbm")
                print(REF / size / f"{name}.pbm")


if __name__ == "__main__":
    if sys.argv[1:] == ["--regen"]:
        _regen()
    else:
        print(__doc__)
