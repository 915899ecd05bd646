"""Incident documents in ``<prefix>-incidents``: read the windows and findings an incident is made of, and write
the incidents back, one document per episode whose ``_id`` is the incident's own deterministic id.

The episodes themselves come from :func:`analyzers.core.incidents.episodes`, the same pure function as the local
path's, over what the cluster holds: the analysed windows (every analysed window has a ``volume`` metric document)
and the finding documents of those windows. So the daemon, a re-analysis and a second daemon all tell the same
incidents, and writing them again changes nothing.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from elasticsearch import Elasticsearch

from logging_adapter import contract as c
from logging_adapter.bulk import Doc

from ..core.incidents import Incident
from ..core.stats import finite_or_none
from ..sources.search import of_model, search
from . import results as res

PAGE = 5_000  # documents per search; one window's findings must fit in one page (they are far fewer)


@dataclass
class StoredFinding:
    """What :func:`~analyzers.core.incidents.episodes` reads of a finding (a ``CheckResult``'s fields)."""

    check: str
    feature: str
    reference: str
    status: str
    value: float
    message: str
    metric: str | None = None


def _get(doc: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _put(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
    doc[leaf] = value


def _model_filters(model: str, version: str | None) -> list[dict[str, Any]]:
    return of_model(model, version)["bool"]["filter"]


def _by_window(client: Elasticsearch, index: str, filters: list[dict[str, Any]], since: str,
               fields: list[str]) -> Iterator[dict[str, Any]]:
    """Every document of ``index`` matching ``filters`` whose window starts at or after ``since``, in window order.

    Paged by window start: a full page gives back its last window's documents, and the next page starts at that
    window, so a window is never read half (and no tie-breaking sort field is needed)."""
    start = since
    while True:
        body = search(client, index=index, size=PAGE, ignore_unavailable=True, allow_no_indices=True,
                      _source=[res.WINDOW_START, *fields], sort=[{res.WINDOW_START: "asc"}],
                      query={"bool": {"filter": [*filters, {"range": {res.WINDOW_START: {"gte": start}}}]}})
        hits = [h["_source"] for h in body["hits"]["hits"]]
        if len(hits) < PAGE:
            yield from hits
            return
        last = _get(hits[-1], res.WINDOW_START)
        whole = [h for h in hits if _get(h, res.WINDOW_START) != last]
        if not whole:
            raise RuntimeError(f"more than {PAGE} documents in the window starting {last} of {index}")
        yield from whole
        start = last


def analysed_windows(client: Elasticsearch, prefix: str, model: str, version: str | None,
                     since: str) -> list[tuple[str, str]]:
    """The (start, end) of the model's analysed windows from ``since`` on, in time order (from the ``volume``
    metric documents, which every analysed window has, whatever its versions)."""
    filters = [*_model_filters(model, version), {"term": {res.CHECK: "volume"}}]
    spans = {(_get(h, res.WINDOW_START), _get(h, res.WINDOW_END))
             for h in _by_window(client, res.metrics_index(prefix), filters, since, [res.WINDOW_END])}
    return sorted(spans)


def window_findings(client: Elasticsearch, prefix: str, model: str, version: str | None,
                    since: str) -> dict[str, list[tuple[str, str | None, StoredFinding]]]:
    """The findings of the model's windows from ``since`` on, by window start, each as (model, version, finding)
    the way :func:`~analyzers.core.incidents.episodes` takes them. Analysis errors are not findings of the data."""
    filters = _model_filters(model, version)
    fields = [c.MODEL_NAME, c.MODEL_VERSION, res.CHECK, res.FEATURE, res.REFERENCE, res.STATUS, res.VALUE,
              res.MESSAGE, res.METRIC]
    out: dict[str, list[tuple[str, str | None, StoredFinding]]] = {}
    for h in _by_window(client, res.findings_index(prefix), filters, since, fields):
        if _get(h, res.CHECK) == "analysis_error":
            continue
        value = _get(h, res.VALUE)
        found = StoredFinding(check=_get(h, res.CHECK), feature=_get(h, res.FEATURE),
                              reference=_get(h, res.REFERENCE) or "training", status=_get(h, res.STATUS),
                              value=float("nan") if value is None else float(value),
                              message=_get(h, res.MESSAGE) or "", metric=_get(h, res.METRIC))
        out.setdefault(_get(h, res.WINDOW_START), []).append((_get(h, c.MODEL_NAME), _get(h, c.MODEL_VERSION), found))
    for found in out.values():  # one order whatever the shards answered: the first message is the same each time
        found.sort(key=lambda f: (f[1] or "", f[2].check, f[2].feature, f[2].reference, f[2].metric or ""))
    return out


def stored_incidents(client: Elasticsearch, prefix: str, model: str, version: str | None,
                     since: str) -> list[dict[str, Any]]:
    """The model's incident documents that are open or were last seen at or after ``since``."""
    query = {"bool": {"filter": _model_filters(model, version), "minimum_should_match": 1, "should": [
        {"term": {res.INCIDENT_STATUS: "open"}}, {"range": {res.INCIDENT_LAST_SEEN: {"gte": since}}}]}}
    out: list[dict[str, Any]] = []
    after: list[Any] | None = None
    while True:  # paged by (start, id): an incident id is unique
        extra = {"search_after": after} if after else {}
        body = search(client, index=res.incidents_index(prefix), size=PAGE, ignore_unavailable=True,
                      allow_no_indices=True, query=query,
                      sort=[{res.INCIDENT_START: "asc"}, {res.INCIDENT_ID: "asc"}], **extra)
        hits = body["hits"]["hits"]
        out += [h["_source"] for h in hits]
        if len(hits) < PAGE:
            return out
        after = hits[-1]["sort"]


def incident_doc(inc: Incident, event: str, updated: str) -> dict[str, Any]:
    """The document of one incident (see ``analyzers.store.results``' ``INCIDENT_*`` fields)."""
    doc: dict[str, Any] = {"@timestamp": inc.start, res.MESSAGE: inc.message,
                           "event": {"kind": "alert", "dataset": res.INCIDENT_DATASET}}
    for field, value in ((c.MODEL_NAME, inc.model), (c.MODEL_VERSION, inc.version), (res.FEATURE, inc.feature),
                         (res.CHECK, inc.check), (res.REFERENCE, inc.reference), (res.INCIDENT_ID, inc.id),
                         (res.INCIDENT_STATUS, "open" if inc.ongoing else "closed"),
                         (res.INCIDENT_START, inc.start), (res.INCIDENT_LAST_SEEN, inc.last_seen),
                         (res.INCIDENT_WINDOWS, inc.windows), (res.INCIDENT_PEAK_SEVERITY, inc.peak_severity),
                         (res.INCIDENT_PEAK_VALUE, finite_or_none(inc.peak_value)),
                         (res.INCIDENT_LATEST_MESSAGE, inc.latest_message), (res.INCIDENT_EVENT, event),
                         (res.INCIDENT_UPDATED, updated)):
        _put(doc, field, value)
    if not inc.ongoing:
        _put(doc, res.INCIDENT_END, inc.end)
    return doc


def same_incident(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two documents say the same about an incident (what changed and when it was written aside)."""
    def said(doc: dict[str, Any]) -> bytes:
        copy = orjson.loads(orjson.dumps(doc))
        _put(copy, res.INCIDENT_EVENT, None)
        _put(copy, res.INCIDENT_UPDATED, None)
        return orjson.dumps(copy, option=orjson.OPT_SORT_KEYS)
    return said(a) == said(b)


def changes(before: dict[str, Any] | None, after: Incident) -> list[str]:
    """What happened to an incident between its stored document and now, in order: ``opened`` (new, or open
    again), ``escalated`` (its peak severity rose from warning to critical), ``closed``; ``extended`` otherwise."""
    if before is None or _get(before, res.INCIDENT_STATUS) == "closed" and after.ongoing:
        return ["opened"] + ([] if after.ongoing else ["closed"])
    said = []
    if _get(before, res.INCIDENT_PEAK_SEVERITY) == "warning" and after.peak_severity == "critical":
        said.append("escalated")
    if _get(before, res.INCIDENT_STATUS) == "open" and not after.ongoing:
        said.append("closed")
    return said or ["extended"]


def incident_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """An incident document as the flat fields a notification carries."""
    return {"id": _get(doc, res.INCIDENT_ID), "model": _get(doc, c.MODEL_NAME), "version": _get(doc, c.MODEL_VERSION),
            "feature": _get(doc, res.FEATURE), "check": _get(doc, res.CHECK), "reference": _get(doc, res.REFERENCE),
            "status": _get(doc, res.INCIDENT_STATUS), "start": _get(doc, res.INCIDENT_START),
            "end": _get(doc, res.INCIDENT_END), "last_seen": _get(doc, res.INCIDENT_LAST_SEEN),
            "windows": _get(doc, res.INCIDENT_WINDOWS), "peak_severity": _get(doc, res.INCIDENT_PEAK_SEVERITY),
            "peak_value": _get(doc, res.INCIDENT_PEAK_VALUE), "message": _get(doc, res.MESSAGE),
            "latest_message": _get(doc, res.INCIDENT_LATEST_MESSAGE)}


def field(doc: dict[str, Any], dotted: str) -> Any:
    """One field of a stored document by its dotted name."""
    return _get(doc, dotted)


def write(client: Elasticsearch, prefix: str, docs: list[dict[str, Any]], deleted: list[str], *,
          refresh: bool = False) -> None:
    """Index (overwrite) incident documents by their ids and delete the ones no longer true; raises on failure."""
    if docs:
        res.write(client, [Doc(res.incidents_index(prefix), _get(d, res.INCIDENT_ID), orjson.dumps(d)) for d in docs],
                  refresh=refresh)
    if deleted:
        resp = client.bulk(operations=[{"delete": {"_index": res.incidents_index(prefix), "_id": i}} for i in deleted],
                           refresh=refresh or None)
        failed = [item["delete"] for item in resp["items"] if item["delete"].get("status") not in (200, 404)]
        if failed:
            raise RuntimeError(f"{len(failed)} incident document(s) not deleted: {failed[0].get('error')}")
