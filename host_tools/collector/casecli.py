"""`pingjia case ...`: the 差评 cases from the command line (cases.py does the work; the
table in host_tools/cli.py names the commands). Bad input raises PingjiaError: one
line, exit 2, nothing changed."""

from __future__ import annotations

import argparse
import json

from host_tools.collector import cases, reports
from host_tools.collector.commands import _open


def _filter(args: argparse.Namespace) -> reports.Filter:
    return reports.Filter(since=args.since, until=args.until, hall=args.hall,
                          window=args.window, staff=args.staff)


def _line(k: dict) -> str:
    due = "OVERDUE since " + k["due"] if k["overdue"] else "due " + k["due"]
    who = " ".join(x for x in (k["staff_no"], k["staff_name"]) if x) or "-"
    return (f"{k['id']}  {k['time'] or '(time unknown)'}  {k['window']}  {who}  "
            f"{k['state_name']}  {due}  reason {k['reason_text'] or '-'}  "
            f"ticket {k['ticket'] or '-'}")


def case_list(args: argparse.Namespace) -> int:
    c = _open(args)
    page = cases.list_cases(c, _filter(args), args.state, args.after or "", args.limit)
    if args.json:
        print(json.dumps({"cases": page.cases, "next": page.next}, ensure_ascii=False,
                         indent=1))
        return 0
    for k in page.cases:
        print(_line(k))
    if not page.cases:
        print("no cases")
    if page.next:
        print(f"(more: the same command with --after '{page.next}')")
    return 0


def _show(k: dict) -> None:
    print(_line(k))
    for a in k["actions"]:
        decision = f" [{cases.DECISIONS[a['decision']]}]" if a["decision"] else ""
        print(f"  {a['at']}  {a['action_name']}{decision}  by {a['by']}: "
              + " ".join(a["text"].split()))


def case_show(args: argparse.Namespace) -> int:
    k = cases.get_case(_open(args), args.id)
    if args.json:
        print(json.dumps(k, ensure_ascii=False, indent=1))
    else:
        _show(k)
    return 0


def case_act(args: argparse.Namespace) -> int:
    action = args.case_command
    decision = getattr(args, "decision", None)
    _show(cases.act(_open(args), args.id, action, args.text, args.by, decision))
    return 0


def case_days(args: argparse.Namespace) -> int:
    c = _open(args)
    cases.set_callback_days(c, args.days, args.hall)
    where = f"hall {args.hall}" if args.hall else "every hall without its own"
    print(f"callback due within {args.days} days of the rating ({where})")
    return 0
