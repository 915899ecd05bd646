"""Records in other layouts: a field map for the layout a service already logs, and OpenTelemetry built in.

Most services that would use predwatch already log their predictions in a layout of their own. A
:class:`FieldMap` (a small TOML file of top-level keys, each a dotted path) says where each part of the
contract lives in such a record::

    model = "app.model_name"
    version = "app.model_rev"
    prediction_id = "req_id"
    timestamp = "time"
    features = "x"              # a prefix whose children are the features, or a list of paths
    prediction = "y.proba"      # a path; an object there (or children of a prefix) is several outputs
    latency_ms = "elapsed_ms"
    actual = "label"            # outcome records: a record holding it is an outcome ...
    outcome_id = "req_id"       # ... of the prediction with this id (default: the prediction_id path)

:meth:`FieldMap.to_contract` turns one such record into predwatch's own layout (the canonical form of
:mod:`logging_adapter.contract`), which every reader takes as it is. A dotted path reads nested objects and
flat dotted keys alike (``{"a": {"b": 1}}``, ``{"a.b": 1}``, ``{"a": {"b.c": 1}}``).

OpenTelemetry log records are recognised without a map (:func:`contract_records`), in two layouts:

* OTLP JSON, one ``{"resourceLogs": [...]}`` document per line, as the SDK's and the collector's file
  exporters write it (:func:`otlp_records` turns each document into its log records);
* the layout Elastic's OpenTelemetry ingestion stores (``@timestamp``, ``attributes.*``,
  ``resource.attributes.*``, ``body.text``): what :func:`otlp_records` yields too.

The prediction's parts are log record attributes named as the contract's own fields (:data:`OTEL_MAP`):
``predwatch.model.name``, ``predwatch.model.version``, ``predwatch.prediction_id``,
``predwatch.features.<feature>`` (one attribute per feature; a map-valued ``predwatch.features`` too),
``predwatch.prediction`` (one output) or ``predwatch.prediction.<output>`` (several), ``predwatch.latency_ms``,
and for outcomes ``predwatch.actual``; the time is the log record's (``timeUnixNano``, else
``observedTimeUnixNano``; ``@timestamp`` in Elastic's layout), ``service.name`` the resource's.
:mod:`logging_adapter.otel` makes a service's :class:`~logging_adapter.PredictionLogger` write them.
"""
from __future__ import annotations

import tomllib
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields as dataclass_fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import contract as c

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()  # a path not in a record

# The keys of a field map, in the order they are said; ``features`` may also be a list of paths.
MAP_KEYS = ("model", "version", "prediction_id", "timestamp", "features", "prediction", "latency_ms", "actual",
            "outcome_id")


