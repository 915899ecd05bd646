"""The ``predwatch`` command line. Each subcommand is a thin shell over a library function.

Exit codes: 0 all well, 1 findings, 2 bad usage or unusable input.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tomllib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import orjson

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments or unusable input: printed as one line, exit code 2."""


Command = Callable[[argparse.Namespace], int]
_commands: list[Callable[[argparse._SubParsersAction], None]] = []


def command(register: Callable[[argparse._SubParsersAction], None]) -> Callable[[argparse._SubParsersAction], None]:
    _commands.append(register)
    return register


def default_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def load_config(path: str | None) -> dict:
    if not path:
        return {}
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None


# -- baseline ------------------------------------------------------------------------------

@command
def _baseline(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("baseline", help="build a baseline from training data",
                       description="Summarise training data (CSV, Parquet, or JSONL prediction records) into a baseline.")
    p.add_argument("--data", required=True, help="training data: .csv, .parquet or .jsonl")
    p.add_argument("--model", required=True, help="model name, as in the prediction records")
    p.add_argument("--version", help="model version")
    p.add_argument("--text", action="append", default=[], metavar="COL", help="treat COL as free text (repeatable)")
    p.add_argument("--categorical", action="append", default=[], metavar="COL", help="treat COL as categorical")
    p.add_argument("--numeric", action="append", default=[], metavar="COL", help="treat COL as numeric")
    p.add_argument("--prediction", action="append", default=[], metavar="COL",
                   help="column holding the model output (repeat for several outputs)")
    p.add_argument("--drop", action="append", default=[], metavar="COL", help="ignore COL (ids, labels, timestamps)")
    p.add_argument("--out", help="where to write the baseline JSON")
    p.add_argument("--es", action="store_true", help="also store the baseline in Elasticsearch (<prefix>-baselines)")
    add_es_args(p)
    p.set_defaults(run=run_baseline)


def run_baseline(args: argparse.Namespace) -> int:
    from .baseline import build_baseline, load_table

    path = Path(args.data)
    if not path.exists():
        raise UsageError(f"training data not found: {path}")
    try:
        table = load_table(path)
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    table = table.drop(columns=[c for c in args.drop if c in table.columns])
    kinds = {**{c: "text" for c in args.text}, **{c: "categorical" for c in args.categorical},
             **{c: "numeric" for c in args.numeric}}
    try:
        baseline = build_baseline(table, model=args.model, version=args.version, kinds=kinds,
                                  predictions=args.prediction, source=path.name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not args.out and not args.es:
        raise UsageError("say where the baseline goes: --out FILE and/or --es")
    if args.out:
        baseline.save(args.out)
    where = [args.out] if args.out else []
    if args.es:
        from .results import store_baseline

        settings, client = es_client(args)
        with elasticsearch_errors(settings):
            where.append(f"{settings.url} {args.prefix}-baselines/{store_baseline(client, baseline, args.prefix)}")
    print(f"baseline for {baseline.model} {baseline.version or ''} from {baseline.rows:,} rows -> {', '.join(where)}")
    for name, col in baseline.columns.items():
        print(f"  {name:30s} {col.kind:12s} {col.role:10s} null {col.null_rate:6.1%}")
    return EXIT_OK


# -- check ---------------------------------------------------------------------------------

@command
def _check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check a window of prediction logs against a baseline",
                       description="Check JSONL prediction logs against a baseline. Exit 0: no findings; "
                                   "1: findings; 2: bad usage or unusable input.")
    p.add_argument("--baseline", required=True)
    p.add_argument("--logs", required=True, nargs="+", help="JSONL files of prediction records (.gz too)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--config", help="predwatch.toml with check thresholds")
    p.add_argument("--workers", type=int, default=default_workers(),
                   help="processes for large files (default: the CPU count, at most 4)")
    p.set_defaults(run=run_check)


def _analyze_local(args: argparse.Namespace):
    from .baseline import Baseline
    from .config import CheckConfig
    from .window import analyze_files

    try:
        baseline = Baseline.load(args.baseline)
    except FileNotFoundError:
        raise UsageError(f"baseline not found: {args.baseline}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"unusable baseline {args.baseline}: {exc}") from None
    for log in args.logs:
        if not Path(log).is_file():
            raise UsageError(f"log file not found: {log}")
    try:
        config = CheckConfig.from_dict(load_config(getattr(args, "config", None)))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    result = analyze_files(args.logs, baseline, config, workers=max(1, args.workers))
    for r in result.rejections:
        print(f"rejected {r.where}: {r.reason}", file=sys.stderr)
    if result.profile.rejected:
        print(f"{result.profile.rejected:,} lines rejected in all", file=sys.stderr)
    for model, n in result.profile.other_models.items():
        print(f"left out {n:,} records of model {model!r} (the baseline is for {baseline.model!r})", file=sys.stderr)
    if result.profile.records == 0:
        raise UsageError(f"no valid prediction record of model {baseline.model!r} in {', '.join(args.logs)}")
    return result


def run_check(args: argparse.Namespace) -> int:
    result = _analyze_local(args)
    if args.format == "json":
        sys.stdout.write(orjson.dumps(result.to_json()).decode() + "\n")
    else:
        print(format_text(result))
    return EXIT_FINDINGS if result.findings else EXIT_OK


def format_text(result) -> str:
    p = result.profile
    lines = [f"model {p.model}  window {p.start} .. {p.end}  records {p.records:,}  rejected {p.rejected:,}"]
    found = result.findings
    if not found:
        lines.append("no findings")
        return "\n".join(lines)
    head = f"{'severity':9s} {'check':19s} {'feature':20s} {'value':>9s} {'threshold':>9s} {'p-value':>9s}  message"
    lines += [head, "-" * len(head)]
    for f in found:
        pv = f"{f.p_value:.1e}" if f.p_value is not None else "n/a"
        lines.append(f"{f.status:9s} {f.check:19s} {f.feature[:20]:20s} {f.value:9.3f} {f.threshold:9.3g} {pv:>9s}  {f.message}")
    return "\n".join(lines)


# -- report --------------------------------------------------------------------------------

@command
def _report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write a self-contained HTML report",
                       description="Local: check prediction logs against a baseline (--baseline, --logs). "
                                   "Elasticsearch: render the results indices for a model and time range "
                                   "(--es --model [--start --end]).")
    p.add_argument("--baseline")
    p.add_argument("--logs", nargs="+")
    p.add_argument("--config", help="predwatch.toml with check thresholds")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--es", action="store_true", help="read the results from Elasticsearch instead")
    p.add_argument("--model", help="with --es: the model")
    p.add_argument("--start", help="with --es: ISO time (default: 7 days before --end)")
    p.add_argument("--end", help="with --es: ISO time (default: now)")
    add_es_args(p)
    p.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    from .report import write_report

    if args.es:
        return _report_from_es(args)
    if not args.baseline or not args.logs:
        raise UsageError("a local report needs --baseline and --logs (or use --es --model)")
    result = _analyze_local(args)
    out = write_report([result], args.out)
    print(f"{len(result.findings)} finding(s); report written to {out}")
    return EXIT_FINDINGS if result.findings else EXIT_OK


def _report_from_es(args: argparse.Namespace) -> int:
    from datetime import datetime, timedelta, timezone

    from logging_adapter.contract import parse_time, utc_iso

    from . import series

    if not args.model:
        raise UsageError("--es needs --model")
    try:
        end = parse_time(args.end) if args.end else datetime.now(timezone.utc)
        start = parse_time(args.start) if args.start else end - timedelta(days=7)
    except ValueError as exc:
        raise UsageError(f"not an ISO time: {exc}") from None
    settings, client = es_client(args)
    with elasticsearch_errors(settings):
        out = series.write(client, args.prefix, args.model, utc_iso(start), utc_iso(end), args.out,
                           source=settings.describe())
    print(f"report written to {out}")
    return EXIT_OK


# -- demo -------------------------------------------------------------------------------------

@command
def _demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole idea on real data (NYC flights 2013), locally or on Elasticsearch",
                       description="Train a small model on January-March 2013 flights, replay April-December "
                                   "through a model service that logs every prediction, check each day, and "
                                   "write an HTML report. With --es, do the same through Elasticsearch.")
    p.add_argument("--workdir", default="predwatch-demo", help="where logs, baseline and report go")
    p.add_argument("--days", type=int, help="replay only the first N days of April onwards")
    p.add_argument("--es", metavar="URL", help="run against Elasticsearch at URL")
    p.add_argument("--es-distribution", choices=("elasticsearch", "opensearch"))
    p.add_argument("--kibana", metavar="URL", help="with --es: also install dashboards and alerts in Kibana")
    p.add_argument("--prefix", default="predwatch")
    p.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    try:
        if args.es:
            from .demo_es import run_es

            run_es(args.workdir, args.days, es_url=args.es, distribution=args.es_distribution,
                   kibana_url=args.kibana, prefix=args.prefix)
        else:
            from .demo import run

            run(args.workdir, args.days, progress=lambda line: print(line, flush=True))
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


