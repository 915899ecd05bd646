"""The counting kernel: prediction records, column by column, into a window profile against a baseline.

Every source feeds it by columns (as whylogs keeps one counting kernel): the local reader's chunks, the text
sample the cluster returns, the batches a serving process counts. It counts per baseline bin, category,
null, type, token and out-of-vocabulary word, and, for each problem a column has, how its offending records
spread over the segment features' values. Pure: no file, no cluster; the sources only read.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress, filterfalse, repeat
from operator import is_, itemgetter, not_
from typing import Any

import numpy as np
import orjson
import pandas as pd

from logging_adapter import contract as c

from .baseline import Baseline, ColumnBaseline, bin_index
from .groups import count_groups, group_value, group_values, is_record_field
from .joint import RowSample
from .profile import EXAMPLES, SEGMENT_VALUES_KEPT, UNSEEN_KEEP, ColumnProfile, WindowProfile, add_examples
from .quality import QualityProfile, QualityReference, latency_bins, scored_profile
from .segments import CONTEXT_FIELDS, CONTEXT_LABELS_KEPT, MISSING, segment_features
from .values import category_of, is_number, is_vector_of, tokenize_all


@dataclass(slots=True)
class Columns:
    """Prediction records column by column, what profiling reads: a file's canonical lines become these
    lists at C speed without one object per record (:meth:`of` turns records into them)."""

    timestamps: list[str | None]
    models: list[str | None]
    versions: list[str | None]
    prediction_ids: list[str | None]
    features: list[dict[str, Any]]
    predictions: list[Any]
    latencies: list[float | None]
    # per record, the fields around the prediction (service, host, labels): a flat dict
    # (:func:`~logging_adapter.contract.record_context`), their raw JSON parts as the fast reader keeps them
    # (``(service, host, labels)``, decoded only when asked: :meth:`record_fields`), or None
    contexts: list[Any] | None = None

    @classmethod
    def of(cls, records: Sequence[c.Prediction]) -> "Columns":
        if not records:
            return cls([], [], [], [], [], [], [], [])
        return cls(*map(list, zip(*((r.timestamp, r.model, r.version, r.prediction_id, r.features, r.prediction,
                                     r.latency_ms, r.context) for r in records))))

    def __len__(self) -> int:
        return len(self.timestamps)

    def _fields(self) -> tuple[list, ...]:
        return (self.timestamps, self.models, self.versions, self.prediction_ids, self.features, self.predictions,
                self.latencies, self.contexts if self.contexts is not None else [None] * len(self.timestamps))

    def take(self, rows: Sequence[int]) -> "Columns":
        """The records at ``rows``, in that order."""
        return Columns(*([col[i] for i in rows] for col in self._fields()))

    def extend(self, more: "Columns") -> None:
        if self.contexts is None:
            self.contexts = [None] * len(self.timestamps)
        for mine, theirs in zip(self._fields(), more._fields()):
            mine.extend(theirs)

    def records(self) -> list[c.Prediction]:
        return list(map(c.Prediction, *self._fields()[:-1], self.record_fields()))

    def record_fields(self) -> list[dict[str, Any] | None]:
        """Each record's fields around its prediction, flat (``service.version``, ``host.name``, ``labels.*``);
        raw parts are decoded once per distinct value (one service writes the same ones again and again)."""
        if self.contexts is None:
            return [None] * len(self.timestamps)
        out: list[dict[str, Any] | None] = []
        cache: dict[tuple, dict[str, Any] | None] = {}
        previous, decoded = _NO_CONTEXT, None
        for ctx in self.contexts:
            if ctx is None or type(ctx) is dict:
                out.append(ctx)
                continue
            if ctx != previous:
                key = tuple(None if part is None else bytes(part) for part in ctx)
                if key not in cache:
                    cache[key] = c.record_context({name: orjson.loads(part) for name, part
                                                   in zip(c.CONTEXT_OBJECTS, key) if part is not None})
                previous, decoded = ctx, cache[key]
            out.append(decoded)
        return out


_NO_CONTEXT = (object(),)


class ProfileCounter:
    """Counts prediction records into window profiles against one baseline (the vocabularies, categories and
    segment features it needs are looked up once)."""

    def __init__(self, baseline: Baseline, model: str | None = None, sampling: bool = True) -> None:
        self.baseline = baseline
        self.model = model or baseline.model
        self._vocab = {name: frozenset(col.vocabulary or ()) for name, col in baseline.columns.items()
                       if col.kind == "text"}
        self._cats = {name: col.categories or {} for name, col in baseline.columns.items()
                      if col.kind in ("categorical", "boolean")}
        self._segments = [col.name for col in segment_features(baseline)]
        groups = baseline.groups
        self._context = list(dict.fromkeys((*CONTEXT_FIELDS, *(f for f in (groups.fields if groups else ())
                                                               if is_record_field(f)))))
        # the inputs the joint checks read from a sample of the records (none: no sample is kept; a serving
        # process keeps none: its profile records would carry it every interval, and the records it logs are one)
        joint = baseline.joint_reference()
        self.sampled = [] if not sampling else sorted({*(joint.inputs if joint is not None else ()),
                               *(n for n, col in baseline.columns.items() if col.kind == "embedding")})

    def count(self, records: Columns, stamps: pd.DatetimeIndex | None = None,
              sample: RowSample | None = None) -> WindowProfile:
        """The profile of one chunk of prediction records (all of one window); ``stamps``: their times, if
        already parsed. ``sample``: the window's record sample to offer the records to (the profile then holds
        none; without it, the profile holds the chunk's own sample)."""
        if stamps is None:
            stamps = c.record_times(records.timestamps)
        stamps = stamps[stamps.notna()]
        prof = WindowProfile(
            model=self.model,
            records=len(records),
            start=c.utc_iso(stamps.min().to_pydatetime()) if len(stamps) else None,
            end=c.utc_iso(stamps.max().to_pydatetime()) if len(stamps) else None,
            versions={str(k): n for k, n in Counter(records.versions).items()},
            hours={str(h): int(n)
                   for h, n in zip(*np.unique(stamps.day_of_week * 24 + stamps.hour, return_counts=True))},
        )
        if set(records.latencies) != {None}:
            prof.latency = latency_bins([v for v in records.latencies if v is not None])
        predictions = records.predictions
        if dict in set(map(type, predictions)):  # object outputs: prediction.<key> columns
            rows = [r.columns() for r in records.records()]
        else:
            rows = records.features
        known = self.baseline.columns
        presence, columns = _keys(rows, known)
        if any(k not in known for k in presence) and _has_objects(rows, known):
            rows = [c.flatten(row) for row in rows]  # nested feature objects: dotted columns
            presence, columns = _keys(rows, known)
        prof.unknown_columns = {k: n for k, n in presence.items() if k not in known}
        aligned: dict[str, Sequence[Any]] = {}  # values of every record, in record order
        for name, col in known.items():
            if name == c.PREDICTION_COLUMN and name not in presence:
                values = aligned[name] = predictions
            elif name in columns:
                values = aligned[name] = columns[name]
            elif presence.get(name) == len(rows):
                values = aligned[name] = list(map(itemgetter(name), rows))
            elif presence.get(name):
                values = [row[name] for row in rows if name in row]
            else:
                prof.columns[name] = ColumnProfile.empty(col.kind, col.edges)
                continue
            prof.columns[name] = self.count_column(name, col, values)
        around = self._count_context(prof, records, aligned)
        if self._segments or around:
            self._count_offending(prof, rows, aligned, around)
        groups = self.baseline.groups
        if groups is not None:
            prof.groups = count_groups(self.group_values(records, rows),
                                       groups.is_positive(outputs_of(records, groups.column)), groups)
        if self.sampled:
            if sample is None:
                sample = prof.sample = RowSample()
            offer(sample, records, rows, self.sampled)
        return prof

    def _count_context(self, prof: WindowProfile, records: Columns, aligned: dict[str, Sequence[Any]]) -> list[str]:
        """The fields around the predictions that the chunk's records carry (``service.version``, ``host.name``,
        ``labels.*``, record fields named by ``--segment``): records per value into ``prof.context``, and each
        field's values into ``aligned`` for the segments of findings. Returns their names."""
        if not records.contexts or all(ctx is None for ctx in records.contexts):
            return []
        contexts = [ctx or _EMPTY for ctx in records.record_fields()]
        seen = set().union(*map(dict.keys, {id(ctx): ctx for ctx in contexts}.values()))
        labels = sorted(k for k in seen if k.startswith(c.LABELS + "."))[:CONTEXT_LABELS_KEPT]
        names = [n for n in dict.fromkeys((*self._context, *labels)) if n in seen and n not in self.baseline.columns]
        for name in names:
            values = aligned[name] = [ctx.get(name) for ctx in contexts]
            counts = Counter(map(_segment_value, values))
            counts.pop(MISSING, None)
            prof.context[name] = dict(counts.most_common(SEGMENT_VALUES_KEPT))
        return names

    def group_values(self, records: Columns, rows: list[dict[str, Any]] | None = None) -> list[list[str]]:
        """Each record's value of every group field of the baseline (:func:`analyzers.core.groups.group_values`),
        from its columns (``rows``: already read) and the fields of the record around it."""
        if rows is None:
            rows = records.features
            if any(type(v) is dict for row in rows[:1] for v in row.values()):
                rows = [c.flatten(row) for row in rows]
        fields = self.baseline.groups.fields
        if not any(map(is_record_field, fields)):
            return group_values(rows, fields)
        contexts = [ctx or _EMPTY for ctx in records.record_fields()]
        return [[group_value(ctx.get(name)) for ctx in contexts] if is_record_field(name)
                else [group_value(row.get(name)) for row in rows] for name in fields]

    def _count_offending(self, prof: WindowProfile, rows: list[dict[str, Any]],
                         aligned: dict[str, Sequence[Any]], around: Sequence[str] = ()) -> None:
        """Per problem of each column, how its offending records spread over the segment features' values
        (read by :mod:`analyzers.core.segments`). Costs a pass over a column only where it has a problem."""
        def column(name: str) -> Sequence[Any]:
            if name not in aligned:
                aligned[name] = [row.get(name, _ABSENT) for row in rows]
            return aligned[name]

        for name, col in self.baseline.columns.items():
            cp = prof.columns[name]
            for problem, count in _problem_counts(col, cp, prof.records):
                if count:
                    rows_at = _offending_rows(problem, col, column(name), self._cats.get(name, {}), count)
                    cp.offending[problem] = {s: _segment_counts(column(s), rows_at)
                                             for s in (*self._segments, *around) if s != name}

    def count_column(self, name: str, col: ColumnBaseline, values: Sequence[Any]) -> ColumnProfile:
        """One column of one chunk: the values of the records that have its key."""
        prof = ColumnProfile(kind=col.kind, present=len(values))
        if col.kind == "numeric":
            _numeric(prof, col, values)
        elif col.kind == "text":
            _text(prof, values, self._vocab[name])
        elif col.kind == "embedding":
            _embedding(prof, values, col.dim or 0)
        else:
            _categorical(prof, col, values, self._cats[name])
        return prof


