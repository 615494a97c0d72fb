"""`pingjia pull`: a device's log into the collector, ingested as a Wi-Fi sync is (the same
signed frames, the same checks, idempotent on device and seq).

    --usb PORT      the log's files through mpremote; then the device is acked and its clock
                    set, as a sync does, and it reboots into its app
    --image FILE    a littlefs partition image (what `esptool read-flash` saves of a board
                    that no longer boots, or a virtual device's --flash file)
    --ble [ADDR]    over BLE from the device's GATT service (host_tools/device/ble.py)

Nothing is acked on the device before the collector has stored it: a pull cut anywhere
loses nothing, and the next one stores only what is missing."""

from __future__ import annotations

import argparse
import ast
import json
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from host_tools.device.progress import bar
from host_tools.device.remote import TechError, mpremote, soft_reset

FRAME_RECORDS = 256  # records per frame to the collector (frame.MAX_RECORDS is 1024)


@dataclass
class LogCopy:
    """A device's log as files: device.json (id), the log's state (boot, acked) and its
    segment and journal files by name."""

    device: dict
    state: dict
    files: dict[str, bytes] = field(default_factory=dict)

    def records(self) -> tuple[list[bytes], int]:
        """Valid records (segments, then the journal) in seq order, each seq once; and how
        many failed their CRC."""
        from firmware import record

        out: dict[int, bytes] = {}
        bad = 0
        for name in log_files(list(self.files)):
            data = self.files[name]
            for off in range(0, len(data) - len(data) % record.SIZE, record.SIZE):
                if not record.valid(data, off):
                    bad += 1
                    continue
                out.setdefault(record.seq_of(data, off), data[off:off + record.SIZE])
        return [out[s] for s in sorted(out)], bad


    def log_id(self) -> int:
        return log_id_of(list(self.files))


def log_files(names: list[str]) -> list[str]:
    """The record files of a log directory's listing (firmware/log.py): segments
    ("s" + first seq [+ log id]), oldest first, then the journal ("j" [+ log id])."""
    segs = sorted((n for n in names if n[:1] == "s" and len(n) in (9, 17)), key=lambda n: n[1:9])
    return segs + [n for n in names if n[:1] == "j" and len(n) in (1, 9)]


def log_id_of(names: list[str]) -> int:
    """The log id in the record files' names; 0 for a log of the first firmware."""
    for n in names:
        if n[:1] == "j" and len(n) == 9:
            return int(n[1:], 16)
        if n[:1] == "s" and len(n) == 17:
            return int(n[9:], 16)
    return 0


def is_log_file(name: str) -> bool:
    return name == "state" or name in log_files([name])


@dataclass
class PullResult:
    device: str
    records: int  # sent to the collector
    corrupt: int  # failed their CRC, skipped
    ack: int  # the collector holds every record up to this seq
    time: int  # the collector's clock (seconds since 2000 UTC)


def ingest(copy: LogCopy, db: str, what: str = "ingest") -> PullResult:
    """Every valid record of copy into the collector at db, in signed frames with the
    device's key from db; the collector's ack and time."""
    from firmware import frame
    from host_tools.collector.api import open_collector

    dev_id = copy.device.get("id")
    if not isinstance(dev_id, str):
        raise TechError("device.json holds no device id: provision it first (pingjia provision)")
    records, bad = copy.records()
    col = open_collector(db)
    key = col.device_key(dev_id)
    if key is None:
        raise TechError(f"device {dev_id} is not in {db} (pingjia device add)")
    hm = frame.Hmac(key)
    boot = int(copy.state.get("boot", 0))
    ack = int(copy.state.get("acked", 0))
    t = 0
    if not records:  # an empty frame still brings the collector's time
        records_first = ack + 1
        body = frame.request(key, dev_id, copy.log_id(), boot, records_first, b"",
                             nonce=random.getrandbits(32))
        ack, t, _s, _r = frame.parse_answer(col.ingest(body), hm, body[-frame.MAC_LEN:])
    with bar(len(records), what, "rec") as progress:
        for i in range(0, len(records), FRAME_RECORDS):
            chunk = records[i:i + FRAME_RECORDS]
            first = int.from_bytes(chunk[0][:4], "little")
            body = frame.request(key, dev_id, copy.log_id(), boot, first, b"".join(chunk),
                             nonce=random.getrandbits(32))
            answer = col.ingest(body)  # the same checks and idempotent store as a Wi-Fi sync
            ack, t, _s, _r = frame.parse_answer(answer, hm, body[-frame.MAC_LEN:])
            progress.update(len(chunk))
    return PullResult(dev_id, len(records), bad, ack, t)


# ---- USB ----------------------------------------------------------------------------
_LIST = """import json, os
try:
    names = os.listdir('log')
except OSError:
    names = []
try:
    dev = json.load(open('device.json'))
except Exception:
    dev = {}
sizes = {}
for n in names:
    sizes[n] = os.stat('log/' + n)[6]
print(repr({'id': dev.get('id'), 'sizes': sizes}))"""