@dataclass(frozen=True)
class FieldMap:
    """Where each part of a prediction (or outcome) record lives in a service's own layout: dotted paths.

    Only ``features`` or ``prediction`` is needed; every other part is optional, as in the contract. A
    record holding the ``actual`` path is an outcome of the prediction whose id is at ``outcome_id``
    (default: the ``prediction_id`` path). ``source`` names the map in messages (its file).
    """

    model: str | None = None
    version: str | None = None
    prediction_id: str | None = None
    timestamp: str | None = None
    features: str | tuple[str, ...] | None = None
    prediction: str | None = None
    latency_ms: str | None = None
    actual: str | None = None
    outcome_id: str | None = None
    source: str = "the field map"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "the field map") -> "FieldMap":
        """A map from its keys; ValueError naming ``source`` and the key for an unknown key or a value
        that is not a dotted path.

        >>> FieldMap.from_dict({"model": "app.model_name", "features": "x", "prediction": "y.proba"}).model
        'app.model_name'
        >>> FieldMap.from_dict({"modle": "m"}, "map.toml")
        Traceback (most recent call last):
        ...
        ValueError: map.toml: unknown key 'modle' (the keys are model, version, prediction_id, timestamp, features, prediction, latency_ms, actual, outcome_id)
        """
        if not isinstance(raw, Mapping):
            raise ValueError(f"{source}: a field map is a table of keys, not a {type(raw).__name__}")
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in MAP_KEYS:
                raise ValueError(f"{source}: unknown key {key!r} (the keys are {', '.join(MAP_KEYS)})")
            if key == "features" and isinstance(value, list):
                if not value:
                    raise ValueError(f"{source}: features = [] names no path")
                for path in value:
                    _check_path(path, source, key)
                names = [p.rsplit(".", 1)[-1] for p in value]
                twice = sorted({n for n in names if names.count(n) > 1})
                if twice:
                    raise ValueError(f"{source}: features: two paths end in the same feature name "
                                     f"{', '.join(map(repr, twice))} (a feature is named by its path's last part)")
                value = tuple(value)
            else:
                _check_path(value, source, key)
            values[key] = value
        if "features" not in values and "prediction" not in values:
            raise ValueError(f"{source}: names neither features nor prediction: it would read nothing")
        if "actual" in values and "outcome_id" not in values and "prediction_id" not in values:
            raise ValueError(f"{source}: actual needs outcome_id (or prediction_id): the id of the prediction "
                             "an outcome is of")
        return cls(**values, source=source)

    @classmethod
    def load(cls, path: str | Path) -> "FieldMap":
        """A map from a TOML file; ValueError naming the file and the problem (FileNotFoundError as it is)."""
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
        except IsADirectoryError:
            raise ValueError(f"{path}: a directory, not a field map file") from None
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not valid UTF-8") from None
        return cls.from_dict(raw, str(path))

    def paths(self) -> dict[str, list[str]]:
        """Each path the map names, with the keys that name it (``outcome_id`` defaults to the prediction's)."""
        out: dict[str, list[str]] = {}
        for key in MAP_KEYS:
            value = getattr(self, key)
            if key == "outcome_id" and value is None and self.actual is not None:
                value = self.prediction_id
            for path in (value if isinstance(value, tuple) else (value,)):
                if path is not None:
                    out.setdefault(path, []).append(key)
        return out

    def to_contract(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record in predwatch's own layout (an outcome when it holds the ``actual`` path), or
        :class:`~logging_adapter.contract.RecordError` naming the part that is missing or of the wrong type.

        >>> m = FieldMap.from_dict({"model": "app.model_name", "timestamp": "time", "features": "x",
        ...                         "prediction": "y.proba", "prediction_id": "req_id"})
        >>> m.to_contract({"time": "2026-11-22T07:00:00Z", "app": {"model_name": "churn"}, "req_id": "r1",
        ...                "x": {"age": 40}, "y.proba": 0.8})["predwatch"]
        {'model': {'name': 'churn'}, 'prediction_id': 'r1', 'features': {'age': 40}, 'prediction': 0.8}
        """
        if type(record) is not dict:
            raise c.RecordError(f"record is a JSON {type(record).__name__}, not an object")
        stamp = self._timestamp(record)
        model = self._model(record)
        actual = MISSING if self.actual is None else resolve(record, self.actual)
        if actual is not MISSING:
            id_path = self.outcome_id or self.prediction_id
            pid = resolve(record, id_path)
            if pid is MISSING or pid is None:
                raise c.RecordError(f"an outcome ({self._said('actual')}) without {self._said('outcome_id', id_path)}: "
                                    "it cannot be joined")
            if type(pid) not in (str, int):
                raise c.RecordError(f"{self._said('outcome_id', id_path)} is a {_json_type(pid)}, not a string")
            ns: dict[str, Any] = {"model": model, "prediction_id": str(pid), "actual": actual}
            out: dict[str, Any] = {"event": {"kind": "event", "dataset": c.OUTCOME_DATASET}, c.NAMESPACE: ns}
        else:
            features = self._features(record)
            prediction = self._prediction(record)
            if features is MISSING and prediction is MISSING:
                said = " nor ".join(self._said(k) for k in ("features", "prediction") if getattr(self, k))
                raise c.RecordError(f"no prediction: {'neither ' if ' nor ' in said else ''}{said} is in the record")
            ns = {"model": model}
            pid = MISSING if self.prediction_id is None else resolve(record, self.prediction_id)
            if pid is not MISSING and pid is not None:
                if type(pid) not in (str, int):
                    raise c.RecordError(f"{self._said('prediction_id')} is a {_json_type(pid)}, not a string")
                ns["prediction_id"] = str(pid)
            ns["features"] = {} if features is MISSING else features
            if prediction is not MISSING:
                ns["prediction"] = prediction
            latency = MISSING if self.latency_ms is None else resolve(record, self.latency_ms)
            if type(latency) in (int, float):
                ns["latency_ms"] = latency
            out = {"message": c.PREDICTION_MESSAGE, "event": {"kind": "event", "dataset": c.DATASET}, c.NAMESPACE: ns}
        if stamp is not None:
            out[c.TIMESTAMP] = stamp
        service = _service_name(record)
        if service is not None:
            out["service"] = {"name": service}
        return out

    def _said(self, key: str, path: str | None = None) -> str:
        return f'"{path or getattr(self, key)}" ({key})'

    def _timestamp(self, record: dict) -> str | None:
        if self.timestamp is None:
            return None
        value = resolve(record, self.timestamp)
        if value is MISSING or value is None:
            return None
        if type(value) is str:
            if not c.RECORD_TIME.fullmatch(value):
                raise c.RecordError(f"{self._said('timestamp')} {value[:40]!r} is not a record time: {c.RECORD_TIME_FORM}")
            return value
        if type(value) in (int, float):
            return _epoch_iso(value, self._said("timestamp"))
        raise c.RecordError(f"{self._said('timestamp')} is a {_json_type(value)}, not a time")

    def _model(self, record: dict) -> dict[str, Any]:
        model: dict[str, Any] = {}
        name = MISSING if self.model is None else resolve(record, self.model)
        if name is not MISSING and name is not None:
            if type(name) is not str:
                raise c.RecordError(f"{self._said('model')} is a {_json_type(name)}, not a string")
            model["name"] = name
        version = MISSING if self.version is None else resolve(record, self.version)
        if version is not MISSING and version is not None:
            if type(version) not in (str, int, float):
                raise c.RecordError(f"{self._said('version')} is a {_json_type(version)}, not a string or number")
            model["version"] = str(version)
        return model

    def _features(self, record: dict) -> Any:
        if self.features is None:
            return MISSING
        if isinstance(self.features, tuple):
            found = {}
            for path in self.features:
                value = resolve(record, path)
                if value is not MISSING:
                    found[path.rsplit(".", 1)[-1]] = value
            return found or MISSING
        value = resolve(record, self.features)
        if value is not MISSING and type(value) is not dict:
            if value is None:
                return MISSING
            raise c.RecordError(f"{self._said('features')} is a {_json_type(value)}, not an object of features")
        found = children(record, self.features)
        return MISSING if found is MISSING and value is MISSING else (found if found is not MISSING else {})

    def _prediction(self, record: dict) -> Any:
        if self.prediction is None:
            return MISSING
        value = resolve(record, self.prediction)
        if value is not MISSING and type(value) is not dict:
            return value
        return children(record, self.prediction)  # several outputs: an object there, or flat children


def _check_path(path: Any, source: str, key: str) -> None:
    if type(path) is not str:
        raise ValueError(f"{source}: {key} = {path!r} is a {type(path).__name__}, not a dotted path "
                         "(write it in quotes, e.g. \"app.model_name\")")
    if not path or any(not part for part in path.split(".")):
        raise ValueError(f"{source}: {key} = {path!r} is not a dotted path (an empty part)")


def resolve(record: Any, path: str) -> Any:
    """The value at a dotted path, through nested objects and flat dotted keys alike; :data:`MISSING` if none
    (nested first where both hold one, as :func:`~logging_adapter.contract.nest` decides).

    >>> resolve({"a": {"b": 1}}, "a.b"), resolve({"a.b": 2}, "a.b"), resolve({"a": {"b.c": 3}}, "a.b.c")
    (1, 2, 3)
    >>> resolve({"a": 1}, "a.b")
    MISSING
    """
    if "." not in path:
        return record.get(path, MISSING) if type(record) is dict else MISSING
    parts = _parts(path)
    node = record
    for part in parts:  # the usual record: nested objects all the way (what _walk finds first)
        if type(node) is not dict or part not in node:
            break
        node = node[part]
    else:
        return node
    return _walk(record, parts, 0)


@functools.lru_cache(maxsize=256)
def _parts(path: str) -> list[str]:
    return path.split(".")


def _walk(node: Any, parts: list[str], i: int) -> Any:
    if i == len(parts):
        return node
    if type(node) is not dict:
        return MISSING
    for j in range(i + 1, len(parts) + 1):  # "a", then "a.b", ...: the nested object first
        key = parts[i] if j == i + 1 else ".".join(parts[i:j])
        if key in node:
            found = _walk(node[key], parts, j)
            if found is not MISSING:
                return found
    return MISSING


def children(record: Any, path: str) -> Any:
    """The children of a prefix as one object (``{"x": {"a": 1}, "x.b": 2}`` -> ``{"a": 1, "b": 2}``, the
    nested value first on a clash); :data:`MISSING` when the record has none.

    >>> children({"x": {"a": 1}, "x.b": 2, "y": 3}, "x")
    {'a': 1, 'b': 2}
    """
    node = record
    for part in _parts(path):  # nested objects all the way and no dotted key beside them: the object itself
        if type(node) is not dict or part not in node or _has_dotted(node, part + "."):
            break
        node = node[part]
    else:
        if type(node) is dict:
            return node if node else MISSING
    out: dict[str, Any] = {}
    _gather(record, _parts(path), 0, out)
    return out if out else MISSING


def _has_dotted(node: dict, prefix: str) -> bool:
    """Whether a key of ``node`` starts with ``prefix`` (a flat dotted key that adds to the nested object)."""
    for key in node:
        if key.startswith(prefix):
            return True
    return False


def _gather(node: Any, parts: list[str], i: int, out: dict[str, Any]) -> None:
    if type(node) is not dict:
        return
    if i == len(parts):
        for key, value in node.items():
            out.setdefault(key, value)
        return
    for j in range(i + 1, len(parts) + 1):
        key = parts[i] if j == i + 1 else ".".join(parts[i:j])
        if key in node:
            _gather(node[key], parts, j, out)
    rest = ".".join(parts[i:]) + "."
    for key, value in node.items():
        if key.startswith(rest):
            out.setdefault(key[len(rest):], value)


def occurs(record: Any, path: str) -> bool:
    """Whether a record holds a path, as a value or as a prefix of children."""
    return resolve(record, path) is not MISSING or children(record, path) is not MISSING


def _epoch_iso(value: float, said: str) -> str:
    """Epoch seconds, milliseconds, microseconds or nanoseconds (told apart by size) as a record time."""
    from .values import ArgumentError, epoch_seconds

    try:
        return c.utc_iso(epoch_seconds(value))
    except (ArgumentError, OverflowError, OSError, ValueError):
        raise c.RecordError(f"{said} {value!r} is not a time (epoch seconds, ms, µs or ns)") from None


def _json_type(value: Any) -> str:
    return {dict: "JSON object", list: "JSON array", bool: "boolean", str: "string", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def _service_name(record: dict) -> Any:
    """``service.name`` of a record in Elastic's OpenTelemetry layout (the resource's), else the ECS one."""
    for path in ("resource.attributes.service.name", c.SERVICE_NAME):
        name = resolve(record, path)
        if type(name) is str:
            return name
    return None


# -- OpenTelemetry ------------------------------------------------------------------------------------------

OTEL_ATTRIBUTES = "attributes"  # where Elastic's OpenTelemetry layout keeps a log record's attributes


def _attribute(field: str) -> str:
    return f"{OTEL_ATTRIBUTES}.{field}"


# The built-in map of OpenTelemetry log records: the contract's own names as attributes.
OTEL_MAP = FieldMap(model=_attribute(c.MODEL_NAME), version=_attribute(c.MODEL_VERSION),
                    prediction_id=_attribute(c.PREDICTION_ID), timestamp=c.TIMESTAMP, features=_attribute(c.FEATURES),
                    prediction=_attribute(c.PREDICTION), latency_ms=_attribute(c.LATENCY_MS),
                    actual=_attribute(c.ACTUAL), source="the OpenTelemetry layout")

OTLP_RESOURCE_LOGS = "resourceLogs"


def otlp_records(doc: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The log records of one OTLP JSON document (``{"resourceLogs": [...]}``) in the layout Elastic's
    OpenTelemetry ingestion stores: ``@timestamp``, ``attributes`` (flat keys, typed values read),
    ``resource.attributes``, ``scope.name``, ``severity_text``, ``body.text`` (or ``body.structured``).
    :class:`~logging_adapter.contract.RecordError` when the document is not OTLP JSON.

    >>> doc = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name",
    ...         "value": {"stringValue": "svc"}}]}, "scopeLogs": [{"logRecords": [{"timeUnixNano":
    ...         "1795330800123000000", "attributes": [{"key": "predwatch.features.age", "value": {"intValue": "40"}}]}]}]}]}
    >>> record = next(otlp_records(doc))
    >>> record["@timestamp"], record["attributes"], record["resource"]["attributes"]
    ('2026-11-22T07:00:00.123Z', {'predwatch.features.age': 40}, {'service.name': 'svc'})
    """
    resource_logs = doc.get(OTLP_RESOURCE_LOGS)
    if type(resource_logs) is not list:
        raise c.RecordError(f"'{OTLP_RESOURCE_LOGS}' is a {_json_type(resource_logs)}, not a list: not OTLP JSON")
    for resource_log in resource_logs:
        if type(resource_log) is not dict:
            raise c.RecordError("an OTLP resourceLogs entry that is not an object")
        resource = {OTEL_ATTRIBUTES: otlp_attributes((resource_log.get("resource") or {}).get("attributes"))}
        for scope_log in resource_log.get("scopeLogs") or ():
            if type(scope_log) is not dict:
                raise c.RecordError("an OTLP scopeLogs entry that is not an object")
            scope = scope_log.get("scope") or {}
            for log_record in scope_log.get("logRecords") or ():
                if type(log_record) is not dict:
                    raise c.RecordError("an OTLP logRecords entry that is not an object")
                out: dict[str, Any] = {}
                nanos = log_record.get("timeUnixNano") or log_record.get("observedTimeUnixNano")
                if nanos not in (None, "0", 0):
                    out[c.TIMESTAMP] = _nanos_iso(nanos)
                out[OTEL_ATTRIBUTES] = otlp_attributes(log_record.get("attributes"))
                out["resource"] = resource
                if type(scope) is dict and scope.get("name"):
                    out["scope"] = {"name": scope["name"]}
                if log_record.get("severityText"):
                    out["severity_text"] = log_record["severityText"]
                body = otlp_value(log_record.get("body"))
                if body is not None:
                    out["body"] = {"text": body} if type(body) is str else {"structured": body}
                yield out


