"""What a window is compared with: the training traffic of the same hours (of the day, or of the week when the
training data spans two weeks), when the baseline knows them.

An hourly window is not a random sample of training traffic: at 03:00 the mix is the
night's. With a baseline built with ``--time-column``, the reference of a window is
the mixture of the training hour slices, weighted by the window's own records per
hour of day: a night window meets the night, a day-long window the whole day.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from .baseline import Baseline, ColumnBaseline
from .checks import evaluate
from .profile import WindowProfile

TRAINING = "training"
SAME_HOURS = "training, same hours of day"
SAME_WEEK_HOURS = "training, same hours of the week"
RECENT = "recent"
NOT_AGAINST_RECENT = frozenset({"out_of_range"})  # judged against training's range only (PSI sees the tails)


def reference_for(baseline: Baseline, profile: WindowProfile) -> tuple[Baseline, str]:
    """The baseline to judge ``profile`` against, and its name for the findings.

    >>> from analyzers.core.baseline import Baseline
    >>> reference_for(Baseline("m", None, 0, {}), WindowProfile(hours={"3": 10}))[1]
    'training'
    """
    slices = baseline.time_slices
    total = sum(profile.hours.values())
    if not slices or not total:
        return baseline, TRAINING
    weeks = slices.get("period") == "week"
    weights: dict[int, float] = {}
    for hour, n in profile.hours.items():  # the profile counts hours of the week
        index = slices["hours"].get(str(int(hour) if weeks else int(hour) % 24))
        if index is not None:
            weights[index] = weights.get(index, 0.0) + n / total
    used = [(w, slices["slices"][i]) for i, w in weights.items() if slices["slices"][i]["rows"]]
    if not used:
        return baseline, TRAINING
    rows = sum(part["rows"] for _, part in used)  # the training rows behind this reference
    columns = {name: _mix(col, name, used, rows) for name, col in baseline.columns.items()}
    return replace(baseline, rows=rows, columns=columns), SAME_WEEK_HOURS if weeks else SAME_HOURS


def _mix(col: ColumnBaseline, name: str, used: list[tuple[float, dict[str, Any]]], rows: int) -> ColumnBaseline:
    """One column as the weighted mixture of its hour slices (shares mixed, counts scaled to ``rows``)."""
    parts = [(w, part["rows"], part["columns"].get(name)) for w, part in used]
    if any(counts is None for _, _, counts in parts):
        return col
    null_rate = sum(w * counts["nulls"] / n for w, n, counts in parts)
    mismatch_rate = col.mismatched / col.rows if col.rows else 0.0
    scale = rows / col.rows if col.rows else 0.0
    changes: dict[str, Any] = {"rows": rows, "nulls": null_rate * rows, "mismatched": mismatch_rate * rows,
                               # the unseen mass stays training's as a share: its counts scale with the rows
                               "singletons": col.singletons * scale, "other_count": col.other_count * scale}
    present = rows * (1.0 - null_rate)
    if col.kind == "numeric" and col.bin_counts and all("bins" in counts for _, _, counts in parts):
        changes["bin_counts"] = _mixed_counts([(w, counts["bins"]) for w, _, counts in parts], present)
        changes["mean"], changes["std"] = _mixed_moments(parts)
    if col.kind in ("categorical", "boolean") and col.categories and all("categories" in c for _, _, c in parts):
        names = list(col.categories)
        shares = [(w, [counts["categories"].get(k, 0) for k in names]) for w, _, counts in parts]
        changes["categories"] = dict(zip(names, _mixed_counts(shares, present * _known_share(col))))
    return replace(col, **changes)


def _mixed_moments(parts: list[tuple[float, int, dict[str, Any]]]) -> tuple[float | None, float | None]:
    """Mean and standard deviation of the mixture of the slices (None for a baseline that did not keep them:
    the messages then name no reference mean rather than the whole of training's)."""
    if not all("mean" in counts for _, _, counts in parts):
        return None, None
    total = sum(w for w, _, _ in parts) or 1.0
    mean = sum(w * counts["mean"] for w, _, counts in parts) / total
    second = sum(w * (counts["std"] ** 2 + counts["mean"] ** 2) for w, _, counts in parts) / total
    return mean, max(second - mean * mean, 0.0) ** 0.5


def _known_share(col: ColumnBaseline) -> float:
    """Share of a column's values that fall in its stored categories (the rest is the unseen mass)."""
    known = sum((col.categories or {}).values())
    return known / col.values if col.values else 1.0


def _mixed_counts(parts: list[tuple[float, list[float]]], total: float) -> list[float]:
    """Weighted mixture of the parts' shares, as counts summing to ``total``."""
    mixed = [0.0] * len(parts[0][1])
    for w, counts in parts:
        n = sum(counts)
        if n:
            for i, k in enumerate(counts):
                mixed[i] += w * k / n
    norm = sum(mixed) or 1.0
    return [total * m / norm for m in mixed]


def recent_reference(baseline: Baseline, recent: WindowProfile) -> Baseline:
    """The recent past as a baseline: the counts of ``recent`` (merged profiles of the same window on
    previous days) on the training bins and categories, so that the checks ask "did something change
    since then?" instead of "is this still the training data?"."""
    columns = {}
    for name, col in baseline.columns.items():
        prof = recent.columns.get(name)
        if prof is None:
            columns[name] = col
            continue
        rows = recent.records
        changes: dict[str, Any] = {"rows": rows, "nulls": rows - prof.present + prof.nulls,
                                   "mismatched": prof.mismatched}
        if col.kind == "numeric" and prof.bins and col.bin_counts and len(prof.bins) == len(col.bin_counts):
            changes["bin_counts"] = list(prof.bins)
            changes["mean"], changes["std"] = prof.mean_std() or (None, None)
        if col.kind in ("categorical", "boolean") and col.categories is not None:
            changes["categories"] = {k: prof.categories.get(k, 0) for k in col.categories}
            changes["singletons"], changes["other_count"] = 0, prof.unseen  # unseen in training: expected now
        if col.kind == "text" and prof.tokens:
            changes["expected_oov_rate"] = prof.oov_tokens / prof.tokens
        columns[name] = replace(col, **changes)
    return replace(baseline, rows=recent.records, columns=columns, time_slices=None, quality=None,
                   latency=recent.latency or None)


RECENT_MIN_RECORDS = 100  # earlier records needed before the recent past is a reference


def recent_results(profile: WindowProfile, baseline: Baseline, earlier: list[WindowProfile],
                   config: Any = None) -> list[Any]:
    """The window judged against ``earlier`` windows (the same window on previous days), merged:
    "did something change since then?". Empty without enough history. One implementation for the
    daemon (profiles stored in Elasticsearch) and for local files."""
    merged = WindowProfile(model=profile.model)
    for past in earlier:
        merged = merged.merge(past)
    if merged.records < RECENT_MIN_RECORDS or profile.records == 0:
        return []
    checked = evaluate(profile, recent_reference(baseline, merged), config, reference=RECENT)
    return [r for r in checked if r.check not in NOT_AGAINST_RECENT]
