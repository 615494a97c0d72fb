"""`make bench`: every benchmark, figures and ratios to a baseline run in the same process."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from host_tools.device.build import BUILD, compile_all, mp_command, mp_env  # noqa: E402

MP = str(Path(sys.executable).parent / "micropython")


def mp(script: str, *args: str, heap: str = "128k") -> dict[str, float]:
    p = subprocess.run(mp_command(ROOT / "bench" / script, *args, heap=heap),
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


def heap_day(full: bool = False, heap: str = "128k") -> dict[str, float] | None:
    """The heap day of tests/test_heap.py (full: e-ink sign, link syncing to a collector);
    None if it does not run in heap."""
    from heapday_host import run_day

    with tempfile.TemporaryDirectory() as d:
        try:
            r = run_day(Path(d), full, heap)
        except AssertionError:
            return None
    return {"boot": float(r["base"]), "end": float(r["end"])}


def smallest_heap(start_kb: int = 126, step_kb: int = 2, runs: int = 6) -> int:
    """The smallest heap (KB, in step_kb steps below 128) the full day runs in."""
    ok = 128
    for kb in range(start_kb, start_kb - step_kb * runs, -step_kb):
        if heap_day(True, f"{kb}k") is None:
            break
        ok = kb
    return ok


def code_heap() -> float:
    """Heap taken by importing every device module the full firmware runs."""
    env = dict(os.environ, MICROPYPATH=f"{BUILD}:.frozen")
    code = ("import gc\ngc.collect()\na = gc.mem_alloc()\nimport asyncio\n"
            "import firmware.app, firmware.sync, firmware.eink, firmware.layout, firmware.font\n"
            "import hw.esp32.wiring, hw.drivers.ssd168x, hw.drivers.mfrc522, hw.sim.board, hw.sim.network\n"
            "gc.collect()\nprint(gc.mem_alloc() - a)")
    p = subprocess.run([MP, "-X", "heapsize=1M", "-c", code], capture_output=True, text=True,
                       cwd=BUILD, env=env, timeout=60)
    return float(p.stdout.split()[-1])


def device() -> None:
    compile_all()
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as d:
        f = mp("mp_flash.py", d, "2000")
        lat = mp("mp_latency.py", f"{d}/lat.img", "200")
    h = heap_day()
    hf = heap_day(full=True)
    if h is None or hf is None:
        raise SystemExit("bench: the heap day does not run in 128 KB (make test says why)")
    least = smallest_heap()
    code = code_heap()
    print("== device (MicroPython unix port, heap 128 KB)")
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
    print(f"heap after gc, text sign    boot {h['boot'] / 1024:.1f} KB, after 500 ratings "
          f"{h['end'] / 1024:.1f} KB (growth {h['end'] - h['boot']:.0f} B; budget 128 KB)")
    print(f"heap after gc, e-ink + link boot {hf['boot'] / 1024:.1f} KB, after 500 ratings synced "
          f"{hf['end'] / 1024:.1f} KB (growth {hf['end'] - hf['boot']:.0f} B; budget 128 KB)")
    print(f"  smallest heap for that day {least} KB ({128 - least} KB to spare in 128 KB)")
    print(f"  of which module code      {code / 1024:.1f} KB (bytecode in the heap on the unix "
          f"port; frozen modules stay in flash on the board)")


def main() -> int:
    device()
    for extra in ("bench_sign.py", "bench_sync.py"):
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