def scored_outputs(ref: QualityReference, records: Columns, outputs: list[Any] | None = None) -> QualityProfile:
    """:func:`~analyzers.core.quality.scored_profile` of records (``outputs``: their ``ref.column``, if known)."""
    outputs = outputs_of(records, ref.column) if outputs is None else outputs
    binned = ref.binned
    return scored_profile(ref, outputs, None if binned in (None, ref.column) else outputs_of(records, binned))


def outputs_of(records: Columns, column: str) -> list[Any]:
    """One output column of each record: ``prediction`` itself, or ``prediction.<key>`` of an object."""
    key = column.removeprefix(c.PREDICTION_COLUMN).removeprefix(".")
    return [p if not key or type(p) is not dict else c.flatten(p).get(key) for p in records.predictions]


def _keys(rows: list[dict[str, Any]], known: dict[str, Any]) -> tuple[dict[str, int], dict[str, Sequence[Any]]]:
    """How many rows hold each key; and, when every row holds the baseline's keys in one order (the usual
    chunk, which one logger wrote), every column, transposed at C speed without a lookup."""
    first = rows[0] if rows else {}
    if all(map(known.__contains__, first)):
        order = list(first)
        if all(map(order.__eq__, map(list, rows))):  # the same keys in the same order: transposed as they are
            return dict.fromkeys(order, len(rows)), dict(zip(order, zip(*map(dict.values, rows))))
    presence: Counter[str] = Counter()
    for shape, n in Counter(map(tuple, rows)).items():
        for key in shape:
            presence[key] += n
    return presence, {}


