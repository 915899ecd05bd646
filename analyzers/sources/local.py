"""Window profiles from local JSONL files, streamed in bounded memory.

Lines are parsed in chunks and each chunk is profiled column by column with
vectorised counting; chunk profiles merge into the window profile. Bad lines are
counted as rejected with a reason, never raised.
"""
from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from logging_adapter import contract as c

from ..baseline import Baseline, ColumnBaseline, bin_index
from ..profile import EXAMPLES, UNSEEN_KEEP, ColumnProfile, WindowProfile
from ..values import category_of, is_number, tokenize

CHUNK = 20_000
MAX_LINE = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line that is not a usable record, and why."""

    where: str
    reason: str


def read_jsonl(paths: Iterable[str | Path]) -> Iterator[tuple[str, dict[str, Any] | Rejected]]:
    """``(file:line, object)`` from JSONL files (``.gz`` too); bad lines come out as :class:`Rejected`."""
    for path in paths:
        path = Path(path)
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{path.name}:{number}"
                if len(line) > MAX_LINE:
                    yield where, Rejected(where, f"line of {len(line):,} bytes exceeds the {MAX_LINE:,}-byte limit")
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    reason = "not valid UTF-8" if "utf-8" in str(exc).lower() else f"not valid JSON ({exc})"
                    if not line.endswith(b"\n"):
                        reason = f"truncated last line ({reason})"
                    yield where, Rejected(where, reason)
                    continue
                if not isinstance(obj, dict):
                    yield where, Rejected(where, f"a JSON {type(obj).__name__}, not an object")
                    continue
                yield where, obj


def read_predictions(items: Iterable[dict[str, Any] | tuple[str, dict[str, Any] | Rejected]]
                     ) -> Iterator[c.Prediction | Rejected]:
    """Prediction records from parsed objects (or ``read_jsonl`` pairs); anything else is :class:`Rejected`."""
    for number, item in enumerate(items, 1):
        where = f"record {number}"
        if isinstance(item, tuple):
            where, item = item
        if isinstance(item, Rejected):
            yield item
            continue
        try:
            yield c.read_prediction(item)
        except c.RecordError as exc:
            yield Rejected(where, str(exc))


class LocalProfiler:
    """Profiles prediction records against a baseline, chunk by chunk.

    ``rejections`` keeps the first few reasons for the caller to show.
    """

    def __init__(self, baseline: Baseline, *, model: str | None = None, chunk: int = CHUNK) -> None:
        self.baseline = baseline
        self.model = model
        self.chunk = chunk
        self.rejections: list[Rejected] = []
        self._vocab = {name: frozenset(col.vocabulary or ()) for name, col in baseline.columns.items()
                       if col.kind == "text"}
        self._cats = {name: col.categories or {} for name, col in baseline.columns.items()
                      if col.kind in ("categorical", "boolean")}

    def profile_files(self, paths: Iterable[str | Path]) -> WindowProfile:
        return self.profile(read_predictions(read_jsonl(paths)))

    def profile(self, items: Iterable[c.Prediction | Rejected]) -> WindowProfile:
        window = WindowProfile(model=self.model or self.baseline.model)
        it = iter(items)
        while batch := list(islice(it, self.chunk)):
            good: list[c.Prediction] = []
            for item in batch:
                if isinstance(item, Rejected):
                    window.rejected += 1
                    if len(self.rejections) < EXAMPLES:
                        self.rejections.append(item)
                else:
                    good.append(item)
            if good:
                window = window.merge(self.profile_chunk(good))
        return window

    def profile_chunk(self, records: list[c.Prediction]) -> WindowProfile:
        rows = [r.columns() for r in records]
        stamps = pd.to_datetime([r.timestamp for r in records], utc=True, errors="coerce", format="ISO8601")
        stamps = stamps[stamps.notna()]
        versions = Counter(r.version for r in records)
        prof = WindowProfile(
            model=self.model or self.baseline.model,
            records=len(records),
            start=c.utc_iso(stamps.min().to_pydatetime()) if len(stamps) else None,
            end=c.utc_iso(stamps.max().to_pydatetime()) if len(stamps) else None,
            versions={str(k): n for k, n in versions.items()},
        )
        known = self.baseline.columns
        seen_keys = Counter(chain.from_iterable(rows))
        prof.unknown_columns = {k: n for k, n in seen_keys.items() if k not in known}
        for name, col in known.items():
            if name not in seen_keys:
                prof.columns[name] = ColumnProfile(kind=col.kind, bins=_empty_bins(col))
                continue
            values = [row[name] for row in rows if name in row]
            prof.columns[name] = self._profile_column(name, col, values)
        return prof

    def _profile_column(self, name: str, col: ColumnBaseline, values: list[Any]) -> ColumnProfile:
        prof = ColumnProfile(kind=col.kind, present=len(values))
        if col.kind == "numeric":
            _numeric(prof, col, values)
        elif col.kind == "text":
            _text(prof, values, self._vocab[name])
        else:
            _categorical(prof, col, values, self._cats[name])
        return prof


def _empty_bins(col: ColumnBaseline) -> list[int] | None:
    return [0] * (len(col.edges) + 1) if col.kind == "numeric" and col.edges is not None else None


def _numeric(prof: ColumnProfile, col: ColumnBaseline, values: list[Any]) -> None:
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
                    prof.mismatch_examples.append(v if isinstance(v, (str, bool)) else repr(v))
    arr = np.asarray(numbers, dtype=float)
    finite = np.isfinite(arr)
    prof.nulls += int((~finite).sum())  # NaN/inf that reached the file some other way
    arr = arr[finite]
    prof.bins = np.bincount(bin_index(col.edges or [], arr), minlength=len(col.edges or []) + 1).tolist()
    if len(arr):
        prof.min, prof.max = float(arr.min()), float(arr.max())
        prof.sum, prof.sumsq = float(arr.sum()), float(np.dot(arr, arr))


def _categorical(prof: ColumnProfile, col: ColumnBaseline, values: list[Any], known: dict[str, int]) -> None:
    try:
        counts = Counter(values)
    except TypeError:  # unhashable values (objects, lists)
        counts = Counter(v if isinstance(v, (str, int, float, bool, type(None))) else _Unhashable(v) for v in values)
    unseen: dict[str, int] = {}
    for value, n in counts.items():
        if value is None:
            prof.nulls += n
            continue
        cat = category_of(value)
        if cat is None or (col.kind == "boolean" and not isinstance(value, bool)):
            prof.mismatched += n
            if len(prof.mismatch_examples) < EXAMPLES:
                prof.mismatch_examples.append(value if isinstance(value, str) else repr(value))
        elif cat in known:
            prof.categories[cat] = prof.categories.get(cat, 0) + n
        else:
            prof.unseen += n
            unseen[cat] = unseen.get(cat, 0) + n
    prof.unseen_values = dict(Counter(unseen).most_common(UNSEEN_KEEP))


class _Unhashable:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


def _text(prof: ColumnProfile, values: list[Any], vocab: frozenset[str]) -> None:
    texts = []
    for v in values:
        if v.__class__ is str:
            texts.append(v)
        elif v is None:
            prof.nulls += 1
        else:
            prof.mismatched += 1
            if len(prof.mismatch_examples) < EXAMPLES:
                prof.mismatch_examples.append(repr(v))
    counts = Counter(chain.from_iterable(map(tokenize, texts)))
    oov = {tok: n for tok, n in counts.items() if tok not in vocab}
    prof.texts = len(texts)
    prof.tokens = sum(counts.values())
    prof.oov_tokens = sum(oov.values())
    prof.oov_values = dict(Counter(oov).most_common(UNSEEN_KEEP))
