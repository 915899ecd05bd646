"""Checking local files: the runner that joins the local reader to the checks (the daemon's runner, for
Elasticsearch, is :mod:`analyzers.daemon.analyzer`).

One result per UTC-aligned window, each judged against the baseline and against the same window on the
previous days, as the daemon judges them.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from logging_adapter import contract as c
from logging_adapter.fieldmap import FieldMap

from .core.baseline import Baseline
from .core.config import CheckConfig
from .core.profile import Rejected
from .core.reference import recent_results
from .core.window import WindowResult, analyze
from .sources.local import LocalProfiler


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


def analyze_files(paths: Iterable[str | Path], baseline: Baseline, config: CheckConfig | None = None,
                  workers: int = 1) -> WindowResult:
    """Profile local JSONL files against a baseline and run every check: one window of everything."""
    return analyze_local(paths, baseline, config, workers).windows[0]
