"""Which index and which field, for one model: predwatch's own indices, or the user's own, read in place.

Every search of a model's prediction records asks its :class:`Layout`. The default layout is the contract's
(:mod:`logging_adapter.contract` names, ``<prefix>-predictions-<model>-*`` indices), so nothing changes for
predwatch's own indices. A layout with an ``index`` reads the user's own indices where their service already
logs: field names come from a :class:`~logging_adapter.fieldmap.FieldMap` (or the contract's names when
the records are in predwatch's layout), and those indices are only ever searched, never written.

The user's indices were typed by dynamic mapping, not by predwatch's templates, so their mapping is read
first (:meth:`Layout.inspect`, one ``field_caps`` request for the window's indices): a string there is
``text`` with a ``.keyword`` sub-field, and terms, filters and missing counts use the sub-field; the
timestamp must be a ``date`` (else :class:`LayoutError`); a map path that never occurs is said. The
inspected layout knows the aggregatable field of each path, and :meth:`Layout.column_report` says, for the
baseline's columns, what cannot be aggregated as the baseline means it (a keyword where a number was
expected, a categorical text without ``.keyword``: conflicts, judged by presence only) and what to say once
(a number typed ``long`` by a first value without a fraction truncates the others). A JSON fraction is
typed ``float`` (32 bits): bin edges are rounded as the engine rounds them (:func:`representable`).

Outcome records there (those holding the map's ``actual`` path) are not predictions: every query of
predictions leaves them out. Quality is judged from them by a read-only join that writes only into
predwatch's own indices (:mod:`analyzers.sources.mapped_outcomes`); a map without ``actual`` has no outcomes
to judge by (``analyzers.daemon.analyzer.QUALITY_NOT_JUDGED`` says so, once).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import numpy as np

from logging_adapter import contract as c
from logging_adapter.fieldmap import OTEL_MAP, FieldMap
from logging_adapter.templates import predictions_pattern

OTEL = "otel"  # [[models]] fields = "otel": Elastic's OpenTelemetry layout, predwatch.* attributes
OTEL_INDEX = "logs-*"  # where Elastic's OpenTelemetry ingestion writes log records (data streams)
DATES = frozenset({"date", "date_nanos"})
KEYWORDS = frozenset({"keyword", "constant_keyword", "wildcard"})
INTEGERS = frozenset({"long", "integer", "short", "byte", "unsigned_long"})
STRINGS = frozenset({"text", "match_only_text"})


class LayoutError(ValueError):
    """The user's index cannot be analysed as mapped (a timestamp that is not a date): said, never guessed."""


@dataclass(frozen=True)
class Note:
    """Something about the user's mapping said once per model: ``key`` is what makes it the same note."""

    key: str
    message: str


