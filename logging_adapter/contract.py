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

import hashlib
import re
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
# A shadow's record: a version that scored a request beside the serving one (``PredictionLogger.log(shadow=True)``),
# under the serving record's ``prediction_id``; its output served no one. Analyzers pair the two by the id.
SHADOW = "predwatch.shadow"

PREDICTION_MESSAGE = "prediction"

# The fields of the record around a prediction that often explain an incident: the service and the version
# deployed, the host, the labels (region, tenant ...). Findings may name them as segments (record_context).
CONTEXT_OBJECTS = ("service", "host", "labels")
SERVICE_VERSION = "service.version"
HOST_NAME = "host.name"
LABELS = "labels"

# Outcome records: the actual result of one prediction, logged when it becomes known (``@timestamp``).
OUTCOME_DATASET = "predwatch.outcome"
OUTCOME_MESSAGE = "outcome"
ACTUAL = "predwatch.actual"
# What the daemon writes into a prediction document when it joins its outcome (see analyzers.sources.outcomes).
OUTCOME = "predwatch.outcome"
OUTCOME_ACTUAL = "predwatch.outcome.actual"  # keyword: the outcome as a category string
OUTCOME_POSITIVE = "predwatch.outcome.positive"  # binary: the outcome was the positive class
OUTCOME_ERROR = "predwatch.outcome.error"  # regression: prediction - actual
OUTCOME_ABS_ERROR = "predwatch.outcome.abs_error"
OUTCOME_TIMESTAMP = "predwatch.outcome.timestamp"
OUTCOME_DELAY_S = "predwatch.outcome.delay_s"
OUTCOME_JOINED = "predwatch.joined"  # on outcomes: "yes", or "no prediction" once the join gave up

# Profile records: a serving process's window profile of every prediction of one interval (``profile=``).
PROFILE_DATASET = "predwatch.profile"
PROFILE_MESSAGE = "profile"
PROFILE = "predwatch.profile"
INTERVAL_START = "predwatch.interval.start"
INTERVAL_END = "predwatch.interval.end"
SOURCE_PROCESS = "predwatch.source.process"
SOURCE_PART = "predwatch.source.part"  # the part of a profile too large for one record

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


# The one grammar of a record's time, everywhere (the logger writes it, ``check`` reads it, the cluster's
# ``date`` field takes it): what Elasticsearch's ``strict_date_optional_time`` takes, ISO-8601 with a ``T``
# and zero-padded fields: a full date, optionally hours and minutes, seconds, up to 9 fraction digits, and
# ``Z`` or an offset (``+05:30``, ``+0530``); no offset means UTC. A space for the ``T`` is refused here as
# the cluster refuses it, not kept by one path and lost by the other.
RECORD_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
RECORD_TIME_FORM = "ISO-8601 like 2026-11-22T07:00:00.123Z (a 'T', zero-padded, 'Z' or an offset like +05:30)"


def parse_time(text: str) -> datetime:
    """A record time (:data:`RECORD_TIME`; naive means UTC) as an aware datetime; ValueError otherwise."""
    if type(text) is not str or not RECORD_TIME.fullmatch(text):
        raise ValueError(f"{text!r} is not a record time: {RECORD_TIME_FORM}")
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _layouts() -> dict[int, list[str]]:
    """The usual layouts of a record time, by length: ``d`` a digit, ``s`` a sign, anything else itself."""
    head = "dddd-dd-ddTdd:dd:dd"
    tails = ["", "Z", "sdd:dd"] + [f".{'d' * k}{zone}" for k in range(1, 10) for zone in ("Z", "sdd:dd")]
    out: dict[int, list[str]] = {}
    for tail in tails:
        out.setdefault(len(head + tail), []).append(head + tail)
    return out


_LAYOUTS = _layouts()


