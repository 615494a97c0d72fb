"""The collector's commands: serve, device, roster, settings, report, export.
host_tools/cli.py calls register(subparsers)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

DB_HELP = "collector database: a SQLite file or a postgresql:// URL (default pingjia.db)"


def _db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default="pingjia.db", help=DB_HELP)


def _open(args: argparse.Namespace):
    from host_tools.collector import Collector

    return Collector(args.db)


def _err(msg: str, code: int = 1) -> int:
    print(f"pingjia: {msg}", file=sys.stderr)
    return code


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the collector: sync endpoint, JSON API, dashboard")
    _db(p)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("device", help="devices known to the collector (id and key)")
    dsub = p.add_subparsers(dest="device_cmd", metavar="add|list")
    dsub.required = True
    a = dsub.add_parser("add", help="register a device; prints the key to provision")
    a.add_argument("id", help="device id (1-10 of A-Z a-z 0-9 . _ -)")
    a.add_argument("--window", required=True, help="window name, e.g. B01")
    a.add_argument("--key", help="use this key (hex, >= 16 bytes) instead of a new one")
    _db(a)
    a.set_defaults(func=cmd_device_add)
    ls = dsub.add_parser("list", help="list devices")
    _db(ls)
    ls.set_defaults(func=cmd_device_list)

    p = sub.add_parser("roster", help="staff roster")
    rsub = p.add_subparsers(dest="roster_cmd", metavar="import")
    rsub.required = True
    i = rsub.add_parser("import", help="import staff.csv (badge_uid,staff_no,name,department,"
                        "windows)")
    i.add_argument("csv")
    _db(i)
    i.set_defaults(func=cmd_roster_import)

    p = sub.add_parser("settings", help="device settings, per hall or per device")
    ssub = p.add_subparsers(dest="settings_cmd", metavar="set|show")
    ssub.required = True
    s = ssub.add_parser("set", help="set KEY to VALUE (JSON or text) for the hall or a device")
    s.add_argument("key")
    s.add_argument("value")
    s.add_argument("--device", help="only this device")
    _db(s)
    s.set_defaults(func=cmd_settings_set)
    sh = ssub.add_parser("show", help="show stored settings")
    sh.add_argument("--device", help="the effective settings of this device")
    _db(sh)
    sh.set_defaults(func=cmd_settings_show)

    p = sub.add_parser("report", help="ratings, 满意率, 差评率, 参评率, index, pause and wait time")
    _db(p)
    p.add_argument("--day", help="YYYY-MM-DD in the hall's time zone (default: all days)")
    p.add_argument("--by", choices=("window", "staff", "hour", "day"), default="window")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="every rating, oldest first")
    _db(p)
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("--day", help="only this day (YYYY-MM-DD, hall time zone)")
    p.add_argument("--out", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_export)


def cmd_serve(args: argparse.Namespace) -> int:
    from host_tools.server import serve

    c = _open(args)
    print(f"pingjia collector on http://{args.host}:{args.port}/ (sync: /api/v1/sync), "
          f"db {args.db}", file=sys.stderr)
    serve(c, args.host, args.port)
    return 0


def cmd_device_add(args: argparse.Namespace) -> int:
    from host_tools.collector import CollectorError

    try:
        key = _open(args).add_device(args.id, args.window, args.key)
    except CollectorError as e:
        return _err(str(e), 2)
    print(key)
    return 0


def cmd_device_list(args: argparse.Namespace) -> int:
    from firmware.clock import iso

    c = _open(args)
    tz = c.hall_tz_min()
    print("id          window  last_seq  frames  last_seen")
    for d in c.devices():
        seen = iso(d["last_seen"], tz) if d["last_seen"] is not None else "never"
        print(f"{d['id']:<11} {d['window']:<7} {d['last_seq']:>8}  {d['frames']:>6}  {seen}")
    return 0


def cmd_roster_import(args: argparse.Namespace) -> int:
    from host_tools.collector import CollectorError
    from host_tools.rostercsv import RosterError

    try:
        versions = _open(args).import_roster(args.csv)
    except (RosterError, CollectorError) as e:
        return _err(f"{e} (nothing stored)", 2)
    for w, v in versions.items():
        print(f"window {w}: roster version {v}")
    return 0


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def cmd_settings_set(args: argparse.Namespace) -> int:
    from host_tools.collector import CollectorError

    try:
        v = _open(args).set_setting(args.key, _value(args.value), args.device)
    except CollectorError as e:
        return _err(str(e), 2)
    print(f"settings version {v} ({'device ' + args.device if args.device else 'hall'})")
    return 0


def cmd_settings_show(args: argparse.Namespace) -> int:
    from host_tools.collector import CollectorError

    c = _open(args)
    if args.device:
        try:
            print(json.dumps(c.settings_for(args.device), ensure_ascii=False, indent=1))
        except (CollectorError, ValueError) as e:
            return _err(str(e), 2)
        return 0
    for scope, k, v in c.settings_table():
        print(f"{scope}\t{k}\t{json.dumps(v, ensure_ascii=False)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from host_tools import reports

    c = _open(args)
    try:
        rows = reports.summary(c.db, c.hall_tz_min(), args.day, args.by, c.now())
    except ValueError as e:
        return _err(str(e), 2)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    elif not rows:
        print("no ratings" + (f" on {args.day}" if args.day else ""))
    else:
        print(reports.table(rows, args.by))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from host_tools import export, reports

    c = _open(args)
    try:
        rows = reports.ratings(c.db, c.hall_tz_min(), args.day)
    except ValueError as e:
        return _err(str(e), 2)
    text = export.to_csv(rows) if args.format == "csv" else export.to_json(rows) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0
