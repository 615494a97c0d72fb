"""The collector's commands: serve, device, roster, settings, report, export (the table
in host_tools/cli.py names them). Bad input raises PingjiaError: one line, exit 2."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from host_tools.errors import PingjiaError


def _open(args: argparse.Namespace):
    from host_tools.collector.store import Collector

    return Collector(args.db)


def serve(args: argparse.Namespace) -> int:
    from host_tools.collector.server import serve as run_server

    c = _open(args)
    print(f"pingjia collector on http://{args.host}:{args.port}/ (sync: /api/v1/sync), "
          f"db {args.db}", file=sys.stderr)
    run_server(c, args.host, args.port)
    return 0


def device_add(args: argparse.Namespace) -> int:
    print(_open(args).add_device(args.id, args.window, args.key))
    return 0


def device_list(args: argparse.Namespace) -> int:
    from firmware.clock import iso

    c = _open(args)
    tz = c.hall_tz_min()
    print("id          window  last_seq  frames  last_seen")
    for d in c.devices():
        seen = iso(d["last_seen"], tz) if d["last_seen"] is not None else "never"
        print(f"{d['id']:<11} {d['window']:<7} {d['last_seq']:>8}  {d['frames']:>6}  {seen}")
    return 0


def roster_import(args: argparse.Namespace) -> int:
    from host_tools.collector import rostercsv

    try:
        rostercsv.load(args.csv)  # a roster that cannot be read opens (or makes) no database
        versions = _open(args).import_roster(args.csv)
    except PingjiaError as e:
        raise PingjiaError(f"{e} (nothing stored)") from None
    for w, v in versions.items():
        print(f"window {w}: roster version {v}")
    return 0


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def settings_set(args: argparse.Namespace) -> int:
    v = _open(args).set_setting(args.key, _value(args.value), args.device)
    print(f"settings version {v} ({'device ' + args.device if args.device else 'hall'})")
    return 0


def settings_show(args: argparse.Namespace) -> int:
    c = _open(args)
    if args.device:
        try:
            effective = c.settings_for(args.device)
        except ValueError as e:
            raise PingjiaError(str(e)) from None
        print(json.dumps(effective, ensure_ascii=False, indent=1))
        return 0
    for scope, k, v in c.settings_table():
        print(f"{scope}\t{k}\t{json.dumps(v, ensure_ascii=False)}")
    return 0


def report(args: argparse.Namespace) -> int:
    from host_tools.collector import reports

    c = _open(args)
    try:
        rows = reports.summary(c.db, c.hall_tz_min(), args.day, args.by, c.now())
    except ValueError as e:
        raise PingjiaError(str(e)) from None
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    elif not rows:
        print("no ratings" + (f" on {args.day}" if args.day else ""))
    else:
        print(reports.table(rows, args.by))
    return 0


def export(args: argparse.Namespace) -> int:
    from host_tools.collector import export as formats
    from host_tools.collector import reports

    c = _open(args)
    try:
        rows = reports.ratings(c.db, c.hall_tz_min(), args.day)
    except ValueError as e:
        raise PingjiaError(str(e)) from None
    text = formats.to_csv(rows) if args.format == "csv" else formats.to_json(rows) + "\n"
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8", newline="") as f:
                f.write(text)
        except OSError as e:
            raise PingjiaError(f"cannot write {args.out}: {e.strerror}") from None
    else:
        sys.stdout.write(text)
    return 0
