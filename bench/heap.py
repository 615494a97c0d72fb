"""The heap day's host side (tests/mp/heapday.py on MicroPython), shared by
tests/test_heap.py (through the `heap_day` fixture) and `make bench`: 24 staff on the
roster of window B01, a collector on 127.0.0.1 for the link to sync with, the
provisioning files, one run of the device, and its figures split into what the board
holds and what only the virtual board has (design.md section 8).

It measures on ../shared/tools/micropython32 (the ESP32's pointer size) when it is
there, else on the venv's 64-bit micropython with the budgets scaled (SCALE_64_*)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from firmware.clock import parse_iso
from firmware.roster import dumps
from host_tools.collector.api import file_bytes, provision_device, start_collector
from host_tools.device.build import (
    BUILD,
    ROOT,
    build_romfs,
    measuring_micropython,
    micropython_bin,
    mp_command,
    mp_env,
)

KB = 1024
BOARD_HEAP_KB = 112  # a stock ESP32_GENERIC's GC heap: the heap the day runs in
BUDGET_MPY_KB = 96  # the device's share, code as .mpy files
BUDGET_ROMFS_KB = 48  # the same code run in place from a ROMFS image
# The 64-bit port overstates the heap: about 1.3x for the whole process, says
# ../shared/tools/README.md, but more for the device's share, and most for code run in
# place, which is almost all pointers (function, class and qstr entries). make bench
# measures both ports in one run (1.41x with .mpy files, 1.65x from ROMFS); a clone
# without micropython32 holds what it measures to the budgets scaled by these.
SCALE_64_MPY = 1.45
SCALE_64_ROMFS = 1.7
GROWTH_MAX = 2048  # bytes after gc from boot to the day's end, and between samples

T0 = parse_iso("2026-11-23T09:00:00+08:00")
# 24 staff with 69 different characters: the sign draws every name during the day
NAMES = ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴刚", "徐丽",
         "孙强", "马超", "朱红", "胡军", "郭燕", "何平", "高峰", "林涛", "罗琳", "郑凯", "梁爽",
         "谢婷", "宋佳")
STAFF = [(f"0A1B2C{i:02X}", f"SB{i:04d}", n) for i, n in enumerate(NAMES)]


@dataclass(frozen=True)
class Instrument:
    """The micropython binary the heap is measured on and how its figures compare."""

    binary: str
    bits: int

    def scale(self, romfs: bool = False) -> float:
        """The factor by which this port's figures exceed the board's (1 on 32 bits)."""
        if self.bits == 32:
            return 1.0
        return SCALE_64_ROMFS if romfs else SCALE_64_MPY

    def limit(self, kb: float, romfs: bool = False) -> int:
        """A budget in KB as the bytes this port may show for it."""
        return int(kb * KB * self.scale(romfs))

    @property
    def note(self) -> str:
        if self.bits == 32:
            return f"micropython32 ({self.binary}): 32-bit, the ESP32's pointer size"
        return (f"micropython32 not found: measured on the 64-bit port ({self.binary}), "
                f"the budgets scaled {SCALE_64_MPY}x (.mpy) and {SCALE_64_ROMFS}x (ROMFS)")


def instrument() -> Instrument:
    return Instrument(*measuring_micropython())


def port64() -> Instrument:
    """The venv's 64-bit port: the baseline the README's earlier figures were taken on."""
    return Instrument(micropython_bin(), 64)


@dataclass
class Day:
    """One heap day's figures (bytes in use after gc unless said otherwise)."""

    raw: dict
    instrument: Instrument
    romfs: bool
    heap_kb: int
    qstrs: list[int] = field(default_factory=list)
    stored: int | None = None  # ratings the collector holds (full firmware)

    @property
    def stages(self) -> dict[str, int]:
        return self.raw["stages"]

    @property
    def sim_objects(self) -> int:
        """The virtual board's objects: the board stage less what the board holds too."""
        return self.stages["board"] - self.stages["in_board"]

    @property
    def sim_code(self) -> int:
        return self.stages["sim_code"]

    @property
    def harness(self) -> int:
        """The interpreter, the day's script and its helpers."""
        return self.stages["start"] + self.stages["harness"]

    @property
    def image(self) -> int:
        """The ROMFS image's bytes in RAM: flash on the board."""
        return self.stages["image"]

    @property
    def not_counted(self) -> int:
        return self.harness + self.image + self.sim_code + self.sim_objects

    @property
    def code(self) -> int:
        return self.stages["code"]

    @property
    def aioble(self) -> int:
        """BLE is not built yet: nothing of aioble or a double of it is loaded (the day
        fails if one is, until the split measures it)."""
        return 0

    def device(self, total: int) -> int:
        """The board's share of a total in use: device code, its data, aioble."""
        return total - self.not_counted

    @property
    def boot(self) -> int:
        return self.device(self.raw["base"])

    @property
    def end(self) -> int:
        return self.device(self.raw["end"])

    @property
    def raw_total_peak(self) -> int:
        """The whole process at its highest after gc: at boot, every 50 ratings, after."""
        return max([self.raw["base"], self.raw["end"], *self.raw["samples"]])

    @property
    def peak(self) -> int:
        """The device's share at its highest after gc."""
        return self.device(self.raw_total_peak)

    @property
    def data_peak(self) -> int:
        return self.peak - self.code - self.aioble

    @property
    def growth(self) -> int:
        return self.raw["end"] - self.raw["base"]

    @property
    def spread(self) -> int:
        """Highest less lowest of the samples taken every 50 ratings."""
        s = self.raw["samples"]
        return max(s) - min(s)

    @property
    def budget(self) -> int:
        kb = BUDGET_ROMFS_KB if self.romfs else BUDGET_MPY_KB
        return self.instrument.limit(kb, self.romfs)


