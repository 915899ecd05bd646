"""Index templates for prediction records, and retention of the daily indices.

Records go to per-model daily indices named by the record's own UTC day
(``<prefix>-predictions-<model>.YYYY.MM.DD``): per model, because two models may
give one feature name different types; by event day, so a retried record lands in
the same index and its deterministic ``_id`` makes the retry a no-op.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from . import contract as c
from .elastic import Capabilities, detect

log = logging.getLogger("predwatch.setup")

DEFAULT_PREFIX = "predwatch"
PRIORITY = 600  # above the built-in logs-*-* templates (100) and Elastic's suggested 500
TOTAL_FIELDS_LIMIT = 2000
KEYWORD_IGNORE_ABOVE = 1024


def predictions_pattern(prefix: str = DEFAULT_PREFIX, model: str | None = None) -> str:
    """Every daily prediction index, or one model's (and no other model's: see ``contract.index_safe``)."""
    return f"{prefix}-predictions-{c.index_safe(model)}.*" if model else f"{prefix}-predictions-*"


def predictions_index(model: str, timestamp: str, prefix: str = DEFAULT_PREFIX) -> str:
    return c.prediction_index(model, timestamp, prefix=f"{prefix}-predictions")


def outcomes_pattern(prefix: str = DEFAULT_PREFIX, model: str | None = None) -> str:
    """Every daily outcome index, or one model's."""
    return f"{prefix}-outcomes-{c.index_safe(model)}.*" if model else f"{prefix}-outcomes-*"


