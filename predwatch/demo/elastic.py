"""``predwatch demo --es URL``: the same replay, through Elasticsearch end to end.

setup (templates) -> baseline stored in Elasticsearch -> ``predwatch ship`` of the
daily log files -> each day analysed by aggregations (the daemon's code path) ->
results indexed -> report from the results indices; with ``--kibana`` also the
dashboards and (where Watcher exists) the alerts.
"""
from __future__ import annotations

import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from logging_adapter import templates
from logging_adapter.elastic import EsSettings, make_client, safe_url
from logging_adapter.ship import Shipper

from analyzers.daemon.analyzer import Analyzer
from analyzers.daemon.config import DaemonConfig, ModelJob, iso
from analyzers.report import series
from analyzers.sources.outcomes import join_outcomes
from analyzers.store import results as res
from analyzers.store.baselines import store_baseline

from .flights import MODEL, replay


def run_es(workdir: str | Path, days: int | None, *, es_url: str, distribution: str | None = None,
           kibana_url: str | None = None, prefix: str = "predwatch",
           progress: Callable[[str], None] = lambda line: print(line, flush=True)) -> dict[str, int]:
    started = time.perf_counter()
    workdir = Path(workdir)
    settings = EsSettings.from_env(url=es_url, distribution=distribution)
    client = make_client(settings, request_timeout=120)
    progress(f"Elasticsearch: {settings.describe()}")
    try:
        for line in templates.install(client, prefix=prefix, extra=[res.result_templates(prefix)]):
            progress(f"  installed {line}")
    except Exception as exc:  # noqa: BLE001
        raise RuntimeError(f"cannot use Elasticsearch at {settings.describe()}: {exc}") from None
    served = replay(workdir, days, progress)
    store_baseline(client, served.baseline, prefix)
    progress(f"  baseline stored in {res.baselines_index(prefix)} (and the model's indices typed after it)")

    shipper = Shipper(client, [str(path) for _, path, _ in served.days],
                      state_dir=Path(tempfile.mkdtemp(prefix="predwatch-demo-ship-")), prefix=prefix)
    stats = shipper.run(once=True)
    progress(f"shipped {stats['sent']:,} records ({stats['duplicates']:,} already there, {stats['rejected']:,} "
             "dead-lettered)")
    client.indices.refresh(index=f"{prefix}-*")
    joined = join_outcomes(client, prefix, MODEL, lambda version: served.baseline, limit=10**9)
    progress(f"joined {joined.joined:,} arrivals to their predictions ({joined.unmatched:,} without one)")

    config = DaemonConfig(settings=settings, prefix=prefix,
                          models=[ModelJob(MODEL, served.baseline.version, window=timedelta(days=1))])
    analyzer = Analyzer(client, config)
    job = config.models[0]
    first = datetime.combine(served.days[0][0], datetime.min.time(), tzinfo=timezone.utc)
    last = datetime.combine(served.days[-1][0], datetime.min.time(), tzinfo=timezone.utc) + timedelta(days=2)
    totals = {"windows": 0, "findings": 0, "errors": 0}
    day = first
    while day < last:
        summary = analyzer.analyze_window(job, day, day + timedelta(days=1), refresh=True)
        totals["windows"] += 1
        totals["findings"] += summary["findings"]
        totals["errors"] += summary["errors"]
        progress(f"  {day.date()}: {summary['records']:,} records, {summary['findings']} findings")
        day += timedelta(days=1)
    report = series.write(client, prefix, MODEL, iso(first), iso(last), workdir / "report-es.html",
                          source=settings.describe()).path
    progress(f"analysed {totals['windows']} daily windows in Elasticsearch: {totals['findings']} findings, "
             f"{totals['errors']} errors, {analyzer.requests} searches, {time.perf_counter() - started:.0f} s")
    if kibana_url:
        _kibana(kibana_url, prefix, client, progress)
    progress(f"report: {report.resolve()}")
    return totals


def _kibana(kibana_url: str, prefix: str, client, progress: Callable[[str], None]) -> None:
    from alerting.watches import AlertConfig, install, watcher_available
    from kibana.dashboards import dashboard_id, dashboard_path, dashboard_url, ndjson
    from kibana.install import KibanaAuth, import_saved_objects

    result = import_saved_objects(kibana_url, ndjson(prefix), auth=KibanaAuth.from_env())
    if result.ok:
        progress(f"dashboards: {safe_url(kibana_url).rstrip('/')}{dashboard_path(prefix, dashboard=result.id_of(dashboard_id(prefix)))}")
    else:
        progress("dashboards NOT imported: " + "; ".join(result.errors))
    available, why = watcher_available(client)
    if available:
        link = dashboard_url(kibana_url, prefix)
        for wid in install(client, AlertConfig(kibana_url=kibana_url), prefix, [None], link):
            progress(f"installed watch {wid}")
    else:
        progress(f"alerts: Watcher not available ({why}); `predwatch daemon` notifies through [notify] webhooks")
