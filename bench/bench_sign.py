"""The e-ink sign's figures (run by `make bench`): refreshes over a scripted
office day against a naive sign, font bytes on flash, glyph cache RAM, heap,
and render time per screen on the MicroPython unix port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from run import figures  # noqa: E402  (bench/run.py: one parser for the figures)

from host_tools.device.build import BUILD, compile_all  # noqa: E402
from host_tools.sign import fontgen  # noqa: E402

MP = str(Path(sys.executable).parent / "micropython")
LIB = ROOT / "lib"
FULL_S, PARTIAL_S = 3.0, 0.5  # the panel model's refresh times (datasheet typicals)


def mp(script: str, *args: str, heap: str = "128k") -> str:
    env = dict(os.environ, MICROPYPATH=f"{BUILD}:{ROOT / 'tests' / 'mp'}:.frozen")
    p = subprocess.run([MP, "-X", f"heapsize={heap}", str(ROOT / "tests" / "mp" / script),
                        *args], capture_output=True, text=True, cwd=BUILD, env=env,
                       timeout=1800)
    if p.returncode:
        raise SystemExit(f"{script} failed:\n{p.stdout}\n{p.stderr}")
    return p.stdout


def bench_heap(size: str, rows: str) -> None:
    f = figures(mp("sign_bench.py", size, str(LIB), *([rows] if rows else [])))
    mode = f"bands of {rows} rows" if rows else "full frame"
    print(f"{size}\" sign heap, {mode:16s} {f['sign_bytes'] / 1024:.1f} KB (framebuffer "
          f"{f['driver_bytes'] / 1024:.1f} KB incl. driver, fonts+layout "
          f"{f['fonts_layout_bytes'] / 1024:.1f} KB, glyph cache "
          f"{f['glyph_cache_bytes'] / 1024:.1f} KB); growth after drawing every screen "
          f"again {f['growth_bytes']:.0f} B")
    print(f"{size}\" render per screen, {mode:9s} mean {f['render_us_mean'] / 1000:.1f} ms, "
          f"max {f['render_us_max'] / 1000:.1f} ms (glyph cache hits "
          f"{f['glyph_hit_ratio'] * 100:.0f}%)")


def main() -> int:
    compile_all()
    print("== sign (MicroPython unix port, heap 128 KB)")
    for size in ("4.2", "2.9"):
        day = json.loads(mp("sign_day.py", size, str(LIB), "office").strip().splitlines()[-1])
        c = day["counts"]
        changes = day["marks"]["changes"]
        busy = c["full"] * FULL_S + c["partial"] * PARTIAL_S
        naive = c["requests"] * FULL_S  # a full refresh on every show() call
        print(f"{size}\" office day: {changes} changes -> {c['updates']} panel updates "
              f"({c['updates'] / changes:.2f} per change; {c['full']} full, {c['partial']} "
              f"partial; min gap {day['stats']['min_gap'] / 1000:.1f} s)")
        print(f"{size}\" panel busy per day   {busy:.0f} s (naive full refresh per change "
              f"{naive:.0f} s: {naive / busy:.1f}x less flashing); asleep after every update: "
              f"{day['stats']['asleep']}")
        for rows in ("", "32") if size == "4.2" else ("",):  # 32: hw/esp32/wiring.py EINK_ROWS
            bench_heap(size, rows)
    data = (LIB / fontgen.FILE).read_bytes()
    total = len(data)
    gb = len(fontgen.gb2312_chars())
    naive = sum(gb * (1 + ((px + 7) // 8) * px) for px, *_ in fontgen.SIZES)
    print(f"font bytes on flash        {total / 1024:.0f} KB (budget 400 KB; all of GB2312 "
          f"at every size would take {naive / 1024:.0f} KB: {naive / total:.1f}x)")
    for (px, _start, n), (_px, _face, kind) in zip(fontgen.blocks(data), fontgen.SIZES,
                                                     strict=True):
        print(f"  {fontgen.FILE} {px:2d} px {kind:7s} {n / 1024:6.1f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
