"""`make bench`: every benchmark, figures and ratios to a baseline run in the same process."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import heap  # noqa: E402  (bench/heap.py: the heap day, shared with tests/test_heap.py)

from host_tools.device.build import BUILD, compile_all, mp_command, mp_env  # noqa: E402


def mp(script: str, *args: str, heap_size: str = "128k") -> dict[str, float]:
    p = subprocess.run(mp_command(ROOT / "bench" / script, *args, heap=heap_size),
                       capture_output=True, text=True, cwd=BUILD, env=mp_env(), timeout=1800)
    if p.returncode:
        raise SystemExit(f"{script} failed:\n{p.stdout}\n{p.stderr}")
    return figures(p.stdout)


def figures(text: str) -> dict[str, float]:
    """`name value` lines printed by a device-side bench -> {name: value}."""
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = float(v)
        except ValueError:
            pass
    return out


def day(**kw) -> heap.Day:
    """One heap day (bench/heap.py) in a fresh directory."""
    with tempfile.TemporaryDirectory() as d:
        return heap.run_day(Path(d), **kw)


def smallest_heap(first: heap.Day, step_kb: int = 2) -> int:
    """The smallest -X heapsize (KB, to step_kb) the day of first runs in, whole process:
    bisected between what it holds after gc (below that nothing runs) and first's heap."""
    lo, hi = first.raw_total_peak // heap.KB, first.heap_kb
    while hi - lo > step_kb:
        mid = (lo + hi) // 2
        try:
            day(romfs=first.romfs, inst=first.instrument, heap=mid)
            hi = mid
        except AssertionError:
            lo = mid
    return hi


def kb(n: float) -> str:
    return f"{n / heap.KB:.1f} KB"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def heap_figures() -> bool:
    """design.md section 8's heap budget on the measuring instrument, the split, and the
    same day on the 64-bit port as the baseline the earlier figures were taken on; False
    if a budget is exceeded or the day grows."""
    inst = heap.instrument()
    mpy, rom = day(inst=inst), day(romfs=True, inst=inst)
    text = day(full=False, inst=inst)
    least_mpy, least_rom = smallest_heap(mpy), smallest_heap(rom)
    base = heap.port64()
    if inst.bits == 64:
        mpy64, rom64 = mpy, rom
    else:
        mpy64, rom64 = day(inst=base), day(romfs=True, inst=base)
    print(f"== device heap after gc (design.md section 8): {inst.note}")
    print("   the whole firmware, 500 ratings: e-ink sign with its glyph file on the littlefs "
          "flash, the link syncing to a collector on 127.0.0.1 every 50, 24 staff")
    print(f"{'':32}{'.mpy files':>18}{'ROMFS in place':>18}{'ROMFS/.mpy':>12}")

    def row(name: str, a: float, b: float, note: str = "") -> None:
        print(f"  {name:30}{kb(a):>18}{kb(b):>18}{ratio(b, a):>12}{note}")

    row("device code", mpy.code, rom.code)
    row("device data (at its peak)", mpy.data_peak, rom.data_peak)
    print(f"  {'aioble or its double':30}{'not loaded in these days: the BLE days below':>36}")
    row("device total, peak", mpy.peak, rom.peak)
    met = all(d.peak <= d.budget and d.growth < heap.GROWTH_MAX for d in (mpy, rom, text))
    print(f"  {'budget':30}{heap.BUDGET_MPY_KB * inst.scale():>15.1f} KB"
          f"{heap.BUDGET_ROMFS_KB * inst.scale(True):>15.1f} KB"
          f"   {'met' if met else 'EXCEEDED'}"
          f" ({ratio(mpy.peak, mpy.budget)}, {ratio(rom.peak, rom.budget)} of it)")
    row("  at boot", mpy.boot, rom.boot)
    row("  after the day", mpy.end, rom.end)
    print(f"  {'growth over 500 ratings':30}{f'{mpy.growth} B':>18}{f'{rom.growth} B':>18}"
          f"{'':12}   (samples every 50: within {mpy.spread} B, {rom.spread} B)")
    print(f"  {'  of the data, littlefs mount':30}{kb(mpy.stages['in_board']):>18}"
          f"{kb(rom.stages['in_board']):>18}{'':12}   (and the reader's driver: made inside "
          f"the virtual board, the board holds them too)")
    print("  not counted: on the board these are silicon, C or flash")
    row("  simulated board: code", mpy.sim_code, rom.sim_code)
    row("  simulated board: objects", mpy.sim_objects, rom.sim_objects,
        "   (pins, SPI bus, MFRC522 model, block device, virtual time, WLAN)")
    row("  harness (interpreter, script)", mpy.harness, rom.harness,
        "   (the day's script stands in for the console)")
    row("  ROMFS image's bytes", mpy.image, rom.image, "   (flash on the board)")
    row("whole process, peak", mpy.raw_total_peak, rom.raw_total_peak)
    print(f"  {'ran in -X heapsize':30}{mpy.heap_kb:>15} KB{rom.heap_kb:>15} KB"
          f"   (the board's {heap.BOARD_HEAP_KB} KB; ROMFS: + the image)")
    print(f"  {'smallest heap it runs in':30}{least_mpy:>15} KB{least_rom:>15} KB"
          f"   (ROMFS less the image: {least_rom - -(-rom.image // heap.KB)} KB)")
    ble, ble_rom = day(inst=inst, ble=True), day(romfs=True, inst=inst, ble=True)
    print("  with BLE running too (the aioble double; a host pulling over bumble all day, "
          "the Wi-Fi link syncing every 50):")
    row("  aioble's code", ble.aioble, ble_rom.aioble, "   (counted)")
    row("  device total, peak", ble.peak, ble_rom.peak,
        f"   ({ratio(ble.peak, ble.budget)}, {ratio(ble_rom.peak, ble_rom.budget)} of the "
        f"budgets: {'met' if ble.peak <= ble.budget else 'EXCEEDED'}, "
        f"{'met' if ble_rom.peak <= ble_rom.budget else 'EXCEEDED'})")
    row("  BLE's cost over the day above", ble.peak - mpy.peak, ble_rom.peak - rom.peak)
    row("  not counted: the bluetooth double", ble.radio, ble_rom.radio, "   (C on the board)")
    if inst.bits == 32:  # the calibration (heap.RAW_CODE_BYTES) is micropython32's
        print(f"  {'  frozen image, estimated':30}{'':18}{kb(ble_rom.frozen_peak):>18}{'':12}"
              f"   (the ROMFS peak less what flash holds frozen: the code stage's qstr pools "
              f"{kb(ble_rom.code_pools)}, measured, and {ble_rom.raw_codes} raw codes' "
              f"records at {heap.RAW_CODE_BYTES} B; "
              f"{'within' if ble_rom.frozen_peak <= ble_rom.budget else 'over'} "
              f"{heap.BUDGET_ROMFS_KB} KB)")
    print(f"  {'  ran in -X heapsize':30}{ble.heap_kb:>15} KB{ble_rom.heap_kb:>15} KB"
          f"   (the board's headroom over the budget, the virtual parts on top)")
    print(f"  text sign, no network (.mpy): device peak {kb(text.peak)} "
          f"({ratio(text.peak, mpy.peak)} of the whole firmware's), growth {text.growth} B")
    if inst.bits == 32:
        print("  64-bit port, the same days (the yardstick of the earlier figures), "
              "and its ratio to micropython32's")
        row("  device code", mpy64.code, rom64.code,
            f"   ({ratio(mpy64.code, mpy.code)}, {ratio(rom64.code, rom.code)})")
        row("  device total, peak", mpy64.peak, rom64.peak,
            f"   ({ratio(mpy64.peak, mpy.peak)}, {ratio(rom64.peak, rom.peak)})")
        row("  whole process, peak", mpy64.raw_total_peak, rom64.raw_total_peak,
            f"   ({ratio(mpy64.raw_total_peak, mpy.raw_total_peak)}, "
            f"{ratio(rom64.raw_total_peak, rom.raw_total_peak)})")
    else:
        print("  (no micropython32: the 32-bit figures are missing; the 64-bit port's are above)")
    return met