def otlp_attributes(pairs: Any) -> dict[str, Any]:
    """OTLP's ``[{"key": k, "value": {"stringValue": ...}}, ...]`` as ``{k: value}``."""
    if pairs is None:
        return {}
    if type(pairs) is not list:
        raise c.RecordError(f"OTLP attributes are a {_json_type(pairs)}, not a list of key/value pairs")
    out = {}
    for pair in pairs:
        if type(pair) is not dict or type(pair.get("key")) is not str:
            raise c.RecordError("an OTLP attribute without a string 'key'")
        out[pair["key"]] = otlp_value(pair.get("value"))
    return out


def otlp_value(value: Any) -> Any:
    """One OTLP JSON ``AnyValue`` as a plain value: ``intValue`` is a string in OTLP JSON (64-bit), a
    ``doubleValue`` may be ``"NaN"`` or ``"Infinity"``, arrays and key/value lists read recursively.

    >>> otlp_value({"intValue": "12"}), otlp_value({"arrayValue": {"values": [{"boolValue": True}]}})
    (12, [True])
    """
    if type(value) is not dict or not value:
        return None
    for kind, inner in value.items():
        break
    if kind in _AS_IT_IS:
        return inner
    try:
        if kind == "intValue":
            return int(inner)
        if kind == "doubleValue":
            return float(inner)
        if kind == "arrayValue":
            return [otlp_value(v) for v in (inner or {}).get("values") or ()]
        if kind == "kvlistValue":
            return otlp_attributes((inner or {}).get("values"))
    except (TypeError, ValueError, AttributeError):
        raise c.RecordError(f"an OTLP {kind} of {inner!r:.40}") from None
    raise c.RecordError(f"an OTLP value of unknown kind {kind!r}")