def _has_objects(rows: list[dict[str, Any]], known: dict[str, Any]) -> bool:
    """Whether a key the baseline does not know holds an object (a nested feature group)."""
    return any(type(v) is dict for row in rows for k, v in row.items() if k not in known)


_ABSENT = object()  # a record without the key
_EMPTY: dict[str, Any] = {}  # the fields around a prediction whose record has none


def _problem_counts(col: ColumnBaseline, prof: ColumnProfile, records: int) -> list[tuple[str, int]]:
    out = [("missing", records - prof.present + prof.nulls), ("mismatch", prof.mismatched)]
    if col.kind == "categorical":
        out.append(("unseen", prof.unseen))
    elif col.kind == "numeric" and prof.bins and col.edges:
        out.append(("out_of_range", prof.bins[0] + prof.bins[-1]))
    return out


def _offending_rows(problem: str, col: ColumnBaseline, values: Sequence[Any], known: dict[str, int],
                    count: int) -> list[int]:
    """Positions of the ``count`` values with ``problem``, decided as the column profile decides it."""
    absent, kind = _ABSENT, col.kind
    if problem == "missing":
        at = _positions_of(values, None) + _positions_of(values, absent)
        if kind == "numeric" and len(at) < count:  # NaN and infinities count as nulls too
            at += [i for i, v in enumerate(values) if v.__class__ is float and not math.isfinite(v)]
        return at
    if problem == "unseen" and set(map(type, values)) <= _STRING_OR_NONE:
        # strings: C-speed membership; None and absent are not "unseen" but missing
        return [i for i in compress(range(len(values)), map(not_, map(known.__contains__, values)))
                if values[i] is not None and values[i] is not absent]
    if problem == "mismatch":
        if kind == "numeric":
            return [i for i, v in enumerate(values) if v is not None and v is not absent and not is_number(v)]
        if kind == "text":
            return [i for i, v in enumerate(values) if v is not None and v is not absent and v.__class__ is not str]
        boolean = kind == "boolean"
        return [i for i, v in enumerate(values) if v is not None and v is not absent
                and (category_of(v) is None or (boolean and not isinstance(v, bool)))]
    if problem == "unseen":
        return [i for i, v in enumerate(values) if v is not None and v is not absent
                and (cat := category_of(v)) is not None and cat not in known]
    low, high = col.edges[0], col.edges[-1]  # out_of_range: the outer bins
    if set(map(type, values)) <= _NUMBER_OR_NONE:  # not a string, which numpy would read as its number
        numbers = np.asarray(values, dtype=float)  # None reads as NaN, which is in neither bin
        return np.flatnonzero((numbers < low) | (numbers >= high)).tolist()
    return [i for i, v in enumerate(values) if is_number(v) and math.isfinite(v) and (v < low or v >= high)]


