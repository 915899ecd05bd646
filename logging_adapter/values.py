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
from collections.abc import Mapping
from datetime import date, datetime, time
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


def scrub(features: Mapping[str, Any], redact: Iterable[str], hashed: Iterable[str], key: bytes) -> dict[str, Any]:
    """Drop the ``redact`` features and replace the ``hashed`` ones by their keyed hash."""
    out = {k: v for k, v in features.items() if k not in redact}
    for name in hashed:
        if name in out:
            out[name] = keyed_hash(out[name], key)
    return out
