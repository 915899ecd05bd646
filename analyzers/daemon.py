"""The scheduled analyzer: windows of prediction logs in Elasticsearch, checked and written back.

Per model an APScheduler job (at most one run at a time, misfires coalesced)
analyses every window that is due: from the persisted watermark (or the
configured backfill) up to ``now - lag``. Each window's results are written with
deterministic ids *before* the watermark moves, so a daemon killed mid-backfill
redoes at most the window it was in, and that overwrites: every window exactly
once. ``predwatch analyze`` runs the same code over any past range.
"""
from __future__ import annotations

import logging
import signal
import socket
import statistics
import threading
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch
from scipy import special

from logging_adapter import contract as c
from logging_adapter.contract import parse_time
from logging_adapter.elastic import EsSettings, make_client
from logging_adapter.templates import apply_retention, predictions_pattern

from . import results as res
from .checks import CheckResult
from .config import CheckConfig
from .sources.elastic import EsWindowProfiler
from .window import analyze

log = logging.getLogger("predwatch.daemon")

NO_VERSION = "__no_version__"  # records logged without a model version
VOLUME_MIN_EXPECTED = 20  # below this usual volume, a drop is not judged
VOLUME_WARNING, VOLUME_CRITICAL = 0.5, 0.2  # fractions of the usual volume


