"""Outcomes joined to predictions that live in a service's own index: read there, written only into predwatch's.

For predwatch's own indices the join writes each outcome into its prediction document
(:mod:`analyzers.sources.outcomes`). A service's index is never written (no update, no mapping change), so
for a model read in place (:mod:`analyzers.sources.layout`) the join is read-only on the service's side and
keeps what it learns in predwatch's own indices:

* **Outcomes, a page at a time.** Each tick, :func:`join_mapped_outcomes` continues a sweep through the
  service's outcome records (those holding the map's ``actual`` path), sorted by (time, outcome id) with
  ``search_after``, at most ``limit`` of them; the sweep's bounds and cursor are kept in predwatch's state
  index. A sweep ends at ``now - SETTLE`` when it starts, and the next one starts ``LOOKBACK`` before that
  end: the service's index has no ingestion order predwatch can read (its own ``_seq_no`` is per shard), so
  an outcome record indexed up to ``LOOKBACK`` after its own time is still read; one indexed later than that
  is missed (said in the README). The outcomes read again are recognised (below) and cost one page each.
* **Their predictions, by id.** For each page, one ``terms`` search on the map's ``prediction_id`` field with
  only that page's ids (never a window) finds the predictions, read through the field map.
* **One labelled document per prediction** in ``<prefix>-labelled-<model>.<day of the prediction>``, ``_id``
  the prediction id, holding in the contract's names exactly what
  :meth:`~analyzers.sources.elastic.EsWindowProfiler.quality` aggregates: the prediction's time, model and
  version, its output, and ``predwatch.outcome.*`` (:func:`~analyzers.sources.outcomes.outcome_fields`). A
  repeated outcome overwrites it only when it is later by its own time (one ``mget`` per page reads what is
  there), so the latest wins, and a repeat that changes nothing re-analyses nothing.
* **Outcomes before their predictions** go to ``<prefix>-pending-<model>`` (``_id`` the prediction id, the
  latest outcome kept, the first miss remembered), are looked for again at the start of each tick (one
  page and its ``terms`` search at a time), and are given up ``GIVE_UP`` after the first miss, as for
  predwatch's own indices.

The quality of a window of a mapped layout is then the labelled index's aggregations for the window by
the prediction's time, plus, over every prediction of the service's index, the score bins the estimate
needs: still only aggregations, and the same counts as for predwatch's own indices. What passes through
Python is one page of outcomes and their predictions, never a window: the same bound as the join of own
indices. The cost is a second copy of the labelled predictions' outputs (a few fields each) in predwatch's
indices, which is what makes quality an aggregation rather than a per-window join.

Why not otherwise: joining at analysis time would bring every labelled prediction of a window (and its
outcome) through Python, or need one ``terms`` bucket per prediction id in the cluster: window-sized, where
every other check is bounded by the baseline. An Elasticsearch ``transform`` (a pivot by prediction id over
predictions and outcomes) or an ``enrich`` policy would write only into predwatch's indices too, but each
needs cluster privileges, a scripted pivot to combine two documents' fields, and an API OpenSearch does not
share; the paged join runs the same on both engines. Records that hold the ``actual`` path are outcomes, never
predictions: every query of the model's predictions leaves them out (:attr:`Layout.actual_field`).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from elasticsearch import Elasticsearch

from logging_adapter import contract as c
from logging_adapter.templates import KEYWORD_IGNORE_ABOVE, prediction_mappings

from ..core.baseline import Baseline
from ..core.values import category_of
from ..store.state import get_state, put_state
from .layout import Layout
from .outcomes import GIVE_UP, JoinReport, outcome_fields
from .search import search

log = logging.getLogger("predwatch.outcomes")
PAGE = 1000
SETTLE = timedelta(minutes=5)  # outcome records are read once older than this
LOOKBACK = timedelta(days=1)  # each sweep starts this long before the last one's end: the ingestion lag allowed for
DONE = "done"  # a sweep's cursor once it reached its end


def labelled_pattern(prefix: str, model: str) -> str:
    """Every labelled-prediction index of one model (predwatch's own, for a model read in place)."""
    return f"{prefix}-labelled-{c.index_safe(model)}.*"


def labelled_index(prefix: str, model: str, timestamp: str) -> str:
    """The labelled-prediction index of one prediction, by the prediction's UTC day.

    >>> labelled_index("predwatch", "churn", "2026-11-22T07:00:00Z")
    'predwatch-labelled-churn.2026.11.22'
    """
    return c.prediction_index(model, timestamp, prefix=f"{prefix}-labelled")


def pending_index(prefix: str, model: str) -> str:
    """Where outcomes whose prediction is not found yet wait (predwatch's own)."""
    return f"{prefix}-pending-{c.index_safe(model)}"


def watermark_key(model: str, index: str) -> str:
    return f"outcome-join:{model}:{index}"


PENDING_MAPPINGS = {"dynamic": False, "properties": {
    "@timestamp": {"type": "date"},
    "predwatch": {"properties": {"prediction_id": {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE},
                                 "first_seen": {"type": "date"}}}}}


def join_mapped_outcomes(client: Elasticsearch, prefix: str, model: str, layout: Layout,
                         baseline_for: Callable[[str | None], Baseline | None], *, limit: int = 20 * PAGE,
                         now: datetime | None = None, page: int = PAGE, lookback: timedelta = LOOKBACK
                         ) -> JoinReport:
    """Join the outcomes in the service's index (``layout``) to their predictions there, writing only into
    predwatch's indices (see the module docstring): the pending outcomes first, then up to ``limit`` new
    ones, ``page`` at a time. ``report.predictions``: (version, time) of each prediction whose label changed."""
    now = now or datetime.now(timezone.utc)
    report = JoinReport()
    joiner = _Join(client, prefix, model, _inspected(client, layout), baseline_for, now, report, page, lookback)
    joiner.retry_pending()
    joiner.new_outcomes(limit)
    if report.early:
        log.warning("model %s: %d outcome(s) stamped before their prediction: joined, with a negative delay_s, and "
                    "left out of the label delay", model, report.early)
    if report.joined:
        client.indices.refresh(index=labelled_pattern(prefix, model), ignore_unavailable=True, allow_no_indices=True)
    return report


def outcome_paths(layout: Layout) -> tuple[str, str, str]:
    """(actual, outcome id, prediction id) paths of a layout, in the service's names.

    >>> from logging_adapter.fieldmap import FieldMap
    >>> outcome_paths(Layout(index="s", fields=FieldMap.from_dict({"features": "x", "prediction_id": "req_id",
    ...                                                            "actual": "label"})))
    ('label', 'req_id', 'req_id')
    >>> outcome_paths(Layout(index="s"))
    ('predwatch.actual', 'predwatch.prediction_id', 'predwatch.prediction_id')
    """
    fm = layout.fields
    if fm is None:
        return c.ACTUAL, c.PREDICTION_ID, c.PREDICTION_ID
    if fm.actual is None or (fm.outcome_id or fm.prediction_id) is None or fm.prediction_id is None:
        raise ValueError(f"{layout.source}: names no actual path (or no prediction id): outcomes cannot be told")
    return fm.actual, fm.outcome_id or fm.prediction_id, fm.prediction_id


def joinable(layout: Layout) -> bool:
    """Whether outcomes can be told and joined in this layout (its map names ``actual`` and the ids)."""
    try:
        outcome_paths(layout)
    except ValueError:
        return False
    return True


def _inspected(client: Elasticsearch, layout: Layout) -> Layout:
    """The layout knowing the aggregatable field of its paths and outcome paths (``.keyword`` of a dynamically
    typed string: the model's name and the ids are matched by ``term``): one ``field_caps`` request."""
    wanted = sorted(set(outcome_paths(layout)) | set(layout.paths()))
    found = layout._field_caps(client, wanted, {})
    every = sorted(found.get("indices") or [])
    caps = {name: {kind: sorted(spec.get("indices") or every) for kind, spec in types.items()
                   if kind not in ("unmapped", "object", "nested")}
            for name, types in (found.get("fields") or {}).items()}
    return replace(layout, caps={**(layout.caps or {}), **{k: v for k, v in caps.items() if v}})


def _kept(earlier: dict[str, Any], outcome: c.Outcome) -> bool:
    """Whether the outcome a prediction is labelled with stays against ``outcome``: it is later by its own time,
    or it is the same outcome (told again).

    >>> o = c.Outcome(timestamp="2026-11-23T05:00:00Z", model="m", version=None, prediction_id="p", actual=1)
    >>> _kept({"timestamp": "2026-11-23T06:00:00Z", "actual": "0"}, o)
    True
    >>> _kept({"timestamp": o.timestamp, "actual": "1"}, o)
    True
    >>> _kept({"timestamp": "2026-11-23T04:00:00Z", "actual": "1"}, o)
    False
    >>> _kept({"timestamp": "2026-11-23T05:00:00.000+00:00", "actual": "1"}, o)
    True
    """
    before, now = _instant(earlier.get("timestamp")), _instant(outcome.timestamp)
    return before > now or (before == now and earlier.get("actual") == category_of(outcome.actual))


def _instant(stamp: str | None) -> datetime:
    """An outcome's time as an instant (``...06:00:00Z`` and ``...06:00:00.000+00:00`` are one), the earliest
    possible when it has none."""
    try:
        return c.parse_time(stamp)
    except (TypeError, ValueError):
        return datetime.min.replace(tzinfo=timezone.utc)


class _Join:
    """One pass of the join for one model (the state of one tick)."""

    def __init__(self, client: Elasticsearch, prefix: str, model: str, layout: Layout,
                 baseline_for: Callable[[str | None], Baseline | None], now: datetime, report: JoinReport,
                 page: int, lookback: timedelta) -> None:
        self.client, self.prefix, self.model, self.layout = client, prefix, model, layout
        self.baseline_for, self.now, self.report, self.page = baseline_for, now, report, page
        self.lookback = lookback
        self.actual, self.outcome_id, self.prediction_id = outcome_paths(layout)
        self.created: set[str] = set()
        self.searches = 0  # for the tests: one outcome page, one terms search, one mget per page

    # -- pages -------------------------------------------------------------------------------------------
    def new_outcomes(self, limit: int) -> None:
        """Continue the sweep of the service's outcome records (see the module docstring): ``limit`` at most."""
        key = watermark_key(self.model, self.layout.index or "")
        state = get_state(self.client, self.prefix, key) or {}
        if not state or state.get("after") == DONE:  # a new sweep, from LOOKBACK before the last one's end
            since = c.utc_iso(c.parse_time(state["to"]) - self.lookback) if state else None
            state = {"from": since, "to": c.utc_iso(self.now - SETTLE), "after": None}
        bounds = {k: v for k, v in (("gte", state["from"]), ("lt", state["to"])) if v is not None}
        after = state["after"]
        model = self.layout.model_field
        filters: list[dict[str, Any]] = [{"exists": {"field": self.actual}},
                                         {"range": {self.layout.timestamp: bounds}}]
        if model is not None:  # outcome records may not name the model: those are looked up all the same
            filters.append({"bool": {"should": [{"term": {model: self.model}},
                                                {"bool": {"must_not": [{"exists": {"field": model}}]}}],
                                     "minimum_should_match": 1}})
        seen = 0
        while seen < limit:
            body: dict[str, Any] = {"size": self.page, "query": {"bool": {"filter": filters}},
                                    "sort": [{self.layout.timestamp: "asc"},
                                             {self.layout.aggregatable(self.outcome_id): "asc"}]}
            if after is not None:
                body["search_after"] = after
            self.searches += 1
            hits = search(self.client, index=self.layout.index, ignore_unavailable=True, allow_no_indices=True,
                          **body)["hits"]["hits"]
            seen += len(hits)
            outcomes = []
            for hit in hits:
                try:
                    source = hit["_source"] if self.layout.fields is None else \
                        self.layout.fields.to_contract(hit["_source"])
                    outcomes.append(c.read_outcome(source))
                except c.RecordError:
                    continue
            self._join_page(outcomes, pending={})
            after = hits[-1]["sort"] if len(hits) == self.page else DONE
            put_state(self.client, self.prefix, key, "outcome_join", {"model": self.model, **state, "after": after},
                      model=self.model)
            if after == DONE:
                break

    def retry_pending(self) -> None:
        index = pending_index(self.prefix, self.model)
        after = None
        while True:
            body: dict[str, Any] = {"size": self.page, "sort": [{c.PREDICTION_ID: "asc"}]}
            if after is not None:
                body["search_after"] = after
            self.searches += 1
            hits = search(self.client, index=index, ignore_unavailable=True, allow_no_indices=True,
                          **body)["hits"]["hits"]
            if not hits:
                break
            outcomes, pending = [], {}
            for hit in hits:
                ns = hit["_source"]["predwatch"]
                outcomes.append(c.Outcome(timestamp=hit["_source"].get(c.TIMESTAMP), model=self.model,
                                          version=None, prediction_id=ns["prediction_id"], actual=ns["actual"]))
                pending[ns["prediction_id"]] = ns
            self._join_page(outcomes, pending=pending)
            after = hits[-1]["sort"]
            if len(hits) < self.page:
                break
        self.client.indices.refresh(index=index, ignore_unavailable=True, allow_no_indices=True)

    # -- one page ----------------------------------------------------------------------------------------
    def _join_page(self, outcomes: list[c.Outcome], pending: dict[str, dict]) -> None:
        """Join one page of outcomes: ``pending`` (prediction id -> its pending document) when the page is
        of the pending index, whose entries are deleted once joined or given up."""
        latest: dict[str, c.Outcome] = {}
        for outcome in outcomes:
            kept = latest.get(outcome.prediction_id)
            if kept is None or _instant(outcome.timestamp) >= _instant(kept.timestamp):
                latest[outcome.prediction_id] = outcome
        if not latest:
            return
        predictions = self._predictions(list(latest))
        labelled = self._labelled_now(predictions)
        actions: list[dict[str, Any]] = []
        for pid, outcome in latest.items():
            pred = predictions.get(pid)
            if pred is None:
                continue
            earlier = labelled.get(pid)
            if earlier is not None and _kept(earlier, outcome):
                continue  # a later outcome (or this one) labels it already
            baseline = self.baseline_for(pred.version)
            predicted = pred.prediction
            if isinstance(predicted, dict) and baseline is not None and baseline.quality is not None:
                predicted = pred.columns().get(baseline.quality.column)
            fields = outcome_fields(outcome.actual, predicted, outcome.timestamp, pred.timestamp, baseline)
            self.report.early += fields.get("delay_s", 0.0) < 0
            index = labelled_index(self.prefix, self.model, pred.timestamp)
            self._create(index, prediction_mappings())
            doc = {c.TIMESTAMP: pred.timestamp, "event": {"kind": "event", "dataset": c.DATASET},
                   c.NAMESPACE: {"model": {"name": self.model, **({"version": pred.version} if pred.version else {})},
                                 "prediction_id": pid, "prediction": pred.prediction, "outcome": fields}}
            actions += [{"index": {"_index": index, "_id": pid}}, doc]
            self.report.joined += 1
            self.report.predictions.append((pred.version, pred.timestamp))
        pend = pending_index(self.prefix, self.model)
        waiting = [pid for pid in latest if pid not in predictions]
        known = pending if pending else self._pending_now(waiting)
        for pid in latest:
            if pid in predictions:
                if pid in known:
                    actions.append({"delete": {"_index": pend, "_id": pid}})
                continue
            before = known.get(pid) or {}
            try:
                first_seen = c.parse_time(before["first_seen"])
            except (KeyError, TypeError, ValueError):
                first_seen = self.now
            self.report.unmatched += 1
            if self.now - first_seen > GIVE_UP:
                self.report.given_up += 1
                actions.append({"delete": {"_index": pend, "_id": pid}})
                continue
            outcome = latest[pid]
            if before and _instant(before.get("timestamp")) > _instant(outcome.timestamp):
                continue  # a later outcome waits already
            if before.get("timestamp") == outcome.timestamp and before.get("actual") == outcome.actual:
                continue  # already waiting as it is
            self._create(pend, PENDING_MAPPINGS)
            actions += [{"index": {"_index": pend, "_id": pid}},
                        {c.TIMESTAMP: outcome.timestamp, c.NAMESPACE: {
                            "prediction_id": pid, "actual": outcome.actual, "timestamp": outcome.timestamp,
                            "first_seen": c.utc_iso(first_seen)}}]
        if actions:
            resp = self.client.bulk(operations=actions, refresh=False)
            if resp.get("errors"):
                failed = [v for i in resp["items"] for v in i.values()
                          if v.get("error") and not (v.get("status") == 404 and "delete" in i)]
                if failed:
                    raise RuntimeError(f"{len(failed)} outcome join writes failed: {failed[0]['error']}")

    def _predictions(self, ids: list[str]) -> dict[str, c.Prediction]:
        """The page's predictions in the service's index, by id: one ``terms`` search of only these ids."""
        fm = self.layout.fields
        wanted = [self.layout.timestamp, self.prediction_id]
        if fm is None:
            wanted += [c.MODEL_VERSION, c.PREDICTION, c.NAMESPACE + ".model"]
        else:
            wanted += [p for p in (fm.version, fm.prediction, fm.model) if p]
        query = self.layout.query(self.model)
        query["bool"]["filter"].append({"terms": {self.layout.aggregatable(self.prediction_id): ids}})
        self.searches += 1
        hits = search(self.client, index=self.layout.index, size=min(2 * len(ids), 10_000), query=query,
                      _source=wanted, ignore_unavailable=True, allow_no_indices=True)["hits"]["hits"]
        found: dict[str, c.Prediction] = {}
        for hit in hits:
            try:
                source = hit["_source"] if fm is None else fm.to_contract(hit["_source"])
                pred = c.read_prediction(source)
            except c.RecordError:
                continue
            if pred.prediction_id is not None and pred.timestamp is not None:
                found.setdefault(str(pred.prediction_id), pred)
        return found

    def _labelled_now(self, predictions: dict[str, c.Prediction]) -> dict[str, dict]:
        """The outcome each found prediction is labelled with now (one ``mget`` of predwatch's own index)."""
        if not predictions:
            return {}
        docs = [{"_index": labelled_index(self.prefix, self.model, p.timestamp), "_id": pid,
                 "_source": [c.OUTCOME_TIMESTAMP, c.OUTCOME_ACTUAL]} for pid, p in predictions.items()]
        return {d["_id"]: d["_source"][c.NAMESPACE]["outcome"] for d in self._mget(docs)}

    def _pending_now(self, ids: list[str]) -> dict[str, dict]:
        if not ids:
            return {}
        index = pending_index(self.prefix, self.model)
        return {d["_id"]: d["_source"][c.NAMESPACE] for d in self._mget([{"_index": index, "_id": i} for i in ids])}

    def _mget(self, docs: list[dict]) -> list[dict]:
        resp = self.client.mget(docs=docs)
        return [d for d in resp["docs"] if d.get("found")]

    def _create(self, index: str, mappings: dict[str, Any]) -> None:
        """Create one of predwatch's own indices with its mapping (the labelled ones as prediction indices)."""
        if index in self.created:
            return
        if not self.client.indices.exists(index=index):
            try:
                self.client.indices.create(index=index, mappings=mappings)
            except Exception as exc:  # noqa: BLE001 - created meanwhile by another instance
                if "resource_already_exists" not in str(exc):
                    raise
        self.created.add(index)
