"""Getting records into Elasticsearch: ``setup`` (index templates) and ``ship`` (tail JSONL files)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import (EXIT_OK, EXIT_UNFINISHED, Subparsers, UsageError, add_es_args, elasticsearch_errors, es_client,
                     service_logging)


def _setup(sub: Subparsers) -> None:
    p = sub.add_parser("setup", help="install index templates (and ILM retention where available)",
                       description="Install predwatch's index templates; idempotent.")
    add_es_args(p)
    p.add_argument("--retention-days", type=int, help="delete prediction indices older than this")
    p.set_defaults(run=run_setup)


def run_setup(args: argparse.Namespace) -> int:
    from logging_adapter import templates

    settings, client = es_client(args)
    with elasticsearch_errors(settings):
        done = templates.install(client, prefix=args.prefix, retention_days=args.retention_days,
                                 extra=setup_extras(args.prefix))
    for line in done:
        print(f"installed {line}")
    return EXIT_OK


def setup_extras(prefix: str) -> list[dict]:
    """Template sets beyond the prediction records' (the analyzers' result indices)."""
    try:
        from analyzers.store.results import result_templates
    except ImportError:
        return []
    return [result_templates(prefix)]


def _ship(sub: Subparsers) -> None:
    p = sub.add_parser("ship", help="tail JSONL prediction logs into Elasticsearch",
                       description="Tail JSONL files (globs allowed) like Filebeat: persisted offsets, rotation, "
                                   "dead letters; SIGTERM stops cleanly.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="JSONL files or globs (quote them); rotated siblings too")
    p.add_argument("--once", action="store_true", help="ship what the files hold now, then exit")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="with --once: how long to wait for an unavailable Elasticsearch before exiting with 4 "
                        "(default 60)")
    p.add_argument("--state-dir", default=str(Path.home() / ".cache" / "predwatch" / "ship"),
                   help="offsets and dead letters (default: ~/.cache/predwatch/ship)")
    add_es_args(p)
    p.set_defaults(run=run_ship)


def run_ship(args: argparse.Namespace) -> int:
    from logging_adapter.ship import Shipper, install_signal_handlers

    for path in args.paths:
        if Path(path).is_dir():
            raise UsageError(f"{path}: a directory, not a log file (give the files, e.g. '{path}/*.jsonl')")
    service_logging()
    settings, client = es_client(args)
    shipper = Shipper(client, args.paths, state_dir=args.state_dir, prefix=args.prefix,
                      deadline=args.timeout if args.once else None)
    unmatched = shipper.unmatched()
    if unmatched and args.once and len(unmatched) == len(args.paths):
        raise UsageError(f"no file matches {', '.join(unmatched)}")
    for pattern in unmatched:
        print(f"predwatch ship: no file matches {pattern} (yet)", file=sys.stderr)
    install_signal_handlers(shipper)
    stats = shipper.run(once=args.once)
    print(f"shipped {stats['sent']:,} new, {stats['duplicates']:,} already indexed, "
          f"{stats['rejected']:,} dead-lettered to {shipper.dead_letters.path}")
    for path, size in shipper.incomplete.items():
        print(f"predwatch ship: {path}: the last line ({size:,} bytes) has no newline yet; it is shipped once "
              "its writer ends it", file=sys.stderr)
    if shipper.undelivered:
        print(f"predwatch ship: Elasticsearch at {settings.describe()} did not take {shipper.undelivered:,} "
              f"record(s) within {args.timeout:g} s; nothing is lost (offsets kept): run again", file=sys.stderr)
        return EXIT_UNFINISHED
    return EXIT_OK

COMMANDS = (_setup, _ship)  # each adds its subcommand to the parser
