"""`pingjia provision PORT`: a device's identity, settings and roster onto its flash."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from host_tools.device.deploy import device_hashes, sha256
from host_tools.device.remote import TechError, mpremote, soft_reset


def provision(port: str, db: str, device: str, window: str, roster: str | None,
              sync_url: str | None, ssid: str | None, password: str | None) -> list[str]:
    from host_tools.collector.api import file_bytes, open_collector, provision_device

    col = open_collector(db)
    provision_device(col, device, window, roster, sync_url)
    files = col.provisioning(device, sync_url)
    if ssid:
        files["device.json"] = dict(files["device.json"], ssid=ssid, password=password or "")
    with tempfile.TemporaryDirectory() as d:
        args: list[str] = []
        for name, obj in files.items():
            (Path(d) / name).write_bytes(file_bytes(obj))
            args += ["fs", "cp", str(Path(d) / name), f":{name}", "+"]
        mpremote(port, *args[:-1])
        # read back what landed: a file cut short or garbled on the line is an error now,
        # not a device that boots with its defaults at the counter
        got = device_hashes(port, sorted(files))
        bad = [n for n in sorted(files) if got.get(n) != sha256(Path(d) / n)]
    if bad:
        raise TechError(f"provision: read back differs from what was written: {', '.join(bad)}")
    return sorted(files)


def cmd_provision(args: argparse.Namespace) -> int:
    names = provision(args.port, args.db, args.device, args.window, args.roster, args.url,
                      args.ssid, args.password)
    print(f"provisioned {args.device} (window {args.window}): {', '.join(names)}, "
          "each read back and checked")
    soft_reset(args.port)
    return 0