@command
def _demo_service(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo-service", help="the demo's model service over HTTP (POST /predict)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log", default="logs/predictions.jsonl", help="the JSONL prediction log (rotated)")
    p.add_argument("--store-baseline", action="store_true", help="store the baseline in Elasticsearch (PREDWATCH_ES_*)")
    p.add_argument("--prefix", default="predwatch")
    p.set_defaults(run=lambda a: _demo_call("serve", a.port, a.log, a.store_baseline, a.prefix))


@command
def _demo_traffic(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo-traffic", help="replay the April-December flights against demo-service")
    p.add_argument("--url", default="http://localhost:8000")
    p.add_argument("--rate", type=float, default=20.0, help="requests per second")
    p.add_argument("--limit", type=int, help="stop after this many predictions")
    p.set_defaults(run=lambda a: _demo_call("traffic", a.url, a.rate, a.limit))


def _demo_call(name: str, *args) -> int:
    from . import demo_service

    try:
        result = getattr(demo_service, name)(*args)
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None
    if name == "traffic":
        print(f"{result:,} predictions answered")
    return EXIT_OK


# -- Elasticsearch commands ----------------------------------------------------------------

def add_es_args(p: argparse.ArgumentParser) -> None:
    """Connection flags; each falls back to its PREDWATCH_ES_* environment variable."""
    g = p.add_argument_group("Elasticsearch (flags override PREDWATCH_ES_* environment variables)")
    g.add_argument("--es-url", help="e.g. https://localhost:9200 (PREDWATCH_ES_URL)")
    g.add_argument("--es-api-key", help="prefer PREDWATCH_ES_API_KEY: flags show up in process lists")
    g.add_argument("--es-username")
    g.add_argument("--es-password", help="prefer PREDWATCH_ES_PASSWORD")
    g.add_argument("--es-ca-certs")
    g.add_argument("--es-distribution", choices=("elasticsearch", "opensearch"))
    g.add_argument("--prefix", default="predwatch", help="index name prefix (default: predwatch)")


def es_client(args: argparse.Namespace):
    from logging_adapter.elastic import EsSettings, make_client

    try:
        settings = EsSettings.from_env(url=args.es_url, api_key=args.es_api_key, username=args.es_username,
                                       password=args.es_password, ca_certs=args.es_ca_certs,
                                       distribution=args.es_distribution)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return settings, make_client(settings)


@contextlib.contextmanager
def elasticsearch_errors(settings) -> Iterator[None]:
    """Any client error inside becomes one clear line (and exit code 2), never a traceback."""
    try:
        yield
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - connection, auth, TLS, API errors alike
        raise UsageError(f"cannot use Elasticsearch at {settings.describe()}: {type(exc).__name__}: {exc}") from None


@command
def _setup(sub: argparse._SubParsersAction) -> None:
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
        from .results import result_templates
    except ImportError:
        return []
    return [result_templates(prefix)]


@command
def _ship(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ship", help="tail JSONL prediction logs into Elasticsearch",
                       description="Tail JSONL files (globs allowed) like Filebeat: persisted offsets, rotation, "
                                   "dead letters; SIGTERM stops cleanly.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--once", action="store_true", help="ship what the files hold now, then exit")
    p.add_argument("--state-dir", default=str(Path.home() / ".cache" / "predwatch" / "ship"),
                   help="offsets and dead letters (default: ~/.cache/predwatch/ship)")
    add_es_args(p)
    p.set_defaults(run=run_ship)


def run_ship(args: argparse.Namespace) -> int:
    import logging

    from logging_adapter.ship import Shipper, install_signal_handlers

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    settings, client = es_client(args)
    shipper = Shipper(client, args.paths, state_dir=args.state_dir, prefix=args.prefix)
    install_signal_handlers(shipper)
    stats = shipper.run(once=args.once)
    print(f"shipped {stats['sent']:,} new, {stats['duplicates']:,} already indexed, "
          f"{stats['rejected']:,} dead-lettered to {shipper.dead_letters.path}")
    return EXIT_OK


# -- the analyzers on Elasticsearch ----------------------------------------------------------

def add_config_args(p: argparse.ArgumentParser) -> None:
    """predwatch.toml, and the two connection settings worth overriding from the command line."""
    p.add_argument("--config", required=True, help="predwatch.toml")
    p.add_argument("--es-url", help="overrides [elasticsearch] url and PREDWATCH_ES_URL")
    p.add_argument("--es-distribution", choices=("elasticsearch", "opensearch"))


def _daemon_config(args: argparse.Namespace):
    from .daemon import DaemonConfig

    try:
        return DaemonConfig.load(args.config, url=args.es_url, distribution=args.es_distribution)
    except FileNotFoundError:
        raise UsageError(f"config file not found: {args.config}") from None
    except (ValueError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{args.config}: {exc}") from None


@command
def _daemon(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("daemon", help="analyse windows on a schedule and index the results",
                       description="Scheduled analysis of every configured model; SIGTERM stops it cleanly.")
    add_config_args(p)
    p.set_defaults(run=run_daemon_cmd)


def run_daemon_cmd(args: argparse.Namespace) -> int:
    import logging

    from .daemon import run_daemon

    config = _daemon_config(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    run_daemon(config)
    return EXIT_OK


@command
def _analyze(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="analyse a past time range now (backfill, ad hoc)",
                       description="Analyse [start, end) in the model's window size, as the daemon would; "
                                   "results are indexed. Exit 1 when there are findings.")
    add_config_args(p)
    p.add_argument("--model", required=True)
    p.add_argument("--start", required=True, help="ISO time, e.g. 2026-11-22T00:00:00Z")
    p.add_argument("--end", required=True)
    p.set_defaults(run=run_analyze)


def run_analyze(args: argparse.Namespace) -> int:
    from logging_adapter.contract import parse_time
    from logging_adapter.elastic import make_client

    from .daemon import Analyzer, align, iso

    config = _daemon_config(args)
    try:
        job = config.model(args.model)
        start, end = align(parse_time(args.start), job.window), parse_time(args.end)
    except (KeyError, ValueError) as exc:
        raise UsageError(str(exc).strip("'\"")) from None
    analyzer = Analyzer(make_client(config.settings), config)
    findings = 0
    with elasticsearch_errors(config.settings):
        while start + job.window <= end:
            summary = analyzer.analyze_window(job, start, start + job.window, refresh=True)
            print(f"{job.name} [{iso(start)}, {iso(start + job.window)}): {summary['records']:,} records, "
                  f"{summary['findings']} findings, {summary['errors']} errors")
            findings += summary["findings"]
            start += job.window
    return EXIT_FINDINGS if findings else EXIT_OK


# -- Kibana and alerts ------------------------------------------------------------------------

@command
def _kibana(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kibana", help="Kibana dashboards: install (import the saved objects)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    inst = actions.add_parser("install", help="import the dashboards through the saved objects API",
                              description="Auth from PREDWATCH_KIBANA_API_KEY or PREDWATCH_KIBANA_USERNAME/_PASSWORD "
                                          "(else the PREDWATCH_ES_* credentials).")
    inst.add_argument("--kibana-url", required=True)
    inst.add_argument("--space", help="Kibana space id (default: the default space)")
    inst.add_argument("--prefix", default="predwatch")
    inst.add_argument("--ca-certs")
    inst.set_defaults(run=run_kibana_install)


def run_kibana_install(args: argparse.Namespace) -> int:
    from kibana.dashboards import dashboard_path, ndjson
    from kibana.install import KibanaAuth, import_saved_objects

    result = import_saved_objects(args.kibana_url, ndjson(args.prefix), space=args.space, auth=KibanaAuth.from_env(),
                                  ca_certs=args.ca_certs)
    for line in result.created:
        print(f"imported {line}")
    for line in result.errors:
        print(f"failed: {line}", file=sys.stderr)
    if not result.ok:
        return EXIT_USAGE
    base = args.kibana_url.rstrip("/") + (f"/s/{args.space}" if args.space else "")
    print(f"dashboard: {base}{dashboard_path(args.prefix)}")
    return EXIT_OK


@command
def _alerts(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alerts", help="Watcher alerts: install (or render) the watches")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    inst = actions.add_parser("install", help="put the watches ([alerts] in predwatch.toml)",
                              description="Reads the cluster licence first; without Watcher it says so and points "
                                          "to the daemon's built-in notifier ([notify]).")
    add_config_args(inst)
    inst.add_argument("--per-model", action="store_true", help="one watch per configured model")
    inst.add_argument("--print", action="store_true", help="print the watches instead of installing them")
    inst.set_defaults(run=run_alerts_install)


def run_alerts_install(args: argparse.Namespace) -> int:
    import json

    from alerting.watches import AlertConfig, install, render_watch, watch_id, watcher_available
    from logging_adapter.elastic import make_client

    config = _daemon_config(args)
    try:
        cfg = AlertConfig.from_dict(config.raw.get("alerts"))
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    models = [m.name for m in config.models] if args.per_model else [None]
    if args.print:
        for model in models:
            print(json.dumps({"id": watch_id(config.prefix, model), "watch": render_watch(cfg, config.prefix, model)},
                             indent=2))
        return EXIT_OK
    client = make_client(config.settings)
    available, why = watcher_available(client)
    if not available:
        print(f"Watcher is not available: {why}.")
        print("Alerts still work: `predwatch daemon` sends findings to the webhooks and Slack URLs under [notify] "
              "in predwatch.toml (any licence), and Kibana's Elasticsearch-query rule can watch the findings index.")
        return EXIT_OK
    with elasticsearch_errors(config.settings):
        for wid in install(client, cfg, config.prefix, models):
            print(f"installed watch {wid}")
    return EXIT_OK


# -- entry point ---------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="predwatch", description="ML prediction monitoring on the Elastic stack.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _commands:
        register(sub)
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


if __name__ == "__main__":
    sys.exit(main())
