"""The analyzers as a service on Elasticsearch: ``daemon`` and ``analyze`` (a past range now)."""
from __future__ import annotations

import argparse

from .common import (EXIT_FINDINGS, EXIT_OK, Subparsers, UsageError, add_config_args, daemon_config,
                     elasticsearch_errors, service_logging)


def _command(sub: Subparsers, name: str, run, help: str, description: str) -> argparse.ArgumentParser:  # noqa: A002
    """A subcommand that reads ``predwatch.toml`` and takes the connection flags."""
    p = sub.add_parser(name, help=help, description=description)
    add_config_args(p)
    p.set_defaults(run=run)
    return p


def _daemon(sub: Subparsers) -> None:
    _command(sub, "daemon", run_daemon_cmd, "analyse windows on a schedule and index the results",
             "Scheduled analysis of every configured model; SIGTERM stops it cleanly.")


def run_daemon_cmd(args: argparse.Namespace) -> int:
    from analyzers.daemon.scheduler import run_daemon

    config = daemon_config(args)
    service_logging()
    run_daemon(config)
    return EXIT_OK


def _analyze(sub: Subparsers) -> None:
    p = _command(sub, "analyze", run_analyze, "analyse a past time range now (backfill, ad hoc)",
                 "Join the outcomes that arrived, then analyse [start, end) in the model's window size, as the "
                 "daemon would; results are indexed. Exit 1 when there are findings.")
    p.add_argument("--model", required=True, help="a model of the configuration")
    p.add_argument("--start", required=True, help="ISO time, e.g. 2026-11-22T00:00:00Z (aligned down to a window)")
    p.add_argument("--end", required=True, help="ISO time; windows that end by then are analysed")


def run_analyze(args: argparse.Namespace) -> int:
    from logging_adapter.contract import parse_time
    from logging_adapter.elastic import make_client

    from analyzers.daemon.analyzer import Analyzer
    from analyzers.daemon.config import align, iso
    from analyzers.sources.outcomes import join_outcomes

    config = daemon_config(args)
    try:
        job = config.model(args.model)
        start, end = align(parse_time(args.start), job.window), parse_time(args.end)
    except (KeyError, ValueError) as exc:
        raise UsageError(str(exc).strip("'\"")) from None
    analyzer = Analyzer(make_client(config.settings), config)
    findings = 0
    with elasticsearch_errors(config.settings):
        joined = join_outcomes(analyzer.client, config.prefix, job.name, lambda v: analyzer.baselines.get(job.name, v))
        if joined.joined:
            print(f"{job.name}: {joined.joined:,} outcomes joined to their predictions")
        while start + job.window <= end:
            summary = analyzer.analyze_window(job, start, start + job.window, refresh=True)
            print(f"{job.name} [{iso(start)}, {iso(start + job.window)}): {summary['records']:,} records, "
                  f"{summary['findings']} findings, {summary['errors']} errors")
            findings += summary["findings"]
            start += job.window
    return EXIT_FINDINGS if findings else EXIT_OK


def _status(sub: Subparsers) -> None:
    _command(sub, "status", run_status, "the daemons: live instances, who analyses each model, how far behind",
             "Reads the state index the daemons write (heartbeats, leases, watermarks).")


def run_status(args: argparse.Namespace) -> int:
    from analyzers.daemon.status import format_status, read_status
    from logging_adapter.elastic import make_client

    config = daemon_config(args)
    with elasticsearch_errors(config.settings):
        print(format_status(read_status(make_client(config.settings), config)))
    return EXIT_OK


COMMANDS = (_daemon, _analyze, _status)  # each adds its subcommand to the parser