@dataclass(frozen=True)
class Layout:
    """Where one model's prediction records are and how their parts are named.

    ``index``: the user's index pattern (None: predwatch's own indices); ``fields``: the user's field map
    (None: the contract's names); ``filters``: queries every search adds (OpenTelemetry: only log records
    that carry a prediction). ``caps``: field -> mapped type -> indices, from :meth:`inspect` (None until).

    >>> Layout().timestamp, Layout().column("amount"), Layout().own
    ('@timestamp', 'predwatch.features.amount', True)
    >>> m = Layout(index="svc-*", fields=FieldMap.from_dict({"features": "x", "prediction": "y.proba"}))
    >>> m.column("amount"), m.column("prediction"), m.model_field, m.own
    ('x.amount', 'y.proba', None, False)
    """

    index: str | None = None
    fields: FieldMap | None = None
    filters: tuple[dict[str, Any], ...] = ()
    caps: dict[str, dict[str, list[str]]] | None = field(default=None, compare=False, repr=False)
    indices: tuple[str, ...] = field(default=(), compare=False, repr=False)  # the inspected window's indices

    @classmethod
    def otel(cls, index: str | None = None) -> "Layout":
        """Elastic's OpenTelemetry layout (:data:`~logging_adapter.fieldmap.OTEL_MAP`), leaving out the log
        records that carry no prediction (every other log line of the service in the same data stream)."""
        return cls(index=index or OTEL_INDEX, fields=OTEL_MAP,
                   filters=({"exists": {"field": OTEL_MAP.model}},))

    @property
    def own(self) -> bool:
        """Whether these are predwatch's own indices (written by its shipper, typed by its templates)."""
        return self.index is None

    @property
    def source(self) -> str:
        return self.fields.source if self.fields is not None else f"index {self.index}"

    def predictions(self, prefix: str, model: str) -> str:
        """The index pattern of the model's prediction records."""
        return predictions_pattern(prefix, model) if self.index is None else self.index

    # -- the contract's parts, by the names they have here ----------------------------------------------
    def _path(self, key: str, own: str) -> str | None:
        return own if self.fields is None else getattr(self.fields, key)

    @property
    def timestamp(self) -> str:
        path = self._path("timestamp", c.TIMESTAMP)
        if path is None:
            raise LayoutError(f"{self.source}: no timestamp path: windows of time cannot be told without one")
        return path

    @property
    def model_field(self) -> str | None:
        """The model name's field, aggregatable (None: every record of the index is the model's)."""
        return self.aggregatable(self._path("model", c.MODEL_NAME))

    @property
    def version_field(self) -> str | None:
        return self.aggregatable(self._path("version", c.MODEL_VERSION))

    @property
    def prediction_id_field(self) -> str | None:
        return self._path("prediction_id", c.PREDICTION_ID)

    @property
    def actual_field(self) -> str | None:
        """In the user's indices, the path whose presence makes a record an outcome, not a prediction (as
        :meth:`~logging_adapter.fieldmap.FieldMap.to_contract` tells them); None for predwatch's own indices,
        where outcomes are indexed apart."""
        return None if self.own else self._path("actual", c.ACTUAL)

    @property
    def latency_field(self) -> str | None:
        return self._path("latency_ms", c.LATENCY_MS)

    def column_path(self, name: str) -> str:
        """Where a baseline column lives: a feature under the map's prefix (or the list's path ending in its
        name), ``prediction`` at the prediction path, ``prediction.<output>`` under it."""
        if self.fields is None:
            return c.column_field(name)
        fm = self.fields
        if name == c.PREDICTION_COLUMN or name.startswith(c.PREDICTION_COLUMN + "."):
            if fm.prediction is None:
                return c.column_field(name)
            return fm.prediction + name[len(c.PREDICTION_COLUMN):]
        if isinstance(fm.features, tuple):
            for path in fm.features:
                if path.rsplit(".", 1)[-1] == name:
                    return path
            return name
        return f"{fm.features}.{name}" if fm.features else name

    def column(self, name: str) -> str:
        """The field aggregations of a column use (its ``.keyword`` sub-field where it is ``text``)."""
        return self.aggregatable(self.column_path(name))

    def edges(self, name: str, edges: list[float] | None) -> list[float] | None:
        """A numeric column's bin edges as its mapped type holds them (:func:`representable`): dynamic mapping
        types a JSON fraction ``float`` (32 bits), which rounds both the values and a range's bounds."""
        types = set((self.caps or {}).get(self.column_path(name), {}))
        for lossy in ("half_float", "float"):
            if lossy in types and edges:
                return representable(edges, LOSSY[lossy])
        return edges

    def aggregatable(self, path: str | None) -> str | None:
        """``path``, or its ``.keyword`` sub-field when the inspected mapping has ``path`` as ``text``."""
        if path is None or self.caps is None:
            return path
        types = self.caps.get(path, {})
        if set(types) & STRINGS and self.caps.get(path + ".keyword", {}).keys() & KEYWORDS:
            return path + ".keyword"
        return path

    # -- queries ------------------------------------------------------------------------------------------
    def query(self, model: str, version: str | None = None, *, start: str | None = None,
              end: str | None = None) -> dict[str, Any]:
        """The query of one model's records (of one version when given) in ``[start, end)`` when given."""
        from .search import of_model

        return of_model(model, version, field=self.timestamp if (start or end) else None, start=start, end=end,
                        layout=self)

    # -- the user's mapping ---------------------------------------------------------------------------------
    def paths(self) -> dict[str, list[str]]:
        """Each path this layout reads, with the keys that name it."""
        if self.fields is None:
            return {c.TIMESTAMP: ["timestamp"], c.MODEL_NAME: ["model"], c.MODEL_VERSION: ["version"],
                    c.FEATURES: ["features"], c.PREDICTION: ["prediction"], c.LATENCY_MS: ["latency_ms"]}
        return {p: [k for k in keys if k not in ("actual", "outcome_id")]
                for p, keys in self.fields.paths().items() if set(keys) - {"actual", "outcome_id"}}

    def inspect(self, client: Any, start: str | None = None, end: str | None = None) -> tuple["Layout", list[Note]]:
        """Read the mapping of the user's indices that hold ``[start, end)`` (one ``field_caps`` request): this
        layout knowing each path's aggregatable field, and the notes to say once (a path that never occurs).
        :class:`LayoutError` when the timestamp is mapped as anything but a date. predwatch's own indices need
        none of it: returned as they are."""
        if self.own:
            return self, []
        wanted = sorted(self.paths())
        body: dict[str, Any] = {}
        if start or end:
            bounds = {k: v for k, v in (("gte", start), ("lt", end)) if v is not None}
            body["index_filter"] = {"range": {self.timestamp: bounds}}
        found = self._field_caps(client, wanted, body)
        if not found.get("indices") and body:  # no index holds the window: its (empty) searches still go to
            found = self._field_caps(client, wanted, {})  # the pattern's indices, whose mapping they must follow
        every = sorted(found.get("indices") or [])
        caps = {name: {kind: sorted(spec.get("indices") or every) for kind, spec in types.items()
                       if kind not in ("unmapped", "object", "nested")}
                for name, types in (found.get("fields") or {}).items()}
        inspected = replace(self, caps={k: v for k, v in caps.items() if v}, indices=tuple(every))
        if not every:  # no index at all: nothing to check, nothing to say
            return inspected, []
        return inspected, inspected._path_notes()

    def _field_caps(self, client: Any, wanted: list[str], body: dict[str, Any]) -> dict[str, Any]:
        # fields in the query string: OpenSearch reads them only there, the 8.x client puts them in the body
        found = client.perform_request(
            "POST", f"/{quote(self.index, safe=',*')}/_field_caps", body=body or None,
            params={"fields": ",".join(f for p in wanted for f in (p, p + ".*")), "ignore_unavailable": "true",
                    "allow_no_indices": "true"},
            headers={"accept": "application/json", **({"content-type": "application/json"} if body else {})})
        return found.body if hasattr(found, "body") else found

    def _path_notes(self) -> list[Note]:
        caps = self.caps or {}
        stamp = caps.get(self.timestamp)
        if stamp and set(stamp) - DATES:
            kinds = ", ".join(f"{k} in {', '.join(v)}" for k, v in sorted(stamp.items()) if k not in DATES)
            raise LayoutError(f"{self.source}: the timestamp \"{self.timestamp}\" is mapped as {kinds}, not as a "
                              "date: windows of time cannot be told (map it as date, or point timestamp at a "
                              "date field)")
        notes = []
        for path, keys in self.paths().items():
            if not any(name == path or name.startswith(path + ".") for name in caps):
                notes.append(Note(f"never:{path}", f"{self.source}: path \"{path}\" ({', '.join(keys)}) never "
                                                   f"occurs in the mapping of {self.index}"))
        return notes

    def column_report(self, columns: Iterable[tuple[str, str]]) -> tuple[dict[str, dict[str, str]], list[Note]]:
        """From the inspected mapping, for ``(name, kind)`` columns: the conflicts (column -> index -> why it
        cannot be aggregated as the baseline means it; judged by presence only there) and the notes to say
        once (a number typed ``long``, a categorical string without a ``.keyword`` sub-field).

        >>> caps = {"x.n": {"long": ["i"]}, "x.k": {"text": ["i"]}, "x.s": {"text": ["i"]},
        ...         "x.s.keyword": {"keyword": ["i"]}, "x.f": {"keyword": ["i"]}}
        >>> m = Layout(index="i", fields=FieldMap.from_dict({"features": "x"}), caps=caps)
        >>> conflicts, notes = m.column_report([("n", "numeric"), ("k", "categorical"), ("s", "categorical"),
        ...                                     ("f", "numeric")])
        >>> conflicts
        {'k': {'i': 'mapped as text without a .keyword sub-field'}, 'f': {'i': 'mapped as keyword (a keyword where a number was expected)'}}
        >>> [n.key for n in notes], m.column("s")
        (['long:x.n', 'keyword:x.k'], 'x.s.keyword')
        """
        caps = self.caps or {}
        conflicts: dict[str, dict[str, str]] = {}
        notes: list[Note] = []
        for name, kind in columns:
            path = self.column_path(name)
            types = caps.get(path)
            if not types:
                continue
            agg = self.aggregatable(path)
            for mapped, indices in sorted(types.items()):
                why = _refusal(kind, mapped, has_keyword=agg != path)
                if why is not None:
                    for index in indices:
                        conflicts.setdefault(name, {})[index] = why
                if kind == "numeric" and mapped in INTEGERS:
                    notes.append(Note(f"long:{path}", f"{self.source}: feature {name} (\"{path}\") is mapped as "
                                      f"{mapped} in {', '.join(indices)}: fractional values are truncated there "
                                      "(dynamic mapping typed it by a first value without a fraction)"))
            if kind == "categorical" and set(types) & STRINGS and agg == path:
                notes.append(Note(f"keyword:{path}", f"{self.source}: feature {name} (\"{path}\") is text without "
                                  "a .keyword sub-field: its values cannot be counted (judged by presence only); "
                                  "map it as keyword"))
        return conflicts, notes