def record_times(texts: "list[str | None]") -> Any:
    """Many record times at once, as a UTC ``pandas.DatetimeIndex`` with NaT where :func:`parse_time` refuses:
    the same grammar on the batch readers' fast path. pandas' ISO-8601 parser (fast, but lenient: a space for
    the ``T``, unpadded fields, ``+05``) reads the values; texts of the usual layouts are checked character by
    character on a byte matrix (no Python loop per record), any other text by :func:`parse_time` one by one."""
    import numpy as np
    import pandas as pd

    try:
        joined = "".join(texts)
        strings = texts
    except TypeError:  # None or other non-strings among them: they are never record times (nor epochs)
        strings = [t if type(t) is str else "" for t in texts]
        joined = "".join(strings)
    stamps = pd.to_datetime(strings, utc=True, errors="coerce", format="ISO8601")
    if not len(texts):
        return stamps
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
    blob = np.frombuffer(joined.encode("ascii", "replace"), dtype=np.uint8)  # one byte a character
    good = np.zeros(len(strings), dtype=bool)
    for length in np.unique(lengths).tolist():
        if length not in _LAYOUTS:
            continue
        rows = np.flatnonzero(lengths == length)
        if len(rows) == len(strings):  # one layout for all (one writer): the bytes are the matrix
            chars = blob.reshape(len(rows), length)
        else:
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            chars = blob[starts[rows, None] + np.arange(length)]
        digit = (chars >= ord("0")) & (chars <= ord("9"))
        sign = (chars == ord("+")) | (chars == ord("-"))
        fits = np.zeros(len(rows), dtype=bool)
        for layout in _LAYOUTS[length]:
            ok = np.ones(len(rows), dtype=bool)
            for column, want in enumerate(layout):
                ok &= (digit[:, column] if want == "d" else sign[:, column] if want == "s"
                       else chars[:, column] == ord(want))
            fits |= ok
        good[rows] = fits
    good &= ~np.asarray(stamps.isna())
    if good.all():
        return stamps
    values = stamps.as_unit("ns").asi8.copy()
    for i in np.flatnonzero(~good).tolist():
        try:
            values[i] = int(pd.Timestamp(parse_time(texts[i])).as_unit("ns").value)
        except (TypeError, ValueError, OverflowError):
            values[i] = np.iinfo(np.int64).min  # NaT
    return pd.DatetimeIndex(values.view("datetime64[ns]"), tz="UTC")


def utc_day(timestamp: str) -> str:
    """``YYYY.MM.DD`` of a record time's UTC day (a time with an offset may fall on another day than it reads)."""
    tail = timestamp[10:]
    if "+" not in tail and "-" not in tail:  # Z, or no offset (UTC): the day as written
        return f"{timestamp[0:4]}.{timestamp[5:7]}.{timestamp[8:10]}"
    return parse_time(timestamp).astimezone(timezone.utc).strftime("%Y.%m.%d")


def seconds_between(earlier: str | None, later: str | None) -> float | None:
    """Seconds from one record time to another, negative when ``later`` is in fact earlier (an outcome stamped
    before its prediction: a clock or a replay to look at, never a delay of 0); None when either is unreadable."""
    try:
        return (parse_time(later) - parse_time(earlier)).total_seconds()
    except (TypeError, ValueError, AttributeError):
        return None


class RecordError(ValueError):
    """A log line that is not a usable prediction record; the message says why."""


# Objects nested deeper than this inside a record are refused where records enter (file, handler,
# Elasticsearch document): Elasticsearch's own limit is 20 (index.mapping.depth.limit), and a
# record nested ~1000 levels deep would otherwise crash any recursive reader.
MAX_DEPTH = 16


def nest(record: Mapping[str, Any], _depth: int = 0) -> dict[str, Any]:
    """Expand dotted keys into nested objects: ``{"a.b": 1}`` -> ``{"a": {"b": 1}}``.

    Keys that are both dotted and nested merge; the nested value wins on conflict.
    Raises :class:`RecordError` past ``MAX_DEPTH`` levels (a poison pill, not a record).
    """
    if _depth > MAX_DEPTH:
        raise RecordError(f"objects nested deeper than {MAX_DEPTH} levels")
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping):
            value = nest(value, _depth + 1)
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


