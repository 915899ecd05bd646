"""Outcomes joined to their predictions inside Elasticsearch, so that quality comes from aggregations.

Outcome records are indexed apart (``<prefix>-outcomes-<model>.<day>``, ``_id`` from the
prediction and the outcome's time). Each daemon tick, :func:`join_outcomes` walks the outcomes not yet
joined, looks their predictions up by ``_id`` (one ``ids`` search per page; a
prediction's ``_id`` is its ``prediction_id``) and writes into each prediction
document what quality needs: the actual outcome, whether it was the positive class
or the error of a regression, when it became known and the delay. A repeated
outcome counts once: the latest by its ``@timestamp`` wins. The aggregations of
:meth:`EsWindowProfiler.quality` then read labelled predictions by the prediction's
own time, whatever the outcome's, and the daemon re-analyses the windows an
outcome landed in (backfill). Only the outcomes of one page and their
predictions pass through Python, never a window.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from elasticsearch import Elasticsearch

from logging_adapter import contract as c
from logging_adapter.bulk import record_id
from logging_adapter.templates import outcomes_pattern, predictions_pattern

from ..core.baseline import Baseline
from ..core.values import category_of, is_measured
from .search import of_model, search

log = logging.getLogger("predwatch.outcomes")
PAGE = 1000
FIRST_SEEN = "first_seen"  # in predwatch.*: when a join first looked for the outcome's prediction and missed
GIVE_UP = timedelta(days=7)  # an outcome whose prediction is still not found this long after it was FIRST SEEN


@dataclass
class JoinReport:
    """What one pass joined: counts, and the (version, prediction time) of each joined prediction."""

    joined: int = 0
    unmatched: int = 0  # outcomes whose prediction is not (yet) indexed
    given_up: int = 0
    early: int = 0  # joined outcomes stamped before their prediction (negative delay_s, not in the median)
    predictions: list[tuple[str | None, str]] = field(default_factory=list)


def outcome_fields(actual: Any, predicted: Any, known_at: str | None, predicted_at: str | None,
                   baseline: Baseline | None) -> dict[str, Any]:
    """The ``predwatch.outcome`` object written into a prediction document. ``delay_s`` is negative for an
    outcome stamped before its prediction: the label delay histogram starts at 0, so such outcomes do not
    pull the median delay to zero, and they can be found (``delay_s < 0``)."""
    out: dict[str, Any] = {"actual": category_of(actual), "timestamp": known_at}
    delay = c.seconds_between(predicted_at, known_at)
    if delay is not None:
        out["delay_s"] = delay
    quality = baseline.quality if baseline is not None else None
    if quality is not None and quality.task == "binary":
        out["positive"] = category_of(actual) == quality.positive
    if quality is not None and quality.task == "regression" and is_measured(actual) and is_measured(predicted):
        out["error"] = float(predicted) - float(actual)
        out["abs_error"] = abs(out["error"])
    return out


def join_outcomes(client: Elasticsearch, prefix: str, model: str, baseline_for: Callable[[str | None], Baseline | None],
                  *, limit: int = 20 * PAGE, now: datetime | None = None) -> JoinReport:
    """Join up to ``limit`` outcomes not joined yet to their predictions (see the module docstring)."""
    now = now or datetime.now(timezone.utc)
    report = JoinReport()
    after: list[Any] | None = None
    seen = 0
    while seen < limit:
        body: dict[str, Any] = {
            "size": PAGE, "sort": [{c.TIMESTAMP: "asc"}, {c.PREDICTION_ID: "asc"}],
            "query": {"bool": {**of_model(model)["bool"], "must_not": [{"exists": {"field": c.OUTCOME_JOINED}}]}},
        }
        if after is not None:
            body["search_after"] = after
        hits = search(client, index=outcomes_pattern(prefix, model), ignore_unavailable=True, allow_no_indices=True,
                      **body)["hits"]["hits"]
        if not hits:
            break
        seen += len(hits)
        after = hits[-1]["sort"]
        _join_page(client, prefix, model, hits, baseline_for, now, report)
        if len(hits) < PAGE:
            break
    if report.early:
        log.warning("model %s: %d outcome(s) stamped before their prediction (clock skew, or replayed "
                    "timestamps?): joined, with a negative delay_s, and left out of the label delay", model,
                    report.early)
    if report.joined:
        client.indices.refresh(index=predictions_pattern(prefix, model), ignore_unavailable=True,
                               allow_no_indices=True)
    return report


def _join_page(client: Elasticsearch, prefix: str, model: str, hits: list[dict], baseline_for, now: datetime,
               report: JoinReport) -> None:
    latest: dict[str, dict] = {}  # prediction id -> the latest outcome of this page
    for hit in hits:
        try:
            outcome = c.read_outcome(hit["_source"])
        except c.RecordError:
            continue
        kept = latest.get(outcome.prediction_id)
        if kept is None or (outcome.timestamp or "") >= (kept["outcome"].timestamp or ""):
            latest[outcome.prediction_id] = {"outcome": outcome, "hit": hit}
    ids = {record_id(pid, b""): pid for pid in latest}
    found = search(client, index=predictions_pattern(prefix, model), size=len(ids), query={"ids": {"values": list(ids)}},
                   _source=[c.TIMESTAMP, c.PREDICTION, c.MODEL_VERSION, c.OUTCOME_TIMESTAMP, c.NAMESPACE],
                   ignore_unavailable=True, allow_no_indices=True)["hits"]["hits"]
    actions: list[dict] = []
    matched: set[str] = set()
    for hit in found:
        pid = ids.get(hit["_id"])
        if pid is None or pid in matched:
            continue
        matched.add(pid)
        try:
            pred = c.read_prediction(hit["_source"])
        except c.RecordError:
            continue
        outcome = latest[pid]["outcome"]
        ns = hit["_source"].get(c.NAMESPACE) or {}
        earlier = (ns.get("outcome") or {}).get("timestamp") if isinstance(ns, dict) else None
        if earlier is not None and earlier > (outcome.timestamp or ""):
            continue  # a later outcome was joined before: it stays
        baseline = baseline_for(pred.version)
        predicted = pred.prediction
        if isinstance(predicted, dict) and baseline is not None and baseline.quality is not None:
            predicted = pred.columns().get(baseline.quality.column)
        fields = outcome_fields(outcome.actual, predicted, outcome.timestamp, pred.timestamp, baseline)
        report.early += fields.get("delay_s", 0.0) < 0
        actions += [{"update": {"_index": hit["_index"], "_id": hit["_id"]}},
                    {"doc": {c.NAMESPACE: {"outcome": fields}}}]
        report.joined += 1
        report.predictions.append((pred.version, pred.timestamp))
    for pid, item in latest.items():
        hit = item["hit"]
        if pid in matched:
            mark: dict[str, Any] = {"joined": "yes"}
        else:  # given up 7 days after the first miss, whatever the outcome's own time (a replay, a late label)
            ns = hit["_source"].get(c.NAMESPACE) or {}
            try:
                first_seen = c.parse_time(ns[FIRST_SEEN])
            except (KeyError, TypeError, ValueError):
                first_seen = now
            old = now - first_seen > GIVE_UP
            attempts = int(ns.get("join_attempts") or 0) + 1
            mark = {"joined": "no prediction"} if old else {"join_attempts": attempts,
                                                            FIRST_SEEN: c.utc_iso(first_seen)}
            report.given_up += old
            report.unmatched += 1
        actions += [{"update": {"_index": hit["_index"], "_id": hit["_id"]}}, {"doc": {c.NAMESPACE: mark}}]
    # repeats of one prediction within the page: joined by the latest, marked too
    kept_ids = {id(item["hit"]) for item in latest.values()}
    for hit in hits:
        if id(hit) not in kept_ids:
            actions += [{"update": {"_index": hit["_index"], "_id": hit["_id"]}}, {"doc": {c.NAMESPACE: {"joined": "yes"}}}]
    if actions:
        resp = client.bulk(operations=actions, refresh=False)
        if resp.get("errors"):
            failed = [i for i in resp["items"] if i.get("update", {}).get("error")]
            raise RuntimeError(f"{len(failed)} outcome join updates failed: {failed[0]['update']['error']}")
    client.indices.refresh(index=outcomes_pattern(prefix, model), ignore_unavailable=True, allow_no_indices=True)


