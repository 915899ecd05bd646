"""The ``predwatch`` command line. Each subcommand is a thin shell over a library function.

Exit codes: 0 all well, 1 findings, 2 bad usage or unusable input.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import checks, demo, records, service, stack
from .common import EXIT_USAGE, UsageError

GROUPS = (checks, records, service, stack, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="predwatch", description="ML prediction monitoring on the Elastic stack.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        for add_command in group.COMMANDS:
            add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"predwatch {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
