"""What a window is compared with: the training traffic of the same hours (of the day, or of the week when the
training data spans two weeks), when the baseline knows them.

An hourly window is not a random sample of training traffic: at 03:00 the mix is the
night's. With a baseline built with ``--time-column``, the reference of a window is
the mixture of the training hours, weighted by the window's own records per hour of
day: a night window meets the night, a day-long window the whole day. A thin hour is
stood for by its neighbourhood, centred on it (:func:`neighbourhood`), and the
reference is worth only the rows its hours are worth, less what the neighbours
disagree on (:func:`_column_worth`): the checks' p-values count both.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

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
    hourly = slices.get("hourly")
    parts = hourly or slices["slices"]
    # per hour of the window: its share of the window, and the training parts that stand for it (its
    # neighbourhood of single hours; for a baseline without hourly counts, the merged slice of the hour)
    stands: list[tuple[float, list[tuple[int, float]]]] = []
    for hour, n in profile.hours.items():  # the profile counts hours of the week
        h = int(hour) if weeks else int(hour) % 24
        if hourly:
            members = neighbourhood(hourly, h)
        else:
            index = slices["hours"].get(str(h))
            members = [] if index is None else [(index, 1.0)]
        members = [(i, share) for i, share in members if parts[i]["rows"]]
        if members:
            stands.append((n, members))
    if not stands:
        return baseline, TRAINING
    norm = sum(n for n, _ in stands)
    stands = [(n / norm, members) for n, members in stands]
    weights: dict[int, float] = {}
    for w, members in stands:
        for i, share in members:
            weights[i] = weights.get(i, 0.0) + w * share
    used = [(w, parts[i]) for i, w in weights.items()]
    # The training rows this reference is worth: a mixture's shares vary by sum(w_i^2 p(1-p) / n_i), as one sample
    # of 1 / sum(w_i^2 / n_i) rows (all of training for a window spread like training, one slice for its hour).
    sampling = sum(w * w / part["rows"] for w, part in used)
    rows = max(1, round(1.0 / sampling))
    columns = {name: _mix(col, name, used, _column_worth(sampling, stands, parts, name) if hourly else rows)
               for name, col in baseline.columns.items()}
    return replace(baseline, rows=rows, columns=columns), SAME_WEEK_HOURS if weeks else SAME_HOURS


def _column_worth(sampling: float, stands: list[tuple[float, list[tuple[int, float]]]], parts: list[dict[str, Any]],
           name: str) -> int:
    """The rows one column of the reference is worth, when neighbours stand for a thin hour: their sampling
    noise, plus how much the neighbours differ from each other in this column (a random effect: the hour in
    the middle may differ from their mean as much), in units of ``p(1-p)``: ``(phi - 1) / n`` per hour, with
    ``phi`` the neighbours' overdispersion (:func:`_overdispersion`) and ``n`` their harmonic mean size."""
    between = 0.0
    for w, members in stands:
        if len(members) > 1:
            harmonic = len(members) / sum(1.0 / parts[i]["rows"] for i, _ in members)
            between += w * w * max(_overdispersion(parts, members, name) - 1.0, 0.0) / harmonic
    return max(1, round(1.0 / (sampling + between)))


def _overdispersion(parts: list[dict[str, Any]], members: list[tuple[int, float]], name: str) -> float:
    """Pearson's chi-square of the hours' counts of one column (nulls, bins or categories, the rest) against
    their equal-weight mixture, over its degrees of freedom: about 1 when the hours are alike, more when the
    column's mix moves from hour to hour."""
    columns = [parts[i]["columns"].get(name) for i, _ in members]
    if any(counts is None for counts in columns):
        return 1.0
    keys = sorted({k for counts in columns for k in counts.get("categories", {})})
    rows = np.array([parts[i]["rows"] for i, _ in members], dtype=float)
    table = np.array([[counts["nulls"], *counts.get("bins", []),
                       *(counts.get("categories", {}).get(k, 0) for k in keys)] for counts in columns], dtype=float)
    table = np.column_stack([table, np.maximum(rows - table.sum(axis=1), 0.0)])
    mixed = np.mean(table / rows[:, None], axis=0)
    seen = mixed > 0
    cells = int(seen.sum())
    if cells < 2:
        return 1.0
    expected = rows[:, None] * mixed[None, seen]
    chi2 = float(np.sum((table[:, seen] - expected) ** 2 / expected))
    return max(chi2 / ((len(members) - 1) * (cells - 1)), _mean_overdispersion(columns))


def _mean_overdispersion(columns: list[dict[str, Any]]) -> float:
    """The same for a numeric column's hourly means (one degree of freedom each, where the bins spread a move of
    the mean over many): their spread around their average against what the within-hour spread explains."""
    if not all("mean" in counts and "bins" in counts for counts in columns):
        return 0.0
    n = np.array([sum(counts["bins"]) for counts in columns], dtype=float)
    means = np.array([counts["mean"] for counts in columns])
    within = float(np.sum(n * np.array([counts["std"] for counts in columns]) ** 2) / max(n.sum(), 1.0))
    if within <= 0 or len(columns) < 2:
        return 0.0
    return float(np.sum(n * (means - means.mean()) ** 2) / within / (len(columns) - 1))


NEIGHBOURHOOD_ROWS = 250  # training rows (effective) an hour's reference gathers from its neighbours at least


def neighbourhood(hourly: list[dict[str, Any]], hour: int, min_rows: float = NEIGHBOURHOOD_ROWS
                  ) -> list[tuple[int, float]]:
    """The training hours that stand for ``hour``, with their weights: the hour itself, and while it is worth
    fewer than ``min_rows`` rows, its neighbours on both sides at once, each hour weighing the same. A share
    that moves steadily with the hour then cancels out on the two sides (a merged slice of 00-05 stood for 03:00
    with the mix of 01:00), and what the neighbours leave uncertain is counted: the p-values take the mixture as
    worth ``1 / sum(w^2 / n)`` rows (:func:`reference_for`).

    >>> [(h, round(w, 2)) for h, w in neighbourhood([{"rows": 100}] * 24, 3)]
    [(3, 0.33), (2, 0.33), (4, 0.33)]
    """
    count = len(hourly)
    members = [hour] if hourly[hour]["rows"] else []
    step = 0
    while 2 * step + 1 < count and _worth(hourly, members) < min_rows:
        step += 1
        members += [h for h in ((hour - step) % count, (hour + step) % count) if hourly[h]["rows"]]
    return [(h, 1.0 / len(members)) for h in members]


def _worth(hourly: list[dict[str, Any]], members: list[int]) -> float:
    """The rows an equal-weight mixture of ``members`` is worth: ``m^2 / sum(1 / n_i)``."""
    if not members:
        return 0.0
    return len(members) ** 2 / sum(1.0 / hourly[h]["rows"] for h in members)


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
        changes["training_categories"] = col.categories
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
