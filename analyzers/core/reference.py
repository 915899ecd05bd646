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
from . import registry
from .checks import evaluate
from .profile import WindowProfile

TRAINING = "training"
SAME_HOURS = "training, same hours of day"
SAME_WEEK_HOURS = "training, same hours of the week"
RECENT = "recent"


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


def recent_reference(baseline: Baseline, recent: WindowProfile, rows: dict[str, int] | None = None) -> Baseline:
    """The recent past as a baseline: the counts of ``recent`` (merged profiles of the same window on
    previous days) on the training bins and categories, so that the checks ask "did something change
    since then?" instead of "is this still the training data?". ``rows``: per column, the records of the days
    its counts come from, when a column left out some days (:func:`robust_recent`)."""
    columns = {}
    for name, col in baseline.columns.items():
        prof = recent.columns.get(name)
        if prof is None:
            columns[name] = col
            continue
        n = (rows or {}).get(name, recent.records)
        changes: dict[str, Any] = {"rows": n, "nulls": n - prof.present + prof.nulls,
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
    return replace(baseline, rows=recent.records, columns=columns, time_slices=None, quality=None, groups=None,
                   latency=recent.latency or None)


RECENT_MIN_RECORDS = 100  # earlier records needed before the recent past is a reference
OUTLIER_MIN_DAYS = 3  # days needed before one of them can be told to be unlike the others
OUTLIER_SPREAD = 3.0  # a day is unlike the others beyond this many times their median distance to the middle
OUTLIER_MIN_DISTANCE = 0.1  # ... and beyond this share of its values moved (total variation): noise never is


def recent_results(profile: WindowProfile, baseline: Baseline, earlier: list[WindowProfile],
                   config: Any = None) -> list[Any]:
    """The window judged against ``earlier`` windows (the same window on previous days): "did something change
    since then?". Empty without enough history. One implementation for the daemon (profiles stored in
    Elasticsearch) and for local files.

    Two rules keep an incident of the past from poisoning the reference. Per column, the days unlike the
    others (a one-day unit change) are left out of it (:func:`robust_recent`), so that the day after a one-day
    incident is not news. And a finding is not news again when the latest earlier day already had it against
    the days before it, and the window is like that day: a change that persists is news once, on its first day,
    not on every day until it holds most of the recent days."""
    merged, rows = robust_recent(baseline, earlier)
    if merged.records < RECENT_MIN_RECORDS or profile.records == 0:
        return []
    checked = [r for r in evaluate(profile, recent_reference(baseline, merged, rows), config, reference=RECENT)
               if registry.spec(r.check).against_recent]
    found = {(r.check, r.feature) for r in checked if r.status != "ok"}
    if not found or len(earlier) < 2:
        return checked
    latest = _latest(earlier)
    before, before_rows = robust_recent(baseline, [p for p in earlier if p is not latest])
    if latest.records < RECENT_MIN_RECORDS or before.records < RECENT_MIN_RECORDS:
        return checked
    had = found & _found(latest, recent_reference(baseline, before, before_rows), config)
    if not had:
        return checked
    still = had - _found(profile, recent_reference(baseline, latest), config)  # the window is like the latest day
    return [_not_news(r) if (r.check, r.feature) in still else r for r in checked]


def _found(profile: WindowProfile, reference: Baseline, config: Any) -> set[tuple[str, str]]:
    return {(r.check, r.feature) for r in evaluate(profile, reference, config, reference=RECENT) if r.status != "ok"}


def _not_news(r: Any) -> Any:
    """A finding against the recent days that the latest day already had: the change is not new."""
    return replace(r, status="ok", threshold=r.warning_threshold)


def _latest(earlier: list[WindowProfile]) -> WindowProfile:
    """The most recent of the earlier windows (by start; the first given when they carry none)."""
    if all(p.start for p in earlier):
        return max(earlier, key=lambda p: p.start)
    return earlier[0]


def robust_recent(baseline: Baseline, earlier: list[WindowProfile]) -> tuple[WindowProfile, dict[str, int]]:
    """The earlier windows merged, each column without the days whose own profile of it was unlike the
    others' (and the records per column of the days kept).

    A day is unlike the others when its column's shares (nulls, wrong types, bins or categories, unseen, OOV
    words) are further from the per-share median of the days than ``OUTLIER_SPREAD`` times the days' median
    distance, and by at least ``OUTLIER_MIN_DISTANCE``: a one-day incident among a week is, a busy day that
    moves a few percent is not. Fewer than ``OUTLIER_MIN_DAYS`` days, or a majority unlike the middle, keep
    every day (nothing to tell them apart by)."""
    merged = WindowProfile(model=earlier[0].model if earlier else None)
    for past in earlier:  # without their record samples: the joint checks are judged against training only
        merged = merged.merge(replace(past, sample=None, compared=None) if past.sample or past.compared else past)
    rows: dict[str, int] = {}
    if len(earlier) < OUTLIER_MIN_DAYS:
        return merged, rows
    for name, col in baseline.columns.items():
        kept = _typical_days(col, name, earlier)
        if kept is None:
            continue
        column = None
        for past in kept:
            prof = past.columns.get(name)
            if prof is not None:
                column = prof if column is None else column.merge(prof)
        if column is not None:
            merged.columns[name] = column
            rows[name] = sum(past.records for past in kept)
    return merged, rows


def _typical_days(col: ColumnBaseline, name: str, earlier: list[WindowProfile]) -> list[WindowProfile] | None:
    """The days whose profile of ``name`` is like the others', or None when every day is kept."""
    shares = [_shares(col, name, past) for past in earlier]
    usable = [i for i, s in enumerate(shares) if s is not None]
    if len(usable) < OUTLIER_MIN_DAYS:
        return None
    middles = []
    for part in range(min(len(shares[i]) for i in usable)):  # (a day profiled on other bins: its totals only)
        middle = np.median(np.array([shares[j][part] for j in usable]), axis=0)
        middles.append(middle / middle.sum() if middle.sum() > 0 else None)
    distances = {i: max((0.5 * float(np.abs(shares[i][part] - middle).sum())
                         for part, middle in enumerate(middles) if middle is not None), default=0.0)
                 for i in usable}
    typical = float(np.median(list(distances.values())))
    unlike = {i for i, d in distances.items() if d > max(OUTLIER_SPREAD * typical, OUTLIER_MIN_DISTANCE)}
    if not unlike or 2 * len(unlike) >= len(usable):
        return None
    return [past for i, past in enumerate(earlier) if i not in unlike]


def _shares(col: ColumnBaseline, name: str, past: WindowProfile) -> list[np.ndarray] | None:
    """One day's column as vectors of shares: (missing, wrong type, present) over the records, and the values
    over bins or categories (unseen last), and the words (OOV, known) for text. None for an empty day."""
    prof = past.columns.get(name)
    if not past.records:
        return None
    if prof is None:
        present = np.array([float(past.records), 0.0, 0.0])
        values = _values_vector(col, None)
    else:
        present = np.array([past.records - prof.present + prof.nulls, prof.mismatched, max(prof.values, 0)],
                           dtype=float)
        values = _values_vector(col, prof)
    out = [present / present.sum()]
    if values is not None:
        out.append(values / values.sum() if values.sum() else values)
    return out


def _values_vector(col: ColumnBaseline, prof: Any) -> np.ndarray | None:
    if col.kind == "numeric" and col.bin_counts:
        bins = (prof.bins if prof is not None else None) or [0] * len(col.bin_counts)
        return np.array(bins, dtype=float) if len(bins) == len(col.bin_counts) else None
    if col.kind in ("categorical", "boolean") and col.categories is not None:
        names = list(col.categories)
        if prof is None:
            return np.zeros(len(names) + 1)
        return np.array([prof.categories.get(k, 0) for k in names] + [prof.unseen], dtype=float)
    if col.kind == "text":
        if prof is None:
            return np.zeros(2)
        return np.array([prof.oov_tokens, max(prof.tokens - prof.oov_tokens, 0)], dtype=float)
    return None
