"""The collector's commands: serve, device, roster, settings, report, export (the table
in host_tools/cli.py names them). Bad input raises PingjiaError: one line, exit 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from host_tools.errors import PingjiaError


def _open(args: argparse.Namespace):
    """The collector of --db. A read-only command (cli.READS sets args.reads) makes no
    database: a SQLite file that is not there is refused."""
    from host_tools.collector.db import is_postgres
    from host_tools.collector.store import Collector

    db = args.db
    if getattr(args, "reads", False) and not is_postgres(db) and not os.path.exists(db):
        raise PingjiaError(f"cannot open the database {db}: no such file (pingjia sim, serve, "
                           "device add, user add and roster import make it; --db names another)")
    return Collector(db)


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def _proxies(given: list[str] | None) -> tuple[str, ...]:
    """--proxy values: IP addresses as the server sees its peers (checked before the
    database is opened, so a typo creates nothing)."""
    import ipaddress

    out = []
    for p in given or ():
        try:
            out.append(str(ipaddress.ip_address(p)))
        except ValueError:
            raise PingjiaError(f"--proxy {p!r} is not an IP address (the proxy's address "
                               "as this server sees its connections, e.g. 10.0.0.5)") from None
    return tuple(out)


def serve(args: argparse.Namespace) -> int:
    from host_tools.collector.server import listen
    from host_tools.collector.server import serve as run_server

    proxies = _proxies(args.proxy)
    c = _open(args)
    if not _loopback(args.host) and not c.users.has_admin():
        raise PingjiaError(f"refusing to serve on {args.host} with no admin user: anyone "
                           "on the network could reach the collector before one exists "
                           "(pingjia user add NAME --role admin, then serve again)")
    sock = listen(args.host, args.port)  # refused before it says it serves
    print(f"pingjia collector on http://{args.host}:{args.port}/ (sync: /api/v1/sync), "
          f"db {args.db}", file=sys.stderr)
    run_server(c, args.host, args.port, proxies, sock)
    return 0


def device_add(args: argparse.Namespace) -> int:
    print(_open(args).add_device(args.id, args.window, args.key, args.hall))
    return 0


def device_list(args: argparse.Namespace) -> int:
    from firmware.clock import iso

    c = _open(args)
    tz = c.hall_tz_min()
    print("id          window  hall      last_seq  frames  flags  last_seen")
    for d in c.devices():
        seen = iso(d["last_seen"], tz) if d["last_seen"] is not None else "never"
        if d["revoked"] is not None:
            seen += f"  (revoked {iso(d['revoked'], tz)})"
        print(f"{d['id']:<11} {d['window']:<7} {d['hall']:<8} {d['last_seq']:>9}  "
              f"{d['frames']:>6}  {d['flags']:>5}  {seen}")
    return 0


def device_rekey(args: argparse.Namespace) -> int:
    print(_open(args).rekey(args.id, args.key))
    print(f"device {args.id}: provision it with this key (pingjia provision PORT "
          f"--device {args.id} ...); frames signed with the old key are refused",
          file=sys.stderr)
    return 0


def device_revoke(args: argparse.Namespace) -> int:
    _open(args).revoke_device(args.id)
    print(f"device {args.id} revoked: its frames are refused, its records stay "
          f"(pingjia device rekey {args.id} lets it back in)")
    return 0


def user_add(args: argparse.Namespace) -> int:
    token = _open(args).users.add(args.name, args.role)
    print(token)
    print(f"user {args.name} ({args.role}): this token is shown once and stored only as a "
          "hash; send it as Authorization: Bearer TOKEN, or log in to the dashboard with it",
          file=sys.stderr)
    return 0


def user_list(args: argparse.Namespace) -> int:
    from firmware.clock import iso

    c = _open(args)
    tz = c.hall_tz_min()
    print("name                              role    since                      revoked")
    for u in c.users.list():
        rev = iso(u["revoked"], tz) if u["revoked"] is not None else "-"
        print(f"{u['name']:<33} {u['role']:<7} {iso(u['created'], tz):<26} {rev}")
    return 0


def user_revoke(args: argparse.Namespace) -> int:
    _open(args).users.revoke(args.name)
    print(f"user {args.name} revoked: refused from the next request on")
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
    if args.device and args.hall:
        raise PingjiaError("--device or --hall, not both")
    v = _open(args).set_setting(args.key, _value(args.value), args.device, args.hall)
    scope = ("device " + args.device if args.device else "hall " + args.hall if args.hall
             else "every device")
    print(f"settings version {v} ({scope})")
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


def _filter(args: argparse.Namespace):
    from host_tools.collector import reports

    return reports.Filter(day=args.day, since=args.since, until=args.until, hall=args.hall,
                          window=args.window, staff=args.staff)


def report(args: argparse.Namespace) -> int:
    from host_tools.collector import reports

    if args.period or args.pdf:  # the periodic evaluation, ranked (evaluation.py)
        return _evaluation(args)
    if args.min_ratings is not None:  # it was taken and ignored: nothing is ranked here
        raise PingjiaError("--min-ratings needs --period: only the period's evaluation ranks")
    args.by = args.by or "window"
    c = _open(args)
    try:
        rows = reports.summary(c.db, c.hall_tz_min(), args.day, args.by, c.now(),
                               _filter(args))
    except ValueError as e:
        raise PingjiaError(str(e)) from None
    rows, case_line = _with_cases(c, rows, args)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    elif not rows:
        print("no ratings" + (f" on {args.day}" if args.day else ""))
    else:
        print(reports.table(rows, args.by))
    if not args.json:
        print(case_line)
    return 0


def _evaluation(args: argparse.Namespace) -> int:
    from host_tools.collector import evaluation

    if not args.period:
        raise PingjiaError(f"--pdf needs --period ({evaluation.FORMS})")
    evaluation.parse_period(args.period)  # a period that does not parse opens no database
    if args.min_ratings is None:
        args.min_ratings = evaluation.MIN_RATINGS
    return evaluation.command(_open(args), args)


def _with_cases(c, rows: list, args: argparse.Namespace) -> tuple[list, str]:
    """差评 cases in the report (cases.py): malicious ones (appeal upheld) out of the
    rates, and the line of open and overdue cases for the filter."""
    from host_tools.collector import cases

    flt = _filter(args)
    tz = c.hall_tz_min()
    cases.discount_malicious(c.db, rows, args.by, tz, flt)
    return rows, cases.report_line(c.db, flt, c.now(), tz)


def export(args: argparse.Namespace) -> int:
    from host_tools.collector import export as formats
    from host_tools.collector import reports

    c = _open(args)
    try:
        rows = reports.ratings(c.db, c.hall_tz_min(), args.day, _filter(args))
    except ValueError as e:
        raise PingjiaError(str(e)) from None
    data = formats.encode(args.format, rows, c.db)
    if args.out:
        try:
            with open(args.out, "wb") as f:
                f.write(data)
        except OSError as e:
            raise PingjiaError(f"cannot write {args.out}: {e.strerror}") from None
    elif args.format == "xlsx" and sys.stdout.isatty():
        raise PingjiaError("an xlsx workbook is not for a terminal: give --out FILE.xlsx")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0
