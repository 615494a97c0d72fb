"""The `pingjia` command line: every command in one table, as mpremote keeps its own.

A row is the command's words, the function that runs it ("module:function", imported only
when that command runs, so `pingjia --help` loads no server or image library), its help,
whether it reads or writes the collector's data (then it takes the shared `--db`), and its
arguments. Every function returns an exit code or raises PingjiaError, which main() prints
as one line with exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, NamedTuple

from host_tools.errors import PingjiaError

DB_HELP = "collector database: a SQLite file or a postgresql:// URL (default pingjia.db)"


class Command(NamedTuple):
    run: str  # "module:function"
    help: str
    db: bool = False
    args: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = ()


def arg(*flags: str, **kw: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    return flags, kw


PORT = arg("port", metavar="PORT", help="serial port, or a virtual device's pty")


def tcp_port(text: str) -> int:
    """A TCP port for --port: argparse turns the ValueError into a one-line message."""
    n = int(text)
    if not 1 <= n <= 65535:
        raise ValueError(text)
    return n


tcp_port.__name__ = "TCP port (1-65535)"  # how argparse names the type in its message
FILTERS = (  # which ratings a report or an export covers (design.md section 6)
    arg("--from", dest="since", metavar="DAY", help="from this day on (YYYY-MM-DD)"),
    arg("--to", dest="until", metavar="DAY", help="up to this day, inclusive (YYYY-MM-DD)"),
    arg("--hall", help="only this hall"),
    arg("--window", help="only this window"),
    arg("--staff", metavar="STAFF_NO", help="only this staff member (工号)"),
)
DEVICE_ID = "device id (1-8 of A-Z a-z 0-9 . _ -)"

# 差评 cases (host_tools/collector/cases.py): list, show, and one command per action
CASE_ID = arg("id", help="case id DEVICE-LOG-SEQ, as `pingjia case list` shows it")
CASE_TEXT = arg("text", help="what was done (回访, 整改, 申诉 ...), in words")
CASE_BY = arg("--by", required=True, metavar="NAME", help="who did it (kept in the case's log)")
CASE_COMMANDS: dict[str, Command] = {
    "case list": Command("host_tools.collector.casecli:case_list",
                         "差评 cases, oldest first", db=True, args=(
        *FILTERS,
        arg("--state", choices=("all", "open", "overdue", "closed"), default="all",
            help="open: not closed; overdue: no callback by its due date"),
        arg("--limit", type=int, default=100, help="at most this many (a page)"),
        arg("--after", metavar="CURSOR", help="the page after this cursor"),
        arg("--json", action="store_true", help="print JSON instead of lines"),
    )),
    "case show": Command("host_tools.collector.casecli:case_show", "one case and its log",
                         db=True, args=(CASE_ID, arg("--json", action="store_true"))),
    **{action: Command("host_tools.collector.casecli:case_act", help, db=True,
                       args=(CASE_ID, CASE_TEXT, CASE_BY))
       for action, help in (("case callback", "record the callback (回访) of a case"),
                            ("case note", "add a note (备注) to a case"),
                            ("case rectify", "record the rectification (整改): closes it"),
                            ("case appeal", "appeal a malicious 差评 (申诉)"))},
    "case decide": Command("host_tools.collector.casecli:case_act",
                           "the office's decision on an appeal", db=True, args=(
        CASE_ID, arg("decision", choices=("upheld", "overturned"),
                     help="upheld: 申诉成立, a malicious 差评 (not counted in 差评率); "
                          "overturned: 申诉驳回, the 差评 stands and is rectified"),
        CASE_TEXT, CASE_BY)),
    "case days": Command("host_tools.collector.casecli:case_days",
                         "days from a 差评 to its callback's due date", db=True, args=(
        arg("days", type=int, help="1 to 60 (default 3)"),
        arg("--hall", help="only this hall (default: every hall without its own)"),
    )),
}

COMMANDS: dict[str, Command] = {
    "sim": Command("host_tools.device.sim:run", "run the virtual device (and a collector)",
                   db=True, args=(
        arg("--script", action="store_true",
            help="read line commands from stdin, answers only (no prompt)"),
        arg("--start", help="virtual clock start, e.g. 2026-11-23T09:00:00+08:00 (a time "
            "without its offset is UTC: 09:00 is 17:00 in the hall)"),
        arg("--device", default="sim-1", help=DEVICE_ID),
        arg("--window", default="B01", help="window name"),
        arg("--roster", help="roster CSV (badge_uid,staff_no,name,department,windows)"),
        arg("--set", action="append", metavar="KEY=VALUE",
            help="a device setting, e.g. --set mode=free (repeatable)"),
        arg("--flash", help="keep the flash image in this file across runs"),
        arg("--collector", metavar="URL",
            help="sync with a running `pingjia serve` at this URL; give --db the database that "
                 "server uses: the device is registered there (else its sync is 403 "
                 "unknown_device)"),
        arg("--micropython", help="run the device on this MicroPython binary"),
        arg("--serial", action="store_true", help="also put the device REPL on a pty"),
        arg("--ble", action="store_true",
            help="also serve the device's BLE service over bumble virtual controllers; prints "
                 "hci: SPEC for pingjia pull --ble --hci SPEC"),
        arg("--sign", choices=("4.2", "2.9", "text"), default="4.2",
            help="the e-ink panel on the virtual device (text: none)"),
        arg("--sign-png", metavar="FILE",
            help="keep a PNG of the panel current (interactive default: sim-sign.png)"),
    )),
    "serve": Command("host_tools.collector.commands:serve",
                     "run the collector: sync endpoint, JSON API, dashboard", db=True, args=(
        arg("--port", type=tcp_port, default=8080, help="TCP port (default 8080)"),
        arg("--host", default="127.0.0.1",
            help="address to listen on (default 127.0.0.1: this machine only; any other "
                 "needs an admin user first)"),
        arg("--proxy", action="append", metavar="ADDR",
            help="the address of an HTTP proxy in front (again for more): its "
                 "X-Forwarded-For is believed, its connections not capped as one address's"),
    )),
    "device add": Command("host_tools.collector.commands:device_add",
                          "register a device; prints the key to provision", db=True, args=(
        arg("id", help=DEVICE_ID),
        arg("--window", required=True, help="window name, e.g. B01"),
        arg("--hall", help="the hall it serves in (default: main, the one hall)"),
        arg("--key", help="use this key (hex, >= 16 bytes) instead of a new one"),
    )),
    "device list": Command("host_tools.collector.commands:device_list", "list devices",
                           db=True),
    "device rekey": Command("host_tools.collector.commands:device_rekey",
                            "a new key for a device (prints it); the old one is refused",
                            db=True, args=(
        arg("id", help=DEVICE_ID),
        arg("--key", help="use this key (hex, >= 16 bytes) instead of a new one"),
    )),
    "device revoke": Command("host_tools.collector.commands:device_revoke",
                             "refuse a device's frames from now on (its records stay)",
                             db=True, args=(arg("id", help=DEVICE_ID),)),
    "user add": Command("host_tools.collector.commands:user_add",
                        "a user of the API and dashboard; prints its token (shown once)",
                        db=True, args=(
        arg("name", help="1-32 characters, no spaces"),
        arg("--role", required=True, choices=("viewer", "admin", "queue"),
            help="viewer: reports, dashboard, exports; admin: also devices, roster, "
                 "settings; queue: the queue system"),
    )),
    "user list": Command("host_tools.collector.commands:user_list", "list users", db=True),
    "user revoke": Command("host_tools.collector.commands:user_revoke",
                           "refuse a user's token and sessions from the next request on",
                           db=True, args=(arg("name"),)),
    "roster import": Command("host_tools.collector.commands:roster_import",
                             "import staff.csv (badge_uid,staff_no,name,department,windows)",
                             db=True, args=(arg("csv"),)),
    "settings set": Command("host_tools.collector.commands:settings_set",
                            "set KEY to VALUE (JSON or text) for every device, a hall or a "
                            "device", db=True, args=(
        arg("key"), arg("value"), arg("--device", help="only this device"),
        arg("--hall", help="only this hall's devices"),
    )),
    "settings show": Command("host_tools.collector.commands:settings_show",
                             "show stored settings", db=True, args=(
        arg("--device", help="the effective settings of this device"),
    )),
    "report": Command("host_tools.collector.commands:report",
                      "ratings, 满意率, 差评率, 参评率, index, pause and wait time", db=True, args=(
        arg("--day", help="YYYY-MM-DD in the hall's time zone (default: all days)"),
        *FILTERS,
        arg("--by", choices=("window", "staff", "hour", "day"),
            help="group by (default window); with --period: window or staff ranks only those"),
        arg("--json", action="store_true", help="print JSON instead of a table"),
        # the periodic evaluation (host_tools/collector/evaluation.py)
        arg("--period", help="evaluate a period, windows and staff ranked per hall: YYYY, "
            "YYYY-H1|H2, YYYY-Q1..Q4, YYYY-B1..B6 (双月, B6 = Nov-Dec), YYYY-MM"),
        arg("--min-ratings", type=int, metavar="N",
            help="with --period: fewer ratings than N are listed, not ranked (default 10)"),
        arg("--pdf", metavar="FILE", help="with --period: write the printable report (A4)"),
    )),
    "export": Command("host_tools.collector.commands:export", "every rating, oldest first",
                      db=True, args=(
        arg("--format", choices=("csv", "xlsx", "json", "haochaping", "haochaping-jsonl"),
            default="csv", help="csv (the default: UTF-8 with a BOM, as Excel reads it), "
            "xlsx (Excel), json; haochaping(-jsonl): the national 好差评 fields, CSV or JSON "
            "lines"),
        arg("--day", help="only this day (YYYY-MM-DD, hall time zone)"),
        *FILTERS,
        arg("--out", help="write to this file instead of stdout"),
    )),
    **CASE_COMMANDS,
    "alert list": Command("host_tools.collector.alert_commands:alert_list",
                          "the office's alerts, newest first", db=True, args=(
        arg("--hall", help="only this hall"),
        arg("--state", choices=("open", "closed", "all"), default="open"),
        arg("--limit", type=int, default=100, help="at most this many (1-1000)"),
        arg("--json", action="store_true", help="print JSON instead of lines"),
    )),
    "alert close": Command("host_tools.collector.alert_commands:alert_close",
                           "close an alert (it stays in the history)", db=True, args=(
        arg("id", type=int), arg("--by", default="cli", help="who closed it (default cli)"),
    )),
    "alert set": Command("host_tools.collector.alert_commands:alert_set",
                         "set an alert threshold for every hall or one hall", db=True, args=(
        arg("key", help="bad_rate_pct, bad_rate_min, pause_max_min, silent_h, log_fill_pct"),
        arg("value"), arg("--hall", help="only this hall"),
    )),
    "alert settings": Command("host_tools.collector.alert_commands:alert_settings",
                              "show a hall's alert thresholds", db=True,
                              args=(arg("--hall", help="this hall (default main)"),)),
    "alert scan": Command("host_tools.collector.alert_commands:alert_scan",
                          "raise the alerts of what is stored now (serve does it by itself)",
                          db=True),
    "webhook add": Command("host_tools.collector.alert_commands:webhook_add",
                           "POST a hall's alerts to URL, signed; prints the secret once",
                           db=True, args=(arg("url"), arg("--hall", required=True))),
    "webhook list": Command("host_tools.collector.alert_commands:webhook_list",
                            "webhooks and their deliveries (delivered, pending, failed)",
                            db=True, args=(arg("--hall", help="only this hall"),)),
    "webhook remove": Command("host_tools.collector.alert_commands:webhook_remove",
                              "stop delivering to a webhook", db=True,
                              args=(arg("id", type=int),)),
    "deploy": Command("host_tools.device.deploy:cmd_deploy",
                      "copy the firmware (.mpy) onto a device with mpremote", args=(
        PORT,
        arg("--no-aioble", action="store_true",
            help="skip `mip install aioble` (it needs the internet)"),
    )),
    "flash": Command("host_tools.device.flash:cmd_flash",
                     "write MicroPython onto an ESP32 with esptool", args=(
        PORT,
        arg("--firmware", required=True, help="MicroPython ESP32_GENERIC .bin"),
        arg("--chip", default="esp32"),
        arg("--baud", type=int, default=460800),
        arg("--no-erase", action="store_true"),
        arg("--dry-run", action="store_true", help="print the esptool commands only"),
    )),
    "provision": Command("host_tools.device.provision:cmd_provision",
                         "device id, key, Wi-Fi, window, roster onto a device", db=True, args=(
        PORT,
        arg("--device", required=True, help=DEVICE_ID),
        arg("--window", required=True),
        arg("--roster", help="import this roster CSV first"),
        arg("--url", help="the collector's sync URL, e.g. http://10.0.0.5:8080/api/v1/sync"),
        arg("--ssid"),
        arg("--password"),
    )),
    "pull": Command("host_tools.device.pull:cmd_pull",
                    "copy a device's log into the collector (--usb, --image or --ble)",
                    db=True, args=(
        arg("--usb", metavar="PORT",
            help="the device's serial port (or a virtual device's pty): acks and sets its clock"),
        arg("--image", metavar="FILE",
            help="a littlefs partition image (esptool read-flash of a board, or a --flash file)"),
        arg("--firmware", metavar="BIN",
            help="with --image: the MicroPython .bin whose partition table places the log "
                 "(default ESP32_GENERIC's)"),
        arg("--ble", metavar="ADDRESS", nargs="?", const="",
            help="over BLE from the device advertising pingjia-<window> (or this address)"),
        arg("--hci", metavar="SPEC",
            help="with --ble: a bumble transport (usb:0, tcp-client:127.0.0.1:PORT) instead "
                 "of the OS's adapter (bleak)"),
        arg("--window", help="with --ble: the window whose device to find (pingjia-WINDOW)"),
        arg("--timeout", type=float, default=10.0,
            help="with --ble: seconds to find the device, and for each step of the link"),
    )),
    "fontgen": Command("host_tools.sign.fontgen:run",
                       "rasterise the sign's CJK glyph file, lib/pj.pjf", args=(
        arg("--out", help="output directory (default lib/)"),
        arg("--font", help="TrueType collection (default: Debian's fonts-wqy-zenhei)"),
    )),
    "sign preview": Command("host_tools.sign.preview:cmd_preview",
                            "one PNG per screen, drawn by the firmware", args=(
        arg("--out", required=True, help="directory for the PNG files"),
        arg("--size", choices=("4.2", "2.9"), default="4.2", help="panel (inches)"),
        arg("--fonts", help="glyph files (default lib/)"),
    )),
}

# commands that only read the collector's data: a SQLite file that is not there is refused
# (a mistyped --db, or the wrong folder, made an empty database and answered "no ratings")
READS = {"report", "export", "device list", "user list", "settings show", "case list",
         "case show", "alert list", "alert settings", "webhook list"}

GROUPS = {"device": "devices known to the collector (id and key)", "roster": "staff roster",
          "user": "users of the API and dashboard (token and role)",
          "settings": "device settings, per hall or per device", "sign": "the e-ink sign",
          "case": "差评 cases: callback (回访), rectification (整改), appeal (申诉)",
          "alert": "the office's alerts and their thresholds",
          "webhook": "URLs that receive a hall's alerts"}


class Parser(argparse.ArgumentParser):
    """Bad usage is one line (and exit 2), not a usage block."""

    def error(self, message: str) -> None:
        raise PingjiaError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    db = Parser(add_help=False)
    db.add_argument("--db", default="pingjia.db", help=DB_HELP)
    top = Parser(prog="pingjia", description="窗口服务评价器 pingjia: virtual device, "
                 "collector, reports and technician tools")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True,
                             parser_class=Parser)
    groups: dict[str, Any] = {}
    for words, cmd in COMMANDS.items():
        head, _, tail = words.partition(" ")
        where = sub
        if tail:
            if head not in groups:
                g = sub.add_parser(head, help=GROUPS[head])
                groups[head] = g.add_subparsers(dest=f"{head}_command", metavar="COMMAND",
                                                required=True, parser_class=Parser)
            where = groups[head]
        p = where.add_parser(tail or head, help=cmd.help, parents=[db] if cmd.db else [])
        for flags, kw in cmd.args:
            p.add_argument(*flags, **kw)
        p.set_defaults(run=cmd.run, reads=words in READS)
    return top


def _function(ref: str):
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(_function(args.run)(args) or 0)
    except PingjiaError as e:
        # one line, whatever the message holds (a driver's error can span several)
        print("pingjia: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`pingjia report | head`): nothing more to say, and
        # nothing for the interpreter to flush into the closed pipe at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
