"""Device heap budget (design.md section 8) on the real MicroPython binary."""

from conftest import HEAP


def test_firmware_runs_a_500_rating_day_in_128k_without_growth(mp, shm_dir):
    assert HEAP == "128k"
    p = mp("heapday.py", str(shm_dir / "day.img"), "500", timeout=600)
    assert p.stdout.strip().splitlines()[-1] == "PASS", p.stdout + p.stderr
