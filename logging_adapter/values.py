"""Value hygiene: turn whatever a model service hands us into valid JSON, never an exception.

orjson already writes NaN and infinities as ``null``, numpy scalars and arrays
(with ``OPT_SERIALIZE_NUMPY``) and datetimes as ISO strings; :func:`json_default`
covers what it refuses, and :func:`dumps` falls back to a pure-Python clean-up
for the rest (integers beyond 64 bits, a ``default`` that fails).
"""
from __future__ import annotations

import hashlib
import hmac
import math
import numbers
from collections.abc import Mapping
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any, Iterable

import orjson

OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_default(obj: Any) -> Any:
    """orjson ``default`` hook for the types it refuses; unknown objects become strings."""
    if obj is None or _is_missing(obj):
        return None
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).decode("utf-8", errors="replace")
    if isinstance(obj, (datetime, date, time)):  # pandas Timestamp and other subclasses
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return float(obj) if obj.is_finite() else None
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    item = getattr(obj, "item", None)  # numpy / pandas scalars orjson does not know
    if callable(item):
        try:
            value = item()
            if not hasattr(value, "item"):
                return value
        except Exception:  # noqa: BLE001 - fall through to str()
            pass
    return str(obj)


def _is_missing(obj: Any) -> bool:
    """pandas ``NA``/``NaT`` and friends, recognised without importing pandas."""
    return type(obj).__name__ in ("NAType", "NaTType", "NoneType")


def sanitize(obj: Any, _depth: int = 0) -> Any:
    """Pure-Python clean-up into JSON-native values (the slow path behind :func:`dumps`)."""
    if _depth > 32:
        return str(obj)
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj if -(2**63) <= obj < 2**64 else str(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): sanitize(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [sanitize(v, _depth + 1) for v in obj]
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        try:
            return sanitize(tolist(), _depth + 1)
        except Exception:  # noqa: BLE001
            return str(obj)
    try:
        value = json_default(obj)
    except Exception:  # noqa: BLE001
        return _safe_str(obj)
    return value if isinstance(value, (str, type(None))) else sanitize(value, _depth + 1)


def _safe_str(obj: Any) -> str:
    try:
        return str(obj)
    except Exception:  # noqa: BLE001
        return f"<unprintable {type(obj).__name__}>"


def dumps(obj: Any) -> bytes:
    """Serialize to JSON bytes; never raises for any input."""
    try:
        return orjson.dumps(obj, default=json_default, option=OPTIONS)
    except Exception:  # noqa: BLE001 - e.g. integers beyond 64 bits, a failing __str__
        return orjson.dumps(sanitize(obj), default=_safe_str, option=OPTIONS)


def keyed_hash(value: Any, key: bytes) -> str | None:
    """Keyed SHA-256 (HMAC) of a value, hex encoded: pseudonymous but still joinable."""
    if value is None:
        return None
    text = value if isinstance(value, str) else dumps(value).decode()
    return hmac.new(key, text.encode("utf-8", errors="replace"), hashlib.sha256).hexdigest()


class ArgumentError(ValueError):
    """An argument of a logging call that cannot be used; ``kind`` names the problem (said once per kind)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


TIMESTAMP_TYPES = ("a datetime (aware, or naive meaning UTC) or epoch seconds, milliseconds, microseconds or "
                   "nanoseconds (a number, told apart by its size)")
# Epoch numbers by magnitude: below 1e11 seconds (until the year 5138), then ms, µs and ns of the same span.
_EPOCH_UNITS = ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6), (1e20, 1e9))


def epoch_seconds(value: Any, name: str = "timestamp") -> float:
    """A ``timestamp=`` argument as epoch seconds; :class:`ArgumentError` saying what is accepted otherwise."""
    if isinstance(value, datetime):  # pandas Timestamp too
        return (value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)).timestamp()
    if type(value).__name__ == "datetime64":  # numpy, without importing it
        value = value.astype("datetime64[ns]").astype("int64")
        if value == -(2**63):  # NaT
            raise ArgumentError(f"{name}:missing", f"{name}= is NaT: pass {TIMESTAMP_TYPES}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentError(f"{name}:{type(value).__name__}",
                            f"{name}= is a {type(value).__name__} ({_short(value)}): pass {TIMESTAMP_TYPES}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ArgumentError(f"{name}:range", f"{name}={number!r} is not a time: pass {TIMESTAMP_TYPES}")
    for limit, per_second in _EPOCH_UNITS:
        if number < limit:
            return number / per_second
    raise ArgumentError(f"{name}:range",
                        f"{name}={number!r} is too large for epoch nanoseconds: pass {TIMESTAMP_TYPES}")


def _short(value: Any) -> str:
    text = _safe_str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def as_features(features: Any) -> Mapping[str, Any]:
    """``features=`` as a mapping: a dict as it is, a pandas ``Series`` or a numpy record (a structured
    array's row) or a named tuple as its fields; :class:`ArgumentError` for anything else."""
    if isinstance(features, Mapping):
        return features
    names = getattr(getattr(features, "dtype", None), "names", None)
    if names and getattr(features, "ndim", 0) == 0:  # numpy.void / numpy.record
        return {name: features[name] for name in names}
    if getattr(features, "ndim", None) == 1 and callable(getattr(features, "to_dict", None)):  # pandas Series
        return features.to_dict()
    if isinstance(features, tuple) and hasattr(features, "_asdict"):  # DataFrame.itertuples(), namedtuple
        return features._asdict()
    raise ArgumentError(f"features:{type(features).__name__}",
                        f"features is a {type(features).__name__}, not a mapping of feature names to values "
                        "(a dict, a pandas Series or a numpy record)")


MIN_HASH_KEY_BYTES = 16  # a shorter key can be guessed, and then every hashed value recomputed from a guess


class Scrubber:
    """``redact=`` and ``hash=`` applied by path at any depth: ``"customer.email"`` names the ``email`` of the
    ``customer`` object (or a ``"customer.email"`` key), and of every object in a ``customer`` list, the way
    the analyzers and Elasticsearch name that field. A redacted path is dropped (a whole object when the path
    names one); a hashed one is replaced by its keyed hash (each element of a list on its own, so that values
    stay joinable). The caller's objects are never modified."""

    def __init__(self, redact: Iterable[str], hashed: Iterable[str], key: bytes) -> None:
        self.redact = frozenset(redact)
        self.hashed = frozenset(hashed) - self.redact
        self.key = key
        self.inner = frozenset(path.rsplit(".", n)[0] for path in self.redact | self.hashed
                               for n in range(1, path.count(".") + 1))  # every object that holds a target

    def __call__(self, features: Mapping[str, Any]) -> dict[str, Any]:
        return self._object(features, "")

    def _object(self, obj: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            path = f"{prefix}{key}"
            if path in self.redact:
                continue
            if path in self.hashed:
                value = ([keyed_hash(v, self.key) for v in value] if isinstance(value, (list, tuple))
                         else keyed_hash(value, self.key))
            elif path in self.inner:
                value = self._inside(value, path + ".")
            out[key] = value
        return out

    def _inside(self, value: Any, prefix: str) -> Any:
        if isinstance(value, Mapping):
            return self._object(value, prefix)
        if isinstance(value, (list, tuple)):
            return [self._inside(v, prefix) for v in value]
        return value


def scrub(features: Mapping[str, Any], redact: Iterable[str], hashed: Iterable[str], key: bytes) -> dict[str, Any]:
    """Drop the ``redact`` features and replace the ``hashed`` ones by their keyed hash, by path at any depth."""
    return Scrubber(redact, hashed, key)(features)
