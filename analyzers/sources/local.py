"""Window profiles from local JSONL files, streamed in bounded memory.

Chunks of records (read by :mod:`analyzers.sources.jsonl`) are profiled column by column
with vectorised counting; chunk profiles merge into the window profile. Bad lines are
counted as rejected with a reason, never raised.
"""
from __future__ import annotations

import gc
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress, filterfalse, repeat
from operator import is_, itemgetter, not_
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from logging_adapter import contract as c
from logging_adapter.fieldmap import FieldMap

from ..core.baseline import Baseline, ColumnBaseline, bin_index
from ..core.config import CheckConfig
from ..core.profile import (EXAMPLES, SEGMENT_VALUES_KEPT, UNSEEN_KEEP, ColumnProfile, Rejected, WindowProfile,
                            add_examples)
from ..core.quality import QualityProfile, QualityReference, add_labelled, latency_bins, scored_profile
from ..core.segments import MISSING, segment_features
from ..core.values import category_of, is_number, tokenize_all
from ..core.reference import recent_results
from ..core.window import WindowResult, analyze
from .jsonl import CHUNK, Chunk, Columns, chunked, locate, read_records, read_records_range

REASONS_KEPT = 10  # rejected lines whose reason is kept for the user


class LocalProfiler:
    """Profiles prediction records against a baseline, chunk by chunk.

    ``rejections`` keeps the first few reasons for the caller to show.
    """

    def __init__(self, baseline: Baseline, *, model: str | None = None, chunk: int = CHUNK,
                 window: timedelta | None = None, progress: Callable[[int], None] | None = None,
                 fields: FieldMap | None = None) -> None:
        self.baseline = baseline
        self.fields = fields  # records in a service's own layout: where each part of the contract lives
        self.model = model
        self.chunk = chunk
        self.window = window  # None: one profile of everything; else one per UTC-aligned window of this size
        self.rejections: list[Rejected] = []
        self.rejected = 0
        self.progress = progress  # called with the lines read so far (from the parent process only)
        self._read: Any = None  # a counter shared with worker processes
        self._vocab = {name: frozenset(col.vocabulary or ()) for name, col in baseline.columns.items()
                       if col.kind == "text"}
        self._cats = {name: col.categories or {} for name, col in baseline.columns.items()
                      if col.kind in ("categorical", "boolean")}
        self._segments = [col.name for col in segment_features(baseline)]
        self._quality = baseline.quality
        self.pending: dict[str, tuple[float | None, Any, str | None]] = {}  # prediction_id -> (window, output, time)
        self.outcomes: dict[str, tuple[str, Any]] = {}  # prediction_id -> (time, actual): the latest outcome
        self.unmatched_outcomes = 0  # outcomes whose prediction none of the windows holds
        self.early_outcomes = 0  # outcomes stamped before their prediction (left out of the label delays)
        self.profiled: dict[float | None, WindowProfile] = {}  # windows counted by profile records (profile=)

    def profile_files(self, paths: Iterable[str | Path], workers: int = 1) -> WindowProfile:
        """Profile JSONL files into one profile (see :meth:`windows_of_files` for one per window)."""
        return self.merged(self.windows_of_files(paths, workers))

    def windows_of_files(self, paths: Iterable[str | Path], workers: int = 1) -> dict[float | None, WindowProfile]:
        """Profile JSONL files, one profile per window start (epoch seconds; ``None`` without ``window``).

        With ``workers > 1`` large plain files are split by byte ranges and profiled in
        parallel processes, and the profiles merged."""
        paths = [Path(p) for p in paths]
        ranges = _split(paths, workers)
        if workers <= 1 or len(ranges) <= 1:
            return self.assemble(self.windows(read_records(paths, self.fields)))
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork: the children inherit the loaded baseline (and the shared counter) instead of re-reading it
        context = multiprocessing.get_context("fork")
        self._read = context.Value("q", 0)
        global _FORKED
        _FORKED = self  # the workers find the profiler here: nothing of it is pickled
        try:
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                pending = pool.map(_profile_range_in_worker, ranges)
                if self.progress is not None:
                    pending = self._watch(pending)
                parts = list(pending)
        finally:
            _FORKED = None
        windows: dict[float | None, WindowProfile] = {}
        for profiles, rejections, rejected, pending, outcomes, profiled in parts:
            _merge_into(windows, profiles)
            _merge_into(self.profiled, profiled)
            self.rejected += rejected
            self.rejections.extend(rejections[: REASONS_KEPT - len(self.rejections)])
            self.pending.update(pending)
            for pid, (stamp, actual) in outcomes.items():
                self._outcome(c.Outcome(stamp, None, None, pid, actual))
        return self.assemble(windows)

    def _watch(self, pending: Iterator) -> Iterator:
        """Report the workers' shared count while they run, then hand their results on."""
        import threading

        done = threading.Event()
        results: list = []
        failed: list[BaseException] = []

        def collect() -> None:
            try:
                results.extend(pending)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below, never lost
                failed.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=collect, daemon=True)
        thread.start()
        while not done.wait(0.2):
            self.progress(self._read.value)
        thread.join()
        if failed:
            raise failed[0]
        return iter(results)

    def _profile_range(self, part: tuple[Path, int, int]) -> tuple[
            dict[float | None, WindowProfile], list[Rejected], int, dict[str, tuple[float | None, Any, str | None]],
            dict[str, tuple[str, Any]], dict[float | None, WindowProfile]]:
        """In a worker: one byte range's windows, its rejections (located by line) and their count, the
        predictions awaiting an outcome, the outcomes, and the windows counted by profile records."""
        path, start, end = part
        # a worker reads several ranges with the one profiler it forked with: each range reports only its own
        self.rejected, self.rejections, self.pending, self.outcomes, self.profiled = 0, [], {}, {}, {}
        profiles = self.windows(read_records([path], self.fields) if end < 0
                                else read_records_range(path, start, end, self.fields))
        located = [Rejected(locate(path, r.where), r.reason) for r in self.rejections]
        return profiles, located, self.rejected, self.pending, self.outcomes, self.profiled

    def profile(self, items: Iterable[c.Prediction | c.Outcome | Rejected]) -> WindowProfile:
        """One profile of all ``items`` (outcomes joined to their predictions), whatever ``window`` says."""
        return self.merged(self.assemble(self.windows(items)))

    def merged(self, windows: dict[float | None, WindowProfile]) -> WindowProfile:
        """One profile of every window's records, with every rejected line counted."""
        window = WindowProfile(model=self.model or self.baseline.model)
        for key in sorted(windows, key=lambda k: -1 if k is None else k):
            window = window.merge(windows[key])
        window.rejected = self.rejected
        return window

    def windows(self, items: Iterable[c.Prediction | Rejected]) -> dict[float | None, WindowProfile]:
        # Parsing allocates millions of small dicts and no reference cycles: the cyclic
        # collector would run thousands of times for nothing (it tripled the run time).
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._windows(items)
        finally:
            if was_enabled:
                gc.enable()

    def _windows(self, items: Iterable[Chunk | c.Prediction | c.Outcome | c.ProfileRecord | Rejected]
                 ) -> dict[float | None, WindowProfile]:
        model = self.model or self.baseline.model
        windows: dict[float | None, WindowProfile] = {}
        other: dict[str, int] = {}
        read = 0
        for chunk in chunked(items, self.chunk):
            read += len(chunk)
            if self._read is not None:
                with self._read.get_lock():
                    self._read.value += len(chunk)
            elif self.progress is not None:
                self.progress(read)
            good: list[c.Prediction] = []
            for item in chunk.others:
                if isinstance(item, Rejected):
                    self._reject(item)
                elif type(item) is c.Outcome:
                    if item.model is None or item.model == model:
                        self._outcome(item)
                elif type(item) is c.ProfileRecord:
                    if item.model is None or item.model == model:
                        self._profiled(item)
                else:
                    good.append(item)
            records = chunk.columns
            if good:
                records.extend(Columns.of(good))
            if not set(records.models) <= {None, model}:  # a log shared by several models: each is checked
                keep = []                                  # against its own baseline
                for i, name in enumerate(records.models):
                    if name is None or name == model:
                        keep.append(i)
                    else:
                        other[name] = other.get(name, 0) + 1
                records = records.take(keep)
            for key, group, stamps in self._by_window(records):
                profile = self.profile_chunk(group, stamps)
                if self._quality is not None:
                    self._remember(key, group, profile)
                _merge_into(windows, {key: profile})
        if other:  # said once, on the earliest window (or the only one)
            first = min(windows, key=lambda k: -1 if k is None else k) if windows else None
            windows.setdefault(first, WindowProfile(model=model)).other_models = other
        return windows

    def _profiled(self, item: c.ProfileRecord) -> None:
        """A profile record counts its interval into the window holding its start."""
        try:
            start = c.parse_time(item.start).timestamp()
            counts = WindowProfile.from_dict(item.profile)
        except (TypeError, ValueError, KeyError) as exc:
            self._reject(Rejected(f"profile record {item.prediction_id}", f"unusable profile ({exc})"))
            return
        key = None if self.window is None else float(start // self.window.total_seconds() * self.window.total_seconds())
        self.profiled[key] = self.profiled[key].merge(counts) if key in self.profiled else counts

    def assemble(self, windows: dict[float | None, WindowProfile]) -> dict[float | None, WindowProfile]:
        """The windows as the checks see them: a window counted by profile records is theirs alone (the full
        records in it are a sample of what they counted), then outcomes joined to their predictions."""
        for key, counted in self.profiled.items():
            sample = windows.get(key)
            if sample is not None:
                counted.other_models = _sum(counted.other_models, sample.other_models)
            windows[key] = counted
        self.join_outcomes(windows)
        return windows

    def _outcome(self, item: c.Outcome) -> None:
        """Keep the latest outcome of each prediction (a repeated outcome counts once)."""
        stamp = item.timestamp or ""
        kept = self.outcomes.get(item.prediction_id)
        if kept is None or stamp >= kept[0]:
            self.outcomes[item.prediction_id] = (stamp, item.actual)

    def _remember(self, key: float | None, records: Columns, chunk: WindowProfile) -> None:
        """Keep each prediction's window and output until its outcome is joined; count every output into
        the quality profile's score bins (the estimate needs no outcome)."""
        outputs = outputs_of(records, self._quality.column)
        chunk.quality = scored_outputs(self._quality, records, outputs)
        pending = self.pending
        for pid, output, stamp in zip(records.prediction_ids, outputs, records.timestamps):
            if pid is not None:
                pending[pid] = (key, output, stamp)

    def join_outcomes(self, windows: dict[float | None, WindowProfile]) -> None:
        """Outcomes into the quality profile of their prediction's window, whatever their own time."""
        ref = self._quality
        if ref is None:
            return
        joined: dict[float | None, tuple[list, list, list]] = {}
        for pid, (stamp, actual) in self.outcomes.items():
            hit = self.pending.get(pid)
            if hit is None or hit[0] not in windows:
                self.unmatched_outcomes += 1
                continue
            key, output, predicted_at = hit
            outputs, actuals, delays = joined.setdefault(key, ([], [], []))
            outputs.append(output)
            actuals.append(actual)
            delay = c.seconds_between(predicted_at, stamp)
            if delay is not None and delay < 0:
                self.early_outcomes += 1  # stamped before its prediction: not a delay of 0 (see contract)
            elif delay is not None:
                delays.append(delay)
        for key, (outputs, actuals, delays) in joined.items():
            window = windows[key]
            window.quality = window.quality or QualityProfile()
            add_labelled(window.quality, ref, outputs, actuals, delays)

    def _reject(self, item: Rejected) -> None:
        self.rejected += 1
        if len(self.rejections) < REASONS_KEPT:
            self.rejections.append(item)

    def _by_window(self, records: Columns) -> Iterator[tuple[float | None, Columns, pd.DatetimeIndex | None]]:
        """Records grouped by the UTC-aligned window their ``@timestamp`` falls in, with those times parsed."""
        if not len(records):
            return
        if self.window is None:
            yield None, records, None
            return
        size = self.window.total_seconds()
        stamps = c.record_times(records.timestamps)
        seconds = stamps.as_unit("ns").asi8 / 1e9
        groups: dict[float, list[int]] = {}
        for i, (t, bad) in enumerate(zip(seconds, stamps.isna())):
            if bad:
                self._reject(Rejected(f"record at {records.timestamps[i]!r}",
                                      "no usable @timestamp to place it in a window"))
                continue
            groups.setdefault(float(t // size * size), []).append(i)
        if len(groups) == 1 and len(next(iter(groups.values()))) == len(records):
            yield next(iter(groups)), records, stamps
            return
        for key, rows in sorted(groups.items()):
            yield key, records.take(rows), stamps[rows]

    def profile_chunk(self, records: Columns, stamps: pd.DatetimeIndex | None = None) -> WindowProfile:
        """The profile of one chunk of prediction records (all of one window); ``stamps``: their times, if
        already parsed."""
        if stamps is None:
            stamps = c.record_times(records.timestamps)
        stamps = stamps[stamps.notna()]
        prof = WindowProfile(
            model=self.model or self.baseline.model,
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
            prof.columns[name] = self.profile_column(name, col, values)
        if self._segments:
            self._count_offending(prof, rows, aligned)
        return prof

    def _count_offending(self, prof: WindowProfile, rows: list[dict[str, Any]],
                         aligned: dict[str, Sequence[Any]]) -> None:
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
                                             for s in self._segments if s != name}

    def profile_column(self, name: str, col: ColumnBaseline, values: Sequence[Any]) -> ColumnProfile:
        """One column of one chunk: the values of the records that have its key."""
        prof = ColumnProfile(kind=col.kind, present=len(values))
        if col.kind == "numeric":
            _numeric(prof, col, values)
        elif col.kind == "text":
            _text(prof, values, self._vocab[name])
        else:
            _categorical(prof, col, values, self._cats[name])
        return prof


PARALLEL_MIN_BYTES = 32 * 1024 * 1024


def _sum(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return dict(Counter(a) + Counter(b))


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


UNITS_PER_WORKER = 4  # a worker that finishes early takes on more: a core slowed by its neighbours delays less


def _split(paths: list[Path], workers: int) -> list[tuple[Path, int, int]]:
    """Work units: byte ranges of large plain files, whole files otherwise (end -1)."""
    units: list[tuple[Path, int, int]] = []
    for path in paths:
        size = path.stat().st_size
        if workers > 1 and path.suffix != ".gz" and size >= PARALLEL_MIN_BYTES:
            step = max(-(-size // (workers * UNITS_PER_WORKER)), PARALLEL_MIN_BYTES // 2)
            units += [(path, lo, min(lo + step, size)) for lo in range(0, size, step)]
        else:
            units.append((path, 0, -1))
    return units


_ABSENT = object()  # a record without the key


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


def analyze_files(paths: Iterable[str | Path], baseline: Baseline, config: CheckConfig | None = None,
                  workers: int = 1) -> WindowResult:
    """Profile local JSONL files against a baseline and run every check: one window of everything."""
    return analyze_local(paths, baseline, config, workers).windows[0]


_FORKED: "LocalProfiler | None" = None


def _profile_range_in_worker(part: tuple[Path, int, int]):
    return _FORKED._profile_range(part)


def _merge_into(windows: dict[float | None, WindowProfile], more: dict[float | None, WindowProfile]) -> None:
    for key, profile in more.items():
        windows[key] = windows[key].merge(profile) if key in windows else profile


@dataclass
class LocalAnalysis:
    """Local files checked against a baseline: the windows in time order, and what was left out."""

    windows: list[WindowResult]
    rejected: int
    rejections: list[Rejected]
    other_models: dict[str, int]

    @property
    def records(self) -> int:
        return sum(w.profile.records for w in self.windows)

    @property
    def versions(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for w in self.windows:
            for version, n in w.profile.versions.items():
                out[version] = out.get(version, 0) + n
        return out


def analyze_local(paths: Iterable[str | Path], baseline: Baseline, config: CheckConfig | None = None,
                  workers: int = 1, window: timedelta | None = None,
                  progress: Callable[[int], None] | None = None, recent_days: int = 7,
                  fields: FieldMap | None = None) -> LocalAnalysis:
    """Profile local JSONL files against a baseline and run every check: one result per UTC-aligned
    ``window`` in time order (each with its bounds, and judged against the same window on the previous
    ``recent_days`` days too), or one result of everything when ``window`` is None. ``fields`` reads records
    in a service's own layout (OpenTelemetry log records are recognised without it)."""
    profiler = LocalProfiler(baseline, window=window, progress=progress, fields=fields)
    profiles = profiler.windows_of_files(paths, workers)
    other: dict[str, int] = {}
    for profile in profiles.values():
        for model, n in profile.other_models.items():
            other[model] = other.get(model, 0) + n
    if window is None:
        results = [analyze(profiler.merged(profiles), baseline, config, profiler.rejections)]
    else:
        results = []
        for start in sorted(k for k in profiles if k is not None):
            result = analyze(profiles[start], baseline, config, profiler.rejections)
            result.bounds = (c.utc_iso(start), c.utc_iso(start + window.total_seconds()))
            # and against the same window on the previous days, as the daemon does
            earlier = [profiles[start - d * 86400] for d in range(1, recent_days + 1) if start - d * 86400 in profiles]
            result.recent = recent_results(profiles[start], baseline, earlier, config)
            results.append(result)
    for result in results:
        result.unmatched_outcomes = profiler.unmatched_outcomes
        result.early_outcomes = profiler.early_outcomes
    return LocalAnalysis(results, profiler.rejected, profiler.rejections, other)