_STRING_OR_NONE = frozenset({str, type(None), object})  # object: the type of _ABSENT


_NUMBER_OR_NONE = frozenset({int, float, type(None)})


def _positions_of(values: Sequence[Any], marker: Any) -> list[int]:
    return list(compress(range(len(values)), map(is_, values, repeat(marker))))


def _segment_counts(values: Sequence[Any], rows_at: list[int]) -> dict[str, int]:
    counts = Counter(_segment_value(values[i]) for i in rows_at)
    return dict(counts.most_common(SEGMENT_VALUES_KEPT))


def _segment_value(value: Any) -> str:
    if value is None or value is _ABSENT:
        return MISSING
    return category_of(value) or "(not a category)"


def _numeric(prof: ColumnProfile, col: ColumnBaseline, values: Sequence[Any]) -> None:
    types = set(map(type, values))
    if types <= {float, int}:
        numbers = values
    else:
        numbers = []
        for v in values:
            if v is None:
                prof.nulls += 1
            elif is_number(v):
                numbers.append(v)
            else:
                prof.mismatched += 1
                if len(prof.mismatch_examples) < EXAMPLES:
                    prof.mismatch_examples = add_examples(prof.mismatch_examples, [_shown(v)])
    arr = np.asarray(numbers, dtype=float)
    finite = np.isfinite(arr)
    prof.nulls += int((~finite).sum())  # NaN/inf that reached the file some other way
    arr = arr[finite]
    prof.bins = np.bincount(bin_index(col.edges or [], arr), minlength=len(col.edges or []) + 1).tolist()
    if len(arr):
        prof.min, prof.max = float(arr.min()), float(arr.max())
        # (arr * arr).sum(), not np.dot: a BLAS call wakes OpenBLAS threads, which spin on the cores the
        # worker processes need
        prof.sum, prof.sumsq = float(arr.sum()), float((arr * arr).sum())