def heap_kb(inst: Instrument, romfs_bytes: int = 0) -> int:
    """The -X heapsize of a day: the board's heap (scaled on the 64-bit port), plus the
    ROMFS image, which sits in this heap here and in flash on the board."""
    return int(BOARD_HEAP_KB * inst.scale()) + -(-romfs_bytes // KB)


def run_day(work: Path, full: bool = True, romfs: bool = False, n: int = 500,
            inst: Instrument | None = None, heap: int | None = None) -> Day:
    """Run the day in work (a fresh directory): full is the e-ink sign and the link
    syncing to a collector, else the text sign and no network; romfs runs the device
    code in place from a ROMFS image. heap: KB, default heap_kb(). Raises AssertionError
    with the device's output if the day fails."""
    inst = inst or instrument()
    prov = work / "prov"
    prov.mkdir()
    srv = None
    try:
        if full:  # the link syncs with a real collector, provisioned as `pingjia sim` does
            srv = start_collector(str(work / "pingjia.db"), lambda: T0)
            csv = work / "staff.csv"
            csv.write_text("badge_uid,staff_no,name,department,windows\n" + "".join(
                f"{u},{no},{name},窗口服务,B01\n" for u, no, name in STAFF), encoding="utf-8")
            files = provision_device(srv.collector, "heap-1", "B01", csv, srv.sync_url)
        else:
            files = {"settings.json": {"window": "B01"}, "roster.txt": dumps(1, STAFF)}
        for name, obj in files.items():
            (prov / name).write_bytes(file_bytes(obj))
        args = [str(work / "day.img"), str(prov), str(n), str(len(STAFF)),
                "full" if full else "text", str(ROOT / "lib")]
        image = 0
        if romfs:
            img = build_romfs(work / "device.romfs", extra=("hw/sim",))
            args.append(str(img))
            image = img.stat().st_size
        kb = heap or heap_kb(inst, image)
        p = subprocess.run(mp_command("heapday.py", *args, heap=f"{kb}k", binary=inst.binary),
                           capture_output=True, text=True, cwd=BUILD, env=mp_env(),
                           timeout=1800)
        lines = p.stdout.strip().splitlines()
        if p.returncode or not lines or lines[-1] != "PASS":
            raise AssertionError(f"heap day ({kb} KB, {inst.binary}) failed:\n"
                                 f"{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
        day = Day(json.loads(lines[-2]), inst, romfs, kb)
        day.qstrs = [int(w.split("=")[1].rstrip(",")) for w in p.stdout.split()
                     if w.startswith("n_qstr=")]
        if srv is not None:
            day.stored = srv.collector.db.value(
                "SELECT COUNT(*) FROM events WHERE kind = 'rating'")
        return day
    finally:
        if srv is not None:
            srv.stop()
