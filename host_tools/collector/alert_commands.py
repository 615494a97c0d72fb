"""The alert and webhook commands (the table in host_tools/cli.py names them). Bad input
raises PingjiaError: one line, exit 2, nothing changed."""

from __future__ import annotations

import argparse
import json

from host_tools.collector import alerts, webhooks
from host_tools.collector.commands import _open


def alert_list(args: argparse.Namespace) -> int:
    c = _open(args)
    page = alerts.list_alerts(c, args.hall, args.state, limit=args.limit)
    if args.json:
        print(json.dumps(page, ensure_ascii=False, indent=1))
        return 0
    for a in page["alerts"]:
        closed = f"  (closed {a['closed']} by {a['closed_by']})" if a["closed"] else ""
        print(f"{a['id']:>6}  {a['raised']}  {a['state']:<6}  {a['hall']:<8} {a['kind']:<15} "
              f"{a['text']}{closed}")
    if not page["alerts"]:  # as case list and webhook list say: nothing, not a blank
        print(f"no {'' if args.state == 'all' else args.state + ' '}alerts")
    return 0


def alert_close(args: argparse.Namespace) -> int:
    a = alerts.close_alert(_open(args), args.id, args.by)
    print(f"alert {a['id']} closed")
    return 0


def alert_set(args: argparse.Namespace) -> int:
    shown = alerts.set_setting(_open(args), args.key, args.value, args.hall)
    print(f"{args.key} = {shown[args.key]} ({'hall ' + args.hall if args.hall else 'every hall'})")
    return 0


def alert_settings(args: argparse.Namespace) -> int:
    c = _open(args)
    hall = alerts.check_hall(c, args.hall) if args.hall else "main"
    for key, value in alerts.thresholds(c, hall).items():
        print(f"{key:<14} {value:>5}   {alerts.SETTINGS[key][3]}")
    return 0


def alert_scan(args: argparse.Namespace) -> int:
    c = _open(args)
    raised = alerts.scan_new(c) + alerts.scan_time(c)
    print(f"{len(raised)} alerts raised")
    return 0


def webhook_add(args: argparse.Namespace) -> int:
    h = webhooks.add(_open(args), args.hall, args.url)
    print(f"webhook {h['id']} for hall {h['hall']}: {h['url']}")
    print(f"secret (shown once; the receiver checks {webhooks.SIGNATURE} with it): "
          f"{h['secret']}")
    return 0


def webhook_list(args: argparse.Namespace) -> int:
    rows = webhooks.listing(_open(args), args.hall)
    if not rows:
        print("no webhooks (pingjia webhook add --hall H URL)")
    for h in rows:
        line = (f"{h['id']:>4}  {h['hall']:<8} {h['url']}  delivered {h['delivered']}, "
                f"pending {h['pending']}, failed {h['failed']}")
        if h["last_error"]:
            line += f"; last error {h['last_error']} at {h['last_try']}"
            line += f", next try {h['next_try']}" if h["next_try"] else ""
        print(line)
    return 0


def webhook_remove(args: argparse.Namespace) -> int:
    webhooks.remove(_open(args), args.id)
    print(f"webhook {args.id} removed (its deliveries not sent yet are cancelled)")
    return 0
