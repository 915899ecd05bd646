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
    if args.once and stats["rejected"] and not stats["sent"] and not stats["duplicates"]:
        said = [f"{path}: {looks}" for path in _matched(args.paths) if (looks := not_records(path))]
        if said:  # a CSV or a plain log named by mistake: every line dead-lettered is not "done"
            raise UsageError("no line is a prediction record: " + "; ".join(said) + " (ship the JSONL that "
                             "PredictionLogger writes)")
    for path, size in shipper.incomplete.items():
        print(f"predwatch ship: {path}: the last line ({size:,} bytes) has no newline yet; it is shipped once "
              "its writer ends it", file=sys.stderr)
    if shipper.undelivered:
        print(f"predwatch ship: Elasticsearch at {settings.describe()} did not take {shipper.undelivered:,} "
              f"record(s) within {args.timeout:g} s; nothing is lost (offsets kept): run again", file=sys.stderr)
        return EXIT_UNFINISHED
    return EXIT_OK

def _matched(patterns: list[str]) -> list[Path]:
    import glob

    return sorted({Path(p) for pattern in patterns for p in glob.glob(pattern) if Path(p).is_file()})


SNIFF_LINES = 20


def not_records(path: Path) -> str | None:
    """What a file looks like when none of its first lines is a record the shipper would take (None when one
    is): a CSV header, JSON that is not a prediction record (and why), or text that is not JSON."""
    from logging_adapter.bulk import BadRecord, doc_from_line

    try:
        with path.open("rb") as fh:
            lines = [line for line in (fh.readline(65536) for _ in range(SNIFF_LINES)) if line.strip()]
    except OSError:
        return None
    first, why = None, ""
    for line in lines:
        try:
            doc_from_line(line, "predwatch")
            return None
        except BadRecord as exc:
            why = why or str(exc)
        first = first or line.decode("utf-8", "replace").strip()
    if first is None:
        return None
    shown = first if len(first) <= 80 else first[:77] + "..."
    if not first.startswith(("{", "[")) and first.count(",") >= 1:
        return f"looks like CSV (first line: {shown!r}); CSV is training data for `predwatch baseline --data`"
    if first.startswith("{"):
        return f"JSON lines, but not prediction records ({why})"
    return f"not JSON lines (first line: {shown!r})"


COMMANDS = (_setup, _ship)  # each adds its subcommand to the parser
