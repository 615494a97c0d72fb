"""The `pingjia` command line: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import importlib
import sys

# modules that add subcommands: each has add_parser(subparsers) or register(subparsers)
MODULES = (
    "host_tools.sim",
    "host_tools.collector_cli",
    "host_tools.sign_cli",
    "host_tools.tech",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pingjia", description="窗口服务评价器 pingjia: "
                                "virtual device, collector, reports and technician tools")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue  # that part is not installed in this tree
            raise
        (getattr(mod, "add_parser", None) or mod.register)(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
