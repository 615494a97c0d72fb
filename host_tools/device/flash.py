"""`pingjia flash PORT`: MicroPython itself onto an ESP32, with esptool."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from host_tools.device.remote import TechError

ESP32_APP_MAGIC = 0xE9


def flash_commands(port: str, firmware: Path, chip: str, baud: int, erase: bool) -> list[list[str]]:
    base = [sys.executable, "-m", "esptool", "--chip", chip, "--port", port, "--baud", str(baud)]
    cmds = [base + ["erase-flash"]] if erase else []
    offset = "0x1000" if chip == "esp32" else "0x0"
    cmds.append(base + ["write-flash", "-z", offset, str(firmware)])
    return cmds


def check_firmware(firmware: Path) -> None:
    try:
        head = firmware.read_bytes()[:1]
    except OSError as e:
        raise TechError(f"{firmware}: {e.strerror}") from None
    if not head or head[0] != ESP32_APP_MAGIC:
        raise TechError(f"{firmware}: not an ESP32 firmware image (want the MicroPython "
                        "ESP32_GENERIC .bin from micropython.org/download)")


def cmd_flash(args: argparse.Namespace) -> int:
    firmware = Path(args.firmware)
    check_firmware(firmware)
    cmds = flash_commands(args.port, firmware, args.chip, args.baud, not args.no_erase)
    for c in cmds:
        print(" ".join(c[1:] if c[0] == sys.executable else c))
        if not args.dry_run:
            r = subprocess.run(c)
            if r.returncode:
                raise TechError(f"esptool failed (exit {r.returncode}): see its output above")
    return 0
