"""`pingjia pull --usb PORT`: a device's log off its flash, ingested as a sync is."""

from __future__ import annotations

import argparse
import ast
import json
import tempfile
from pathlib import Path

from host_tools.device.remote import TechError, mpremote


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


def read_log_dir(d: Path) -> tuple[list[bytes], int]:
    """Valid records of a copied log directory (segments, then the journal), in seq order,
    each seq once; and how many failed their CRC."""
    from firmware import record

    out: dict[int, bytes] = {}
    bad = 0
    for name in log_files([p.name for p in d.iterdir()]):
        p = d / name
        if not p.exists():
            continue
        data = p.read_bytes()
        for off in range(0, len(data) - len(data) % record.SIZE, record.SIZE):
            if not record.valid(data, off):
                bad += 1
                continue
            out.setdefault(record.seq_of(data, off), data[off:off + record.SIZE])
    return [out[s] for s in sorted(out)], bad


def pull_usb(port: str, db: str) -> dict:
    import random

    from firmware import frame
    from host_tools.collector.api import open_collector

    listing = mpremote(port, "exec", "import os\nprint(os.listdir('log'))")
    names = ast.literal_eval(listing.strip().splitlines()[-1])
    with tempfile.TemporaryDirectory() as d:
        args: list[str] = ["fs", "cp", ":device.json", f"{d}/device.json"]
        for n in names:
            if n == "state" or n in log_files([n]):
                args += ["+", "fs", "cp", f":log/{n}", f"{d}/{n}"]
        mpremote(port, *args)
        dev = json.loads((Path(d) / "device.json").read_text())
        state = json.loads((Path(d) / "state").read_text()) if (Path(d) / "state").exists() \
            else {}
        records, bad = read_log_dir(Path(d))
        log_id = log_id_of(names)
    col = open_collector(db)
    key = col.device_key(dev["id"])
    if key is None:
        raise TechError(f"device {dev['id']} is not in {db} (pingjia device add)")
    boot = int(state.get("boot", 0))
    sent = 0
    for i in range(0, len(records), 256):
        chunk = records[i:i + 256]
        first = int.from_bytes(chunk[0][:4], "little")
        body = frame.request(key, dev["id"], log_id, boot, first, b"".join(chunk),
                             nonce=random.getrandbits(16))
        col.ingest(body)  # the same checks and idempotent store as a Wi-Fi sync
        sent += len(chunk)
    return {"device": dev["id"], "records": sent, "corrupt": bad}


def cmd_pull(args: argparse.Namespace) -> int:
    from firmware.frame import FrameError

    try:
        r = pull_usb(args.usb, args.db)
    except (FrameError, ValueError, OSError) as e:  # a garbled copy, a frame refused
        raise TechError(f"pull from {args.usb}: {e}") from None
    print(f"pulled {r['records']} records of {r['device']} into {args.db}"
          + (f" ({r['corrupt']} corrupt records skipped)" if r["corrupt"] else ""))
    return 0