def flatten(obj: Mapping[str, Any], prefix: str = "", _depth: int = 0) -> dict[str, Any]:
    """Flatten nested objects to dotted keys: the column names of features.

    Raises :class:`RecordError` past ``MAX_DEPTH`` levels.
    """
    if _depth > MAX_DEPTH:
        raise RecordError(f"objects nested deeper than {MAX_DEPTH} levels")
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + ".", _depth + 1))
        else:
            out[name] = value
    return out


def too_deep(obj: Any, limit: int) -> bool:
    """Whether objects or arrays nest more than ``limit`` levels below ``obj`` (iterative: no recursion)."""
    stack = [(obj, 0)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


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
    context: dict[str, Any] | None = None  # the record's fields around the prediction (record_context)

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


@dataclass(slots=True)
class Outcome:
    """One outcome record: the actual result of the prediction ``prediction_id``, known at ``timestamp``."""

    timestamp: str | None
    model: str | None
    version: str | None
    prediction_id: str
    actual: Any


def is_shadow(record: Mapping[str, Any]) -> bool:
    """Whether a parsed prediction record is a shadow's (``predwatch.shadow`` true, nested or dotted)."""
    ns = record.get(NAMESPACE)
    return (type(ns) is dict and ns.get("shadow") is True) or record.get(SHADOW) is True


def record_context(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The scalar fields of a record around its prediction (``service.*``, ``host.*``, ``labels.*``), flat;
    None when it has none.

    >>> record_context({"service": {"name": "api", "version": "3"}, "labels": {"region": "eu"}, "predwatch": {}})
    {'service.name': 'api', 'service.version': '3', 'labels.region': 'eu'}
    """
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key in CONTEXT_OBJECTS and isinstance(value, Mapping):
            if too_deep(value, MAX_DEPTH):
                continue
            out.update((k, v) for k, v in flatten(value, key + ".").items() if not isinstance(v, (dict, list)))
        elif key.startswith(_CONTEXT_PREFIXES) and not isinstance(value, (dict, list)):
            out[key] = value
    return out or None


_CONTEXT_PREFIXES = tuple(f"{name}." for name in CONTEXT_OBJECTS)


def is_outcome(record: Mapping[str, Any]) -> bool:
    """Whether a parsed record is an outcome: it has ``predwatch.actual`` and no prediction (cheap: it runs
    on every line read)."""
    ns = record.get(NAMESPACE)
    if type(ns) is dict:
        return "actual" in ns and "prediction" not in ns
    return ACTUAL in record and PREDICTION not in record


def read_outcome(record: Mapping[str, Any]) -> Outcome:
    """Read an outcome record (nested or dotted); :class:`RecordError` with the reason when unusable."""
    ns = record.get(NAMESPACE)
    if type(ns) is not dict or any(k.startswith(_DOTTED) for k in record):
        ns = nest(record).get(NAMESPACE)
    if not isinstance(ns, dict):
        raise RecordError("no 'predwatch' object: not an outcome record")
    prediction_id, actual = ns.get("prediction_id"), ns.get("actual")
    if prediction_id is None or type(prediction_id) not in (str, int):
        raise RecordError("outcome without a 'predwatch.prediction_id' string: it cannot be joined")
    if actual is None or type(actual) not in (str, int, float, bool):
        raise RecordError(f"outcome 'predwatch.actual' is a {_json_type(actual)}, not a number, string or boolean")
    stamp = record.get(TIMESTAMP)
    if stamp is not None:
        _check_time(stamp)
    model = ns.get("model") or {}
    if type(model) is not dict:
        model = {"name": model}
    version = model.get("version")
    return Outcome(stamp, model.get("name"), None if version is None else str(version), str(prediction_id), actual)


@dataclass(slots=True)
class ProfileRecord:
    """One profile record: the counts (an ``analyzers.core.profile.WindowProfile`` as a dict) of every
    prediction one process logged in ``[start, end)``; ``part`` numbers the records of one interval (late
    predictions after the interval was sent come in a later part). Summed, never replacing each other."""

    timestamp: str | None
    model: str | None
    version: str | None
    start: str
    end: str
    process: str
    part: int
    profile: dict[str, Any]

    @property
    def prediction_id(self) -> str:  # the document id: one per process, interval and part
        return f"profile-{self.process}-{self.start}-{self.part}"


def is_profile(record: Mapping[str, Any]) -> bool:
    ns = record.get(NAMESPACE)
    return type(ns) is dict and type(ns.get("profile")) is dict


def read_profile(record: Mapping[str, Any]) -> ProfileRecord:
    """Read a profile record; :class:`RecordError` with the reason when unusable."""
    ns = record.get(NAMESPACE)
    if type(ns) is not dict or type(ns.get("profile")) is not dict:
        raise RecordError("no 'predwatch.profile' object: not a profile record")
    interval, source = ns.get("interval") or {}, ns.get("source") or {}
    start, end = interval.get("start"), interval.get("end")
    if type(start) is not str or type(end) is not str:
        raise RecordError("profile record without 'predwatch.interval.start' and '.end' times")
    model = ns.get("model") or {}
    if type(model) is not dict:
        model = {"name": model}
    version = model.get("version")
    return ProfileRecord(record.get(TIMESTAMP), model.get("name"), None if version is None else str(version),
                         start, end, str(source.get("process") or "unknown"), int(source.get("part") or 0),
                         ns["profile"])


def read_record(record: Mapping[str, Any], *, flat: bool = True) -> "Prediction | Outcome | ProfileRecord":
    """Any record of the contract, by what it holds: an outcome (``actual``), a profile record (``profile``)
    or a prediction; :class:`RecordError` with the reason when it is none of them."""
    if type(record) is dict:
        if is_outcome(record):
            return read_outcome(record)
        if is_profile(record):
            return read_profile(record)
    return read_prediction(record, flat=flat)


def outcome_record(prediction_id: str, actual: Any, *, model: str, version: str | None,
                   timestamp: str) -> dict[str, Any]:
    """An outcome record in canonical form (what :meth:`PredictionLogger.log_outcome` writes)."""
    return {TIMESTAMP: timestamp, "event": {"kind": "event", "dataset": OUTCOME_DATASET},
            NAMESPACE: {"model": {"name": model, "version": version}, "prediction_id": prediction_id,
                        "actual": actual}}


_DOTTED = NAMESPACE + "."


MAX_LINE = 16 * 1024 * 1024  # bytes: a longer line is rejected, not parsed


BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark, which some editors and exporters put on line 1


def strip_bom(line: bytes) -> bytes:
    return line[3:] if line.startswith(BOM) else line


def unparsable_reason(exc: Exception) -> str:
    """Why a JSONL line did not parse, in words for a dead letter or a rejection."""
    return "not valid UTF-8" if "utf-8" in str(exc).lower() else f"not valid JSON ({exc})"


def too_long_reason(size: int) -> str:
    return f"line of {size:,} bytes exceeds the {MAX_LINE:,}-byte limit"


# The canonical nested form's keys (what PredictionLogger writes), in ``predwatch`` and at the top: a record
# holding no other key takes the fast paths (here, and the schema decoder of analyzers.sources.jsonl).
CANONICAL_NAMESPACE = frozenset({"model", "prediction_id", "features", "prediction", "latency_ms", "shadow"})
CANONICAL_TOP = frozenset({TIMESTAMP, LOG_LEVEL, MESSAGE, ECS_VERSION_FIELD, "service", "event", "labels", "host",
                           NAMESPACE})


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
    if not (type(ns) is dict and ns.keys() <= CANONICAL_NAMESPACE
            and (record.keys() <= CANONICAL_TOP or not any(k.startswith(_DOTTED) for k in record))):
        ns = nest(record).get(NAMESPACE)
        if not isinstance(ns, dict):
            raise RecordError("no 'predwatch' object: not a prediction record")
    features = ns.get("features")
    if features is None:
        features = {}
    elif type(features) is not dict:
        raise RecordError(f"'predwatch.features' is a {type(features).__name__}, not an object")
    elif not (kinds := set(map(type, features.values()))).isdisjoint((dict, list)):
        if too_deep(features, MAX_DEPTH):
            raise RecordError(f"'predwatch.features' nests objects deeper than {MAX_DEPTH} levels")
        if flat and dict in kinds:
            features = flatten(features)
    prediction = ns.get("prediction")
    if isinstance(prediction, (dict, list)) and too_deep({"p": prediction}, MAX_DEPTH):
        raise RecordError(f"'predwatch.prediction' nests objects deeper than {MAX_DEPTH} levels")
    model = ns.get("model") or {}
    if type(model) is not dict:
        model = {"name": model}
    name, version = model.get("name"), model.get("version")
    stamp, prediction_id, latency = record.get(TIMESTAMP), ns.get("prediction_id"), ns.get("latency_ms")
    if name is not None and type(name) is not str:
        raise RecordError(f"'predwatch.model.name' is a {_json_type(name)}, not a string")
    if version is not None and (type(version) not in (str, int, float)):
        raise RecordError(f"'predwatch.model.version' is a {_json_type(version)}, not a string or number")
    if prediction_id is not None and type(prediction_id) not in (str, int):
        raise RecordError(f"'predwatch.prediction_id' is a {_json_type(prediction_id)}, not a string")
    if stamp is not None:
        _check_time(stamp)
    return Prediction(
        stamp,
        name,
        None if version is None else str(version),
        None if prediction_id is None else str(prediction_id),
        features,
        prediction,
        latency if type(latency) in (int, float) else None,
        record_context(record),
    )


def _check_time(stamp: Any) -> None:
    if type(stamp) is not str:
        raise RecordError(f"'@timestamp' is a {_json_type(stamp)}, not an ISO-8601 string")
    if not RECORD_TIME.fullmatch(stamp):
        raise RecordError(f"'@timestamp' {stamp[:40]!r} is not a record time: {RECORD_TIME_FORM}")


def _json_type(value: Any) -> str:
    return {dict: "JSON object", list: "JSON array", bool: "boolean", str: "string", int: "number",
            float: "number"}.get(type(value), type(value).__name__)


def prediction_index(model: str, timestamp: str, prefix: str = "predwatch-predictions") -> str:
    """Daily index of a record, routed by the record's own UTC day: ``<prefix>-<model part>.<YYYY.MM.DD>``
    (``2026-11-22T23:30:00-05:00`` goes to the index of 2026.11.23).

    The day follows a ``.``, which no model part contains, so one model's pattern
    (``<prefix>-churn.*``) never matches another model's indices (``churn-v2``).

    >>> prediction_index("checkout-risk", "2026-11-22T07:00:00.123Z")
    'predwatch-predictions-checkout-risk.2026.11.22'
    """
    return f"{prefix}-{index_safe(model)}.{utc_day(timestamp)}"


INDEX_NAME_PART = 100  # characters of a model name kept readable in index names (255 bytes in all)


def index_safe(name: str) -> str:
    """A model name as part of an index name, one-to-one: no two names share indices.

    Lowercase ASCII letters, digits and ``-`` stay as they are. A name with anything
    else (capitals, spaces, dots, ``_``, non-ASCII) or longer than ``INDEX_NAME_PART``
    is written readably and marked with ``_`` and a hash of the exact name: ``_``
    appears nowhere else, so marked and unmarked parts never coincide.

    >>> index_safe("churn"), index_safe("Churn v2")
    ('churn', 'churn-v2_34b5d144')
    """
    readable = "".join(ch if ch in _INDEX_CHARS else "-" for ch in name.lower())[:INDEX_NAME_PART]
    if readable == name and name:
        return name
    return f"{readable}_{hashlib.sha1(name.encode('utf-8')).hexdigest()[:8]}"


_INDEX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
