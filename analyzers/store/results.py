"""Results in Elasticsearch: index names, result fields, templates, metric and finding documents.

One metric document per (model, version, window, feature, check), written even
when all is well so that dashboards show trends; one finding document per
alert-worthy result (and per analysis error). IDs are derived from those keys, so
re-running a window overwrites instead of duplicating.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import orjson
from elasticsearch import Elasticsearch

from logging_adapter import contract as c
from logging_adapter.bulk import Doc, send_bulk
from logging_adapter.templates import PRIORITY

from ..core.checks import CheckResult, example_text
from ..core.stats import finite_or_none
from ..core.window import WindowResult
from ..sources.search import of_model, search

METRIC_DATASET = "predwatch.metric"
FINDING_DATASET = "predwatch.finding"
INCIDENT_DATASET = "predwatch.incident"

# Result fields, shared with the dashboards and watches (names live here only).
WINDOW_START = "predwatch.window.start"
WINDOW_END = "predwatch.window.end"
FEATURE = "predwatch.feature"
CHECK = "predwatch.check"
STATUS = "predwatch.status"
SEVERITY = "predwatch.severity"
VALUE = "predwatch.value"
THRESHOLD = "predwatch.threshold"
OBSERVED = "predwatch.observed"
EXPECTED = "predwatch.expected"
METRIC = "predwatch.metric"
SEGMENT_TEXT = "predwatch.segment_text"  # "feature=value": the group a result judged on its own (quality per group)
EXAMPLES_TEXT = "predwatch.examples_text"
SEGMENTS_TEXT = "predwatch.segments_text"
WINDOW = "predwatch.window"
MESSAGE = "message"
# Fields of the daemon's state documents (``<prefix>-state``), for ``predwatch status`` and the dashboard.
STATE_MODEL = "model"
STATE_INSTANCE = "instance"
STATE_LAG = "lag_seconds"
STATE_LAST_WINDOW_END = "last_window_end"
MODEL_STATUS = "model_status"  # kind of the per-model status document
CREATED = "event.created"  # when the result was written: what alerts look back on (windows end earlier)
# Fields of incident documents (``<prefix>-incidents``, one per episode, ``_id`` the incident's id); the model,
# feature, check and reference fields are the findings' own.
REFERENCE = "predwatch.reference"
INCIDENT_ID = "predwatch.incident.id"
INCIDENT_STATUS = "predwatch.incident.status"  # "open" or "closed"
INCIDENT_START = "predwatch.incident.start"
INCIDENT_END = "predwatch.incident.end"  # absent while open
INCIDENT_LAST_SEEN = "predwatch.incident.last_seen"  # the end of its last window with the finding
INCIDENT_WINDOWS = "predwatch.incident.windows"
INCIDENT_PEAK_SEVERITY = "predwatch.incident.peak_severity"
INCIDENT_PEAK_VALUE = "predwatch.incident.peak_value"
INCIDENT_LATEST_MESSAGE = "predwatch.incident.latest_message"
INCIDENT_EVENT = "predwatch.incident.event"  # the last change told: "opened", "escalated" or "closed"
INCIDENT_UPDATED = "predwatch.incident.updated"  # when it was written (one more window keeps both): watches look here


def metrics_index(prefix: str) -> str:
    return f"{prefix}-metrics"


def findings_index(prefix: str) -> str:
    return f"{prefix}-findings"


def incidents_index(prefix: str) -> str:
    return f"{prefix}-incidents"


def profiles_index(prefix: str) -> str:
    return f"{prefix}-profiles"


def baselines_index(prefix: str) -> str:
    return f"{prefix}-baselines"


def state_index(prefix: str) -> str:
    return f"{prefix}-state"


def result_mappings() -> dict[str, Any]:
    keyword = {"type": "keyword"}
    num = {"type": "double"}
    return {
        "dynamic": False,
        "properties": {
            "@timestamp": {"type": "date"},
            "message": {"type": "match_only_text"},
            "event": {"properties": {"kind": keyword, "dataset": keyword, "created": {"type": "date"}}},
            "predwatch": {"properties": {
                "model": {"properties": {"name": keyword, "version": keyword}},
                "window": {"properties": {"start": {"type": "date"}, "end": {"type": "date"},
                                          "records": {"type": "long"}, "rejected": {"type": "long"}}},
                "feature": keyword, "role": keyword, "check": keyword, "status": keyword, "severity": keyword,
                "value": num, "threshold": num, "critical_threshold": num, "p_value": num,
                "adjusted_p_value": num, "observed": num, "expected": num,
                "n_window": {"type": "long"}, "n_baseline": {"type": "long"}, "judged": {"type": "boolean"},
                "reference": keyword, "metric": keyword, "labels_pending": {"type": "boolean"},
                "examples": {"type": "object", "enabled": False},
                "examples_text": {"type": "keyword", "ignore_above": 1024},
                "segments": {"properties": {"feature": keyword, "value": keyword, "count": {"type": "long"},
                                            "share_of_offending": num, "share_of_window": num}},
                "segments_text": {"type": "keyword", "ignore_above": 1024},
                # the group a result judged on its own (quality_drop per group): absent for all records
                "segment": {"properties": {"feature": keyword, "value": keyword}},
                "segment_text": keyword,
            }},
        },
    }


def incident_mappings() -> dict[str, Any]:
    """One document per incident (see the ``INCIDENT_*`` fields), overwritten as the episode goes on."""
    keyword = {"type": "keyword"}
    date = {"type": "date"}
    return {"dynamic": False, "properties": {
        "@timestamp": date,  # the incident's start
        "message": {"type": "match_only_text"},  # the first window's message
        "event": {"properties": {"kind": keyword, "dataset": keyword}},
        "predwatch": {"properties": {
            "model": {"properties": {"name": keyword, "version": keyword}},
            "feature": keyword, "check": keyword, "reference": keyword,
            "incident": {"properties": {
                "id": keyword, "status": keyword, "start": date, "end": date, "last_seen": date,
                "windows": {"type": "long"}, "peak_severity": keyword, "peak_value": {"type": "double"},
                "latest_message": {"type": "match_only_text"}, "event": keyword, "updated": date}}}}}}


def state_mappings() -> dict[str, Any]:
    """Baselines and daemon state: a whole ``document`` kept as is, and a few fields to search by."""
    return {"dynamic": False, "properties": {
        "@timestamp": {"type": "date"}, "kind": {"type": "keyword"},
        "model": {"type": "keyword"}, "version": {"type": "keyword"},
        # the daemon's own state, searchable: instances, who analyses which model, how far behind
        "instance": {"type": "keyword"}, "models": {"type": "keyword"},
        "lag_seconds": {"type": "double"}, "last_window_end": {"type": "date"},
        "document": {"type": "object", "enabled": False}}}


def result_templates(prefix: str) -> dict[str, Any]:
    """Template set for ``logging_adapter.templates.install`` (``predwatch setup``)."""
    return {
        "component": {f"{prefix}-results-mappings": {"template": {"mappings": result_mappings()}}},
        "index": {
            f"{prefix}-results": {
                "index_patterns": [f"{metrics_index(prefix)}*", f"{findings_index(prefix)}*"],
                "priority": PRIORITY,
                "composed_of": [f"{prefix}-results-mappings"],
                "_meta": {"managed_by": "predwatch"},
            },
            f"{prefix}-incidents": {
                "index_patterns": [incidents_index(prefix)],
                "priority": PRIORITY,
                "template": {"mappings": incident_mappings()},
                "_meta": {"managed_by": "predwatch"},
            },
            f"{prefix}-profiles": {
                "index_patterns": [profiles_index(prefix)],
                "priority": PRIORITY,
                "template": {"mappings": {"dynamic": False, "properties": {
                    "@timestamp": {"type": "date"},
                    "predwatch": {"properties": {
                        "model": {"properties": {"name": {"type": "keyword"}, "version": {"type": "keyword"}}},
                        "window": {"properties": {"start": {"type": "date"}, "end": {"type": "date"},
                                                  "records": {"type": "long"}}}}},
                    "profile": {"type": "object", "enabled": False}}}},
                "_meta": {"managed_by": "predwatch"},
            },
            f"{prefix}-baselines": {
                "index_patterns": [baselines_index(prefix), state_index(prefix)],
                "priority": PRIORITY,
                "template": {"mappings": state_mappings()},
                "_meta": {"managed_by": "predwatch"},
            },
        },
    }


def result_id(*parts: Any) -> str:
    return hashlib.sha1("|".join("" if p is None else str(p) for p in parts).encode()).hexdigest()


def now_iso() -> str:
    return c.utc_iso(datetime.now(timezone.utc))


def result_doc(r: CheckResult, *, model: str, version: str | None, start: str, end: str, records: int,
               rejected: int = 0, kind: str = "metric") -> dict[str, Any]:
    examples = r.examples
    return {
        "@timestamp": end,
        "message": r.message,
        "event": {"kind": kind, "dataset": METRIC_DATASET if kind == "metric" else FINDING_DATASET,
                  "created": now_iso()},
        "predwatch": {
            "model": {"name": model, "version": version},
            "window": {"start": start, "end": end, "records": records, "rejected": rejected},
            "feature": r.feature, "role": r.role, "check": r.check, "status": r.status,
            "severity": r.severity, "value": finite_or_none(r.value), "threshold": r.threshold,
            "critical_threshold": r.critical_threshold, "p_value": finite_or_none(r.p_value),
            "adjusted_p_value": finite_or_none(r.adjusted_p_value), "observed": finite_or_none(r.observed), "expected": finite_or_none(r.expected),
            "n_window": r.n_window, "n_baseline": r.n_baseline, "judged": r.judged, "reference": r.reference,
            "metric": r.metric, "labels_pending": r.labels_pending,
            "examples": examples, "examples_text": [example_text(e) for e in examples][:5],
            "segments": r.segments or [], "segments_text": [f"{s['feature']}={s['value']}" for s in r.segments or []],
            **({"segment": r.segment, "segment_text": f"{r.segment['feature']}={r.segment['value']}"}
               if r.segment else {}),
        },
    }


def window_docs(result: WindowResult, *, prefix: str, model: str, version: str | None, start: str, end: str,
                extra: Iterable[CheckResult] = ()) -> list[Doc]:
    """Metric documents for every result of an analysed window (and ``extra`` ones), findings too."""
    return result_docs([*result.results, *extra], prefix=prefix, model=model, version=version, start=start, end=end,
                       records=result.profile.records, rejected=result.profile.rejected)


def result_docs(checked: Iterable[CheckResult], *, prefix: str, model: str, version: str | None, start: str,
                end: str, records: int, rejected: int = 0) -> list[Doc]:
    """Metric documents for every result, finding documents for the alert-worthy ones."""
    docs = []
    for r in checked:
        key = (model, version, start, end, r.feature, r.check) + (() if r.reference.startswith("training")
                                                                   else (r.reference,)) + \
              ((r.metric,) if r.metric else ()) + \
              ((r.segment["feature"], r.segment["value"]) if r.segment else ())  # one document per group
        doc = result_doc(r, model=model, version=version, start=start, end=end, records=records, rejected=rejected)
        docs.append(Doc(metrics_index(prefix), result_id(*key), orjson.dumps(doc)))
        if r.status != "ok":
            finding = result_doc(r, model=model, version=version, start=start, end=end, records=records,
                                 rejected=rejected, kind="alert")
            docs.append(Doc(findings_index(prefix), result_id(*key), orjson.dumps(finding)))
    return docs


def error_doc(*, prefix: str, model: str, version: str | None, start: str, end: str, reason: str) -> Doc:
    """An analysis that could not run is a finding too, with its reason (errors as data)."""
    doc = {
        "@timestamp": end, "message": f"{model}: analysis failed: {reason}",
        "event": {"kind": "alert", "dataset": FINDING_DATASET, "created": now_iso()},
        "predwatch": {"model": {"name": model, "version": version},
                      "window": {"start": start, "end": end}, "feature": "*", "check": "analysis_error",
                      "status": "error", "severity": "critical"},
    }
    return Doc(findings_index(prefix), result_id(model, version, start, end, "*", "analysis_error"), orjson.dumps(doc))


STALE_MAX = 10_000  # documents of one window (one per check, feature and metric: far fewer)


def clear_stale(client: Elasticsearch, written: list[Doc], *, prefix: str, model: str, version: str | None,
                start: str, end: str, refresh: bool = False) -> int:
    """Delete the window's earlier metric and finding documents that this analysis did not write again.

    Re-analysing a window (late records, backfill, a changed baseline) overwrites what
    still holds; what no longer holds (a ``no_data`` before the records arrived, a
    finding under a replaced baseline) must go, so the findings index shows exactly
    the window's current verdict. ``version`` None: the analysis covered every version.
    """
    deleted = 0
    for index in (metrics_index(prefix), findings_index(prefix)):
        keep = [d.id for d in written if d.index == index]
        filters = of_model(model, version)["bool"]["filter"] + [{"term": {WINDOW_START: start}},
                                                                {"term": {WINDOW_END: end}}]
        # the ids, then a bulk delete: a window has few documents, and no engine module (delete_by_query lives
        # in the reindex module) is needed
        stale = search(client, index=index, size=STALE_MAX, _source=False, ignore_unavailable=True,
                       allow_no_indices=True,
                       query={"bool": {"filter": filters, "must_not": [{"ids": {"values": keep}}]}})["hits"]["hits"]
        if stale:
            resp = client.bulk(operations=[{"delete": {"_index": h["_index"], "_id": h["_id"]}} for h in stale],
                               refresh=refresh or None)
            deleted += sum(1 for item in resp["items"] if item["delete"].get("status") in (200, 404))
    return deleted


def write(client: Elasticsearch, docs: list[Doc], *, refresh: bool = False) -> None:
    """Index (overwrite) result documents; raises on failure, the caller decides what that means."""
    outcome = send_bulk(client, docs, op="index", refresh=refresh)
    failed = [reason for _, reason in outcome.rejected] + ([outcome.error or "retryable"] if outcome.retry else [])
    if failed:
        raise RuntimeError(f"{len(outcome.rejected) + len(outcome.retry)} result document(s) not written: {failed[0]}")