# On the device after the collector stored the records: the same calls a Wi-Fi sync makes
# (log.ack, core.set_time) on the app that mpremote interrupted (main.py's global on the
# board, hw.sim.main's on the virtual device); with no app, the log's state file. The
# board's RTC keeps the time over the reboot that follows (hw/esp32/board.py rtc_time).
_ACK = """import sys
a = globals().get('app') or getattr(sys.modules.get('hw.sim.main'), 'app', None)
if a is not None:
    a.log.ack({ack})
    if {time}:
        a.core.set_time({time})
    print(repr(('app', a.log.acked, a.clock.known)))
else:
    import json
    from firmware import storage
    st = storage.load_json('log/state', {{}}) or {{}}
    st['acked'] = max(int(st.get('acked', 0)), {ack})
    storage.save_json('log/state', st)
    print(repr(('file', st['acked'], False)))
try:
    import machine, time
    if {time} and hasattr(machine, 'RTC'):
        g = time.gmtime({time} if time.gmtime(0)[0] == 2000 else {time} + 946684800)
        machine.RTC().datetime((g[0], g[1], g[2], g[6], g[3], g[4], g[5], 0))
except Exception as e:
    print('rtc:', e)"""


def copy_usb(port: str, work: Path) -> LogCopy:
    """The log's files off the device on PORT (mpremote), into work/."""
    listing = mpremote(port, "exec", _LIST)
    info = ast.literal_eval(listing.strip().splitlines()[-1])
    sizes = {n: s for n, s in info["sizes"].items() if is_log_file(n)}
    copy = LogCopy({"id": info["id"]}, {})
    with bar(sum(sizes.values()), "copy", "B") as progress:
        for name in sorted(sizes):
            mpremote(port, "fs", "cp", f":log/{name}", str(work / name))
            data = (work / name).read_bytes()
            if name == "state":
                copy.state = json.loads(data or b"{}")
            else:
                copy.files[name] = data
            progress.update(sizes[name])
    return copy


def pull_usb(port: str, db: str) -> tuple[PullResult, tuple]:
    """Copy, ingest, then ack the device and set its clock; it reboots into its app."""
    with tempfile.TemporaryDirectory() as d:
        copy = copy_usb(port, Path(d))
    try:
        r = ingest(copy, db)
        out = mpremote(port, "exec", _ACK.format(ack=r.ack, time=r.time))
        done = ast.literal_eval(out.strip().splitlines()[-1])
    finally:
        soft_reset(port)  # mpremote stopped the app: the board runs it again
    return r, done


# ---- a flash image ----------------------------------------------------------------------
def copy_image(path: Path) -> LogCopy:
    from host_tools.device.image import LittlefsImage

    img = LittlefsImage(path)
    dev = img.read("/device.json")
    try:
        device = json.loads(dev) if dev else {}
    except ValueError:
        device = {}  # a corrupt identity file: the error below says so
    state_raw = img.read("/log/state")
    try:
        state = json.loads(state_raw) if state_raw else {}
    except ValueError:
        state = {}  # the records are the truth; the boot number is only for the frame
    copy = LogCopy(device, state)
    for name in img.listdir("/log"):
        if is_log_file(name) and name != "state":
            copy.files[name] = img.read(f"/log/{name}") or b""
    if not copy.files and not img.listdir("/log"):
        raise TechError(f"{path}: a littlefs image with no log/ directory (not a pingjia "
                        "device's flash)")
    return copy


def cmd_pull(args: argparse.Namespace) -> int:
    from firmware.frame import FrameError

    chosen = [n for n in ("usb", "image", "ble") if getattr(args, n) is not None]
    if len(chosen) != 1:
        raise TechError("pull takes one of --usb PORT, --image FILE, --ble [ADDRESS]")
    how = chosen[0]
    try:
        if how == "ble":
            from host_tools.device.ble import cmd_pull_ble

            return cmd_pull_ble(args)
        if how == "image":
            return _pull_image(args)
        r, done = pull_usb(args.usb, args.db)
    except (FrameError, ValueError, OSError) as e:  # a garbled copy, a frame refused
        raise TechError(f"pull from {args.usb or args.image}: {e}") from None
    _say(r, args.db)
    where, acked, clock = done
    print(f"device acked up to seq {acked}" + (", clock set" if clock else "")
          + ("" if where == "app" else " (in its log state: the app was not running)"))
    return 0


def _pull_image(args: argparse.Namespace) -> int:
    from host_tools.device.image import read_flash_line, vfs_partition

    path = Path(args.image)
    off, size, source = vfs_partition(Path(args.firmware) if args.firmware else None)
    line = read_flash_line(off, size, str(path))
    if not path.exists():
        raise TechError(f"{path}: no such file; save a board's log partition with `{line}` "
                        f"(offset and size from {source})")
    print(f"a board's log partition is saved with: {line}  ({source})")
    r = ingest(copy_image(path), args.db)
    _say(r, args.db)
    return 0


def _say(r: PullResult, db: str) -> None:
    print(f"pulled {r.records} records of {r.device} into {db}, the collector holds every "
          f"record up to seq {r.ack}"
          + (f" ({r.corrupt} corrupt records skipped)" if r.corrupt else ""))
