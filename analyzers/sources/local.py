"""Window profiles from local JSONL files, streamed in bounded memory.

Chunks of records (read by :mod:`analyzers.sources.jsonl`) are counted by the kernel
(:class:`analyzers.core.counting.ProfileCounter`) into one profile per window; chunk profiles merge into the
window's, outcomes join their predictions, and large files are read in byte ranges by worker processes.
Bad lines are counted as rejected with a reason, never raised.
"""
from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from logging_adapter import contract as c
from logging_adapter.fieldmap import FieldMap

from ..core.baseline import Baseline
from ..core.counting import Columns, ProfileCounter, outputs_of, scored_outputs
from ..core.joint import RowSample
from ..core.profile import Rejected, WindowProfile
from ..core.groups import add_group_labels
from ..core.quality import QualityProfile, add_labelled
from ..core.versions import VersionCounter, adjusted_feature
from .jsonl import CHUNK, Chunk, chunked, locate, read_records, read_records_range

REASONS_KEPT = 10  # rejected lines whose reason is kept for the user


class LocalProfiler:
    """Profiles prediction records against a baseline, chunk by chunk.

    ``rejections`` keeps the first few reasons for the caller to show.
    """

    def __init__(self, baseline: Baseline, *, model: str | None = None, chunk: int = CHUNK,
                 window: timedelta | None = None, progress: Callable[[int], None] | None = None,
                 fields: FieldMap | None = None, compare: tuple[str, str] | None = None) -> None:
        self.baseline = baseline
        self.fields = fields  # records in a service's own layout: where each part of the contract lives
        self.model = model
        self.chunk = chunk
        self.window = window  # None: one profile of everything; else one per UTC-aligned window of this size
        self.rejections: list[Rejected] = []
        self.rejected = 0
        self.progress = progress  # called with the lines read so far (from the parent process only)
        self._read: Any = None  # a counter shared with worker processes
        self.counter = ProfileCounter(baseline, model)
        self._quality = baseline.quality
        self.pending: dict[str, tuple[float | None, Any, str | None]] = {}  # prediction_id -> (window, output, time)
        self.outcomes: dict[str, tuple[str, Any]] = {}  # prediction_id -> (time, actual): the latest outcome
        self.unmatched_outcomes = 0  # outcomes whose prediction none of the windows holds
        self.early_outcomes = 0  # outcomes stamped before their prediction (left out of the label delays)
        self.profiled: dict[float | None, WindowProfile] = {}  # windows counted by profile records (profile=)
        # two versions compared (champion, candidate): each window also profiled per version, pairs matched
        self.versions = None if compare is None else VersionCounter(baseline, self.counter, *compare)
        # (version, id) -> (window, output, time, segment values)
        self.version_pending: dict[tuple[str, str], tuple[float | None, Any, str | None, tuple]] = {}

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
        for profiles, rejections, rejected, pending, outcomes, profiled, versioned in parts:
            _merge_into(windows, profiles)
            if self.versions is not None:
                version_pending, waiting, limit = versioned
                self.version_pending.update(version_pending)
                self.versions.absorb(waiting, limit, windows)
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
        self.version_pending = {}
        if self.versions is not None:
            self.versions.waiting = {}
        profiles = self.windows(read_records([path], self.fields) if end < 0
                                else read_records_range(path, start, end, self.fields))
        located = [Rejected(locate(path, r.where), r.reason) for r in self.rejections]
        versioned = None if self.versions is None else (self.version_pending, self.versions.waiting,
                                                         self.versions.limit)
        return profiles, located, self.rejected, self.pending, self.outcomes, self.profiled, versioned

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
        samples: dict[float | None, RowSample] = {}  # each window's record sample, offered to chunk by chunk
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
                sample = samples.setdefault(key, RowSample()) if self.counter.sampled else None
                profile = self.counter.count(group, stamps, sample)
                if self._quality is not None:
                    self._remember(key, group, profile)
                if self.versions is not None:
                    profile.compared = self.versions.count(group, stamps, key)
                    if self._quality is not None:
                        self._remember_versions(key, group)
                _merge_into(windows, {key: profile})
        for key, sample in samples.items():
            windows[key].sample = sample
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
                counted.sample = sample.sample  # the logged records are a sample already: the joint checks read it
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
        if self.baseline.groups is not None:  # and its groups' values, whose quality the outcome counts into too
            values = list(zip(*self.counter.group_values(records)))
            for pid, output, stamp, group in zip(records.prediction_ids, outputs, records.timestamps, values):
                if pid is not None:
                    pending[pid] = (key, output, stamp, group)
            return
        for pid, output, stamp in zip(records.prediction_ids, outputs, records.timestamps):
            if pid is not None:
                pending[pid] = (key, output, stamp)

    def _remember_versions(self, key: float | None, records: Columns) -> None:
        """The compared versions' predictions awaiting their outcome, apart (a shadow's two records share an id),
        with their segment values (the quality of comparable traffic is reweighted by them)."""
        wanted = (self.versions.champion, self.versions.candidate)
        rows = [i for i, (pid, v) in enumerate(zip(records.prediction_ids, records.versions))
                if pid is not None and v in wanted]
        if not rows:
            return
        group = records.take(rows)
        outputs = outputs_of(group, self._quality.column)
        segments = self.versions.segment_values(group.features)
        pending = self.version_pending
        for pid, version, output, stamp, segs in zip(group.prediction_ids, group.versions, outputs, group.timestamps,
                                                     segments):
            pending[(version, pid)] = (key, output, stamp, segs)

    def join_outcomes(self, windows: dict[float | None, WindowProfile]) -> None:
        """Outcomes into the quality profile of their prediction's window, whatever their own time."""
        if self.versions is not None:
            self.versions.finish(windows)
            if self._quality is not None:
                self._join_versions(windows)
        ref = self._quality
        if ref is None:
            return
        joined: dict[float | None, tuple[list, list, list, list]] = {}
        for pid, (stamp, actual) in self.outcomes.items():
            hit = self.pending.get(pid)
            if hit is None or hit[0] not in windows:
                self.unmatched_outcomes += 1
                continue
            key, output, predicted_at = hit[:3]
            outputs, actuals, delays, groups = joined.setdefault(key, ([], [], [], []))
            outputs.append(output)
            actuals.append(actual)
            if len(hit) > 3:
                groups.append(hit[3])
            delay = c.seconds_between(predicted_at, stamp)
            if delay is not None and delay < 0:
                self.early_outcomes += 1  # stamped before its prediction: not a delay of 0 (see contract)
            elif delay is not None:
                delays.append(delay)
        for key, (outputs, actuals, delays, groups) in joined.items():
            window = windows[key]
            window.quality = window.quality or QualityProfile()
            add_labelled(window.quality, ref, outputs, actuals, delays)
            if groups:
                add_group_labels(window.groups, ref, self.baseline.groups.fields, groups, outputs, actuals)

    def _join_versions(self, windows: dict[float | None, WindowProfile]) -> None:
        """Outcomes into the quality of each compared version's own predictions (of both, for a shadow's id)."""
        joined: dict[tuple[float | None, str], tuple[list, list, list]] = {}
        for pid, (stamp, actual) in self.outcomes.items():
            for version in (self.versions.champion, self.versions.candidate):
                hit = self.version_pending.get((version, pid))
                if hit is not None and hit[0] in windows:
                    outputs, actuals, segments = joined.setdefault((hit[0], version), ([], [], []))
                    outputs.append(hit[1])
                    actuals.append(actual)
                    segments.append(hit[3])
        adjust = {key: adjusted_feature(windows[key].compared, self.baseline) for key, _ in joined
                  if windows[key].compared is not None}
        for (key, version), (outputs, actuals, segments) in joined.items():
            compared = windows[key].compared
            if compared is not None:
                self.versions.add_labelled(compared, version, self._quality, outputs, actuals, segments, adjust[key])

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


PARALLEL_MIN_BYTES = 32 * 1024 * 1024


def _sum(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return dict(Counter(a) + Counter(b))


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


_FORKED: "LocalProfiler | None" = None


def _profile_range_in_worker(part: tuple[Path, int, int]):
    return _FORKED._profile_range(part)


def _merge_into(windows: dict[float | None, WindowProfile], more: dict[float | None, WindowProfile]) -> None:
    for key, profile in more.items():
        windows[key] = windows[key].merge(profile) if key in windows else profile
