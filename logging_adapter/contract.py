"""The prediction log record: the one contract every part of predwatch shares.

The adapter writes it, the shipper indexes it, the analyzers read it, and the
index templates, dashboards and watches name its fields. Every field name lives
here and nowhere else.

Canonical form (one JSON object per line)::

    {"@timestamp": "2026-11-22T07:00:00.123Z", "log.level": "info", "message": "prediction",
     "ecs.version": "8.11.0", "service": {"name": "checkout-api"},
     "event": {"kind": "event", "dataset": "predwatch.prediction"},
     "predwatch": {"model": {"name": "checkout-risk", "version": "7"},
                   "prediction_id": "5f0c...", "features": {"amount": 12.5},
                   "prediction": 0.83, "latency_ms": 1.4}}

Readers accept nested objects and dotted keys (``"predwatch.features.amount"``)
alike: :func:`read_prediction` is the one place that reconciles them.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from collections.abc import Mapping
from typing import Any

ECS_VERSION = "8.11.0"
DATASET = "predwatch.prediction"
NAMESPACE = "predwatch"

# Full field paths, as they appear in Elasticsearch and in Kibana.
TIMESTAMP = "@timestamp"
LOG_LEVEL = "log.level"
MESSAGE = "message"
ECS_VERSION_FIELD = "ecs.version"
SERVICE_NAME = "service.name"
EVENT_KIND = "event.kind"
EVENT_DATASET = "event.dataset"
MODEL_NAME = "predwatch.model.name"
MODEL_VERSION = "predwatch.model.version"
PREDICTION_ID = "predwatch.prediction_id"
FEATURES = "predwatch.features"
PREDICTION = "predwatch.prediction"
LATENCY_MS = "predwatch.latency_ms"

PREDICTION_MESSAGE = "prediction"

# Name of the column that holds a scalar prediction; object predictions become
# ``prediction.<key>`` columns.
PREDICTION_COLUMN = "prediction"


def feature_field(name: str) -> str:
    """Full field path of an input feature, e.g. ``predwatch.features.amount``."""
    return f"{FEATURES}.{name}"


def column_field(column: str) -> str:
    """Full field path of an analysed column (an input feature or a prediction output)."""
    if column == PREDICTION_COLUMN or column.startswith(PREDICTION_COLUMN + "."):
        return f"{NAMESPACE}.{column}"
    return feature_field(column)


def utc_iso(ts: float | datetime) -> str:
    """ISO-8601 UTC timestamp with milliseconds and a ``Z``: the record's time format."""
    dt = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, tz=timezone.utc)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """An ISO-8601 time (``Z`` or an offset; naive means UTC) as an aware datetime."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def nest(record: Mapping[str, Any]) -> dict[str, Any]:
    """Expand dotted keys into nested objects: ``{"a.b": 1}`` -> ``{"a": {"b": 1}}``.

    Keys that are both dotted and nested merge; the nested value wins on conflict.
    """
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping):
            value = nest(value)
        if "." in key and key != TIMESTAMP:
            *parents, leaf = key.split(".")
            node = out
            for part in parents:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
            _merge(node, leaf, value)
        else:
            _merge(out, key, value)
    return out


def _merge(node: dict, key: str, value: Any) -> None:
    if isinstance(value, dict) and isinstance(node.get(key), dict):
        for k, v in value.items():
            _merge(node[key], k, v)
    elif key not in node or not isinstance(value, dict):
        node[key] = value


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested objects to dotted keys: the column names of features."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


@dataclass(slots=True)
class Prediction:
    """One prediction record, read from either nested or dotted form."""

    timestamp: str | None
    model: str | None
    version: str | None
    prediction_id: str | None
    features: dict[str, Any]
    prediction: Any
    latency_ms: float | None

    def columns(self) -> dict[str, Any]:
        """Input features and prediction outputs as one flat mapping of columns."""
        cols = dict(self.features)
        pred = self.prediction
        if isinstance(pred, dict):
            for key, value in flatten(pred).items():
                cols[f"{PREDICTION_COLUMN}.{key}"] = value
        elif pred is not None or PREDICTION_COLUMN not in cols:
            cols[PREDICTION_COLUMN] = pred
        return cols


_DOTTED = NAMESPACE + "."


class RecordError(ValueError):
    """A log line that is not a usable prediction record; the message says why."""


MAX_LINE = 16 * 1024 * 1024  # bytes: a longer line is rejected, not parsed


def unparsable_reason(exc: Exception) -> str:
    """Why a JSONL line did not parse, in words for a dead letter or a rejection."""
    return "not valid UTF-8" if "utf-8" in str(exc).lower() else f"not valid JSON ({exc})"


def too_long_reason(size: int) -> str:
    return f"line of {size:,} bytes exceeds the {MAX_LINE:,}-byte limit"


_CANONICAL_NS = frozenset({"model", "prediction_id", "features", "prediction", "latency_ms"})
_CANONICAL_TOP = frozenset({TIMESTAMP, LOG_LEVEL, MESSAGE, ECS_VERSION_FIELD, "service", "event", "labels", NAMESPACE})


def read_prediction(record: Mapping[str, Any], *, flat: bool = True) -> Prediction:
    """Read a prediction record in nested or dotted form (or any mix of both).

    ``flat=False`` leaves nested feature objects unflattened, for batch readers that
    flatten only the chunks that need it. Raises :class:`RecordError` with a reason
    when the record is not a prediction.
    """
    if not isinstance(record, dict):
        raise RecordError(f"record is a JSON {type(record).__name__}, not an object")
    ns = record.get(NAMESPACE)
    # Fast path, the canonical nested form: no dotted keys to reconcile.
    if not (type(ns) is dict and ns.keys() <= _CANONICAL_NS
            and (record.keys() <= _CANONICAL_TOP or not any(k.startswith(_DOTTED) for k in record))):
        ns = nest(record).get(NAMESPACE)
        if not isinstance(ns, dict):
            raise RecordError("no 'predwatch' object: not a prediction record")
    features = ns.get("features")
    if features is None:
        features = {}
    elif type(features) is not dict:
        raise RecordError(f"'predwatch.features' is a {type(features).__name__}, not an object")
    elif flat and dict in set(map(type, features.values())):
        features = flatten(features)
    model = ns.get("model") or {}
    if type(model) is not dict:
        model = {"name": model}
    version = model.get("version")
    latency = ns.get("latency_ms")
    return Prediction(
        record.get(TIMESTAMP),
        model.get("name"),
        None if version is None else str(version),
        ns.get("prediction_id"),
        features,
        ns.get("prediction"),
        latency if isinstance(latency, (int, float)) else None,
    )


def prediction_index(model: str, timestamp: str, prefix: str = "predwatch-predictions") -> str:
    """Daily index of a record, routed by the record's own UTC day.

    >>> prediction_index("Checkout Risk", "2026-11-22T07:00:00.123Z")
    'predwatch-predictions-checkout-risk-2026.11.22'
    """
    return f"{prefix}-{index_safe(model)}-{timestamp[0:4]}.{timestamp[5:7]}.{timestamp[8:10]}"


def index_safe(name: str) -> str:
    """Lowercase a name and replace characters Elasticsearch forbids in index names."""
    out = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.lower()).lstrip("-_.+")
    return out or "unnamed"