def device() -> None:
    compile_all()
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as d:
        f = mp("mp_flash.py", d, "2000")
        lat = mp("mp_latency.py", f"{d}/lat.img", "200")
        boot = mp("mp_boot.py", f"{d}/boot.img")
    print("== device (MicroPython unix port)")
    print(f"record size                 {f['record_bytes']:.0f} B (budget <= 16)")
    print(f"flash per rating (1.5 MB)   {f['flash_bytes_per_rating']:.2f} B, "
          f"capacity {f['capacity_ratings']:.0f} ratings (budget >= 100000)")
    print(f"flash programs per rating   {f['log_progs_per_rating']:.3f} "
          f"(naive append+flush {f['naive_progs_per_rating']:.3f}: "
          f"{f['naive_progs_per_rating'] / f['log_progs_per_rating']:.1f}x fewer; aim <= 2)")
    print(f"flash erases per rating     {f['log_erases_per_rating']:.3f} "
          f"(naive {f['naive_erases_per_rating']:.3f}: "
          f"{f['naive_erases_per_rating'] / max(f['log_erases_per_rating'], 1e-9):.1f}x fewer)")
    print(f"commit time per rating      {f['log_us_per_rating']:.0f} us "
          f"(naive {f['naive_us_per_rating']:.0f} us)")
    print(f"key press to durable record {lat['key_to_durable_us']:.0f} us "
          f"(bare commit {lat['bare_commit_us']:.0f} us: "
          f"{lat['key_to_durable_us'] / lat['bare_commit_us']:.2f}x)")
    print(f"power-on to first rating    empty log {boot['boot_empty_first_rating_ms']:.0f} ms "
          f"(app built {boot['boot_empty_build_ms']:.0f} ms); full 1.5 MB log "
          f"({boot['full_log_records']:.0f} records) {boot['boot_full_first_rating_ms']:.0f} ms "
          f"(built {boot['boot_full_build_ms']:.0f} ms): "
          f"{ratio(boot['boot_full_first_rating_ms'], boot['boot_empty_first_rating_ms'])}")
    if not heap_figures():
        raise SystemExit("bench: the device heap is over its budget or grows (make test says how)")


def main() -> int:
    device()
    for extra in ("bench_sign.py", "bench_sync.py", "bench_links.py", "bench_dashboard.py",
                  "ingest_scale.py", "soak.py", "views.py"):  # views.py: 10M ratings, ~30 min
        p = ROOT / "bench" / extra
        if p.exists():
            print(f"== {extra}")
            sys.stdout.flush()
            r = subprocess.run([sys.executable, str(p)], cwd=ROOT)
            if r.returncode:
                return r.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
