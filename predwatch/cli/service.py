"""The analyzers as a service on Elasticsearch: ``daemon`` and ``analyze`` (a past range now)."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .common import (EXIT_FINDINGS, EXIT_OK, Subparsers, UsageError, add_config_args, daemon_config,
                     elasticsearch_errors, service_logging)

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from alerting.notifier import Notifier
    from analyzers.daemon.config import DaemonConfig


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
    from logging_adapter.elastic import make_client

    from analyzers.daemon.scheduler import run_daemon

    config = daemon_config(args)
    service_logging()
    client = make_client(config.settings)
    notifier = daemon_notifier(config, client)
    try:
        run_daemon(config, notifier=notifier, client=client)
    finally:
        if notifier is not None:
            notifier.close()
    return EXIT_OK


def daemon_notifier(config: DaemonConfig, client: Elasticsearch) -> Notifier | None:
    """The daemon's notifier from ``[notify]`` (None without targets), its messages linking the dashboard
    of ``[alerts]`` ``kibana_url`` (and ``kibana_space``); its state is kept in the daemon's state index."""
    from alerting.notifier import Notifier
    from kibana.dashboards import dashboard_url

    from analyzers.store.state import StateDocument

    alerts = config.raw.get("alerts", {})
    kibana_url = alerts.get("kibana_url")
    return Notifier.from_config(config.raw.get("notify"), renotify=config.renotify,
                                dashboard_url=dashboard_url(kibana_url, config.prefix, alerts.get("kibana_space"))
                                if kibana_url else None,
                                state=StateDocument(client, config.prefix, "notifier:active", "notifier"))


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
    from analyzers.sources.layout import LayoutError
    from analyzers.sources.mapped_outcomes import join_mapped_outcomes, joinable
    from analyzers.sources.outcomes import join_outcomes

    config = daemon_config(args)
    try:
        job = config.model(args.model)
        start, end = align(parse_time(args.start), job.window), parse_time(args.end)
    except (KeyError, ValueError) as exc:
        raise UsageError(str(exc).strip("'\"")) from None
    if parse_time(args.start) >= end:
        raise UsageError(f"--start {args.start} is not before --end {args.end}: nothing to analyse")
    if start + job.window > end:
        raise UsageError(f"no whole {args.model} window of {job.window} fits in [{args.start}, {args.end}): "
                         "give an --end at least one window after --start")
    analyzer = Analyzer(make_client(config.settings), config,
                        say=lambda message: print(f"predwatch analyze: warning: {message}", file=sys.stderr))
    findings = errors = windows = 0
    with elasticsearch_errors(config.settings):
        try:  # the user's own indices: their mapping read (and what it lacks said) before any window
            analyzer.layout_of(job, iso(start), iso(end))
        except LayoutError as exc:
            raise UsageError(f"model {job.name!r}: {exc}") from None
        missing = _missing_baselines(analyzer, job, iso(start), iso(end))
        for version in missing:
            print(f"predwatch analyze: no baseline of model {job.name!r} version {version!r} in "
                  f"{config.prefix}-baselines, so its records cannot be judged; store it with: "
                  + baseline_command(job.name, version, config), file=sys.stderr)
        if missing and set(missing) == set(_versions_in(analyzer, job, iso(start), iso(end))):
            raise UsageError(f"no window of {job.name!r} in [{iso(start)}, {iso(end)}) could be judged: "
                             "its baseline is not in Elasticsearch (see above)")
        baseline_for = lambda v: analyzer.baselines.get(job.name, v)  # noqa: E731
        if job.layout.own:
            joined = join_outcomes(analyzer.client, config.prefix, job.name, baseline_for)
        else:  # the user's indices are only read; labels go to predwatch's own (analyzers.sources.mapped_outcomes)
            joined = join_mapped_outcomes(analyzer.client, config.prefix, job.name, job.layout, baseline_for) \
                if joinable(job.layout) else None
        if joined is not None and joined.joined:
            print(f"{job.name}: {joined.joined:,} outcomes joined to their predictions")
        while start + job.window <= end:
            s, e = iso(start), iso(start + job.window)
            summary = analyzer.analyze_window(job, start, start + job.window, refresh=True)
            said = f"{summary['records']:,} records, {summary['findings'] - summary['errors']} findings"
            if summary["errors"]:
                unjudged = _records_in(analyzer, job, s, e) - summary["records"]
                said += (f", {summary['errors']} errors" + (f" ({unjudged:,} more records not judged: no baseline)"
                                                            if unjudged > 0 and missing else "")
                         + f" (the reasons: analysis_error in {config.prefix}-findings-*)")
            print(f"{job.name} [{s}, {e}): {said}")
            findings += summary["findings"] - summary["errors"]
            errors += summary["errors"]
            windows += 1
            start += job.window
    return EXIT_FINDINGS if findings or errors else EXIT_OK


def baseline_command(model: str, version: str | None, config) -> str:
    """The command that stores a model version's baseline where the analyzers look for it."""
    return (f"`predwatch baseline --data TRAINING.csv --model {model}" + (f" --version {version}" if version else "")
            + f" --es --es-url {config.settings.url}" + (f" --prefix {config.prefix}" if config.prefix != "predwatch"
                                                         else "")
            + (" --es-distribution opensearch" if config.settings.distribution == "opensearch" else "") + "`")


def _versions_in(analyzer, job, start: str, end: str) -> list[str | None]:
    """The model versions the range's records are of (the configured one when the job names one)."""
    return [job.version] if job.version else analyzer._versions(job, start, end)


def _missing_baselines(analyzer, job, start: str, end: str) -> list[str | None]:
    """The versions in the range without a baseline in Elasticsearch: their windows cannot be judged."""
    return [v for v in _versions_in(analyzer, job, start, end) if analyzer.baselines.get(job.name, v) is None]


def _records_in(analyzer, job, start: str, end: str) -> int:
    """Prediction records of the model in [start, end), whatever their version."""
    layout = analyzer.layout_of(job, start, end)
    return analyzer.client.count(index=layout.predictions(analyzer.prefix, job.name), ignore_unavailable=True,
                                 allow_no_indices=True, query=layout.query(job.name, start=start, end=end))["count"]


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