def parse_duration(text: str | int | float) -> timedelta:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"7d"`` (or seconds as a number)."""
    if isinstance(text, (int, float)):
        return timedelta(seconds=text)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    if not text or text[-1] not in units or not text[:-1].replace(".", "", 1).isdigit():
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h, 7d)")
    return timedelta(seconds=float(text[:-1]) * units[text[-1]])


@dataclass
class ModelJob:
    """One monitored model: window size, lag for late records, how often to look, how far back to start."""

    name: str
    version: str | None = None
    window: timedelta = timedelta(hours=1)
    lag: timedelta = timedelta(minutes=5)
    every: timedelta | None = None
    backfill: timedelta = timedelta(days=1)

    @property
    def interval(self) -> timedelta:
        return self.every or min(self.window, timedelta(minutes=5))

    @property
    def key(self) -> str:
        return f"watermark:{self.name}:{self.version or '*'}"


@dataclass
class DaemonConfig:
    settings: EsSettings
    prefix: str = "predwatch"
    models: list[ModelJob] = field(default_factory=list)
    checks: CheckConfig = field(default_factory=CheckConfig)
    retention_days: int | None = None
    heartbeat: timedelta = timedelta(seconds=60)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> "DaemonConfig":
        with open(path, "rb") as fh:
            return cls.from_dict(tomllib.load(fh), **overrides)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], **overrides: Any) -> "DaemonConfig":
        es = dict(doc.get("elasticsearch", {}))
        prefix = es.pop("prefix", "predwatch")
        unknown = set(es) - {"url", "distribution", "ca_certs", "verify_certs", "request_timeout", "username"}
        if unknown:
            raise ValueError(f"[elasticsearch]: unknown keys {', '.join(sorted(unknown))} (secrets come from the "
                             "environment: PREDWATCH_ES_API_KEY, PREDWATCH_ES_PASSWORD)")
        settings = EsSettings.from_env(**{**es, **{k: v for k, v in overrides.items() if v is not None}})
        daemon = doc.get("daemon", {})
        models = []
        for m in doc.get("models", []):
            if "name" not in m:
                raise ValueError("[[models]] entries need a name")
            models.append(ModelJob(
                name=m["name"], version=None if m.get("version") is None else str(m["version"]),
                window=parse_duration(m.get("window", "1h")), lag=parse_duration(m.get("lag", "5m")),
                every=parse_duration(m["every"]) if "every" in m else None,
                backfill=parse_duration(m.get("backfill", "1d"))))
        return cls(settings=settings, prefix=prefix, models=models, checks=CheckConfig.from_dict(doc),
                   retention_days=daemon.get("retention_days"),
                   heartbeat=parse_duration(daemon.get("heartbeat", "60s")), raw=doc)

    def model(self, name: str) -> ModelJob:
        for job in self.models:
            if job.name == name:
                return job
        raise KeyError(f"model {name!r} is not in the configuration (models: {', '.join(m.name for m in self.models)})")


def iso(dt: datetime) -> str:
    return c.utc_iso(dt)


def align(dt: datetime, size: timedelta) -> datetime:
    """The window boundary at or before ``dt`` (windows are aligned to the Unix epoch, UTC)."""
    seconds = size.total_seconds()
    return datetime.fromtimestamp((dt.timestamp() // seconds) * seconds, tz=timezone.utc)


class Analyzer:
    """Analyses windows of one cluster and writes the results back; errors become findings."""

    def __init__(self, client: Elasticsearch, config: DaemonConfig, notifier: Any = None) -> None:
        self.client = client
        self.config = config
        self.prefix = config.prefix
        self.notifier = notifier  # alerting.notifier.Notifier, or None
        self.baselines = res.BaselineCache(client, config.prefix)
        self.requests = 0

    # -- one window ------------------------------------------------------------------------------
    def analyze_window(self, job: ModelJob, start: datetime, end: datetime, *, refresh: bool = False) -> dict[str, int]:
        """Analyse ``[start, end)`` for every model version in it; returns counts for the caller."""
        s, e = iso(start), iso(end)
        summary = {"records": 0, "findings": 0, "errors": 0}
        docs = []
        try:
            versions = [job.version] if job.version else self._versions(job, s, e)
        except Exception as exc:  # noqa: BLE001 - errors as data
            docs.append(res.error_doc(prefix=self.prefix, model=job.name, version=job.version, start=s, end=e,
                                      reason=f"window query failed: {exc}"))
            versions = []
        if not versions and job.version is None:  # an empty window: no version to look a baseline up by
            volume = self.volume_checks(job, None, start, end, 0)
            self._notify(job, None, s, e, 0, volume)
            docs += res.result_docs(volume, prefix=self.prefix, model=job.name, version=None, start=s, end=e, records=0)
        for version in versions or ([job.version] if job.version else []):
            try:
                docs += self._analyze_version(job, version, start, end, summary)
            except Exception as exc:  # noqa: BLE001 - one version's failure does not stop the rest
                log.exception("analysis of %s %s [%s, %s) failed", job.name, version, s, e)
                summary["errors"] += 1
                reason = f"{type(exc).__name__}: {exc}"
                if "not supported for aggregation" in reason:
                    reason += (" -- a feature was mapped with another type than the baseline's (dynamic mapping "
                               "of the day's first value); `predwatch baseline --es` types the model's indices "
                               "from the next daily index on")
                docs.append(res.error_doc(prefix=self.prefix, model=job.name, version=version, start=s, end=e,
                                          reason=reason))
        res.write(self.client, docs, refresh=refresh)
        summary["findings"] += sum(1 for d in docs if d.index == res.findings_index(self.prefix))
        return summary

    def _versions(self, job: ModelJob, start: str, end: str) -> list[str | None]:
        resp = self.client.search(index=predictions_pattern(self.prefix, job.name), size=0,
                                  ignore_unavailable=True, allow_no_indices=True,
                                  query={"bool": {"filter": [{"term": {c.MODEL_NAME: job.name}},
                                                             {"range": {c.TIMESTAMP: {"gte": start, "lt": end}}}]}},
                                  aggs={"v": {"terms": {"field": c.MODEL_VERSION, "size": 50, "missing": NO_VERSION}}})
        self.requests += 1
        return [None if b["key"] == NO_VERSION else b["key"]
                for b in resp.get("aggregations", {}).get("v", {}).get("buckets", [])]

    def _analyze_version(self, job: ModelJob, version: str | None, start: datetime, end: datetime,
                         summary: dict[str, int]) -> list:
        s, e = iso(start), iso(end)
        baseline = self.baselines.get(job.name, version)
        if baseline is None:
            summary["errors"] += 1
            return [res.error_doc(prefix=self.prefix, model=job.name, version=version, start=s, end=e,
                                  reason=f"no baseline for model {job.name!r} version {version!r}: run "
                                         f"`predwatch baseline --es --model {job.name} --version {version or 'V'} ...`")]
        profiler = EsWindowProfiler(self.client, baseline, prefix=self.prefix)
        profile = profiler.profile(s, e, version)
        self.requests += profiler.requests
        summary["records"] += profile.records
        result = analyze(profile, baseline, self.config.checks)
        volume = self.volume_checks(job, version, start, end, profile.records)
        self._notify(job, version, s, e, profile.records, result.results + volume)
        return res.window_docs(result, prefix=self.prefix, model=job.name, version=version, start=s, end=e,
                               extra=volume)

    def _notify(self, job: ModelJob, version: str | None, start: str, end: str, records: int,
                checked: list[CheckResult]) -> None:
        if self.notifier is not None:
            self.notifier.observe(job.name, version, {"start": start, "end": end, "records": records}, checked)

    # -- volume ----------------------------------------------------------------------------------
    def volume_checks(self, job: ModelJob, version: str | None, start: datetime, end: datetime,
                      records: int) -> list[CheckResult]:
        """``volume`` (always, for trends), ``no_data`` and ``volume_drop`` against the same hour on earlier days."""
        usual = self._usual_volume(job, version, start)
        out = [_volume_result("volume", "ok", records, usual, None, f"{records:,} records in the window")]
        if records == 0:
            out.append(_volume_result("no_data", "critical", 0, usual, None,
                                      f"{job.name}: no prediction records in the window"))
        elif usual is not None and usual >= VOLUME_MIN_EXPECTED:
            ratio = records / usual
            p = float(special.pdtr(records, usual))  # P(X <= records) for Poisson(usual)
            if p < self.config.checks.fdr and ratio < VOLUME_WARNING:
                status = "critical" if ratio < VOLUME_CRITICAL else "warning"
                out.append(_volume_result("volume_drop", status, records, usual, p,
                                          f"{job.name}: {records:,} records, {ratio:.0%} of the usual {usual:,.0f} "
                                          "for this hour"))
        return out

    def _usual_volume(self, job: ModelJob, version: str | None, start: datetime) -> float | None:
        """Median volume of the same window on the previous seven days (from the metric documents)."""
        starts = [iso(start - timedelta(days=d)) for d in range(1, 8)]
        filters: list[dict] = [{"term": {"predwatch.model.name": job.name}}, {"term": {"predwatch.check": "volume"}},
                               {"terms": {"predwatch.window.start": starts}}]
        if version is not None:
            filters.append({"term": {"predwatch.model.version": version}})
        try:
            resp = self.client.search(index=res.metrics_index(self.prefix), size=7, query={"bool": {"filter": filters}},
                                      _source=["predwatch.value"], ignore_unavailable=True, allow_no_indices=True)
        except Exception:  # noqa: BLE001 - no history yet is not an error
            return None
        self.requests += 1
        values = [h["_source"]["predwatch"]["value"] for h in resp["hits"]["hits"]]
        return statistics.median(values) if values else None

    # -- windows that are due ----------------------------------------------------------------------
    def due_windows(self, job: ModelJob, now: datetime) -> list[tuple[datetime, datetime]]:
        state = res.get_state(self.client, self.prefix, job.key)
        last_end = align(now - job.lag, job.window)
        first = parse_time(state["end"]) if state else align(now - job.lag - job.backfill, job.window)
        windows = []
        while first + job.window <= last_end:
            windows.append((first, first + job.window))
            first += job.window
        return windows

    def run_model(self, job: ModelJob, now: datetime | None = None, stop: threading.Event | None = None) -> int:
        """Analyse every due window in order, moving the watermark after each; returns how many."""
        now = now or datetime.now(timezone.utc)
        done = 0
        for start, end in self.due_windows(job, now):
            if stop is not None and stop.is_set():
                break
            summary = self.analyze_window(job, start, end, refresh=True)
            res.put_state(self.client, self.prefix, job.key, "watermark", {"model": job.name, "end": iso(end)})
            log.info("%s [%s, %s): %d records, %d findings, %d errors", job.name, iso(start), iso(end),
                     summary["records"], summary["findings"], summary["errors"])
            done += 1
        return done


def _volume_result(check: str, status: str, records: int, usual: float | None, p: float | None,
                   message: str) -> CheckResult:
    return CheckResult(check=check, feature="*", role="volume", status=status, value=float(records),
                       threshold=VOLUME_WARNING, critical_threshold=VOLUME_CRITICAL, p_value=p, adjusted_p_value=p,
                       n_window=records, n_baseline=0, observed=float(records), expected=usual, message=message,
                       examples=[])


# -- the daemon --------------------------------------------------------------------------------------

def run_daemon(config: DaemonConfig, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``): one job per model, a heartbeat, retention."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from alerting.notifier import Notifier
    from kibana.dashboards import dashboard_path

    stop = stop or threading.Event()
    client = make_client(config.settings)
    kibana_url = config.raw.get("alerts", {}).get("kibana_url")
    notifier = Notifier.from_config(config.raw.get("notify"),
                                    kibana_url.rstrip("/") + dashboard_path(config.prefix) if kibana_url else None,
                                    state=StateDocument(client, config.prefix, "notifier:active", "notifier"))
    analyzer = Analyzer(client, config, notifier)
    scheduler = BackgroundScheduler(timezone=timezone.utc, job_defaults={"coalesce": True, "max_instances": 1})
    now = datetime.now(timezone.utc)

    def model_job(job: ModelJob) -> None:
        try:
            analyzer.run_model(job, stop=stop)
        except Exception:  # noqa: BLE001 - keep serving the other models
            log.exception("model %s: run failed; trying again at the next interval", job.name)

    for job in config.models:
        scheduler.add_job(model_job, "interval", args=[job], id=f"model:{job.name}",
                          seconds=job.interval.total_seconds(), next_run_time=now,
                          misfire_grace_time=int(job.interval.total_seconds()))
    scheduler.add_job(lambda: heartbeat(client, config), "interval", id="heartbeat",
                      seconds=config.heartbeat.total_seconds(), next_run_time=now)
    if config.retention_days:
        scheduler.add_job(lambda: apply_retention(client, config.prefix, config.retention_days), "interval",
                          id="retention", hours=6, next_run_time=now)

    def on_signal(signum: int, frame: Any) -> None:
        log.info("signal %d: finishing the current window, then stopping", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    scheduler.start()
    log.info("predwatch daemon: %d model(s) on %s", len(config.models), config.settings.describe())
    stop.wait()
    scheduler.shutdown(wait=True)
    if notifier is not None:
        notifier.close()
    log.info("predwatch daemon stopped")


@dataclass
class StateDocument:
    """One document of ``<prefix>-state``, loaded and saved whole (e.g. the notifier's open incidents)."""

    client: Elasticsearch
    prefix: str
    key: str
    kind: str

    def load(self) -> dict[str, Any] | None:
        return res.get_state(self.client, self.prefix, self.key)

    def save(self, document: dict[str, Any]) -> None:
        res.put_state(self.client, self.prefix, self.key, self.kind, document)


def heartbeat(client: Elasticsearch, config: DaemonConfig) -> None:
    try:
        res.put_state(client, config.prefix, f"heartbeat:{socket.gethostname()}", "heartbeat",
                      {"host": socket.gethostname(), "models": [m.name for m in config.models]})
    except Exception as exc:  # noqa: BLE001
        log.warning("heartbeat not written: %s", exc)
