"""Reading results back: a model's metric and finding documents and its prediction series over a range."""
from __future__ import annotations

from typing import Any

from elasticsearch import Elasticsearch, helpers

from logging_adapter import contract as c
from logging_adapter.templates import predictions_pattern

from ..sources.search import of_model, search
from . import results as res


class NothingYet(LookupError):
    """No window of this model was analysed in the range (or none at all yet)."""


def fetch(client: Elasticsearch, prefix: str, model: str, start: str, end: str) -> dict[str, Any]:
    """Metric documents, findings, and per-window prediction counts and percentiles.

    Raises :class:`NothingYet` when the range has no metric document: before the first analysis
    the results indices do not even exist."""
    window = of_model(model, field=res.WINDOW_START, start=start, end=end)
    if not client.indices.exists(index=res.metrics_index(prefix)):
        raise NothingYet(f"nothing analysed yet: {res.metrics_index(prefix)} does not exist (run `predwatch daemon` "
                         "or `predwatch analyze` first)")
    metrics = [h["_source"]["predwatch"] for h in helpers.scan(
        client, index=res.metrics_index(prefix), query={"query": window}, size=1000,
        _source=[res.WINDOW, res.FEATURE, res.CHECK, res.METRIC, res.VALUE, res.THRESHOLD, res.OBSERVED, res.EXPECTED,
                 res.STATUS, res.REFERENCE])]
    if not metrics:
        raise NothingYet(f"no analysed window of model {model!r} in [{start}, {end})")
    found = search(client, index=res.findings_index(prefix), size=500, query=window, sort=[{res.WINDOW_START: "desc"}],
                   ignore_unavailable=True)["hits"]["hits"]
    seconds = max(60, int((c.parse_time(end) - c.parse_time(start)).total_seconds() / 120))
    hist = search(
        client, index=predictions_pattern(prefix, model), size=0, ignore_unavailable=True, allow_no_indices=True,
        query=of_model(model, field=c.TIMESTAMP, start=start, end=end),
        aggs={"t": {"date_histogram": {"field": c.TIMESTAMP, "fixed_interval": f"{seconds}s"},
                    "aggs": {"p": {"percentiles": {"field": c.PREDICTION, "percents": [10, 50, 90]}}}}})
    buckets = hist.get("aggregations", {}).get("t", {}).get("buckets", [])
    return {"metrics": metrics, "findings": [h["_source"] for h in found], "histogram": buckets}
