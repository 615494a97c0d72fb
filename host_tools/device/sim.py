"""`pingjia sim`: the virtual device (design.md section 7).

The device itself (firmware/ and hw/) runs on the real MicroPython unix port
in a child process, answering the line protocol (hw/sim/console.py). This
launcher provisions it, relays commands, and plays the power switch: `power
off` kills the process (a real power cut: the flash image keeps what was
written, the clock is lost), `power on` boots it again on the same image.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from firmware.clock import EPOCH_UNIX, iso, parse_iso
from host_tools.device import build
from host_tools.device.build import BUILD, compile_all
from host_tools.errors import PingjiaError

# The firmware's own budget is 128 KB (tests/test_heap.py proves it on the
# unix port); the virtual device also carries its line console, log decoder and
# chip models, which the board does not, so it gets room for those.
HEAP = "256k"
EOT = "\x04"
# The longest one answer may take (a `sleep` of hours in virtual time takes seconds): a
# device that hangs, or never boots, is an error after this, not a wait without end.
ANSWER_S = 300


class DeviceError(PingjiaError, RuntimeError):
    pass


def micropython_bin(override: str | None = None) -> str:
    if override:
        # a path is the user's, not the device's working directory's; a bare name is
        # looked up on PATH
        found = shutil.which(str(Path(override).resolve()) if os.sep in override else override)
        if found is None:
            raise DeviceError(f"--micropython {override}: no such program")
        return found
    try:
        return build.micropython_bin()
    except RuntimeError as e:
        raise DeviceError(str(e)) from None


class DeviceProcess:
    """One boot of the virtual device. With serial=PATH its REPL is on a pty
    linked at PATH (through socat, as a board on USB) and the line protocol
    goes through two FIFOs."""

    def __init__(self, mp: str, flash: Path, wall_s: int | None, badge: str | None,
                 provision: Path | None, blocks: int = 384, heap: str = HEAP,
                 serial: Path | None = None, workdir: Path | None = None, sign: str = "4.2",
                 timeout: float = ANSWER_S, ble: dict | None = None):
        self.serial = serial
        # an empty working directory: '' leads sys.path, and no source must shadow the build
        cwd = str(workdir or BUILD)
        cmd = [mp, "-X", f"heapsize={heap}"] + (["-i"] if serial else []) + [
            "-m", "hw.sim.main", "--flash", str(flash), "--blocks", str(blocks), "--sign", sign]
        if wall_s is not None:
            cmd += ["--time", str(wall_s)]
        if badge:
            cmd += ["--badge", badge]
        if provision:
            cmd += ["--provision", str(provision)]
        env = dict(os.environ)
        extra = env.get("MICROPYPATH")
        if ble is not None:  # the BLE radio (host_tools/device/ble_radio.py), aioble's path
            cmd += ["--ble", "1"]
            env["PINGJIA_BLE_RADIO"] = ble["radio"]
            extra = ":".join(p for p in (ble.get("path"), extra) if p)
        env["MICROPYPATH"] = f"{BUILD}:.frozen" + (f":{extra}" if extra else "")
        env.setdefault("PINGJIA_FONTS", str(build.ROOT / "lib"))
        self.mono_ms = 0
        if serial is None:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                         bufsize=1, cwd=cwd, env=env)
            self.tx, self.rx = self.proc.stdin, self.proc.stdout
        else:
            ctl_in, ctl_out = serial.parent / "ctl.in", serial.parent / "ctl.out"
            for f in (ctl_in, ctl_out):
                if not f.exists():
                    os.mkfifo(f)
            cmd += ["--ctl", str(serial.parent)]
            if not shutil.which("socat"):
                raise DeviceError("--serial needs socat (Debian package socat; `make sim` "
                                  "installs it)")
            # onlcr=0: the unix port already sends CR LF, as mpremote expects of a board
            self.proc = subprocess.Popen(
                ["socat", f"PTY,link={serial},raw,echo=0",
                 "EXEC:" + " ".join(cmd) + ",pty,setsid,ctty,stderr,echo=0,onlcr=0"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                text=True, cwd=cwd, env=env)
            self.tx = open(ctl_in, "w", encoding="utf-8")  # noqa: SIM115 (kept for the boot)
            self.rx = open(ctl_out, encoding="utf-8")  # noqa: SIM115
        # the device's lines, read by a thread, so that every wait for them has a deadline
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, name="pingjia-sim-rx", daemon=True).start()
        try:
            # wait until it has booted and answers; what it said booting is the technician's
            self.boot_lines = self.command("", timeout)
        except DeviceError:
            self.cut_power()  # a device that did not boot is not left running
            raise

    def _pump(self) -> None:
        try:
            for s in self.rx:
                self._lines.put(s)
        except (OSError, ValueError):  # closed under the reader: the power was cut
            pass
        self._lines.put("")  # the end, as readline() says it

    def alive(self) -> bool:
        return self.proc.poll() is None

    def command(self, line: str, timeout: float = ANSWER_S) -> list[str]:
        try:
            self.tx.write(line + "\n")
            self.tx.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise DeviceError(self._crash()) from None
        out = []
        end = time.monotonic() + timeout
        while True:
            try:
                s = self._lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise DeviceError(f"the device gave no answer to {line!r} in {timeout} s "
                                  f"(it said: {out[-3:]})") from None
            if not s:
                self._lines.put("")  # the end stays the end for the next command too
                raise DeviceError(self._crash())
            s = s.rstrip("\n")
            if s.startswith(EOT + " crash"):
                raise DeviceError("the device's app crashed: " + s[7:])
            if s.startswith(EOT):
                self.mono_ms = int(s[1:].strip() or 0)
                return out
            out.append(s)

    def _crash(self) -> str:
        if self.serial is not None and self.proc.poll() is None:
            return ("the app is stopped: a serial session interrupted it and the device waits "
                    "at its REPL (soft reset it, or power off|on)")
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        err = self.proc.stderr.read() if self.proc.stderr else ""
        tail = "\n".join(err.strip().splitlines()[-8:])
        return f"the device stopped (exit {self.proc.returncode}): {tail}"

    def cut_power(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        for f in (self.tx, self.rx, self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f:
                try:
                    f.close()
                except OSError:
                    pass


class Sim:
    """The virtual device seen from outside: a power switch, a badge slot, time."""

    def __init__(self, args: argparse.Namespace, out: IO[str]):
        self.out = out
        self.args = args
        self.mp = micropython_bin(args.micropython)
        compile_all()
        self.tmp = Path(tempfile.mkdtemp(prefix="pingjia-sim-"))
        # absolute: the device runs in a working directory of its own, where a relative
        # --flash would be made and deleted with it
        self.flash = Path(args.flash).resolve() if args.flash else self.tmp / "flash.img"
        self.wall = parse_iso(args.start) if args.start else _now_2000()
        self.boot_wall: float = self.wall
        self.badge: str | None = None
        self.dev: DeviceProcess | None = None
        self.collector = None  # the collector this sim started (a ServerThread)
        self.serial = self.tmp / "serial" if args.serial else None
        self.radio = None  # bumble's virtual link and controllers, with --ble
        self.ble = None  # what the device process needs to reach it
        if getattr(args, "ble", False):
            from host_tools.device.ble import device_ble

            self.radio, self.ble = device_ble(self.mp)
        self._pbm_mtime = 0
        self.run_dir = self.tmp / "run"
        self.run_dir.mkdir()
        self.provision = self._provision_files()
        self.power_on(first=True)
        if self.serial:
            out.write(f"serial: {self.serial}\n")
            out.flush()
        if self.radio:
            out.write(f"hci: {self.radio.hci}\n")
            out.flush()

    def _provision_files(self) -> Path:
        """The device's files, from the collector (started here, or --collector's
        database): identity and key, settings, the roster of its window."""
        from firmware.settings import validate
        from host_tools.collector.api import (
            file_bytes,
            open_collector,
            provision_device,
            start_collector,
        )

        d = self.tmp / "provision"
        d.mkdir()
        a = self.args
        sets = {}
        for kv in a.set or []:
            k, _, v = kv.partition("=")
            sets[k.strip()] = _value(v.strip())
        try:
            validate(dict(sets, window=a.window))
        except ValueError as e:
            raise DeviceError(f"bad --set: {e}") from None
        if a.collector:
            col = open_collector(a.db, clock=lambda: self.wall)
            url = a.collector.rstrip("/") + "/api/v1/sync"
        else:
            self.collector = start_collector(a.db, clock=lambda: self.wall)
            col, url = self.collector.collector, self.collector.sync_url
        provision_device(col, a.device, a.window, a.roster, url)
        for k, v in sets.items():
            col.set_setting(k, v, device=a.device)
        for name, obj in col.provisioning(a.device, url).items():
            (d / name).write_bytes(file_bytes(obj))
        # a new flash for a device the collector knows starts a new log (a new log id):
        # the collector keeps it apart from the old one (firmware/log.py)
        return d

    # ---- power ------------------------------------------------------------
    def power_on(self, first: bool = False) -> None:
        # the host sets the clock at the first start; after a power cut it is unknown
        wall = int(self.wall) if first else None
        prov = self.provision if first and not (self.args.flash and self.flash.exists()) else None
        self.boot_wall = self.wall
        self.dev = DeviceProcess(self.mp, self.flash, wall, self.badge, prov,
                                 serial=self.serial, workdir=self.run_dir,
                                 sign=self.args.sign, ble=self.ble)
        for line in self.dev.boot_lines:  # on stderr: stdout answers the line protocol
            print("device:", line, file=sys.stderr)

    def power_off(self) -> None:
        if self.dev:
            self._tick()
            self.dev.cut_power()
            self.dev = None

    def _tick(self) -> None:
        if self.dev:
            self.wall = self.boot_wall + self.dev.mono_ms / 1000
        self._sign_png()

    def _sign_png(self) -> None:
        """Keep a PNG of the panel current (the device writes a PBM after each refresh)."""
        png = self.args.sign_png
        pbm = Path(str(self.flash) + ".sign.pbm")
        if not png or not pbm.exists():
            return
        m = pbm.stat().st_mtime_ns
        if m == self._pbm_mtime:
            return
        self._pbm_mtime = m
        try:
            from PIL import Image

            Image.open(pbm).convert("L").save(png)
        except (OSError, ValueError):
            pass  # caught mid-write: the next command converts it

    # ---- commands ---------------------------------------------------------
    def run_line(self, line: str) -> bool:
        """One command; False after quit."""
        s = line.strip()
        if not s or s.startswith("#"):
            return True
        parts = s.split()
        cmd = parts[0].lower()
        try:
            if cmd == "power":
                return self._power(parts[1:])
            if cmd == "quit":
                if self.dev:
                    self.dev.command("quit")
                    self.power_off()
                self.say("ok: bye")
                return False
            if self.dev is None:
                return self._while_off(cmd, parts[1:])
            if not self.dev.alive():
                # a soft reset from the serial REPL ends the unix process; the board would
                # reboot with its clock (the RTC survives a soft reset), so does this one
                self._tick()
                self.dev.cut_power()
                self.boot_wall = self.wall
                self.dev = DeviceProcess(self.mp, self.flash, int(self.wall), self.badge, None,
                                         serial=self.serial, workdir=self.run_dir,
                                         sign=self.args.sign, ble=self.ble)
                self.say("ok: the device was soft reset and has booted again")
            if cmd == "badge" and len(parts) == 2:
                before = self.badge
                self.badge = None if parts[1].lower() == "out" else parts[1]
                lines = self.dev.command(s)
                if lines and lines[0].startswith("error: badge UID"):
                    self.badge = before
            else:
                lines = self.dev.command(s)
            self._tick()
            for x in lines:
                self.say(x)
        except DeviceError as e:
            self.say(f"error: {e}")
            if self.dev:
                self.dev.cut_power()
            self.dev = None
        return True

    def _power(self, args: list[str]) -> bool:
        if len(args) != 1 or args[0] not in ("on", "off"):
            self.say("error: usage: power off|on")
        elif args[0] == "off":
            if self.dev is None:
                self.say("ok: the device is already off")
            else:
                self.power_off()
                self.say("ok: power off")
        elif self.dev is not None:
            self.say("ok: the device is already on")
        else:
            self.power_on()
            self.say("ok: power on (clock unknown until a sync)")
        return True

    def _while_off(self, cmd: str, args: list[str]) -> bool:
        if cmd == "sleep" and len(args) == 1:
            try:
                s = float(args[0])
            except ValueError:
                s = -1
            if s < 0:
                self.say("error: sleep takes seconds (a number >= 0)")
            else:
                self.wall += s
                self.say(f"ok: slept {args[0]} s (device off)")
        elif cmd == "badge" and len(args) == 1:
            self.badge = None if args[0].lower() == "out" else args[0]
            self.say("ok: badge " + ("pulled out" if self.badge is None else "in the slot")
                     + " (device off)")
        elif cmd == "status":
            self.say(json.dumps({"screen": "off", "staff_no": None, "unsynced": None,
                                 "seq": None}))
        else:
            self.say(f"error: the device is off ({cmd} needs `power on` first)")
        return True

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def sign_text(self) -> str:
        if not self.dev:
            return "(power off)"
        st = json.loads(self.dev.command("status")[0])
        return st.get("sign", "")

    def close(self) -> None:
        if self.dev:
            self.dev.cut_power()
            self.dev = None
        if self.collector is not None:
            self.collector.stop()
            self.collector = None
        if self.radio is not None:
            self.radio.stop()
            self.radio = None
        shutil.rmtree(self.tmp, ignore_errors=True)


def _value(v: str):
    try:
        return json.loads(v)
    except ValueError:
        return v


def _now_2000() -> int:
    import time

    return int(time.time()) - EPOCH_UNIX


def run(args: argparse.Namespace) -> int:
    if args.start:
        try:
            parse_iso(args.start)
        except (ValueError, IndexError):
            raise PingjiaError(f"bad --start {args.start!r}: use e.g. "
                               "2026-11-23T09:00:00+08:00") from None
    if args.roster:  # refused before the collector's database is opened or made
        from host_tools.collector import rostercsv

        rostercsv.load(args.roster)
    sim = Sim(args, sys.stdout)
    try:
        if not (args.script or not sys.stdin.isatty()) and not args.sign_png \
                and args.sign != "text":
            args.sign_png = "sim-sign.png"
        if args.script or not sys.stdin.isatty():
            for line in sys.stdin:
                if not sim.run_line(line):
                    break
        else:
            _interactive(sim)
    finally:
        sim.close()
    return 0


def _interactive(sim: Sim) -> None:
    sim.say("pingjia virtual device. " + "type help for the commands; quit to leave.")
    if sim.args.sign_png:
        sim.say(f"the e-ink panel is kept in {Path(sim.args.sign_png).resolve()}")
    while True:
        sim.say(_box(sim.sign_text(), sim.wall))
        try:
            line = input("pingjia> ")
        except EOFError:
            line = "quit"
        if line.strip() == "help":
            sim.say("key N | invite [TICKET] | wait | pause | badge UID | badge out | "
                    "sleep S | power off|on | sync | status | log | quit")
            continue
        if not sim.run_line(line):
            return


def _box(text: str, wall: float) -> str:
    lines = text.split(" | ")
    w = max(_width(x) for x in lines) + 2
    top = "┌" + "─" * w + "┐  " + iso(int(wall), 480)
    body = ["│ " + x + " " * (w - 1 - _width(x)) + "│" for x in lines]
    return "\n".join([top, *body, "└" + "─" * w + "┘"])


def _width(s: str) -> int:
    return sum(2 if ord(c) > 0x2E80 else 1 for c in s)
