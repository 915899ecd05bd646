"""Searches whose answers are whole: a partial answer from the cluster is an error, never a verdict.

Elasticsearch answers a search with HTTP 200 even when some shards failed (a field
typed otherwise on one day's index refuses an aggregation), when the search ran out
of its time (``timed_out``) or stopped early (``terminated_early``). Counting such an
answer as a window would report half a window, or nine features "absent in 50%".
Every search of the analyzers goes through :func:`search`: a partial answer is asked
again a few times, and if it stays partial it raises :class:`PartialAnswer`, naming
the shards' reason, so that the window is not judged and is analysed again later.
"""
from __future__ import annotations

import time
from typing import Any

from logging_adapter import contract as c

RETRIES = 2  # a partial answer is asked again this many times
BACKOFF_S = 0.5  # doubled each time


class PartialAnswer(RuntimeError):
    """The cluster answered only part of a search (failed shards, a time-out, an early stop)."""


def incompleteness(resp: dict[str, Any]) -> str | None:
    """Why ``resp`` is not a whole answer, or None when it is.

    >>> incompleteness({"_shards": {"total": 2, "successful": 2, "failed": 0}, "timed_out": False})
    >>> incompleteness({"_shards": {"total": 2, "successful": 1, "failed": 1, "failures": [
    ...     {"index": "x", "reason": {"type": "illegal_argument_exception", "reason": "field [a] is bad"}}]}})
    '1 of 2 shards failed: field [a] is bad (index x)'
    >>> incompleteness({"_shards": {"total": 1, "failed": 0}, "timed_out": True})
    'the search timed out in the cluster'
    """
    shards = resp.get("_shards") or {}
    failed = shards.get("failed") or 0
    if failed:
        failures = shards.get("failures") or [{}]
        reason = _reason(failures[0].get("reason"))
        where = f" (index {failures[0]['index']})" if failures[0].get("index") else ""
        return f"{failed} of {shards.get('total', '?')} shards failed: {reason}{where}"
    if resp.get("timed_out"):
        return "the search timed out in the cluster"
    if resp.get("terminated_early"):
        return "the search was terminated early by the cluster"
    return None


def of_model(model: str, version: str | None = None, *, field: str | None = None, start: str | None = None,
             end: str | None = None, layout: Any = None) -> dict[str, Any]:
    """The query of one model's documents (of one version when given), with ``field`` in ``[start, end)`` when
    given: what every search of records, results, profiles and incidents filters by. Records, results and state
    documents all name the model and version by the contract's fields; the records in a user's own indices by
    their ``layout``'s (without a model field there, every record of the index is the model's).

    >>> of_model("m", "7", field="@timestamp", start="a", end="b")["bool"]["filter"]
    [{'term': {'predwatch.model.name': 'm'}}, {'term': {'predwatch.model.version': '7'}}, \
{'range': {'@timestamp': {'gte': 'a', 'lt': 'b'}}}]
    """
    name_field, version_field = c.MODEL_NAME, c.MODEL_VERSION
    filters: list[dict[str, Any]] = []
    if layout is not None:
        name_field, version_field = layout.model_field, layout.version_field
        filters += list(layout.filters)
        if layout.actual_field is not None:  # outcome records of the same index are not predictions
            filters.append({"bool": {"must_not": [{"exists": {"field": layout.actual_field}}]}})
    if name_field is not None:
        filters.insert(0, {"term": {name_field: model}})
    if version is not None and version_field is not None:
        filters.append({"term": {version_field: version}})
    if field is not None:
        bounds = {k: v for k, v in (("gte", start), ("lt", end)) if v is not None}
        filters.append({"range": {field: bounds}})
    return {"bool": {"filter": filters}}


def search(client: Any, *, retries: int = RETRIES, backoff: float = BACKOFF_S, **request: Any) -> dict[str, Any]:
    """``client.search(**request)`` as a plain dict, asked again while the answer is partial; raises
    :class:`PartialAnswer` when it stays so. Errors of the transport (time-outs, refusals) pass through."""
    for attempt in range(retries + 1):
        resp = client.search(**request)
        body = resp.body if hasattr(resp, "body") else resp
        why = incompleteness(body)
        if why is None:
            return body
        if attempt < retries:
            time.sleep(backoff * 2 ** attempt)
    raise PartialAnswer(f"partial answer from the cluster for {request.get('index', '?')}: {why}")


def _reason(reason: Any) -> str:
    """The innermost readable reason of a shard failure (they nest as ``caused_by``)."""
    text = "unknown reason"
    while isinstance(reason, dict):
        text = reason.get("reason") or reason.get("type") or text
        reason = reason.get("caused_by")
    return str(reason) if isinstance(reason, str) else text
