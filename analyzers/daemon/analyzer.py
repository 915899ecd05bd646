"""One window at a time: profile it in Elasticsearch, run the checks, write the results back.

Each window's results are written with deterministic ids *before* the watermark
moves, so a daemon killed mid-backfill redoes at most the window it was in, and
that overwrites: every window exactly once. ``predwatch analyze`` runs the same
code over any past range.
"""
from __future__ import annotations

import functools
import logging
import statistics
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from elasticsearch import Elasticsearch
from scipy import special

from logging_adapter import contract as c
from logging_adapter.contract import parse_time
from logging_adapter.templates import predictions_pattern

from ..core.checks import CheckResult
from ..core.profile import WindowProfile
from ..core.reference import recent_results
from ..core.segments import explain
from ..core.window import analyze
from ..sources.elastic import EsWindowProfiler
from ..store import results as res
from ..store.baselines import BaselineCache
from ..store.profiles import load_profiles, profile_doc
from ..store.state import get_state, put_state
from .config import DaemonConfig, ModelJob, align, iso

log = logging.getLogger("predwatch.daemon")

NO_VERSION = "__no_version__"  # records logged without a model version
VOLUME_MIN_EXPECTED = 20  # below this usual volume, a drop is not judged
VOLUME_WARNING, VOLUME_CRITICAL = 0.5, 0.2  # fractions of the usual volume


class Analyzer:
    """Analyses windows of one cluster and writes the results back; errors become findings."""

    def __init__(self, client: Elasticsearch, config: DaemonConfig, notifier: Any = None) -> None:
        self.client = client
        self.config = config
        self.prefix = config.prefix
        self.notifier = notifier  # alerting.notifier.Notifier, or None
        self.baselines = BaselineCache(client, config.prefix)
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
        res.clear_stale(self.client, docs, prefix=self.prefix, model=job.name, version=job.version, start=s, end=e,
                        refresh=refresh)
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
        before = profiler.requests
        summary["records"] += profile.records
        result = analyze(profile, baseline, self.config.checks)
        volume = self.volume_checks(job, version, start, end, profile.records)
        recent = self.recent_checks(job, version, baseline, profile, start)
        explain(result.results + recent, profile, fetch=functools.partial(profiler.offending, s, e, version))
        self.requests += profiler.requests - before
        alerting = [r for r in result.results + recent if r.reference.split(",")[0] in job.alert_on]
        self._notify(job, version, s, e, profile.records, alerting + volume)
        return [*res.window_docs(result, prefix=self.prefix, model=job.name, version=version, start=s, end=e,
                                 extra=[*volume, *recent]),
                profile_doc(profile, prefix=self.prefix, model=job.name, version=version, start=s, end=e)]

    def recent_checks(self, job: ModelJob, version: str | None, baseline: Any, profile: WindowProfile,
                      start: datetime) -> list[CheckResult]:
        """The window against the same window on the previous ``recent_days`` days, merged from their stored
        profiles: "did something change since then?" (``reference: recent``). Empty without enough history."""
        if not job.recent_days or profile.records == 0:
            return []  # (the stored profiles are only read when there is something to compare)
        starts = [iso(start - timedelta(days=d)) for d in range(1, job.recent_days + 1)]
        try:
            earlier = load_profiles(self.client, self.prefix, job.name, version, starts)
        except Exception as exc:  # noqa: BLE001 - no history yet is not an error
            log.debug("recent profiles not read: %s", exc)
            return []
        self.requests += 1
        return recent_results(profile, baseline, earlier, self.config.checks)

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
        state = get_state(self.client, self.prefix, job.key)
        last_end = align(now - job.lag, job.window)
        first = parse_time(state["end"]) if state else align(now - job.lag - job.backfill, job.window)
        windows = []
        while first + job.window <= last_end:
            windows.append((first, first + job.window))
            first += job.window
        return windows

    def run_model(self, job: ModelJob, now: datetime | None = None, stop: threading.Event | None = None,
                  held: Callable[[], bool] | None = None) -> int:
        """Analyse every due window in order, moving the watermark after each; returns how many.

        ``held``: whether this instance still holds the model's lease; the watermark moves only under it."""
        now = now or datetime.now(timezone.utc)
        done = 0
        for start, end in self.due_windows(job, now):
            if (stop is not None and stop.is_set()) or (held is not None and not held()):
                break
            summary = self.analyze_window(job, start, end, refresh=True)
            if held is not None and not held():
                log.warning("%s: lease lost during [%s, %s); the next holder redoes that window", job.name,
                            iso(start), iso(end))
                break
            put_state(self.client, self.prefix, job.key, "watermark", {"model": job.name, "end": iso(end)})
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