def outcomes_index(model: str, timestamp: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Outcome records live apart from predictions (they are never read as predictions), by their own day."""
    return c.prediction_index(model, timestamp, prefix=f"{prefix}-outcomes")


def intervals_pattern(prefix: str = DEFAULT_PREFIX, model: str | None = None) -> str:
    """Every daily index of profile records (``PredictionLogger(profile=...)``), or one model's."""
    return f"{prefix}-intervals-{c.index_safe(model)}.*" if model else f"{prefix}-intervals-*"


def intervals_index(model: str, timestamp: str, prefix: str = DEFAULT_PREFIX) -> str:
    return c.prediction_index(model, timestamp, prefix=f"{prefix}-intervals")


def record_index(record: "c.Prediction | c.Outcome | c.ProfileRecord", timestamp: str,
                 prefix: str = DEFAULT_PREFIX) -> str:
    """The daily index of a prediction, an outcome or a profile record."""
    route = (outcomes_index if isinstance(record, c.Outcome) else
             intervals_index if isinstance(record, c.ProfileRecord) else predictions_index)
    return route(record.model or "unknown", timestamp, prefix)


def interval_mappings() -> dict[str, Any]:
    """Profile records: the profile itself is stored, not indexed (the daemon sums it in Python)."""
    return {
        "dynamic": False,
        "properties": {
            "@timestamp": {"type": "date"},
            "event": {"properties": {"kind": {"type": "keyword"}, "dataset": {"type": "keyword"}}},
            "service": {"properties": {"name": {"type": "keyword"}}},
            "predwatch": {"properties": {
                "model": {"properties": {"name": {"type": "keyword"}, "version": {"type": "keyword"}}},
                "interval": {"properties": {"start": {"type": "date"}, "end": {"type": "date"}}},
                "source": {"properties": {"process": {"type": "keyword"}, "part": {"type": "integer"}}},
                "profile": {"type": "object", "enabled": False},
            }},
        },
    }


def prediction_mappings() -> dict[str, Any]:
    """Mappings of the record contract; features and outputs typed by dynamic templates."""
    # A stray string (even "12.5": no coercion) is flagged in _ignored, not rejected and not silently converted.
    numbers = {"type": "double", "ignore_malformed": True, "coerce": False}
    strings = {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}
    dynamic = []
    paths = (("features", f"{c.FEATURES}.*"), ("prediction", c.PREDICTION), ("prediction_fields", f"{c.PREDICTION}.*"))
    for where, path in paths:
        dynamic += [
            {f"{where}_long": {"path_match": path, "match_mapping_type": "long", "mapping": numbers}},
            {f"{where}_double": {"path_match": path, "match_mapping_type": "double", "mapping": numbers}},
            {f"{where}_string": {"path_match": path, "match_mapping_type": "string", "mapping": strings}},
        ]
    # ECS labels are keywords whatever the value (object_type: keyword): a number in one record and a
    # string in the next must not conflict.
    dynamic += [{f"labels_{kind}": {"path_match": "labels.*", "match_mapping_type": kind,
                                    "mapping": {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}}}
                for kind in ("string", "long", "double", "boolean")]
    dynamic.append({"strings_as_keyword": {"match_mapping_type": "string", "mapping": strings}})
    return {
        # A categorical whose first value looks like "2026-01-15" would otherwise become a date field.
        "date_detection": False,
        "dynamic_templates": dynamic,
        "properties": {
            "@timestamp": {"type": "date"},
            "message": {"type": "match_only_text"},  # as ECS 8.x maps it
            "log": {"properties": {"level": {"type": "keyword"}, "logger": {"type": "keyword"}}},
            "ecs": {"properties": {"version": {"type": "keyword"}}},
            "service": {"properties": {"name": {"type": "keyword"}}},
            "event": {"properties": {"kind": {"type": "keyword"}, "dataset": {"type": "keyword"}}},
            "labels": {"type": "object", "dynamic": True},
            "predwatch": {"properties": {
                "model": {"properties": {"name": {"type": "keyword"}, "version": {"type": "keyword"}}},
                "prediction_id": {"type": "keyword"},
                "latency_ms": {"type": "double"},
                "shadow": {"type": "boolean"},  # a shadow version's record (contract.SHADOW)
                "features": {"type": "object", "dynamic": True},
                # what the mapping refused, kept aside (logging_adapter.refit): stored, never indexed
                "unindexed": {"type": "object", "enabled": False},
                "refused_fields": {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE},
                "unindexed_keys": {"type": "integer"},
                # written by the daemon when it joins the prediction's outcome (analyzers.sources.outcomes)
                "outcome": {"properties": {
                    "actual": {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE},
                    "positive": {"type": "boolean"}, "error": {"type": "double"}, "abs_error": {"type": "double"},
                    "timestamp": {"type": "date"}, "delay_s": {"type": "double"}}},
            }},
        },
    }


def outcome_mappings() -> dict[str, Any]:
    """Outcome records: the actual outcome as a keyword whatever its JSON type (the daemon reads _source)."""
    keyword = {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}
    return {
        "dynamic": False,
        "properties": {
            "@timestamp": {"type": "date"},
            "event": {"properties": {"kind": {"type": "keyword"}, "dataset": {"type": "keyword"}}},
            "predwatch": {"properties": {
                "model": {"properties": {"name": {"type": "keyword"}, "version": {"type": "keyword"}}},
                "prediction_id": {"type": "keyword"}, "actual": keyword,
                "joined": {"type": "keyword"},  # "yes", or "no prediction" once given up
                "join_attempts": {"type": "integer"},
            }},
        },
    }


def prediction_templates(prefix: str, caps: Capabilities, retention_days: int | None) -> dict[str, Any]:
    """Component templates and the composable index template, by name."""
    settings: dict[str, Any] = {"index.mapping.total_fields.limit": TOTAL_FIELDS_LIMIT}
    if caps.ignore_dynamic_beyond_limit:
        settings["index.mapping.total_fields.ignore_dynamic_beyond_limit"] = True
    if caps.ilm and retention_days:
        settings["index.lifecycle.name"] = f"{prefix}-predictions"
    return {
        "component": {
            f"{prefix}-predictions-settings": {"template": {"settings": settings}},
            f"{prefix}-predictions-mappings": {"template": {"mappings": prediction_mappings()}},
        },
        "index": {
            f"{prefix}-predictions": {
                "index_patterns": [predictions_pattern(prefix)],
                "priority": PRIORITY,
                "composed_of": [f"{prefix}-predictions-settings", f"{prefix}-predictions-mappings"],
                "_meta": {"managed_by": "predwatch", "record": c.DATASET},
            },
            **_daily(prefix, "outcomes", outcomes_pattern(prefix), outcome_mappings(), c.OUTCOME_DATASET),
            **_daily(prefix, "intervals", intervals_pattern(prefix), interval_mappings(), c.PROFILE_DATASET),
        },
    }


def _daily(prefix: str, family: str, pattern: str, mappings: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The index template of one more family of daily record indices, with the predictions' settings."""
    return {f"{prefix}-{family}": {"index_patterns": [pattern], "priority": PRIORITY,
                                   "composed_of": [f"{prefix}-predictions-settings"],
                                   "template": {"mappings": mappings},
                                   "_meta": {"managed_by": "predwatch", "record": dataset}}}


def install(client: Elasticsearch, *, prefix: str = DEFAULT_PREFIX, retention_days: int | None = None,
            extra: list[dict[str, Any]] | None = None) -> list[str]:
    """Install (or update) the templates; idempotent. Returns what was put, for the user.

    ``extra`` takes more template sets of the same shape (the analyzers' result indices).
    """
    caps = detect(client)
    done = []
    if caps.ilm and retention_days:
        client.ilm.put_lifecycle(name=f"{prefix}-predictions", policy={
            "phases": {"hot": {"actions": {}}, "delete": {"min_age": f"{retention_days}d", "actions": {"delete": {}}}}})
        done.append(f"ILM policy {prefix}-predictions (delete after {retention_days} days)")
    elif retention_days:
        done.append(f"no ILM on this cluster: set retention_days = {retention_days} in predwatch.toml and "
                    "`predwatch daemon` deletes expired daily indices by name")
    for templates in [prediction_templates(prefix, caps, retention_days), *(extra or [])]:
        for name, body in templates.get("component", {}).items():
            client.cluster.put_component_template(name=name, **body)
            done.append(f"component template {name}")
        for name, body in templates.get("index", {}).items():
            client.indices.put_index_template(name=name, **body)
            done.append(f"index template {name}")
    return done


DAILY_FAMILIES = ("predictions", "outcomes", "intervals", "labelled")  # the daily indices records go to (labelled:
# the predictions of a service's own index joined to their outcomes, analyzers.sources.mapped_outcomes)


@dataclass(frozen=True)
class IndexAge:
    """When a daily index was created, and the time of its newest document (None: it holds none)."""

    created: datetime
    newest: datetime | None


def expired_indices(ages: dict[str, IndexAge], prefix: str, retention_days: int, now: datetime | None = None
                    ) -> list[str]:
    """The daily prediction, outcome and profile-record indices past the retention.

    An index expires when it was created before the cutoff *and* its newest document is older too, as ILM judges
    by an index's age, never by the day in its name: history replayed or backfilled today (records stamped a
    year ago) lives in indices created today, and is kept for the whole retention period.
    """
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=retention_days)
    starts = tuple(f"{prefix}-{family}-" for family in DAILY_FAMILIES)
    return sorted(name for name, age in ages.items()
                  if name.startswith(starts) and age.created < cutoff and (age.newest is None or age.newest < cutoff))


def index_ages(client: Elasticsearch, prefix: str) -> dict[str, IndexAge]:
    """Creation time and newest ``@timestamp`` of every daily record index (one settings call, one search)."""
    pattern = ",".join(f"{prefix}-{family}-*" for family in DAILY_FAMILIES)
    try:
        settings = client.indices.get_settings(index=pattern, name="index.creation_date", expand_wildcards="open,closed",
                                               ignore_unavailable=True, allow_no_indices=True).body
    except NotFoundError:
        return {}
    if not settings:
        return {}
    found = client.search(index=pattern, size=0, ignore_unavailable=True, allow_no_indices=True,
                          aggs={"i": {"terms": {"field": "_index", "size": len(settings)},
                                      "aggs": {"newest": {"max": {"field": "@timestamp"}}}}})
    if (found.get("_shards") or {}).get("failed"):
        raise RuntimeError("retention: the newest documents could not be read from every index; nothing deleted")
    newest = {b["key"]: b["newest"]["value"] for b in found["aggregations"]["i"]["buckets"]}
    return {name: IndexAge(created=_epoch_ms(spec["settings"]["index"]["creation_date"]),
                           newest=_epoch_ms(newest[name]) if newest.get(name) is not None else None)
            for name, spec in settings.items()}


def apply_retention(client: Elasticsearch, prefix: str, retention_days: int, now: datetime | None = None) -> list[str]:
    """Delete expired daily indices by exact name (for clusters without ILM); each deletion said at WARNING."""
    ages = index_ages(client, prefix)
    expired = expired_indices(ages, prefix, retention_days, now)
    for name in expired:
        client.indices.delete(index=name)
        newest = ages[name].newest.isoformat() if ages[name].newest else "none"
        log.warning("retention: deleted index %s (created %s, newest document %s): older than retention_days = %d",
                    name, ages[name].created.isoformat(), newest, retention_days)
    log.info("retention: %d daily indices checked, %d deleted", len(ages), len(expired))
    return expired


def _epoch_ms(value: str | float) -> datetime:
    return datetime.fromtimestamp(float(value) / 1000, tz=timezone.utc)
