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
from logging_adapter.templates import intervals_pattern, predictions_pattern

from ..core.checks import CheckResult
from ..core.incidents import Incident, episodes
from ..core.profile import WindowProfile
from ..core.quality import latency_percentiles
from ..core.reference import recent_results
from ..core.segments import explain
from ..core.window import analyze
from ..sources.elastic import EsWindowProfiler
from ..sources.layout import Layout, Note
from ..sources.mapped_outcomes import join_mapped_outcomes, joinable
from ..sources.outcomes import join_outcomes
from ..sources.search import of_model, search
from ..store import incidents as incident_store
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

    def __init__(self, client: Elasticsearch, config: DaemonConfig, notifier: Any = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.config = config
        self.prefix = config.prefix
        self.notifier = notifier  # alerting.notifier.Notifier, or None
        self.baselines = BaselineCache(client, config.prefix)
        self.requests = 0
        self.say = say or log.warning  # what the user's mapping makes us say, once per model (see said)
        self._said: set[tuple[str, str]] = set()

    def said(self, job: ModelJob, notes: list[Note]) -> None:
        """Say each note about a model's index once in this process's life (the daemon's log, analyze's output)."""
        for note in notes:
            if (job.name, note.key) not in self._said:
                self._said.add((job.name, note.key))
                self.say(f"{job.name}: {note.message}")

    def layout_of(self, job: ModelJob, start: str, end: str) -> Layout:
        """The job's layout, inspected for ``[start, end)`` when it reads the user's own indices (one request;
        a path that never occurs there said once); :class:`~analyzers.sources.layout.LayoutError` when those
        indices cannot be analysed (a timestamp that is not a date)."""
        if job.layout.own:
            return job.layout
        layout, notes = job.layout.inspect(self.client, start, end)
        self.requests += 1
        self.said(job, notes)
        return layout

    # -- one window ------------------------------------------------------------------------------
    def analyze_window(self, job: ModelJob, start: datetime, end: datetime, *, refresh: bool = False,
                       now: datetime | None = None) -> dict[str, int]:
        """Analyse ``[start, end)`` for every model version in it, then bring the model's incidents up to date
        (and notify what they did); returns counts for the caller. A window analysed again (outcomes arrived,
        late records) overwrites its documents, and its incidents are told again from what the cluster holds.
        ``now`` decides whether the window's labels are still arriving (``labels_within``)."""
        now = now or datetime.now(timezone.utc)
        s, e = iso(start), iso(end)
        summary = {"records": 0, "findings": 0, "errors": 0, "incomplete": 0}
        docs = []
        layout = job.layout
        try:
            layout = self.layout_of(job, s, e)
            versions = [job.version] if job.version else self._versions(job, s, e, layout)
        except Exception as exc:  # noqa: BLE001 - errors as data
            docs.append(self._failed(job, job.version, s, e, summary, f"window query failed: {_said(exc, job.layout.own)}"))
            versions = None
        if versions == [] and job.version is None:  # an empty window: no version to look a baseline up by
            volume = self.volume_checks(job, None, start, end, 0)
            docs += res.result_docs(volume, prefix=self.prefix, model=job.name, version=None, start=s, end=e, records=0)
        for version in versions or ([job.version] if job.version and versions is not None else []):
            if job.compare and version == job.compare[1] and self.baselines.get(job.name, version) is None:
                continue  # a candidate without a baseline of its own: judged against its champion only
            try:
                docs += self._analyze_version(job, version, start, end, summary, now, layout)
            except Exception as exc:  # noqa: BLE001 - one version's failure does not stop the rest
                log.warning("analysis of %s %s [%s, %s) failed, to be analysed again: %s", job.name, version, s, e,
                            _said(exc, job.layout.own), exc_info=log.isEnabledFor(logging.DEBUG))
                docs.append(self._failed(job, version, s, e, summary, _said(exc, job.layout.own)))
        res.write(self.client, docs, refresh=refresh)
        if not summary["incomplete"]:  # earlier results are replaced only by a complete new analysis
            res.clear_stale(self.client, docs, prefix=self.prefix, model=job.name, version=job.version, start=s, end=e,
                            refresh=refresh)
        summary["findings"] += sum(1 for d in docs if d.index == res.findings_index(self.prefix))
        if not summary["incomplete"]:
            try:
                self.update_incidents(job, start, refresh=refresh, found=summary["findings"] > 0)
            except Exception as exc:  # noqa: BLE001 - the window is analysed again, and its incidents told then
                log.warning("%s [%s, %s): incidents not updated, the window is analysed again: %s", job.name, s, e,
                            _said(exc), exc_info=log.isEnabledFor(logging.DEBUG))
                summary["incomplete"] += 1
        return summary

    # -- incidents -----------------------------------------------------------------------------------
    def update_incidents(self, job: ModelJob, since: datetime, *, refresh: bool = False, found: bool = True) -> int:
        """Tell the model's incidents again from the stored windows and findings, from the earliest that a window
        analysed at ``since`` (or later) can change, and write the ones whose document changed; returns how many.

        The episodes come from ``episodes`` over the analysed windows from ``horizon`` on: the earliest of ``since``
        less ``gap + 1`` windows and the start of every incident still open or last seen since then. An episode
        that began before the horizon and ended well before ``since`` is left as it is stored (its tail seen from
        the horizon is not a new incident). Stored incidents from the horizon on that the windows no longer make
        (a re-analysis cleared their only window) are deleted. Deterministic ids: writing again changes nothing.
        ``found``: whether the window at ``since`` had findings; without them and without an incident it could
        touch, nothing can change, and one search says so."""
        if not refresh:  # the window's documents must be searchable to be counted
            self.client.indices.refresh(index=f"{res.metrics_index(self.prefix)},{res.findings_index(self.prefix)}",
                                        ignore_unavailable=True, allow_no_indices=True)
        near = iso(since - (job.incident_gap + 1) * job.window)
        stored = incident_store.stored_incidents(self.client, self.prefix, job.name, job.version, near)
        if not stored and not found:
            self.requests += 1
            return 0
        horizon = min([near, *(incident_store.field(d, res.INCIDENT_START) for d in stored)])
        if horizon < near:  # every incident the recount overlaps, with its document
            stored = incident_store.stored_incidents(self.client, self.prefix, job.name, job.version, horizon)
        self.requests += 2 if horizon < near else 1
        spans = incident_store.analysed_windows(self.client, self.prefix, job.name, job.version, horizon)
        found = incident_store.window_findings(self.client, self.prefix, job.name, job.version, horizon)
        self.requests += 2
        told = episodes(spans, [found.get(start, []) for start, _ in spans], job.incident_gap)
        by_id = {incident_store.field(d, res.INCIDENT_ID): d for d in stored}
        earlier = [d for d in stored if incident_store.field(d, res.INCIDENT_START) < horizon]
        updated = res.now_iso()
        docs, notes, kept = [], [], set()
        for inc in told:
            if any(_key_of(d) == _key(inc) and inc.start <= incident_store.field(d, res.INCIDENT_LAST_SEEN)
                   for d in earlier):
                continue  # the tail of an episode that began before the horizon
            kept.add(inc.id)
            before = by_id.get(inc.id)
            said = incident_store.changes(before, inc)
            if said == ["extended"] and before is not None:  # the last told change and its time stay, so that a
                doc = incident_store.incident_doc(  # watch looking back one interval still sees an opening that
                    inc, incident_store.field(before, res.INCIDENT_EVENT),  # later windows only extended
                    incident_store.field(before, res.INCIDENT_UPDATED))
            else:
                doc = incident_store.incident_doc(inc, said[-1], updated)
            if before is not None and incident_store.same_incident(before, doc):
                continue
            docs.append(doc)
            if inc.reference.split(",")[0] in job.alert_on:
                notes += [(event, doc) for event in said if event != "extended"]
        gone = [i for i, d in by_id.items() if i not in kept and incident_store.field(d, res.INCIDENT_START) >= horizon]
        incident_store.write(self.client, self.prefix, docs, gone, refresh=refresh)
        for event, doc in notes if self.notifier is not None else ():
            try:  # written: a notifier that fails says so, and the window is not analysed again for it
                self.notifier.incident(event, incident_store.incident_fields(doc))
            except Exception as exc:  # noqa: BLE001
                log.error("%s: incident %s not notified: %s", job.name, event, _said(exc))
        return len(docs) + len(gone)

    def _failed(self, job: ModelJob, version: str | None, start: str, end: str, summary: dict[str, int],
                reason: str) -> res.Doc:
        """A window the cluster did not answer whole: an ``analysis_error`` finding (notified like any other), and
        the window counted as incomplete, so that its watermark does not move and it is analysed again."""
        summary["errors"] += 1
        summary["incomplete"] += 1
        self._notify(job, version, start, end, 0, [analysis_error(reason)])
        return res.error_doc(prefix=self.prefix, model=job.name, version=version, start=start, end=end, reason=reason)

    def _versions(self, job: ModelJob, start: str, end: str, layout: Layout | None = None) -> list[str | None]:
        # the versions of the window's records, and of the profile records of processes that count in place
        layout = layout or self.layout_of(job, start, end)
        if layout.own:
            where = f"{predictions_pattern(self.prefix, job.name)},{intervals_pattern(self.prefix, job.name)}"
            query, version = of_model(job.name, field=c.TIMESTAMP, start=start, end=end), c.MODEL_VERSION
        else:  # the user's own indices: only their records
            where, version = layout.predictions(self.prefix, job.name), layout.version_field
            query = layout.query(job.name, start=start, end=end)
        if version is None:  # no version in the user's layout: one unversioned model, when it has records
            resp = search(self.client, index=where, size=0, ignore_unavailable=True, allow_no_indices=True,
                          query=query, track_total_hits=1)
            self.requests += 1
            return [None] if resp["hits"]["total"]["value"] else []
        resp = search(self.client, index=where, size=0, ignore_unavailable=True, allow_no_indices=True,
                      query=query, aggs={"v": {"terms": {"field": version, "size": 50, "missing": NO_VERSION}}})
        self.requests += 1
        return [None if b["key"] == NO_VERSION else str(b.get("key_as_string", b["key"]))
                for b in resp.get("aggregations", {}).get("v", {}).get("buckets", [])]

    def _analyze_version(self, job: ModelJob, version: str | None, start: datetime, end: datetime,
                         summary: dict[str, int], now: datetime | None = None, layout: Layout | None = None) -> list:
        s, e = iso(start), iso(end)
        baseline = self.baselines.get(job.name, version)
        if baseline is None:
            summary["errors"] += 1
            reason = (f"no baseline for model {job.name!r} version {version!r}: run "
                      f"`predwatch baseline --es --model {job.name} --version {version or 'V'} ...`")
            self._notify(job, version, s, e, 0, [analysis_error(reason)])
            return [res.error_doc(prefix=self.prefix, model=job.name, version=version, start=s, end=e, reason=reason)]
        profiler = EsWindowProfiler(self.client, baseline, prefix=self.prefix, layout=layout or job.layout)
        # counted in the serving processes (profile records), or else from the window's records
        profile = profiler.interval_profile(s, e, version)
        fetch = None  # a profile record holds its own segment counts; records are asked only when counted here
        if profile is None:
            profile = profiler.profile(s, e, version)
            fetch = functools.partial(profiler.offending, s, e, version)
        if job.compare and version == job.compare[0]:  # the candidate judged against this champion, in its family
            profile.compared = profiler.compared(s, e, *job.compare, champion_profile=_copy(profile))
        self.requests += profiler.requests
        before = profiler.requests
        self.said(job, profiler.notes)
        if baseline.quality is not None and not job.layout.own and not joinable(job.layout):
            self.said(job, [QUALITY_NOT_JUDGED])
        summary["records"] += profile.records
        result = analyze(profile, baseline, self.config.checks)
        volume = self.volume_checks(job, version, start, end, profile.records)
        conflicts = conflict_results(profiler.conflicts, own=job.layout.own)
        recent = self.recent_checks(job, version, baseline, profile, start)
        explain(result.results + recent, profile, fetch=fetch)
        self.requests += profiler.requests - before
        self._notify(job, version, s, e, profile.records, [analysis_error(None)])  # findings: told as incidents
        pending = end > (now or datetime.now(timezone.utc)) - job.labels_within
        trends = label_results(profile, baseline, pending=pending) if job.layout.own or joinable(job.layout) else []
        trends += latency_results(profile)
        return [*res.window_docs(result, prefix=self.prefix, model=job.name, version=version, start=s, end=e,
                                 extra=[*volume, *conflicts, *recent, *trends]),
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
        """The state of the window's analysis (``analysis_error``), followed per episode by the notifier; the
        findings of the data are notified as incidents (``update_incidents``)."""
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
        query = of_model(job.name, version)
        query["bool"]["filter"] += [{"term": {res.CHECK: "volume"}}, {"terms": {res.WINDOW_START: starts}}]
        try:
            resp = search(self.client, index=res.metrics_index(self.prefix), size=7, query=query,
                          _source=[res.VALUE], ignore_unavailable=True, allow_no_indices=True)
        except Exception:  # noqa: BLE001 - no history yet is not an error
            return None
        self.requests += 1
        values = [h["_source"]["predwatch"]["value"] for h in resp["hits"]["hits"]]
        return statistics.median(values) if values else None

    # -- outcomes ------------------------------------------------------------------------------------
    def backfill_outcomes(self, job: ModelJob, now: datetime) -> list[datetime]:
        """Join the outcomes that arrived to their predictions, then re-analyse the already analysed windows
        they belong to, so that those windows' quality documents are overwritten with the new labels. In the
        user's own indices, the join reads their outcome records and writes only into predwatch's indices
        (:mod:`analyzers.sources.mapped_outcomes`); without an ``actual`` path there is nothing to join."""
        if not job.layout.own and not joinable(job.layout):
            return []
        baseline_for = lambda v: self.baselines.get(job.name, v)  # noqa: E731
        try:
            if job.layout.own:
                report = join_outcomes(self.client, self.prefix, job.name, baseline_for, now=now)
            else:
                report = join_mapped_outcomes(self.client, self.prefix, job.name, job.layout, baseline_for, now=now)
        except Exception as exc:  # noqa: BLE001 - a failed join is retried next tick
            log.warning("%s: outcomes not joined this time: %s", job.name, exc)
            return []
        if report.unmatched:
            log.info("%s: %d outcomes whose prediction is not indexed yet (%d given up)", job.name, report.unmatched,
                     report.given_up)
        state = get_state(self.client, self.prefix, job.key)
        watermark = parse_time(state["end"]) if state else None
        starts = sorted({align(parse_time(t), job.window) for v, t in report.predictions
                         if t and (job.version is None or v == job.version)})
        redone = [s for s in starts if watermark is not None and s + job.window <= watermark]
        for start in redone:
            self.analyze_window(job, start, start + job.window, refresh=True, now=now)
        if redone:
            log.info("%s: %d outcomes joined; re-analysed %d windows with new labels", job.name, report.joined,
                     len(redone))
        return redone

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
        if held is None or held():
            self.backfill_outcomes(job, now)
        for start, end in self.due_windows(job, now):
            if (stop is not None and stop.is_set()) or (held is not None and not held()):
                break
            summary = self.analyze_window(job, start, end, refresh=True, now=now)
            if summary["incomplete"]:
                log.warning("%s [%s, %s): the cluster did not answer whole; the window is analysed again next time",
                            job.name, iso(start), iso(end))
                break
            if held is not None and not held():
                log.warning("%s: lease lost during [%s, %s); the next holder redoes that window", job.name,
                            iso(start), iso(end))
                break
            put_state(self.client, self.prefix, job.key, "watermark", {"model": job.name, "end": iso(end)})
            log.info("%s [%s, %s): %d records, %d findings, %d errors", job.name, iso(start), iso(end),
                     summary["records"], summary["findings"], summary["errors"])
            done += 1
        return done


def _copy(profile: WindowProfile) -> WindowProfile:
    """A profile apart from the window's own (the comparison holds the champion's side without itself)."""
    return WindowProfile.from_dict(profile.to_dict())


def _key(inc: Incident) -> tuple:
    return inc.model, inc.version, inc.feature, inc.check, inc.reference


def _key_of(doc: dict[str, Any]) -> tuple:
    return tuple(incident_store.field(doc, name) for name in (c.MODEL_NAME, c.MODEL_VERSION, res.FEATURE, res.CHECK,
                                                               res.REFERENCE))


# Quality of a model read in the user's own indices is judged from the outcome records there, told by the map's
# ``actual`` path (analyzers.sources.mapped_outcomes). A map without one names no outcome: said once.
QUALITY_NOT_JUDGED = Note("quality", "the baseline has a quality reference, but the field map names no actual path "
                          "(and prediction_id), so no outcome record can be told in the service's index and quality "
                          "is not judged: drift, data quality, volume and latency are; add actual = \"<path of the "
                          "outcome>\" (and outcome_id when the outcome names its prediction elsewhere) to judge it")


def analysis_error(reason: str | None) -> CheckResult:
    """The state of a window's analysis as a result the notifier follows: critical with its reason when the
    analysis could not run, ok (which closes an open one) when it ran."""
    status, message = ("critical", f"analysis failed: {reason}") if reason else ("ok", "analysis ran")
    return CheckResult(check="analysis_error", feature="*", role="analysis", status=status, value=0.0, threshold=0.0,
                       critical_threshold=0.0, p_value=None, adjusted_p_value=None, n_window=0, n_baseline=0,
                       observed=None, expected=None, message=message, examples=[])


def conflict_results(conflicts: dict[str, dict[str, str]], own: bool = True) -> list[CheckResult]:
    """One ``mapping_conflict`` warning per feature that some of the window's indices map with another type than the
    baseline's: said as what it is, once, instead of as the feature's missing or mistyped values. ``own``: the
    indices are predwatch's (which ``predwatch baseline --es`` types), not the user's."""
    out = []
    for feature, where in sorted(conflicts.items()):
        types = ", ".join(sorted(set(where.values())))
        remedy = ("run `predwatch baseline --es` before shipping so that the model's new daily indices are typed "
                  "after the baseline" if own else "map the field in the index template of the service's indices")
        message = (f"{feature} is {types} in {len(where)} of the window's indices ({', '.join(sorted(where))}), "
                   f"not mapped as the baseline's kind: judged from the other indices; {remedy}")
        out.append(CheckResult(check="mapping_conflict", feature=feature, role="feature", status="warning",
                               value=float(len(where)), threshold=1.0, critical_threshold=0.0, p_value=None,
                               adjusted_p_value=None, n_window=0, n_baseline=0, observed=float(len(where)),
                               expected=0.0, message=message, examples=sorted(where)))
    return out


def _said(exc: Exception, own: bool = True) -> str:
    """An exception as one line for a finding, with what helps when a feature's mapping refused an aggregation
    (``own``: in predwatch's own indices, which ``predwatch baseline --es`` types; else the service's)."""
    reason = f"{type(exc).__name__}: {exc}"
    if "not supported for aggregation" in reason or "failed to parse" in reason or \
            (not own and "Fielddata is disabled" in reason):
        reason += (" -- a feature was mapped with another type than the baseline's (dynamic mapping of the day's first "
                   "value); `predwatch baseline --es` types the model's indices from the next daily index on" if own
                   else " -- a field of the service's index is mapped with another type than the baseline's: map "
                   "it in the index template of the service's indices")
    return reason


def label_results(profile: WindowProfile, baseline: Any, *, pending: bool) -> list[CheckResult]:
    """Trend metrics of a labelled model's window: label coverage and median label delay. ``pending``: the
    window is younger than the model's ``labels_within``, so its outcomes are still arriving."""
    if baseline.quality is None:
        return []
    q = profile.quality
    labelled, predictions = (q.labelled, q.predictions) if q else (0, profile.records)
    coverage = labelled / predictions if predictions else 0.0
    delay = q.median_delay() if q else None
    said = " (labels still arriving)" if pending else ""
    out = [_trend("label_coverage", "prediction", coverage, labelled, predictions,
                  f"{labelled:,} of {predictions:,} predictions labelled ({coverage:.0%}){said}")]
    if delay is not None:
        out.append(_trend("label_delay", "prediction", delay, labelled, predictions,
                          f"median label delay {delay / 3600:.1f} h{said}"))
    for r in out:
        r.labels_pending = pending
    return out


def latency_results(profile: WindowProfile) -> list[CheckResult]:
    """p50, p95 and p99 latency of the window as trend metrics (nothing when no record had a latency)."""
    said = latency_percentiles(profile.latency)
    if not said:
        return []
    n = sum(profile.latency.values())
    return [_trend("latency", "latency", value, n, profile.records, f"{name} latency {value:.4g} ms", metric=name)
            for name, value in said.items()]


def _trend(check: str, feature: str, value: float, observed: int, n: int, message: str,
           metric: str | None = None) -> CheckResult:
    return CheckResult(check=check, feature=feature, role=feature, status="ok", value=float(value), threshold=0.0,
                       critical_threshold=0.0, p_value=None, adjusted_p_value=None, n_window=n, n_baseline=0,
                       observed=float(observed), expected=None, message=message, examples=[], metric=metric)


def _volume_result(check: str, status: str, records: int, usual: float | None, p: float | None,
                   message: str) -> CheckResult:
    return CheckResult(check=check, feature="*", role="volume", status=status, value=float(records),
                       threshold=VOLUME_WARNING, critical_threshold=VOLUME_CRITICAL, p_value=p, adjusted_p_value=p,
                       n_window=records, n_baseline=0, observed=float(records), expected=usual, message=message,
                       examples=[])
