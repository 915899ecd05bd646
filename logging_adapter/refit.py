"""Records the index mapping refuses, indexed anyway with the refused values kept aside.

Two refusals of a record are about the mapping, not about the record:

- a value of another type than its field was mapped with (``"yes"`` in a boolean
  feature; an object in a categorical one, whose keys the contract reads as other
  features): exactly the records that carry the problem, which the analyzers must
  count, not lose;
- a record that would add fields past ``index.mapping.total_fields.limit`` (a wide
  model, a key per user): Elasticsearch 8.14+ can drop such fields into ``_ignored``
  (``ignore_dynamic_beyond_limit``), other engines refuse the whole record.

:func:`refit` moves the refused values under ``predwatch.unindexed`` (stored, never
indexed, so the mapping stays bounded) and names them in ``predwatch.refused_fields``
(a keyword: the analyzers count a baseline feature named there as a type mismatch,
as they count ``_ignored``) or counts them in ``predwatch.unindexed_keys``. Every
other value of the record is indexed as usual.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import orjson

from . import contract as c

UNINDEXED = "unindexed"  # predwatch.unindexed: the values kept aside, stored and not indexed
REFUSED_FIELDS = f"{c.NAMESPACE}.refused_fields"
UNINDEXED_KEYS = f"{c.NAMESPACE}.unindexed_keys"
_FIELD = re.compile(r"failed to parse field \[([^\]]+)\]")
_LIMIT = "Limit of total fields"
MAPPING_TTL_S = 30.0  # how long an index's mapped fields are trusted before they are asked again


def refused_field(reason: str) -> str | None:
    """The field a refusal names, when the refusal is about that field's mapped type.

    >>> refused_field("document_parsing_exception: [1:120] failed to parse field [predwatch.features.vip] of "
    ...               "type [boolean] in document with id 'a'. Preview of field's value: 'yes'")
    'predwatch.features.vip'
    >>> refused_field("version_conflict_engine_exception: [a]: version conflict") is None
    True
    """
    found = _FIELD.search(reason)
    return found.group(1) if found else None


def over_field_limit(reason: str) -> bool:
    """Whether a refusal is the mapping's field limit.

    >>> over_field_limit("illegal_argument_exception: Limit of total fields [2000] has been exceeded while adding "
    ...                  "new fields [3]")
    True
    """
    return _LIMIT in reason


def refit(source: bytes, reason: str, mapped: Callable[[], set[str]]) -> bytes | None:
    """The record with what the mapping refused kept aside, or None when the refusal is not the mapping's.

    ``mapped`` gives the field paths the record's index maps now (asked only for a field-limit refusal)."""
    if REFUSED_FIELDS.encode() in source or UNINDEXED_KEYS.encode() in source:
        return None  # refitted once already: refused again for another reason
    field = refused_field(reason)
    if field is None and not over_field_limit(reason):
        return None
    try:
        record = orjson.loads(source)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    record = c.nest(record)
    ns = record.get(c.NAMESPACE)
    if not isinstance(ns, dict):
        return None
    aside: dict[str, Any] = {}
    if field is not None:
        value = _pop(record, field.split("."))
        if value is _MISSING:
            return None
        _put(aside, field.split(".")[1:], value)
        if isinstance(value, dict):  # an object where a value was mapped: its keys are other features (the
            ns[UNINDEXED_KEYS.split(".", 1)[1]] = 1  # contract flattens them), the feature itself is absent
        else:
            ns[REFUSED_FIELDS.split(".", 1)[1]] = [field]
    else:
        known = mapped()
        moved = 0
        for path in sorted(set(_leaves(record)) - known):
            if not path.startswith(f"{c.NAMESPACE}.") and not path.startswith("labels."):
                continue  # the contract's own fields are mapped by the template
            _put(aside, path.split(".")[1:] if path.startswith(c.NAMESPACE) else path.split("."),
                 _pop(record, path.split(".")))
            moved += 1
        if not moved:
            return None
        ns[UNINDEXED_KEYS.split(".", 1)[1]] = moved
    ns[UNINDEXED] = aside
    return orjson.dumps(record)


class MappedFields:
    """The field paths each index maps, asked of the cluster at most every ``MAPPING_TTL_S`` seconds."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._seen: dict[str, tuple[float, set[str]]] = {}

    def of(self, index: str) -> set[str]:
        now = time.monotonic()
        cached = self._seen.get(index)
        if cached is None or now - cached[0] > MAPPING_TTL_S:
            found = self.client.indices.get_mapping(index=index, ignore_unavailable=True).body
            paths: set[str] = set()
            for spec in found.values():
                paths |= set(_mapped(spec.get("mappings", {}).get("properties", {})))
            cached = self._seen[index] = (now, paths)
        return cached[1]


_MISSING = object()


def _leaves(obj: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in obj.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += _leaves(value, path + ".")
        else:
            out.append(path)
    return out


def _mapped(props: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for name, spec in props.items():
        path = f"{prefix}{name}"
        out.append(path)
        if isinstance(spec, dict) and "properties" in spec:
            out += _mapped(spec["properties"], path + ".")
    return out


def _pop(obj: dict[str, Any], parts: list[str]) -> Any:
    node = obj
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return _MISSING
    return node.pop(parts[-1], _MISSING) if isinstance(node, dict) else _MISSING


def _put(obj: dict[str, Any], parts: list[str], value: Any) -> None:
    node = obj
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
