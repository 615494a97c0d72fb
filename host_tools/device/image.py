"""A board's flash read back on the host: the partition table of a MicroPython ESP32 image
(where the littlefs `vfs` partition sits), the `esptool read-flash` line that saves that
partition, and the files of a littlefs partition image (littlefs-python), for
`pingjia pull --image FILE`."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from host_tools.errors import PingjiaError

BLOCK = 4096  # the ESP32 flash sector, littlefs's block on the board and the virtual device
# where the tables sit: in flash, and in a MicroPython ESP32 .bin (written at 0x1000)
TABLE_FLASH_OFFSET = 0x8000
BIN_FLASH_OFFSET = 0x1000
TABLE_MAX = 0xC00  # the partition table's sector: 96 entries of 32 bytes
_ENTRY = struct.Struct("<2sBBII16sI")  # magic, type, subtype, offset, size, label, flags
_MAGIC = b"\xaa\x50"
_MD5_MAGIC = b"\xeb\xeb"
TYPE_DATA = 1
# ESP32_GENERIC's partitions-4MiB.csv: vfs, data, fat, 0x200000, 0x200000
GENERIC_VFS = (0x200000, 0x200000)


class ImageError(PingjiaError, ValueError):
    pass


@dataclass(frozen=True)
class Partition:
    label: str
    type: int
    subtype: int
    offset: int
    size: int


def parse_table(data: bytes) -> list[Partition]:
    """The entries of an ESP-IDF partition table (the binary esptool writes at 0x8000)."""
    out = []
    for off in range(0, min(len(data), TABLE_MAX) - _ENTRY.size + 1, _ENTRY.size):
        magic, ptype, sub, start, size, label, _flags = _ENTRY.unpack_from(data, off)
        if magic != _MAGIC:  # 0xFFFF ends it, 0xEBEB is its MD5 entry
            break
        out.append(Partition(label.rstrip(b"\0").decode("ascii", "replace"), ptype, sub,
                             start, size))
    return out


def table_of(data: bytes) -> list[Partition]:
    """The partition table inside a MicroPython .bin (bootloader at 0x1000 of the flash) or a
    whole-flash dump (from 0); ImageError if neither holds one."""
    for at in (TABLE_FLASH_OFFSET - BIN_FLASH_OFFSET, TABLE_FLASH_OFFSET):
        parts = parse_table(data[at:at + TABLE_MAX])
        if parts:
            return parts
    raise ImageError("no ESP32 partition table in it (want the MicroPython .bin the board "
                     "runs, or a dump of the whole flash)")


def vfs_partition(firmware: Path | None) -> tuple[int, int, str]:
    """(offset, size, where that came from) of the littlefs partition on the board."""
    if firmware is None:
        return GENERIC_VFS[0], GENERIC_VFS[1], "ESP32_GENERIC's 4 MB partition table"
    try:
        data = firmware.read_bytes()
    except OSError as e:
        raise ImageError(f"{firmware}: {e.strerror}") from None
    for p in table_of(data):
        if p.type == TYPE_DATA and p.label == "vfs":
            return p.offset, p.size, f"the partition table of {firmware.name}"
    raise ImageError(f"{firmware}: its partition table has no vfs partition")


def read_flash_line(offset: int, size: int, out: str, port: str = "PORT",
                    chip: str = "esp32") -> str:
    """The esptool command that saves the littlefs partition of a board on PORT."""
    return f"esptool --chip {chip} --port {port} read-flash {offset:#x} {size:#x} {out}"


class LittlefsImage:
    """The files of a littlefs partition image, read with littlefs-python. Takes the
    partition alone (what read-flash saves) or a whole-flash dump (it finds the vfs
    partition through the dump's own partition table)."""

    def __init__(self, path: Path):
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ImageError(f"{path}: {e.strerror}") from None
        self.path = path
        self.fs = self._mount(data)
        if self.fs is None and len(data) >= TABLE_FLASH_OFFSET + TABLE_MAX:
            try:
                parts = table_of(data)
            except ImageError:
                parts = []
            for p in parts:
                if p.type == TYPE_DATA and p.label == "vfs":
                    self.fs = self._mount(data[p.offset:p.offset + p.size])
        if self.fs is None:
            raise ImageError(f"{path}: not a littlefs partition image (want what `esptool "
                             "read-flash` saves of the vfs partition, or a virtual device's "
                             "--flash file)")

    @staticmethod
    def _mount(data: bytes):
        from littlefs import LittleFS, LittleFSError

        if len(data) < 2 * BLOCK or len(data) % BLOCK:
            return None
        # read and prog sizes as the board mounts it (firmware/storage.py LFS_OPTS); the
        # block count from the superblock (0): a partition larger than the filesystem made
        # on it (the virtual device's 1.5 MB in the board's 2 MB vfs) mounts too
        fs = LittleFS(block_size=BLOCK, block_count=0, read_size=128, prog_size=128,
                      lookahead_size=32, mount=False)
        fs.context.buffer = bytearray(data)
        try:
            fs.mount()
        except (LittleFSError, IndexError, ValueError):  # no superblock, or one past the end
            return None
        return fs

    def listdir(self, path: str) -> list[str]:
        try:
            return list(self.fs.listdir(path))
        except Exception:  # littlefs-python raises its own errors for a missing directory
            return []

    def read(self, path: str) -> bytes | None:
        try:
            with self.fs.open(path, "rb") as f:
                return f.read()
        except Exception:
            return None
