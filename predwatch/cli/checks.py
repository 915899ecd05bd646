"""Checks on local files: ``baseline``, ``check``, ``report``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from .common import (EXIT_FINDINGS, EXIT_HELP, EXIT_OK, Subparsers, UsageError, add_es_args, add_fields_arg,
                     default_workers, elasticsearch_errors, es_client, load_config, load_fields, say_unseen_paths)
from .progress import Progress


def _baseline(sub: Subparsers) -> None:
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
    p.add_argument("--time-column", metavar="COL",
                   help="each row's timestamp: keep the training traffic of every UTC hour of day, so that windows "
                        "are compared with the same hours (a night window with the night)")
    p.add_argument("--actual", metavar="COL",
                   help="the actual outcome of each row (held-out data with the model's --prediction): keep the "
                        "model's reference quality, so that windows with outcomes are judged by quality_drop")
    p.add_argument("--task", choices=("binary", "multiclass", "regression"),
                   help="what the model does (default: inferred from --actual)")
    p.add_argument("--threshold", type=float, metavar="T",
                   help="binary scores: predicted positive at score >= T (default 0.5)")
    p.add_argument("--segment", action="append", default=[], metavar="FIELD",
                   help="judge the model's quality per value of FIELD too (repeatable; categorical and boolean "
                        "inputs always are): a model input, or a record field such as labels.region or "
                        "service.version (a column of that name in --data)")
    p.add_argument("--sensitive", action="append", default=[], metavar="FIELD",
                   help="a sensitive attribute (repeatable): each window reports the demographic parity and "
                        "equal-opportunity differences between its values (Fairlearn's definitions), and "
                        "fairness_gap fires when a gap grows beyond the reference's")
    p.add_argument("--out", help="where to write the baseline JSON")
    add_fields_arg(p)
    p.add_argument("--es", action="store_true", help="also store the baseline in Elasticsearch (<prefix>-baselines)")
    add_es_args(p)
    p.set_defaults(run=run_baseline)


def run_baseline(args: argparse.Namespace) -> int:
    from analyzers.core.baseline import build_baseline
    from analyzers.sources.tables import LEFT_OUT, MODELS, load_table

    path = Path(args.data)
    if not path.exists():
        raise UsageError(f"training data not found: {path}")
    fields = load_fields(args)
    if fields is not None and not path.name.lower().endswith((".jsonl", ".ndjson", ".json", ".jsonl.gz")):
        raise UsageError(f"--fields reads JSONL records; {path} is not a .jsonl file (name the columns with "
                         "--prediction, --drop ... instead)")
    if fields is not None:
        say_unseen_paths("baseline", [path], fields)
    bar = Progress("baseline")
    bar.say(f"reading {path} ...")
    try:
        table = load_table(path, fields)
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    finally:
        bar.close()
    left_out = table.attrs.get(LEFT_OUT) or {}
    for kind, n in sorted(left_out.items()):
        print(f"predwatch baseline: left out {n:,} {kind} record(s) of {path}: training takes prediction records only",
              file=sys.stderr)
    models = table.attrs.get(MODELS) or {}
    others = {name: n for name, n in models.items() if name != args.model}
    if others:
        said = ", ".join(f"{n:,} of {name!r}" for name, n in sorted(others.items(), key=lambda kv: -kv[1]))
        print(f"predwatch baseline: warning: {path} holds prediction records of other models than {args.model!r} "
              f"({said}); they are summarised into this baseline too", file=sys.stderr)
    table = table.drop(columns=[c for c in args.drop if c in table.columns])
    refuse_sparse(table, path)
    kinds = {**{c: "text" for c in args.text}, **{c: "categorical" for c in args.categorical},
             **{c: "numeric" for c in args.numeric}}
    bar.say(f"summarising {len(table.columns)} columns of {len(table):,} rows ...")
    try:
        baseline = build_baseline(table, model=args.model, version=args.version, kinds=kinds,
                                  predictions=args.prediction, source=path.name, time_column=args.time_column,
                                  actual=args.actual, task=args.task, threshold=args.threshold,
                                  segments=args.segment, sensitive=args.sensitive)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    finally:
        bar.close()
    if not args.out and not args.es:
        raise UsageError("say where the baseline goes: --out FILE and/or --es")
    if args.out:
        try:
            baseline.save(args.out)
        except OSError as exc:
            raise UsageError(f"cannot write the baseline to {args.out}: {exc.strerror or exc}") from None
    where = [args.out] if args.out else []
    if args.es:
        from analyzers.store.baselines import store_baseline

        settings, client = es_client(args)
        with elasticsearch_errors(settings):
            where.append(f"{settings.url} {args.prefix}-baselines/{store_baseline(client, baseline, args.prefix)}")
    print(f"baseline for {baseline.model} {baseline.version or ''} from {baseline.rows:,} rows -> {', '.join(where)}")
    if baseline.time_slices:
        print(f"  time of day: {len(baseline.time_slices['slices'])} slices of the 24 UTC hours")
    for name, col in baseline.columns.items():
        print(f"  {name:30s} {col.kind:12s} {col.role:10s} null {col.null_rate:6.1%}")
    if baseline.quality:
        q = baseline.quality
        said = ", ".join(f"{k} {v:.4g}" for k, v in q.metrics.items())
        print(f"  quality ({q.task}, {q.rows:,} labelled rows): {said}; {q.estimate_note}")
    if baseline.groups:
        g = baseline.groups
        kept = sum(map(len, g.quality.values()))
        print(f"  groups: {', '.join(g.fields)}" + (f"; sensitive: {', '.join(g.sensitive)}" if g.sensitive else "")
              + (f"; reference quality of {kept:,} groups" if kept else ""))
    return EXIT_OK


def refuse_sparse(table, path: Path) -> None:
    """A table where most rows lack most columns is not training data (records of several kinds, or of several
    sources, mixed): its baseline would expect those nulls in every window."""
    if table.empty or len(table.columns) < 2:
        return
    sparse = float((table.notna().mean(axis=1) < 0.5).mean())
    if sparse > 0.5:
        named = ", ".join(map(str, table.columns[:6])) + (", ..." if len(table.columns) > 6 else "")
        raise UsageError(f"{path}: {sparse:.0%} of its {len(table):,} rows lack most of its {len(table.columns)} "
                         f"columns ({named}): not one table of training rows (records of different kinds mixed?)")


# -- check ---------------------------------------------------------------------------------

def _check(sub: Subparsers) -> None:
    p = sub.add_parser("check", help="check prediction logs against a baseline, window by window",
                       description="Check JSONL prediction logs against a baseline, one window per --window. "
                                   + EXIT_HELP)
    p.add_argument("--baseline", required=True, help="the baseline JSON (from `predwatch baseline`)")
    p.add_argument("--logs", required=True, nargs="+", help="JSONL files of prediction records (.gz too)")
    add_window_arg(p)
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="json: one object per window, one per line, in time order")
    p.add_argument("--config", help="predwatch.toml with check thresholds")
    add_fields_arg(p)
    add_compare_arg(p)
    add_workers_arg(p)
    p.set_defaults(run=run_check)


def add_compare_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compare", nargs=2, metavar=("CHAMPION", "CANDIDATE"),
                   help="two versions of the model in the logs (canary, A/B or shadow): judge the candidate against "
                        "the champion on each window (version_shift, version_traffic_shift, version_quality_gap, "
                        "version_disagreement); the candidate needs no baseline of its own")


def add_window_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--window", metavar="SIZE",
                   help="cut the records into UTC-aligned windows by @timestamp: 1h, 1d, 15m ...; 'all' for one "
                        "window of everything (default: 1d for several files, all for one)")
    p.add_argument("--recent-days", type=int, default=7, metavar="N",
                   help="also judge each window against the same window on the previous N days (recent_findings; "
                        "default 7, 0: off)")
    p.add_argument("--incident-gap", type=int, default=1, metavar="N",
                   help="quiet windows an incident may skip and go on (default 1): more close it")


def add_workers_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=default_workers(),
                   help="processes for large files (default: the CPU count, at most 4)")


def window_size(args: argparse.Namespace):
    """The ``--window`` as a timedelta, or None for one window of everything."""
    from analyzers.core.config import parse_duration

    text = args.window or ("1d" if len(args.logs) > 1 else "all")
    if text == "all":
        return None
    try:
        size = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--window: {exc}") from None
    if size.total_seconds() <= 0 or 86400 % size.total_seconds() and size.total_seconds() % 86400:
        raise UsageError(f"--window {text}: use a size that divides a day (1h, 15m) or whole days (1d, 7d)")
    return size


def _analyze_local(args: argparse.Namespace):
    from analyzers.core.baseline import Baseline
    from analyzers.core.config import CheckConfig
    from analyzers.sources.jsonl import UnreadableFile, estimate_lines
    from analyzers.files import analyze_local

    try:
        baseline = Baseline.load(args.baseline)
    except FileNotFoundError:
        raise UsageError(f"baseline not found: {args.baseline}") from None
    except IsADirectoryError:
        raise UsageError(f"{args.baseline}: a directory, not a baseline file") from None
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise UsageError(f"unusable baseline {args.baseline}: {exc}") from None
    for log in args.logs:
        if Path(log).is_dir():
            raise UsageError(f"{log}: a directory, not a log file (give the files, e.g. {log}/*.jsonl)")
        if not Path(log).is_file():
            raise UsageError(f"log file not found: {log}")
    try:
        config = CheckConfig.from_dict(load_config(args.config))
    except ValueError as exc:
        raise UsageError(f"{args.config}: {exc}") from None
    fields = load_fields(args)
    if fields is not None:
        say_unseen_paths(args.command, args.logs, fields)
    bar = Progress("reading", unit="lines", total=estimate_lines(args.logs))
    try:
        analysis = analyze_local(args.logs, baseline, config, workers=max(1, args.workers), window=window_size(args),
                                 progress=bar.update if bar.active else None, recent_days=max(0, args.recent_days),
                                 fields=fields,
                                 compare=tuple(compare) if (compare := getattr(args, "compare", None)) else None)
    except UnreadableFile as exc:
        raise UsageError(str(exc)) from None
    finally:
        bar.close()
    for r in analysis.rejections:
        print(f"rejected {r.where}: {r.reason}", file=sys.stderr)
    if analysis.rejected:
        print(f"{analysis.rejected:,} lines rejected in all", file=sys.stderr)
    for model, n in analysis.other_models.items():
        print(f"left out {n:,} records of model {model!r} (the baseline is for {baseline.model!r})", file=sys.stderr)
    compared = set(getattr(args, "compare", None) or ())
    for version in sorted(compared - set(analysis.versions)):
        print(f"no record of version {version!r} in the logs: nothing to compare it with", file=sys.stderr)
    others = {v: n for v, n in analysis.versions.items()
              if baseline.version is not None and v not in (baseline.version, "None") and v not in compared}
    for version, n in others.items():
        print(f"{n:,} records are of model version {version!r}, the baseline is of version {baseline.version!r}: "
              "they were checked against it all the same (build a baseline per version to tell them apart)",
              file=sys.stderr)
    if analysis.records == 0:
        raise UsageError(f"no valid prediction record of model {baseline.model!r} in {', '.join(args.logs)}")
    return analysis


def run_check(args: argparse.Namespace) -> int:
    from analyzers.core.incidents import incidents_of

    if args.incident_gap < 0:
        raise UsageError(f"--incident-gap {args.incident_gap}: a number of windows, 0 or more")
    analysis = _analyze_local(args)
    for window in analysis.windows:
        if args.format == "json":
            sys.stdout.write(orjson.dumps(window.to_json()).decode() + "\n")
        else:
            print(format_text(window))
    if len(analysis.windows) > 1:  # one episode told once, after the windows that show it
        incidents = incidents_of(analysis.windows, gap=args.incident_gap)
        if args.format == "json":
            for incident in incidents:
                sys.stdout.write(orjson.dumps({"incident": incident.to_json()}).decode() + "\n")
        else:
            print(format_incidents(incidents))
    return EXIT_FINDINGS if any(w.findings for w in analysis.windows) else EXIT_OK


def format_text(result) -> str:
    p = result.profile
    start, end = result.bounds or (p.start, p.end)
    lines = [f"model {p.model}  window {start} .. {end}  records {p.records:,}  rejected {p.rejected:,}"
             + (f"  judged against {result.results[0].reference}" if result.results else "")]
    if result.quality:
        lines.append(quality_line(result.quality))
    if result.latency:
        lat = result.latency
        lines.append(f"latency: p50 {lat['p50']:.3g} ms, p95 {lat['p95']:.3g} ms, p99 {lat['p99']:.3g} ms")
    if p.compared is not None:
        lines.append(versions_line(result.versions_compared))
    if result.baseline.groups and result.baseline.groups.sensitive:
        lines.append(fairness_line(result.fairness))
    unjudged = [r for r in result.results if not r.judged]
    if unjudged:
        lines.append("not judged (too few values): " + ", ".join(f"{r.feature} {r.check} ({r.n_window})"
                                                                  for r in unjudged))
    found, recent = result.findings, result.recent_findings
    if not found:
        lines.append("no findings" + (" against training" if recent else ""))
    if not found and not recent:
        return "\n".join(lines)
    head = f"{'severity':9s} {'check':19s} {'feature':20s} {'value':>9s} {'threshold':>9s} {'p-value':>9s}  message"
    lines += [head, "-" * len(head)]
    lines += [finding_line(f) for f in found]
    if recent:  # against the same window on the previous days: what changed, not the season
        lines.append(f"-- against the recent days (the same window on the previous days) {'-' * (len(head) - 68)}")
        lines += [finding_line(f) for f in recent]
    return "\n".join(lines)


def versions_line(v: dict) -> str:
    """The ``versions_compared`` section of a window as one line of text."""
    champion, candidate = v["champion"], v["candidate"]
    said = [f"versions: {champion} (champion) {v['records'][champion]:,} records, {candidate} (candidate) "
            f"{v['records'][candidate]:,}"]
    for version in (champion, candidate) if v.get("quality") else ():
        q = v["quality"][version]
        if q["labelled"]:
            said.append(f"{version}: " + ", ".join(f"{k} {x:.3g}" for k, x in q.items() if k != "labelled")
                        + f" on {q['labelled']:,} labels")
    shadow = v["shadow"]
    if shadow["pairs"]:
        said.append(f"{shadow['pairs']:,} ids scored by both, {shadow['label_disagreement']:.1%} labels differ")
    return "; ".join(said)


def format_incidents(incidents) -> str:
    """The incidents as text: open ones first, each on one line with its span, length and peak."""
    from analyzers.core.incidents import ordered_for_reading

    if not incidents:
        return "incidents: none"
    still = sum(1 for i in incidents if i.ongoing)
    lines = [f"incidents: {len(incidents)} ({still} open)"]
    for i in ordered_for_reading(incidents):
        span = f"since {i.start}" if i.ongoing else f"{i.start} .. {i.end}"
        lines.append(f"{'open' if i.ongoing else 'closed':6s} {i.peak_severity:8s} {i.check:19s} {i.feature[:20]:20s} "
                     f"against {i.reference}  {span}  {i.windows} window{'s' if i.windows != 1 else ''}  "
                     f"peak {i.peak_value:.3g}  {i.latest_message}")
    return "\n".join(lines)


def finding_line(f) -> str:
    pv = f"{f.p_value:.1e}" if f.p_value is not None else "n/a"
    return f"{f.status:9s} {f.check:19s} {f.feature[:20]:20s} {f.value:9.3f} {f.threshold:9.3g} {pv:>9s}  {f.message}"


def fairness_line(gaps: list[dict]) -> str:
    """The ``fairness`` section of a window as one line of text."""
    if not gaps:
        return "fairness: too few predictions per value of the sensitive fields to compare them"
    return "fairness: " + "; ".join(
        f"{g['feature']} {g['metric']} {g['value']:.3f} (95% {g['interval'][0]:.3f}-{g['interval'][1]:.3f}"
        + (f", reference {g['reference']:.3f})" if g["reference"] is not None else ")") for g in gaps)


def quality_line(q: dict) -> str:
    """The ``quality`` section of a window as one line of text."""
    coverage = f" ({q['label_coverage']:.0%})" if q["label_coverage"] is not None else ""
    delay = q["median_label_delay_s"]
    said = [f"quality: {q['labelled']:,} of {q['predictions']:,} predictions labelled{coverage}"
            + (f", median label delay {delay / 3600:.1f} h" if delay is not None else "")]
    if q["labelled"]:
        said.append(", ".join(f"{k} {v['value']:.3g} (reference {v['reference']:.3g})"
                              for k, v in q["metrics"].items() if v["value"] is not None and v["reference"] is not None))
    if q["estimated"]:
        said.append(f"estimated accuracy {q['estimated']['accuracy']:.3g}")
    else:
        said.append(q["estimate_note"])
    if q["outcomes_without_prediction"]:
        said.append(f"{q['outcomes_without_prediction']:,} outcomes without their prediction in the files, left out")
    return "; ".join(said)


# -- report --------------------------------------------------------------------------------

def _report(sub: Subparsers) -> None:
    p = sub.add_parser("report", help="write a self-contained HTML report",
                       description="Local: check prediction logs against a baseline (--baseline, --logs), one "
                                   "window per --window. Elasticsearch: render the results indices for a model and "
                                   "time range (--es --model [--start --end]). " + EXIT_HELP)
    p.add_argument("--baseline", help="the baseline JSON (from `predwatch baseline`)")
    p.add_argument("--logs", nargs="+", help="JSONL files of prediction records (.gz too)")
    add_window_arg(p)
    p.add_argument("--config", help="predwatch.toml with check thresholds")
    add_compare_arg(p)
    p.add_argument("--out", required=True, help="the HTML file to write")
    add_fields_arg(p)
    add_workers_arg(p)
    p.add_argument("--es", action="store_true", help="read the results from Elasticsearch instead")
    p.add_argument("--model", help="with --es: the model")
    p.add_argument("--start", help="with --es: ISO time (default: 7 days before --end)")
    p.add_argument("--end", help="with --es: ISO time (default: now)")
    add_es_args(p)
    p.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    from analyzers.report.html import write_report

    if args.es:
        if args.fields:
            raise UsageError("--fields reads local --logs; a report from Elasticsearch (--es) reads the results indices")
        return _report_from_es(args)
    if not args.baseline or not args.logs:
        raise UsageError("a local report needs --baseline and --logs (or use --es --model)")
    if args.incident_gap < 0:
        raise UsageError(f"--incident-gap {args.incident_gap}: a number of windows, 0 or more")
    analysis = _analyze_local(args)
    out = write_report(analysis.windows, args.out, gap=args.incident_gap)
    found = sum(len(w.findings) for w in analysis.windows)
    print(f"{found} finding(s) in {len(analysis.windows)} window(s); report written to {out}")
    return EXIT_FINDINGS if found else EXIT_OK


def _report_from_es(args: argparse.Namespace) -> int:
    from datetime import datetime, timedelta, timezone

    from logging_adapter.contract import parse_time, utc_iso

    from analyzers.report import series
    from analyzers.store.series import NothingYet

    if not args.model:
        raise UsageError("--es needs --model")
    try:
        end = parse_time(args.end) if args.end else datetime.now(timezone.utc)
        start = parse_time(args.start) if args.start else end - timedelta(days=7)
    except ValueError as exc:
        raise UsageError(f"not an ISO time: {exc}") from None
    settings, client = es_client(args)
    with elasticsearch_errors(settings):
        try:
            written = series.write(client, args.prefix, args.model, utc_iso(start), utc_iso(end), args.out,
                                   source=settings.describe())
        except NothingYet as exc:
            raise UsageError(f"no report written: {exc}") from None
    print(f"{written.findings} finding(s) against training; report written to {written.path}")
    return EXIT_FINDINGS if written.findings else EXIT_OK  # the local report's rule


COMMANDS = (_baseline, _check, _report)  # each adds its subcommand to the parser