_AS_IT_IS = frozenset({"stringValue", "boolValue", "bytesValue"})


def _nanos_iso(nanos: Any) -> str:
    """Epoch nanoseconds (a string in OTLP JSON) as a record time, to the millisecond as the contract writes
    it (rounded to the microsecond first: the SDK's ``int(created * 1e9)`` is a few ns off)."""
    try:
        micros = (int(nanos) + 500) // 1000
        return datetime.fromtimestamp(micros // 1_000_000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") \
            + f"{micros % 1_000_000 // 1000:03d}Z"
    except (TypeError, ValueError, OverflowError, OSError):
        raise c.RecordError(f"OTLP time {nanos!r:.40} is not epoch nanoseconds") from None


_OURS = c.NAMESPACE + "."


def otel_layout(record: dict[str, Any]) -> str | None:
    """``"otlp"`` for an OTLP JSON document, ``"elastic"`` for a log record in Elastic's OpenTelemetry layout
    carrying ``predwatch.*`` attributes, None otherwise (cheap: the readers ask it of every record that is
    not in predwatch's own layout)."""
    if OTLP_RESOURCE_LOGS in record:
        return "otlp"
    attributes = record.get(OTEL_ATTRIBUTES)
    if type(attributes) is dict:
        if c.NAMESPACE in attributes or any(k.startswith(_OURS) for k in attributes):
            return "elastic"
    elif any(k.startswith(_FLAT_OURS) for k in record):
        return "elastic"
    return None


_FLAT_OURS = f"{OTEL_ATTRIBUTES}.{c.NAMESPACE}"
_FLAT_PREFIXES = (_OURS, _FLAT_OURS)


def own_layout(record: dict[str, Any]) -> bool:
    """Whether a record is in predwatch's own layout (a ``predwatch`` object or ``predwatch.*`` keys)."""
    return c.NAMESPACE in record or any(k.startswith(_OURS) for k in record)


def contract_records(record: dict[str, Any], fields: FieldMap | None = None
                     ) -> list[dict[str, Any] | c.RecordError] | None:
    """One parsed line in predwatch's own layout: None when it is already (read it as it is); else its
    records, each a contract record or the :class:`~logging_adapter.contract.RecordError` saying why not
    (an OTLP document holds many). OpenTelemetry layouts are recognised first; ``fields`` reads the rest.

    >>> contract_records({"predwatch": {"features": {}}}) is None
    True
    >>> contract_records({"@timestamp": "2026-11-22T07:00:00Z", "attributes": {"predwatch.prediction": 0.8}})
    [{'message': 'prediction', 'event': {'kind': 'event', 'dataset': 'predwatch.prediction'}, 'predwatch': {'model': {}, 'features': {}, 'prediction': 0.8}, '@timestamp': '2026-11-22T07:00:00Z'}]
    """
    if OTLP_RESOURCE_LOGS not in record:
        attributes = record.get(OTEL_ATTRIBUTES)
        if type(attributes) is dict:
            if c.NAMESPACE in attributes or any(k.startswith(_OURS) for k in attributes):
                return [_mapped(OTEL_MAP, record)]
        if c.NAMESPACE in record:
            return None
        for key in record:  # one look at the keys: predwatch.* (own, dotted) or attributes.predwatch.* (Elastic)
            if key.startswith(_FLAT_PREFIXES):
                return None if key.startswith(_OURS) else [_mapped(OTEL_MAP, record)]
        return None if fields is None else [_mapped(fields, record)]
    try:
        log_records = list(otlp_records(record))
    except c.RecordError as exc:
        return [exc]
    return [_mapped(OTEL_MAP if otel_layout(r) or fields is None else fields, r, otel=True) for r in log_records]


def _nested_attributes(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its flat ``predwatch.*`` attributes gathered into one ``predwatch`` object in one pass,
    so that each part of :data:`OTEL_MAP` is a lookup rather than a search among dotted keys (a record that
    also holds a nested ``predwatch`` attribute is left as it is: :func:`resolve` reconciles both)."""
    attributes = record.get(OTEL_ATTRIBUTES)
    if type(attributes) is not dict or c.NAMESPACE in attributes:
        return record
    ns: dict[str, Any] = {}
    features: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    for key, value in attributes.items():
        if not key.startswith(_OURS):
            continue
        part = key[_OURS_LENGTH:]
        if part.startswith("features."):
            features[part[9:]] = value
        elif part.startswith("prediction."):
            outputs[part[11:]] = value
        elif part.startswith("model."):
            ns.setdefault("model", {})[part[6:]] = value
        elif part in ns:
            return record
        else:
            ns[part] = value
    if features:
        if type(ns.get("features", features)) is not dict:
            return record
        ns["features"] = {**ns.get("features", {}), **features}
    if outputs:
        if "prediction" in ns:
            return record
        ns["prediction"] = outputs
    return {**record, OTEL_ATTRIBUTES: {c.NAMESPACE: ns}} if ns else record


_OURS_LENGTH = len(_OURS)


def _mapped(fields: FieldMap, record: dict[str, Any], otel: bool = False) -> dict[str, Any] | c.RecordError:
    try:
        return fields.to_contract(_nested_attributes(record) if fields is OTEL_MAP else record)
    except c.RecordError as exc:
        if otel and fields is OTEL_MAP and otel_layout(record) is None:
            return c.RecordError("an OpenTelemetry log record without predwatch.* attributes (not a prediction)")
        return c.RecordError(f"{exc} ({fields.source})" if fields is not OTEL_MAP else f"{exc} (OpenTelemetry)")