_NONE, _STR = frozenset({type(None)}), frozenset({str})


def _categorical(prof: ColumnProfile, col: ColumnBaseline, values: Sequence[Any], known: dict[str, int]) -> None:
    # True, 1 and 1.0 are equal in Python, but only one of them has the right type: with values of more
    # than one type (None aside, which equals nothing else), count by (type, value).
    counts = None
    if len(set(map(type, values)) - _NONE) <= 1:
        try:
            counts = Counter(values)
        except TypeError:  # lists or objects: below
            pass
    if counts is not None:
        pairs = iter(counts.items())
    else:
        try:
            typed = Counter(zip(map(type, values), values))
        except TypeError:  # unhashable values (objects, lists)
            typed = Counter((type(v), v if isinstance(v, (str, int, float, bool, type(None))) else _Unhashable(v))
                            for v in values)
        pairs = ((value, n) for (_, value), n in typed.items())
    unseen: dict[str, int] = {}
    for value, n in pairs:
        if value is None:
            prof.nulls += n
            continue
        cat = category_of(value)
        if cat is None or (col.kind == "boolean" and not isinstance(value, bool)):
            prof.mismatched += n
            if len(prof.mismatch_examples) < EXAMPLES:
                prof.mismatch_examples = add_examples(prof.mismatch_examples, [_shown(value)])
        elif cat in known:
            prof.categories[cat] = prof.categories.get(cat, 0) + n
        else:
            prof.unseen += n
            unseen[cat] = unseen.get(cat, 0) + n
    prof.unseen_values = dict(Counter(unseen).most_common(UNSEEN_KEEP))


def _shown(value: Any) -> Any:
    """A wrong-typed value as an example: strings and booleans as they are, the rest as repr."""
    return str(value) if isinstance(value, str) else value if isinstance(value, bool) else repr(value)


class _Unhashable:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


def _text(prof: ColumnProfile, values: Sequence[Any], vocab: frozenset[str]) -> None:
    if set(map(type, values)) == _STR:  # the usual column: text and nothing else
        texts = values
    else:
        texts = []
        for v in values:
            if v.__class__ is str:
                texts.append(v)
            elif v is None:
                prof.nulls += 1
            else:
                prof.mismatched += 1
                if len(prof.mismatch_examples) < EXAMPLES:
                    prof.mismatch_examples = add_examples(prof.mismatch_examples, [_shown(v)])
    tokens = tokenize_all(texts)
    # only the few words outside the vocabulary are counted
    oov = Counter() if vocab.issuperset(tokens) else Counter(filterfalse(vocab.__contains__, tokens))
    prof.texts = len(texts)
    prof.tokens = len(tokens)
    prof.oov_tokens = oov.total()
    prof.oov_values = dict(oov.most_common(UNSEEN_KEEP))



def offer(sample: RowSample, records: Columns, rows: list[dict[str, Any]], names: list[str]) -> None:
    """Offer each record (keyed by its prediction id, else its time and place) to the window's sample; only the
    few whose hash can still enter it have their inputs copied."""
    # without an id, the record's time and inputs: the same key however the window's records were split
    keys = [pid if pid is not None else f"{records.timestamps[i]}|{sorted(row.items(), key=itemgetter(0))!r}"
            for i, (pid, row) in enumerate(zip(records.prediction_ids, rows))]
    sample.add_all(keys, rows, names)


def _embedding(prof: ColumnProfile, values: Sequence[Any], dim: int) -> None:
    """Nulls and the values that are no array of ``dim`` numbers (another length is a type mismatch); the
    vectors themselves are judged from the window's sample (``embedding_shift``)."""
    for v in values:
        if v is None:
            prof.nulls += 1
        elif not is_vector_of(v, dim):
            prof.mismatched += 1
            if len(prof.mismatch_examples) < EXAMPLES:
                shown = f"array of {len(v)}" if isinstance(v, list) else _shown(v)
                prof.mismatch_examples = add_examples(prof.mismatch_examples, [shown])
