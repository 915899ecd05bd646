"""Baselines in Elasticsearch: the stored documents, and the per-model index template typed after them."""
from __future__ import annotations

from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from logging_adapter import contract as c
from logging_adapter.templates import KEYWORD_IGNORE_ABOVE, PRIORITY, predictions_pattern

from ..core.baseline import Baseline
from .results import baselines_index


def baseline_id(model: str, version: str | None) -> str:
    return f"{model}@{version or '-'}"


def model_template(baseline: Baseline, prefix: str) -> tuple[str, dict[str, Any]]:
    """An index template typing the model's features as the baseline knows them.

    Dynamic mapping types a field by the first value of the day: one string in a
    numeric feature at midnight would make it a keyword for the whole day. With the
    baseline's kinds mapped explicitly, such values are only flagged (``_ignored``).
    """
    kinds = {
        "numeric": {"type": "double", "ignore_malformed": True, "coerce": False},
        "categorical": {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE},
        "text": {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE},
        "boolean": {"type": "boolean"},
        # one multi-valued field, kept in doc values only: no search index of its numbers, no field per dimension
        "embedding": {"type": "float", "index": False, "ignore_malformed": True, "coerce": False},
    }
    properties: dict[str, Any] = {}
    for col in baseline.columns.values():
        node = properties
        *parents, leaf = col.field.split(".")
        for part in parents:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[leaf] = kinds[col.kind]
    return f"{prefix}-predictions-{c.index_safe(baseline.model)}", {
        "index_patterns": [predictions_pattern(prefix, baseline.model)],
        "priority": PRIORITY + 1,
        "composed_of": [f"{prefix}-predictions-settings", f"{prefix}-predictions-mappings"],
        "template": {"mappings": {"properties": properties}},
        "_meta": {"managed_by": "predwatch", "baseline": baseline_id(baseline.model, baseline.version)},
    }


def store_baseline(client: Elasticsearch, baseline: Baseline, prefix: str) -> str:
    """Store the baseline document and type the model's future indices after it."""
    name, template = model_template(baseline, prefix)
    client.indices.put_index_template(name=name, **template)
    doc_id = baseline_id(baseline.model, baseline.version)
    client.index(index=baselines_index(prefix), id=doc_id, refresh=True, document={
        "@timestamp": baseline.created, "kind": "baseline", "model": baseline.model,
        "version": baseline.version, "document": baseline.to_dict()})
    return doc_id


def load_baseline(client: Elasticsearch, model: str, version: str | None, prefix: str) -> Baseline | None:
    try:
        doc = client.get(index=baselines_index(prefix), id=baseline_id(model, version))
    except NotFoundError:
        return None
    return Baseline.from_dict(doc["_source"]["document"])


class BaselineCache:
    """Baselines by (model, version), fetched whole only when the stored one changed.

    A baseline carries its vocabulary and categories (often hundreds of kB); a window
    analysis only asks for the stored document's ``@timestamp`` to know it is current.
    """

    def __init__(self, client: Elasticsearch, prefix: str) -> None:
        self.client, self.prefix = client, prefix
        self._cache: dict[tuple[str, str | None], tuple[str, Baseline]] = {}

    def get(self, model: str, version: str | None) -> Baseline | None:
        key = (model, version)
        try:
            stamp = self.client.get(index=baselines_index(self.prefix), id=baseline_id(model, version),
                                    source_includes=["@timestamp"])["_source"].get("@timestamp", "")
        except NotFoundError:
            self._cache.pop(key, None)
            return None
        cached = self._cache.get(key)
        if cached is None or cached[0] != stamp:
            baseline = load_baseline(self.client, model, version, self.prefix)
            if baseline is None:
                return None
            self._cache[key] = (stamp, baseline)
        return self._cache[key][1]