LOSSY = {"float": np.float32, "half_float": np.float16}  # mapped types that hold fewer digits than a double


def representable(edges: list[float], dtype: Any) -> list[float]:
    """Bin edges for values held as ``dtype``, each value rounded to it as the engine rounds it: an edge is
    rounded to ``dtype`` too, so that a value logged at an edge (a quantile is often one) still counts at or
    above it; the last edge, just above the training maximum (:func:`~analyzers.core.baseline.numeric_edges`),
    is raised to the ``dtype`` value just above the maximum's, so that the maximum still counts below it.
    What stays unknowable is a value within half a ``dtype`` step of an interpolated edge: the mapping has
    lost which side it was on.

    >>> representable([0.1, 21.0, 23.000000000000004], np.float32)
    [0.10000000149011612, 21.0, 23.000001907348633]
    """
    out = [float(dtype(edge)) for edge in edges]
    below_top = dtype(np.nextafter(edges[-1], -np.inf))
    if len(edges) and float(below_top) >= out[-1]:  # the maximum and the edge just above it share one value
        out[-1] = float(np.nextafter(below_top, dtype(np.inf)))
    return out


def _refusal(kind: str, mapped: str, *, has_keyword: bool) -> str | None:
    """Why a column of ``kind`` mapped as ``mapped`` cannot be aggregated as the baseline means it, or None."""
    if kind == "numeric" and mapped not in INTEGERS | {"double", "float", "half_float", "scaled_float"}:
        return f"mapped as {mapped} (a keyword where a number was expected)" if mapped in KEYWORDS | STRINGS \
            else f"mapped as {mapped}"
    if kind == "boolean" and mapped != "boolean":
        return f"mapped as {mapped}"
    if kind == "categorical" and mapped not in KEYWORDS and not (mapped in STRINGS and has_keyword):
        return f"mapped as {mapped}" + (" without a .keyword sub-field" if mapped in STRINGS else "")
    return None


