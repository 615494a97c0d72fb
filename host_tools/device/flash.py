"""`pingjia flash PORT`: MicroPython itself onto an ESP32, with esptool. The firmware file is
checked with esptool's own image tools before anything is written: a MicroPython .bin
(bootloader, partition table, app, written at 0x1000) or an app image alone (at 0x10000);
each image's checksum and SHA-256 digest must hold, for the chip given."""

from __future__ import annotations

import argparse
import struct
import subprocess
import sys
from pathlib import Path

from host_tools.device.image import BIN_FLASH_OFFSET, parse_table
from host_tools.device.remote import TechError

ESP32_APP_MAGIC = 0xE9
APP_OFFSET = 0x10000  # the factory app of ESP32_GENERIC's table
TYPE_APP = 0
_WANT = ("want the MicroPython ESP32_GENERIC .bin from micropython.org/download, or the "
         "firmware.bin of a build")


def _image(chip: str, data: bytes, what: str) -> str:
    """Check one ESP image with esptool (header, segments, checksum, digest); a summary."""
    from esptool.bin_image import LoadFirmwareImage
    from esptool.util import FatalError

    try:
        img = LoadFirmwareImage(chip, data)
    except (FatalError, struct.error, ValueError, IndexError) as e:
        raise TechError(f"{what}: not a valid {chip} image ({e})") from None
    if img.checksum != img.calculate_checksum():
        raise TechError(f"{what}: checksum {img.checksum:#04x} does not match its segments "
                        f"({img.calculate_checksum():#04x}): the file is damaged")
    if img.append_digest and img.stored_digest != img.calc_digest:
        raise TechError(f"{what}: its SHA-256 digest does not match: the file is damaged")
    rom = getattr(img, "ROM_LOADER", None)
    chip_id = getattr(rom, "IMAGE_CHIP_ID", None)
    if chip_id is not None and getattr(img, "chip_id", chip_id) != chip_id:
        raise TechError(f"{what}: built for another chip (chip id {img.chip_id}), not {chip}")
    return f"{what}: {len(img.segments)} segments, checksum and digest valid"


def check_firmware(firmware: Path, chip: str = "esp32") -> tuple[int, list[str]]:
    """(flash offset to write it at, what was checked); TechError if esptool's image
    tools refuse any part of it."""
    try:
        data = firmware.read_bytes()
    except OSError as e:
        raise TechError(f"{firmware}: {e.strerror}") from None
    if not data or data[0] != ESP32_APP_MAGIC:
        raise TechError(f"{firmware}: not an ESP32 firmware image ({_WANT})")
    table = parse_table(data[0x8000 - BIN_FLASH_OFFSET:])
    if not table:  # an app image alone
        return APP_OFFSET, [_image(chip, data, f"{firmware.name} (app image)")]
    notes = [_image(chip, data, f"{firmware.name}: bootloader")]
    apps = [p for p in table if p.type == TYPE_APP]
    if not apps:
        raise TechError(f"{firmware}: its partition table has no app partition")
    at = apps[0].offset - BIN_FLASH_OFFSET
    if at >= len(data):
        raise TechError(f"{firmware}: cut short before its app at {apps[0].offset:#x}")
    notes.append(f"{firmware.name}: partition table, {len(table)} partitions")
    notes.append(_image(chip, data[at:], f"{firmware.name}: app at {apps[0].offset:#x}"))
    return BIN_FLASH_OFFSET if chip == "esp32" else 0, notes


def flash_commands(port: str, firmware: Path, chip: str, baud: int, erase: bool,
                   offset: int = BIN_FLASH_OFFSET) -> list[list[str]]:
    base = [sys.executable, "-m", "esptool", "--chip", chip, "--port", port, "--baud", str(baud)]
    cmds = [base + ["erase-flash"]] if erase else []
    cmds.append(base + ["write-flash", "-z", f"{offset:#x}", str(firmware)])
    return cmds


def cmd_flash(args: argparse.Namespace) -> int:
    firmware = Path(args.firmware)
    offset, notes = check_firmware(firmware, args.chip)
    for n in notes:
        print("checked " + n)
    cmds = flash_commands(args.port, firmware, args.chip, args.baud, not args.no_erase, offset)
    tty = sys.stdout.isatty()
    for c in cmds:
        print(" ".join(c[1:] if c[0] == sys.executable else c))
        if not args.dry_run:
            # esptool draws its own progress on a terminal; elsewhere its output is kept
            # and shown only if it fails
            r = subprocess.run(c, capture_output=not tty, text=True)
            if r.returncode:
                if not tty:
                    print((r.stdout or "") + (r.stderr or ""), file=sys.stderr)
                raise TechError(f"esptool failed (exit {r.returncode}): see its output above")
    return 0
