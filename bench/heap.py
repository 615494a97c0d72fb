"""The heap day's host side (tests/mp/heapday.py on MicroPython), shared by
tests/test_heap.py (through the `heap_day` fixture) and `make bench`: 24 staff on the
roster of window B01, a collector on 127.0.0.1 for the link to sync with, the
provisioning files, one run of the device, and its figures split into what the board
holds and what only the virtual board has (design.md section 8).

It measures on ../shared/tools/micropython32 (the ESP32's pointer size) when it is
there, else on the venv's 64-bit micropython with the budgets scaled (SCALE_64_*)."""

from __future__ import annotations

import ast
import json
import re
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
# What a frozen image keeps in flash that code run from ROMFS holds in RAM: the loader's
# records of each raw code (function, class, comprehension, module: its child table, and
# the module's qstr and constant tables with their constant objects), measured on
# micropython32 with the one package it has frozen, asyncio: 4 272 B imported frozen,
# 5 520 B from a ROMFS image of the same source (v3.0.0, its 90 raw codes), both with the
# qstr pools already grown; 13.9 B a raw code. The names' qstr pools come on top, measured
# in each day (Day.code_pools).
RAW_CODE_BYTES = 13.9

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


def ble_heap_kb(inst: Instrument, romfs: bool, image: int) -> int:
    """The heap of a day with BLE: the device's budget and the board's headroom over it
    (112 - 96 KB; 112 - 48 from ROMFS), with everything the board does not hold on top,
    each measured (the interpreter and harness, the virtual board's code and objects, the
    radio's binding, a ROMFS image). The days without BLE keep the tighter 112 KB whole
    (heap_kb): with aioble's 13 KB of .mpy code and the radio's double beside the virtual
    board the process outgrows it, while the device's share stays within its budget."""
    return int(BOARD_HEAP_KB * inst.scale(romfs)) + -(-(NOT_ON_BOARD_KB * KB
                                                         + radio_bytes(inst) + image) // KB)


# what the day's process holds that the board does not, besides the radio and an image:
# the interpreter's start and the harness (6.2 KB), the virtual board's code (7.6) and
# objects (1.2), measured by the days (Day.not_counted) on micropython32, rounded up
NOT_ON_BOARD_KB = 16


def radio_bytes(inst: Instrument) -> int:
    """The heap the `bluetooth` double takes once imported, on this port: the day's heap
    gets it added, as the board's C binding takes none of the 112 KB."""
    from host_tools.device.ble import double_dir

    env = mp_env()
    env["MICROPYPATH"] += f":{double_dir()}"
    p = subprocess.run([inst.binary, "-c", "import gc\ngc.collect()\na = gc.mem_alloc()\n"
                        "import bluetooth\ngc.collect()\nprint(gc.mem_alloc() - a)"],
                       capture_output=True, text=True, cwd=BUILD, env=env, timeout=60)
    return int(p.stdout.split()[-1])


class _BlePulls:
    """The host side of BLE during the day: pull after pull over the radio into the day's
    collector (its own connection to the database), until the device's process ends."""

    def __init__(self, radio, db: str, proc: subprocess.Popen):
        import threading

        self.radio, self.db, self.proc = radio, db, proc
        self.done = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import asyncio

        from host_tools.collector.api import open_collector
        from host_tools.device.ble import BleError, BumbleCentral, pull

        col = open_collector(self.db)

        async def once() -> None:
            c = BumbleCentral(self.radio.hci)
            try:
                await c.open(None, "B01", 5, 185)
                await pull(c, self.db, 5, collector=col)
            finally:
                await c.close()

        while not self._stop.is_set() and self.proc.poll() is None:
            try:
                asyncio.run(once())
                self.done += 1
            except (BleError, OSError) as e:  # the day ended under it, or it came too early
                self.errors.append(str(e))
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=60)


