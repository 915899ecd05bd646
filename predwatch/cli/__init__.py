"""The ``predwatch`` command line. Each subcommand is a thin shell over a library function.

Exit codes: 0 all well, 1 findings, 2 bad usage or unusable input, 3 internal error,
4 unfinished (Elasticsearch did not take the work within the deadline).
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from . import backtest, checks, demo, records, service, stack
from .common import EXIT_HELP, EXIT_INTERNAL, EXIT_USAGE, UsageError

GROUPS = (checks, backtest, records, service, stack, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="predwatch", description="ML prediction monitoring on the Elastic stack.",
                                     epilog=EXIT_HELP)
    parser.add_argument("--version", action="version", version=f"predwatch {_version()}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an internal error (or set PREDWATCH_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        for add_command in group.COMMANDS:
            add_command(sub)
    return parser


def command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the command that ``args`` came from: ``check``, or ``kibana install``."""
    for name in ("command", "action"):
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or getattr(args, name, None) not in sub.choices:
            break
        parser = sub.choices[getattr(args, name)]
    return parser


def _version() -> str:
    try:
        return version("predwatch")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the subcommand that got them, with its own usage
        command_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    debug = args.debug or os.environ.get("PREDWATCH_DEBUG", "") not in ("", "0")
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"predwatch {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        if exc.filename is None:
            return _internal(args.command, exc, debug)
        # a file the user named cannot be read or written: unusable input, not a crash
        print(f"predwatch {args.command}: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - anything else is our bug, said in one line
        return _internal(args.command, exc, debug)


def _internal(command: str, exc: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    hint = "" if debug else " (run with --debug or PREDWATCH_DEBUG=1 for the traceback)"
    print(f"predwatch {command}: internal error: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
    return EXIT_INTERNAL
