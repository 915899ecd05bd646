"""Where a finding concentrates: segments over-represented among the offending records.

For a null-rate, type, unseen-category or out-of-range finding on one feature, the
profile keeps, per other categorical input feature, how the offending records
spread over its values (``ColumnProfile.offending``). Comparing that spread with
the whole window's says "92% of the nulls come from device=web, which is 20% of
records". Local files count it while profiling; Elasticsearch answers it with one
filtered ``terms`` aggregation per finding (:meth:`EsWindowProfiler.offending`);
both fill the same structure and this module reads nothing else.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from logging_adapter import contract as c

from . import registry, stats
from .baseline import Baseline, ColumnBaseline
from .profile import ColumnProfile, WindowProfile

MISSING = "(missing)"  # the segment value of records that lack the segment feature
# The fields around the predictions that findings may be explained by, where records carry them (the version
# deployed, the host); every ``labels.*`` field and every record field given with ``--segment`` too.
CONTEXT_FIELDS = (c.SERVICE_VERSION, c.HOST_NAME)
CONTEXT_LABELS_KEPT = 20  # labels.* fields looked at per chunk of records (the first in name order)
SHOWN = 3  # segments named per finding
MIN_OFFENDING = 20  # offending records below which no concentration is claimed
MIN_H = 0.5  # Cohen's h between the share among offenders and the share among all records
MIN_SHARE = 0.25  # a segment named must hold at least this share of the offenders
MAX_P = 1e-3  # and be that unlikely under "offenders are spread like all records" (Bonferroni-corrected)

Offending = dict[str, dict[str, int]]  # segment feature -> value -> offending records
Fetch = Callable[[str, str], Offending]  # (feature, problem) -> offending counts, from a source


@dataclass(frozen=True)
class Segment:
    """One over-represented segment of a finding's offending records."""

    feature: str
    value: str
    count: int  # offending records in the segment
    share_of_offending: float
    share_of_window: float

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "value": self.value, "count": self.count,
                "share_of_offending": round(self.share_of_offending, 4),
                "share_of_window": round(self.share_of_window, 4)}

    def text(self, noun: str) -> str:
        return (f"{self.share_of_offending:.0%} of the {noun} come from {self.feature}={self.value}, "
                f"which is {self.share_of_window:.0%} of records")


def segment_features(baseline: Baseline) -> list[ColumnBaseline]:
    """The features records are segmented by: categorical and boolean model inputs (and, where records carry
    them, the fields around the predictions: :data:`CONTEXT_FIELDS`)."""
    return [col for col in baseline.columns.values() if col.kind in ("categorical", "boolean") and col.role == "input"]


def segments_of(offending: Offending, window: WindowProfile, exclude: str = "") -> list[Segment]:
    """The segments over-represented among offending records, most concentrated first.

    Statistic: for each value of each segment feature, the share of offenders in it
    against its share of all the window's records; named when Cohen's h is at least
    ``MIN_H``, the share of offenders at least ``MIN_SHARE`` and the one-sided
    binomial p-value, Bonferroni-corrected over the values looked at, below ``MAX_P``.

    >>> w = WindowProfile(records=1000, columns={"device": ColumnProfile(
    ...     "categorical", present=1000, categories={"web": 200, "ios": 800})})
    >>> [s.text("nulls") for s in segments_of({"device": {"web": 92, "ios": 8}}, w)]
    ['92% of the nulls come from device=web, which is 20% of records']
    """
    tested = sum(len(values) for name, values in offending.items() if name != exclude) or 1
    found: list[tuple[float, Segment]] = []
    for name, values in offending.items():
        if name == exclude:
            continue
        total = sum(values.values())
        if total < MIN_OFFENDING or window.records <= 0:
            continue
        prof = window.columns.get(name)
        for value, k in values.items():
            share_all = window_count(prof, window, name, value) / window.records
            share_off = k / total
            h = stats.cohens_h(share_off, share_all)
            if share_off < MIN_SHARE or h < MIN_H:
                continue
            if stats.excess_rate_p_value(k, total, share_all) * tested > MAX_P:
                continue
            found.append((h, Segment(name, value, k, share_off, share_all)))
    found.sort(key=lambda hs: -hs[0])
    return [s for _, s in found[:SHOWN]]


def window_count(prof: ColumnProfile | None, window: WindowProfile, name: str, value: str) -> int:
    """How many of the window's records have ``value`` in feature ``name`` (from its profile).

    An unseen value that the profile did not keep (Elasticsearch keeps the top few) counts as the
    largest it could be, so that a concentration is never overstated."""
    if prof is None and name in window.context:  # a field around the predictions (service.version ...)
        counts = window.context[name]
        return window.records - sum(counts.values()) if value == MISSING else counts.get(value, 0)
    if prof is None:
        return window.records if value == MISSING else 0
    if value == MISSING:
        return window.absent(name) + prof.nulls
    if value in prof.categories:
        return prof.categories[value]
    if value in prof.unseen_values:
        return prof.unseen_values[value]
    rest = prof.unseen - sum(prof.unseen_values.values())
    return max(0, min(rest, min(prof.unseen_values.values(), default=rest)))


def explain(results: list[Any], window: WindowProfile, fetch: Fetch | None = None) -> None:
    """Name the segments of each finding whose check counts offending records (its spec's ``problem``).

    Reads ``window.columns[feature].offending``; ``fetch`` fills what a source did not count while
    profiling (Elasticsearch), once per feature and problem. Sets ``result.segments`` and adds the
    first segment to the message; results already explained are left alone."""
    for r in results:
        spec = registry.find(r.check)
        problem = spec.problem if spec is not None else None
        if problem is None or r.status == "ok" or r.segments is not None:
            continue
        prof = window.columns.get(r.feature)
        offending = prof.offending.get(problem) if prof is not None else None
        if offending is None and fetch is not None:
            offending = fetch(r.feature, problem)
            if prof is not None:
                prof.offending[problem] = offending
        if offending is None:
            continue
        named = segments_of(offending, window, exclude=r.feature)
        r.segments = [s.to_dict() for s in named]
        if named:
            r.message += f"; {named[0].text(spec.noun or problem)}"
