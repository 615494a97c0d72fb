"""`pingjia fontgen` and `pingjia sign preview`: the e-ink sign's host tools.

The previews are drawn by the firmware itself (layout, fonts, the real SSD168x
driver) on the MicroPython unix port, refreshed through the panel model; the
host only turns the model's image (PBM) into PNG.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from host_tools.device.build import BUILD, ROOT, compile_all, micropython_bin
from host_tools.errors import PingjiaError

LIB = ROOT / "lib"
PREVIEW_HEAP = "192k"  # the model's RAM planes ride along (as in the virtual device)


def render(out: Path, size: str = "4.2", fonts: Path = LIB) -> list[Path]:
    """Draw every sample screen on the device code; returns the PNG paths."""
    from PIL import Image

    compile_all()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["MICROPYPATH"] = f"{BUILD}:.frozen"
    with tempfile.TemporaryDirectory() as tmp:
        p = subprocess.run(
            [micropython_bin(), "-X", f"heapsize={PREVIEW_HEAP}", "-m", "hw.sim.sign", tmp,
             size, str(fonts.resolve())],
            capture_output=True, text=True, env=env, cwd=str(BUILD), timeout=300)
        if p.returncode != 0:
            raise RuntimeError(f"preview failed on micropython:\n{p.stdout}\n{p.stderr}")
        pngs = []
        for name in p.stdout.split():
            img = Image.open(Path(tmp) / f"{name}.pbm").convert("L")
            dst = out / f"{name}.png"
            img.save(dst, optimize=True)
            pngs.append(dst)
    return pngs


def cmd_preview(args: argparse.Namespace) -> int:
    out, fonts = Path(args.out), Path(args.fonts) if args.fonts else LIB
    if not (fonts / "pj.pjf").is_file():
        raise PingjiaError(f"--fonts {fonts}: no pj.pjf there (pingjia fontgen --out {fonts})")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PingjiaError(f"--out {out}: {e.strerror}") from None
    for p in render(out, args.size, fonts):
        print(p)
    return 0