@dataclass
class Day:
    """One heap day's figures (bytes in use after gc unless said otherwise)."""

    raw: dict
    instrument: Instrument
    romfs: bool
    heap_kb: int
    qstrs: list[int] = field(default_factory=list)  # names interned at boot, at the end
    pools: dict[str, dict[str, int]] = field(default_factory=dict)  # qstr_info() by label
    stored: int | None = None  # ratings the collector holds (full firmware)
    ble_pulls: int = 0  # BLE pulls the host completed during the day (full firmware)

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
        return self.harness + self.image + self.radio + self.sim_code + self.sim_objects

    @property
    def code(self) -> int:
        return self.stages["code"]

    @property
    def aioble(self) -> int:
        """aioble's code (the double's, for micropython-lib's): frozen or mip'd on the
        board, so counted in the device's share."""
        return self.stages.get("aioble", 0)

    @property
    def radio(self) -> int:
        """The `bluetooth` module's double: C (NimBLE's binding) on the board."""
        return self.stages.get("radio", 0)

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
    def code_pools(self) -> int:
        """Heap the qstr pools grew by in the code stage: the device's and aioble's names,
        which a frozen image has in its own pool in flash."""
        def heap(label):
            q = self.pools[label]
            return q["n_total_bytes"] - q["n_str_data_bytes"]  # the pools, not the text

        return heap("after_code") - heap("before_code")

    @property
    def raw_codes(self) -> int:
        """Raw codes of the device modules and aioble the day loaded (the bluetooth
        double is C on the board): a module, and each function, class and comprehension."""
        return sum(raw_code_count(source_of(m)) for m in self.raw["modules"]
                   if m != "bluetooth")

    @property
    def frozen_peak(self) -> int:
        """The ROMFS day's peak less what a frozen image keeps in flash: the code stage's
        qstr pools (measured) and the loader's raw-code records (RAW_CODE_BYTES each)."""
        return int(self.peak - self.code_pools - RAW_CODE_BYTES * self.raw_codes)

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


def qstr_pools(out: str) -> dict[str, dict[str, int]]:
    """The figures of each micropython.qstr_info() line after a "qstrs: LABEL" line."""
    found = {}
    for m in re.finditer(r"^qstrs: (\w+)\nqstr pool: (.*)$", out, re.M):
        found[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return found


def source_of(module: str) -> Path:
    """The source file of a device module, or of the aioble double's."""
    root = ROOT / "tests" / "ble" if module.startswith("aioble") else ROOT
    path = root / module.replace(".", "/")
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def raw_code_count(path: Path) -> int:
    """The raw codes mpy-cross makes of a source file: the module and every function,
    class, lambda and comprehension in it."""
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp,
             ast.SetComp, ast.DictComp, ast.GeneratorExp)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return 1 + sum(isinstance(node, kinds) for node in ast.walk(tree))


def heap_kb(inst: Instrument, romfs_bytes: int = 0) -> int:
    """The -X heapsize of a day: the board's heap (scaled on the 64-bit port), plus the
    ROMFS image, which sits in this heap here and in flash on the board."""
    return int(BOARD_HEAP_KB * inst.scale()) + -(-romfs_bytes // KB)


def run_day(work: Path, full: bool = True, romfs: bool = False, n: int = 500,
            inst: Instrument | None = None, heap: int | None = None, ble: bool = False) -> Day:
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
            # aioble is frozen into the production image: the double rides in the image too
            # (its bluetooth module as well: a package is found under one path only; it is
            # not counted, being C on the board)
            trees = ()
            if ble:
                from host_tools.device.ble import double_dir

                trees = (double_dir(),)
            img = build_romfs(work / "device.romfs", extra=("hw/sim",), trees=trees)
            args.append(str(img))
            image = img.stat().st_size
        kb = heap or (ble_heap_kb(inst, romfs, image) if ble else heap_kb(inst, image))
        env = mp_env()
        radio = None
        if ble:  # BLE runs too: a bumble radio, and a host pulling over it all day
            from host_tools.device.ble import double_dir
            from host_tools.device.ble_radio import BleRadio

            radio = BleRadio().start()
            env["PINGJIA_BLE_RADIO"] = radio.radio
            env["PINGJIA_HEAP_BLE"] = "1"
            env["MICROPYPATH"] += f":{double_dir()}"
        proc = subprocess.Popen(mp_command("heapday.py", *args, heap=f"{kb}k",
                                           binary=inst.binary),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=BUILD, env=env)
        pulls = _BlePulls(radio, str(work / "pingjia.db"), proc) if ble else None
        try:
            out, err = proc.communicate(timeout=1800)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if pulls:
                pulls.stop()
            if radio:
                radio.stop()
        p = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        lines = p.stdout.strip().splitlines()
        if p.returncode or not lines or lines[-1] != "PASS":
            raise AssertionError(f"heap day ({kb} KB, {inst.binary}) failed:\n"
                                 f"{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
        day = Day(json.loads(lines[-2]), inst, romfs, kb)
        day.pools = qstr_pools(p.stdout)
        day.qstrs = [day.pools[k]["n_qstr"] for k in ("base", "end") if k in day.pools]
        if srv is not None:
            day.stored = srv.collector.db.value(
                "SELECT COUNT(*) FROM events WHERE kind = 'rating'")
        if pulls:
            day.ble_pulls = pulls.done
        return day
    finally:
        if srv is not None:
            srv.stop()