OWN = Layout()  # predwatch's own indices, the contract's names


def layout_from_config(table: dict[str, Any], name: str) -> Layout:
    """The layout of a ``[[models]]`` entry: ``index = "pattern"`` and ``fields`` (an inline table of the
    field map's keys, or ``"otel"`` for Elastic's OpenTelemetry layout); neither: predwatch's own indices.

    >>> layout_from_config({"fields": "otel"}, "m").index
    'logs-*'
    >>> layout_from_config({"index": "svc-*", "fields": {"features": "x", "timestamp": "t"}}, "m").column("a")
    'x.a'
    >>> layout_from_config({"fields": {"features": "x"}}, "m")
    Traceback (most recent call last):
    ...
    ValueError: [[models]] m: fields needs index = "pattern" (the user's indices to read)
    """
    index, fields = table.get("index"), table.get("fields")
    if index is not None and (type(index) is not str or not index.strip()):
        raise ValueError(f"[[models]] {name}: index = {index!r} is not an index pattern")
    if fields is None:
        return OWN if index is None else Layout(index=index)
    if fields == OTEL:
        return Layout.otel(index)
    if isinstance(fields, str):
        raise ValueError(f"[[models]] {name}: fields = {fields!r}: an inline table of the field map's keys "
                         f'(fields = {{ model = "app.model_name", ... }}) or "{OTEL}"')
    if index is None:
        raise ValueError(f'[[models]] {name}: fields needs index = "pattern" (the user\'s indices to read)')
    fields = FieldMap.from_dict(fields, source=f"predwatch.toml [[models]] {name}")
    if fields.timestamp is None:
        raise ValueError(f"[[models]] {name}: fields needs timestamp: the path of the records' time, which "
                         "windows are told by")
    return Layout(index=index, fields=fields)
