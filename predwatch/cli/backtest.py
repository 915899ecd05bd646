"""``predwatch backtest``: how many incidents a week other thresholds would have opened, before changing them."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import orjson

from .checks import _analyze_local, add_workers_arg, window_size
from .common import EXIT_OK, Subparsers, UsageError, add_es_args, daemon_config, elasticsearch_errors, load_config

PAGE = 1000  # stored profiles read per search


def _backtest(sub: Subparsers) -> None:
    p = sub.add_parser("backtest", help="count the incidents other thresholds would have opened, per model-week",
                       description="Judge windows already analysed again under other thresholds and print, per "
                                   "check, how many incidents each model-week would have had with and without the "
                                   "change. From the profiles the daemon stored (--config --model [--start --end]) "
                                   "or from local files (--baseline --logs). Writes nothing. "
                                   "Exit codes: 0 done, 2 unusable input or bad usage, 3 internal error.")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                   help="a changed threshold, as in predwatch.toml: checks.distribution_shift.warning=0.2, "
                        "features.amount.out_of_range.enabled=false, checks.fdr=0.001 (repeatable)")
    p.add_argument("--overrides", metavar="FILE.toml",
                   help="changed thresholds as [checks] and [features] tables of predwatch.toml (--set goes on top)")
    p.add_argument("--config", help="predwatch.toml: the current thresholds, and with --model the cluster and "
                                    "the model's window and recent_days")
    p.add_argument("--model", help="replay the profiles the daemon stored for this model of --config")
    p.add_argument("--start", help="with --model: ISO time (default: 28 days before --end)")
    p.add_argument("--end", help="with --model: ISO time (default: now)")
    p.add_argument("--baseline", help="local: the baseline JSON")
    p.add_argument("--logs", nargs="+", help="local: JSONL files of prediction records (.gz too)")
    p.add_argument("--window", metavar="SIZE", help="local: cut the records into UTC-aligned windows of SIZE "
                                                   "(default 1d); with --model, the model's window in --config")
    p.add_argument("--recent-days", type=int, default=7, metavar="N",
                   help="local: judge each window against the same window on the previous N days too (default 7, "
                        "0: off); with --model, the model's recent_days in --config")
    p.add_argument("--incident-gap", type=int, metavar="N",
                   help="quiet windows an incident may skip and go on (default: with --model the model's "
                        "incident_gap in --config, else 1)")
    add_workers_arg(p)
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="json: one line per check, reference and model-week")
    add_es_args(p, prefix_default=None)
    p.set_defaults(run=run_backtest)


def run_backtest(args: argparse.Namespace) -> int:
    from analyzers.core.backtest import weekly_counts

    if args.incident_gap is not None and args.incident_gap < 0:
        raise UsageError(f"--incident-gap {args.incident_gap}: a number of windows, 0 or more")
    if args.model and (args.baseline or args.logs):
        raise UsageError("either --config --model (the stored profiles) or --baseline --logs (local files), not both")
    changes = _changes(args)
    if args.model:
        if not args.config:
            raise UsageError("--model replays the profiles of the cluster of --config: give --config predwatch.toml")
        weeks, current, changed = _from_cluster(args, changes)
    elif args.baseline and args.logs:
        weeks, current, changed = _from_files(args, changes)
    else:
        raise UsageError("say what to replay: --config predwatch.toml --model M, or --baseline B --logs FILES")
    rows = weekly_counts(weeks, current, changed)
    if args.format == "json":
        for row in rows:
            sys.stdout.write(orjson.dumps({"backtest": row.to_json()}).decode() + "\n")
    else:
        print(format_counts(rows, len(current), len(changed), bool(changes)))
    return EXIT_OK


def _changes(args: argparse.Namespace) -> list[tuple[str, dict]]:
    """The changes, each with the flag that said it (to name it when it is refused)."""
    from analyzers.core.backtest import overrides_table, setting

    out = []
    if args.overrides:
        try:
            out.append((args.overrides, overrides_table(load_config(args.overrides))))
        except ValueError as exc:
            raise UsageError(f"{args.overrides}: {exc}") from None
    for text in args.settings:
        try:
            out.append((f"--set {text}", setting(text)))
        except ValueError as exc:
            raise UsageError(f"--set {text}: {exc}") from None
    return out


def _configs(raw: dict, changes: list[tuple[str, dict]], where: str):
    """The current thresholds and the changed ones; a change the parser refuses is named with its flag."""
    from analyzers.core.backtest import changed_config

    try:
        current = changed_config(raw)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None
    laid: list[dict] = []
    for flag, change in changes:
        laid.append(change)
        try:
            changed = changed_config(raw, *laid)
        except ValueError as exc:
            raise UsageError(f"{flag}: {exc}") from None
    return current, (changed if changes else current)


def _known_features(changes: list[tuple[str, dict]], judged: set[str], where: str) -> None:
    """A feature override of a feature no window was judged on would change nothing, silently: refused."""
    for flag, change in changes:
        for feature in change.get("features", {}):
            if feature not in judged:
                raise UsageError(f"{flag}: no feature {feature!r} in {where} (features: {', '.join(sorted(judged))})")


def _from_files(args: argparse.Namespace, changes: list[tuple[str, dict]]):
    from analyzers.core.backtest import Window, backtest, week_of
    from analyzers.core.incidents import DEFAULT_GAP
    from logging_adapter.contract import parse_time

    args.window = args.window or "1d"
    if window_size(args) is None:
        raise UsageError("--window all: a backtest counts incidents over windows; give a size (1d, 1h)")
    raw = load_config(args.config)
    current, changed = _configs(raw, changes, args.config or "the default thresholds")
    analysis = _analyze_local(args)
    windows = [Window(parse_time(w.bounds[0]), parse_time(w.bounds[1]), w.profile) for w in analysis.windows]
    baseline = analysis.windows[0].baseline
    judged, now, then = backtest(windows, baseline, current, changed, recent_days=max(0, args.recent_days),
                                 gap=DEFAULT_GAP if args.incident_gap is None else args.incident_gap)
    _known_features(changes, {r.feature for w in judged for r in w.results}, ", ".join(args.logs))
    model = judged[0].profile.model or baseline.model
    return {model: sorted({week_of(w.start) for w in windows})}, now, then


def _from_cluster(args: argparse.Namespace, changes: list[tuple[str, dict]]):
    from elasticsearch import Elasticsearch

    from analyzers.core.backtest import backtest, week_of
    from analyzers.store.baselines import load_baseline
    from logging_adapter.contract import parse_time, utc_iso
    from logging_adapter.elastic import make_client

    config = daemon_config(args)
    try:
        job = config.model(args.model)
    except KeyError as exc:
        raise UsageError(f"--model {args.model}: {exc.args[0]}") from None
    try:
        end = parse_time(args.end) if args.end else datetime.now(timezone.utc)
        start = parse_time(args.start) if args.start else end - timedelta(days=28)
    except ValueError as exc:
        raise UsageError(f"--start/--end: not an ISO time: {exc}") from None
    if start >= end:
        raise UsageError(f"--start {utc_iso(start)} is not before --end {utc_iso(end)}")
    current, changed = _configs(config.raw, changes, args.config)
    client: Elasticsearch = make_client(config.settings)
    history_from = start - timedelta(days=job.recent_days)
    weeks: list[str] = []
    now_all, then_all, judged_features = [], [], set()
    with elasticsearch_errors(config.settings):
        stored = stored_windows(client, config.prefix, job.name, job.version, history_from, end)
        if not any(start <= w.start for ws in stored.values() for w in ws):
            raise UsageError(f"no stored window profiles of model {job.name!r} from {utc_iso(start)} to "
                             f"{utc_iso(end)} in {config.prefix}-profiles (has the daemon analysed them?)")
        for version, windows in sorted(stored.items(), key=lambda kv: str(kv[0])):
            inside = [w for w in windows if w.start >= start]
            if not inside:
                continue
            baseline = load_baseline(client, job.name, version, config.prefix)
            if baseline is None:
                print(f"predwatch backtest: no baseline for model {job.name!r} version {version!r} in "
                      f"{config.prefix}-baselines: its {len(inside)} windows left out", file=sys.stderr)
                continue
            history = [w for w in windows if w.start < start]
            judged, now, then = backtest(inside, baseline, current, changed, recent_days=job.recent_days,
                                         gap=job.incident_gap if args.incident_gap is None else args.incident_gap,
                                         history=history)
            judged_features |= {r.feature for w in judged for r in w.results}
            now_all += now
            then_all += then
            weeks += [week_of(w.start) for w in inside]
    _known_features(changes, judged_features, f"the windows of {job.name!r}")
    return {job.name: sorted(set(weeks))}, now_all, then_all


def stored_windows(client, prefix: str, model: str, version: str | None, start: datetime, end: datetime):
    """The window profiles the daemon stored for ``model`` (and ``version``) starting in ``[start, end)``, per
    model version, in time order."""
    from analyzers.core.backtest import Window
    from analyzers.core.profile import WindowProfile
    from analyzers.sources.search import of_model, search
    from analyzers.store.results import WINDOW_START, profiles_index
    from logging_adapter.contract import MODEL_VERSION, parse_time, utc_iso

    filters = of_model(model, version, field=WINDOW_START, start=utc_iso(start), end=utc_iso(end))["bool"]["filter"]
    out: dict[str | None, list[Window]] = {}
    after = None
    while True:
        resp = search(client, index=profiles_index(prefix), size=PAGE, query={"bool": {"filter": filters}},
                      sort=[{WINDOW_START: "asc"}, {MODEL_VERSION: {"order": "asc", "missing": "_first"}}],
                      ignore_unavailable=True, allow_no_indices=True, **({"search_after": after} if after else {}))
        hits = resp["hits"]["hits"]
        for h in hits:
            said = h["_source"]["predwatch"]
            out.setdefault(said["model"].get("version"), []).append(
                Window(parse_time(said["window"]["start"]), parse_time(said["window"]["end"]),
                       WindowProfile.from_dict(h["_source"]["profile"])))
        if len(hits) < PAGE:
            return out
        after = hits[-1]["sort"]


def format_counts(rows: Sequence, current: int, changed: int, any_change: bool) -> str:
    """One table per check and reference (every check together first, training before recent), a line per
    model-week with an incident under either setting: current, changed."""
    if not rows:
        return "incidents: none under either setting"
    lines = [f"incidents: {current} under the current thresholds, {changed} under the changed ones"
             + ("" if any_change else " (nothing changed: give --set or --overrides)")]
    width = max(len(r.model) for r in rows)
    for key in dict.fromkeys((r.check, r.reference) for r in rows):
        mine = [r for r in rows if (r.check, r.reference) == key]
        check, reference = key
        title = "all checks" if check == "*" else check
        lines += ["", f"{title} (against {reference}): {sum(r.current for r in mine)} -> "
                      f"{sum(r.changed for r in mine)}, at most {max(r.current for r in mine)} -> "
                      f"{max(r.changed for r in mine)} a week, weeks with more than one "
                      f"{sum(r.current > 1 for r in mine)} -> {sum(r.changed > 1 for r in mine)} of {len(mine)}",
                  f"  {'model':{width}s}  {'week':8s}  {'current':>7s}  {'changed':>7s}"]
        lines += [f"  {r.model:{width}s}  {r.week:8s}  {r.current:7d}  {r.changed:7d}" for r in mine
                  if r.current or r.changed]
        quiet = sum(1 for r in mine if not r.current and not r.changed)
        if quiet:
            lines.append(f"  (and {quiet} week{'s' if quiet != 1 else ''} without any under either setting)")
    return "\n".join(lines)


COMMANDS = (_backtest,)
