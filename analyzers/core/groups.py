"""Who is affected: the model's quality per group of records, and fairness between groups of people.

A model that is right on average can be badly wrong for one group: a drop of 15 points for 12% of the
traffic moves the overall accuracy by under 2 points. A window therefore keeps, per value of each *group
field* (every categorical or boolean input, every field declared with ``predwatch baseline --segment``
or ``--sensitive``), how many predictions it made, how many were positive, and the quality counts of
those with outcomes (:class:`GroupProfile`, mergeable like every profile, bounded to the most frequent
values). The baseline keeps the same per group of its held-out data (:class:`GroupReference`).

Two checks read them, in the window's one false-discovery family with every other test:

- ``quality_drop`` with a ``segment``: each group with at least ``MIN_LABELLED`` labelled predictions,
  judged as the overall quality is (:func:`analyzers.core.quality.quality_measurements`) against that
  group's own reference quality, or the whole reference's when the group was too small there;
- ``fairness_gap``: per sensitive field, the demographic parity difference (largest minus smallest
  positive-prediction rate between its values) and the equal-opportunity difference (the same of the
  true-positive rates), as Fairlearn defines them (``fairlearn.metrics.demographic_parity_difference``,
  ``equal_opportunity_difference``), judged by how far the window's gap grew beyond the reference's.

Pure: counts in, numbers out; the sources count (:mod:`analyzers.core.counting`, :mod:`analyzers.sources.local`).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from .quality import (MIN_LABELLED, PREDICTION_FEATURE, QualityProfile, QualityReference, add_labelled, metrics,
                      overall_quality_drop, positive_class, quality_measurements, reference_profile)
from .registry import Measured, Measurement, window_check
from .stats import normal_sf
from .values import category_of, is_measured


GROUP_VALUES_KEPT = 100  # values per group field a window keeps (by predictions); the rest count as OTHER
OTHER = "(other)"  # the values of a group field beyond the most frequent ones
MISSING = "(missing)"  # records without the group field (as in analyzers.core.segments)
MIN_FAIRNESS_PREDICTIONS = 100  # predictions of a value below which it takes no part in demographic parity
MIN_FAIRNESS_POSITIVES = 30  # labelled positives of a value below which it takes no part in equal opportunity
RECORD_FIELDS = ("labels.", "service.", "host.")  # group fields that are record fields, never model inputs
Z95 = 1.959964  # the two-sided 95% normal quantile of the intervals


@dataclass
class GroupProfile:
    """One value of one group field in one window: its predictions, how many were positive (binary models),
    and the quality counts of those with outcomes."""

    predictions: int = 0
    positive: int = 0
    quality: QualityProfile | None = None  # labelled counts only (joined outcomes)

    def merge(self, other: "GroupProfile") -> "GroupProfile":
        quality = self.quality if other.quality is None else other.quality if self.quality is None \
            else self.quality.merge(other.quality)
        return GroupProfile(self.predictions + other.predictions, self.positive + other.positive, quality)

    @property
    def labelled(self) -> int:
        return self.quality.labelled if self.quality is not None else 0

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"predictions": self.predictions, "positive": self.positive}
        if self.quality is not None:
            doc["quality"] = self.quality.to_dict()
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "GroupProfile":
        quality = doc.get("quality")
        return cls(doc.get("predictions", 0), doc.get("positive", 0),
                   None if quality is None else QualityProfile.from_dict(quality))


Groups = dict[str, dict[str, GroupProfile]]  # group field -> value -> counts


def merge_groups(a: Groups, b: Groups, keep: int = GROUP_VALUES_KEPT) -> Groups:
    """Two windows' group counts added; per field the ``keep`` values with the most predictions stay, the
    others are added into :data:`OTHER` (so the counts stay bounded and every prediction is still counted).

    >>> a = {"device": {"web": GroupProfile(10, 2)}}
    >>> b = {"device": {"web": GroupProfile(5, 1), "ios": GroupProfile(1, 0)}}
    >>> {v: (g.predictions, g.positive) for v, g in merge_groups(a, b, keep=1)["device"].items()}
    {'web': (15, 3), '(other)': (1, 0)}
    """
    if not b:
        return a
    if not a:
        return bound_groups(b, keep)
    out: Groups = {}
    for name in a.keys() | b.keys():
        x, y = a.get(name, {}), b.get(name, {})
        merged = dict(x)
        for value, g in y.items():
            merged[value] = merged[value].merge(g) if value in merged else g
        out[name] = _bound(merged, keep)
    return out


def bound_groups(groups: Groups, keep: int = GROUP_VALUES_KEPT) -> Groups:
    return {name: _bound(values, keep) for name, values in groups.items()}


def _bound(values: dict[str, GroupProfile], keep: int) -> dict[str, GroupProfile]:
    if len(values) <= keep:
        return values
    ranked = sorted((v for v in values if v != OTHER), key=lambda v: -values[v].predictions)
    kept = {v: values[v] for v in ranked[:keep]}
    rest = [values[v] for v in ranked[keep:]] + ([values[OTHER]] if OTHER in values else [])
    other = GroupProfile()
    for g in rest:
        other = other.merge(g)
    kept[OTHER] = other
    return kept


def groups_to_dict(groups: Groups) -> dict[str, Any]:
    return {name: {v: g.to_dict() for v, g in values.items()} for name, values in groups.items()}


def groups_from_dict(doc: dict[str, Any]) -> Groups:
    return {name: {v: GroupProfile.from_dict(g) for v, g in values.items()} for name, values in doc.items()}


def group_value(value: Any) -> str:
    """A record's value of a group field as the group's name (the category string; MISSING when absent).

    >>> group_value("web"), group_value(True), group_value(None), group_value(3)
    ('web', 'true', '(missing)', '3')
    """
    if value is None or (isinstance(value, float) and value != value):
        return MISSING
    return category_of(value) or MISSING


# -- the reference ---------------------------------------------------------------------------------
@dataclass
class GroupReference:
    """What the baseline keeps of its groups: which fields group records, the rule that calls a prediction
    positive (for fairness), and per group the reference quality and positive rates of the held-out data."""

    fields: list[str]  # every group field: categorical and boolean inputs, then --segment and --sensitive ones
    segments: list[str] = field(default_factory=list)  # declared with --segment
    sensitive: list[str] = field(default_factory=list)  # declared with --sensitive
    column: str = "prediction"  # the model output a positive prediction is read from
    threshold: float | None = None  # numeric outputs: positive at output >= threshold
    positive: str | None = None  # label outputs: the positive class
    # field -> value -> {"rows": labelled rows, "metrics": {...}}: groups with at least MIN_LABELLED rows
    quality: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # sensitive field -> value -> {"predictions", "positive", "labelled_positives", "true_positives"}
    rates: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "GroupReference":
        return cls(**doc)

    def is_positive(self, outputs: Sequence[Any]) -> list[bool]:
        """Whether each output is a positive prediction (score at or above the threshold, or the positive
        class); outputs that are neither count as negative."""
        if self.threshold is not None:
            t = self.threshold
            return [is_measured(o) and o >= t for o in outputs]
        positive = self.positive
        return [category_of(o) == positive for o in outputs]


def is_record_field(name: str) -> bool:
    """Whether a group field is a field of the record around the prediction (``labels.region``,
    ``service.version``, ``host.name``) rather than a model input."""
    return name.startswith(RECORD_FIELDS)


def build_group_reference(table: pd.DataFrame, fields: Sequence[str], *, segments: Sequence[str] = (),
                          sensitive: Sequence[str] = (), outputs: pd.Series | None = None, column: str = "prediction",
                          quality: QualityReference | None = None, predicted: pd.Series | None = None,
                          actual: pd.Series | None = None, threshold: float | None = None) -> GroupReference:
    """The baseline's groups from its data: ``table`` holds each group field, ``outputs`` the model output
    fairness reads (all rows), ``predicted``/``actual`` the held-out outputs and outcomes ``quality`` was built
    from (rows aligned with ``table``).

    A positive prediction is what ``quality`` calls one (binary models); without a binary reference, a
    numeric output at or above ``threshold`` (default 0.5), else the positive class of the outputs."""
    ref = GroupReference(fields=list(fields), segments=list(segments), sensitive=list(sensitive), column=column)
    if quality is not None and quality.task == "binary":
        ref.column = quality.column
        ref.threshold, ref.positive = (quality.threshold, None) if quality.scored else (None, quality.positive)
    elif outputs is not None:
        numeric = pd.api.types.is_numeric_dtype(outputs) and not pd.api.types.is_bool_dtype(outputs)
        if numeric and outputs.nunique() > 2:
            ref.threshold = 0.5 if threshold is None else float(threshold)
        else:
            ref.positive = positive_class(outputs)
    elif sensitive:
        raise ValueError("--sensitive needs the model's output (a --prediction column) to read positive rates from")
    labelled = None
    if quality is not None and predicted is not None and actual is not None:
        labelled = (predicted.notna() & actual.notna()).to_numpy()
    for name in ref.fields:
        if name not in table.columns:
            continue
        values = pd.Series([group_value(v) for v in table[name].tolist()], index=table.index)
        if labelled is not None:
            kept: dict[str, dict[str, Any]] = {}
            sizes = values[labelled].value_counts()
            for value in sizes.index[:GROUP_VALUES_KEPT]:
                if sizes[value] < MIN_LABELLED:
                    break
                at = labelled & (values == value).to_numpy()
                prof = reference_profile(quality, predicted[at], actual[at])
                figures = {m: v for m, v in metrics(prof, quality).items() if math.isfinite(v)}
                kept[value] = {"rows": int(at.sum()), "metrics": figures}
            if kept:
                ref.quality[name] = kept
        if name in ref.sensitive and outputs is not None:
            positive = np.asarray(ref.is_positive(outputs.tolist()))
            rates: dict[str, dict[str, int]] = {}
            for value, at in values.groupby(values).groups.items():
                rows = values.index.get_indexer(at)
                rates[value] = {"predictions": len(rows), "positive": int(positive[rows].sum())}
                if labelled is not None and quality is not None and quality.task == "binary":
                    truth = np.array([category_of(a) == quality.positive for a in actual.iloc[rows].tolist()])
                    ok = labelled[rows] & truth
                    rates[value]["labelled_positives"] = int(ok.sum())
                    rates[value]["true_positives"] = int((positive[rows] & ok).sum())
            ref.rates[name] = rates
    return ref


# -- counting a window -----------------------------------------------------------------------------
def group_values(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> list[list[str]]:
    """Per group field, each record's value (``rows``: each record's columns, record fields included)."""
    return [[group_value(row.get(name)) for row in rows] for name in fields]


def count_groups(values: Sequence[Sequence[str]], positive: Sequence[bool], ref: GroupReference) -> Groups:
    """The predictions and positive predictions of one chunk per group (``values``: :func:`group_values`).

    >>> ref = GroupReference(fields=["device"], threshold=0.5)
    >>> g = count_groups([["web", "web", "ios"]], ref.is_positive([0.9, 0.1, 0.7]), ref)
    >>> {v: (p.predictions, p.positive) for v, p in g["device"].items()}
    {'web': (2, 1), 'ios': (1, 1)}
    """
    out: Groups = {}
    for name, column in zip(ref.fields, values):
        counts = Counter(column)
        hits = Counter(v for v, p in zip(column, positive) if p)
        out[name] = {v: GroupProfile(n, hits.get(v, 0)) for v, n in counts.items()}
    return bound_groups(out)


def add_group_labels(groups: Groups, quality: QualityReference, fields: Sequence[str],
                     values: Sequence[Sequence[str]], outputs: list[Any], actuals: list[Any]) -> None:
    """Count labelled predictions into their groups' quality (``values[i]``: the group values of prediction
    ``i``, in ``fields`` order); a value the window no longer keeps counts into :data:`OTHER`."""
    for k, name in enumerate(fields):
        into = groups.setdefault(name, {})
        by_value: dict[str, tuple[list, list]] = {}
        for vals, output, actual in zip(values, outputs, actuals):
            value = vals[k] if vals[k] in into else OTHER
            pair = by_value.setdefault(value, ([], []))
            pair[0].append(output)
            pair[1].append(actual)
        for value, (outs, acts) in by_value.items():
            g = into.setdefault(value, GroupProfile())
            g.quality = g.quality or QualityProfile()
            add_labelled(g.quality, quality, outs, acts)


# -- judging quality per group ---------------------------------------------------------------------
def group_reference_quality(quality: QualityReference, groups: GroupReference | None, name: str, value: str
                            ) -> tuple[QualityReference, bool]:
    """The reference one group is judged against: its own held-out quality when the baseline kept it (the
    spread scaled to its rows: a metric's variance falls as 1/n), else the whole reference. The flag says
    which."""
    own = (groups.quality.get(name, {}) if groups is not None else {}).get(value)
    if own is None or own["rows"] < MIN_LABELLED:
        return quality, False
    scale = math.sqrt(quality.rows / own["rows"])
    return replace(quality, rows=own["rows"], metrics=dict(own["metrics"]),
                   spread={m: s * scale for m, s in quality.spread.items()}), True


@window_check("quality_drop", (0.05, 0.15), "relative degradation of a quality metric against the reference",
              draws_observed=True)
def quality_drop(profile: Any, baseline: Any, reference: str) -> list[Measured]:
    """``quality_drop`` of the window's quality (:func:`analyzers.core.quality.quality_measurements`), then of each
    group of its records with enough labels, each with its ``segment`` (:func:`group_quality_measurements`)."""
    return overall_quality_drop(profile, baseline, reference) + group_quality_measurements(profile, baseline,
                                                                                          reference)


def group_quality_measurements(profile: Any, baseline: Any, reference: str = "training"
                               ) -> list[Measured]:
    """``quality_drop`` of every group with at least ``MIN_LABELLED`` labelled predictions, each with its
    ``segment``; against the group's reference quality (:func:`group_reference_quality`)."""
    quality, groups = baseline.quality, getattr(baseline, "groups", None)
    if quality is None or groups is None or not profile.groups:
        return []
    out = []
    for name in groups.fields:
        for value, g in sorted(profile.groups.get(name, {}).items()):
            if value == OTHER or g.labelled < MIN_LABELLED:
                continue
            ref, own = group_reference_quality(quality, groups, name, value)
            share = g.predictions / profile.records if profile.records else 0.0
            against = f"evaluation data of {name}={value}" if own else "all evaluation data"
            for q in quality_measurements(g.quality, ref):
                if q.check != "quality_drop":
                    continue
                detail = (f"{q.metric} {q.observed:.4g} on {q.n_window:,} labelled predictions of {name}={value} "
                          f"({share:.0%} of the window; {against} {q.expected:.4g})")
                out.append(Measured(PREDICTION_FEATURE, "prediction", Measurement(
                    q.value, q.p_value, q.n_window, ref.rows, q.observed, q.expected, detail), q.metric,
                    segment={"feature": name, "value": value}))
    return out


# -- fairness --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gap:
    """A fairness gap: the largest minus the smallest rate between the values of one field."""

    value: float
    sd: float  # standard error of the gap (binomial, the two values that make it)
    highest: str
    lowest: str
    rates: dict[str, float]
    trials: dict[str, int]

    @property
    def interval(self) -> tuple[float, float]:
        """95% normal interval of the gap."""
        return max(0.0, self.value - Z95 * self.sd), min(1.0, self.value + Z95 * self.sd)


def rate_gap(counts: dict[str, tuple[int, int]], minimum: int) -> Gap | None:
    """Largest minus smallest rate ``successes / trials`` over the values with at least ``minimum`` trials
    (Fairlearn's ``between_groups`` difference); None with fewer than two such values. :data:`OTHER` and
    :data:`MISSING` (a mix of people, not a group) take no part. Standard error: binomial, of the two values
    that make the gap.

    >>> g = rate_gap({"F": (30, 100), "M": (50, 100), "X": (1, 5)}, minimum=100)
    >>> round(g.value, 3), g.highest, g.lowest, round(g.sd, 3)
    (0.2, 'M', 'F', 0.068)
    """
    rates = {v: (k / n, n) for v, (k, n) in counts.items() if n >= minimum and v not in (OTHER, MISSING)}
    if len(rates) < 2:
        return None
    hi = max(rates, key=lambda v: (rates[v][0], v))
    lo = min(rates, key=lambda v: (rates[v][0], v))
    var = sum(p * (1 - p) / n for p, n in (rates[hi], rates[lo]))
    return Gap(rates[hi][0] - rates[lo][0], math.sqrt(var), hi, lo, {v: r for v, (r, _) in rates.items()},
               {v: n for v, (_, n) in rates.items()})


def true_positives(prof: QualityProfile, quality: QualityReference) -> tuple[int, int]:
    """(true positives, labelled positives) of a binary model's labelled counts."""
    if quality.scored:
        pos = np.asarray(prof.positives or [0], dtype=float)
        t = int(np.searchsorted(quality.edges, quality.threshold, side="right"))
        return int(pos[t:].sum()), int(pos.sum())
    p = quality.positive
    tp = prof.confusion.get(p, {}).get(p, 0)
    return tp, sum(row.get(p, 0) for row in prof.confusion.values())


FAIRNESS_METRICS = ("demographic_parity", "equal_opportunity")


def window_gaps(profile: Any, baseline: Any, name: str) -> dict[str, tuple[Gap, Gap | None]]:
    """Per fairness metric of one sensitive field: the window's gap and the reference's (None: the reference
    has too few of the values)."""
    groups, quality = baseline.groups, baseline.quality
    window = profile.groups.get(name, {})
    ref = groups.rates.get(name, {})
    out: dict[str, tuple[Gap, Gap | None]] = {}
    parity = rate_gap({v: (g.positive, g.predictions) for v, g in window.items()}, MIN_FAIRNESS_PREDICTIONS)
    if parity is not None:
        out["demographic_parity"] = (parity, rate_gap({v: (r["positive"], r["predictions"]) for v, r in ref.items()},
                                                      MIN_FAIRNESS_PREDICTIONS))
    if quality is not None and quality.task == "binary":
        counts = {v: true_positives(g.quality, quality) for v, g in window.items() if g.quality is not None}
        opportunity = rate_gap(counts, MIN_FAIRNESS_POSITIVES)
        if opportunity is not None:
            out["equal_opportunity"] = (opportunity, rate_gap(
                {v: (r["true_positives"], r["labelled_positives"]) for v, r in ref.items() if "true_positives" in r},
                MIN_FAIRNESS_POSITIVES))
    return out


@window_check("fairness_gap", (0.05, 0.10),
              "growth of a fairness gap (largest minus smallest rate between groups) beyond the reference's",
              draws_observed=True)
def fairness_gap(profile: Any, baseline: Any, reference: str = "training") -> Iterable[Measured]:
    """Per sensitive field and fairness metric, how far the window's gap grew beyond the reference's.

    Statistic: ``gap_window - gap_reference`` (absolute rate difference, Fairlearn's ``between_groups``
    difference of selection rates, or of true-positive rates); evidence one-sided normal with the binomial
    standard errors of both gaps, Bonferroni-corrected for the ``k (k - 1)`` ordered pairs of values a
    largest-minus-smallest gap chooses among. References: Fairlearn, ``demographic_parity_difference`` and
    ``equal_opportunity_difference``; Hardt, Price & Srebro (2016), *Equality of Opportunity in Supervised
    Learning*.
    """
    groups = getattr(baseline, "groups", None)
    if groups is None or not profile.groups:
        return []
    out = []
    for name in groups.sensitive:
        for metric, (window, ref) in window_gaps(profile, baseline, name).items():
            if ref is None:
                continue
            grew = window.value - ref.value
            sd = math.hypot(window.sd, ref.sd)
            k = len(window.rates)
            p = min(1.0, normal_sf(grew / sd) * k * (k - 1)) if sd > 0 else (0.0 if grew > 0 else 1.0)
            what = "positive-prediction" if metric == "demographic_parity" else "true-positive"
            lo, hi = window.interval
            rlo, rhi = ref.interval
            detail = (f"{metric.replace('_', ' ')} difference {window.value:.3f} (95% interval {lo:.3f}-{hi:.3f}): "
                      f"{what} rate {window.rates[window.highest]:.1%} for {name}={window.highest}, "
                      f"{window.rates[window.lowest]:.1%} for {name}={window.lowest} "
                      f"({reference}: {ref.value:.3f}, interval {rlo:.3f}-{rhi:.3f})")
            examples = [{"value": v, "rate": round(r, 6), "count": window.trials[v]}
                        for v, r in sorted(window.rates.items(), key=lambda vr: -vr[1])]
            out.append(Measured(name, "sensitive", Measurement(
                grew, p, sum(window.trials.values()), sum(ref.trials.values()), window.value, ref.value, detail,
                examples), metric))
    return out


def fairness_section(profile: Any, baseline: Any) -> list[dict[str, Any]]:
    """The ``fairness`` section of ``predwatch check --format json``: every gap with its interval, its
    reference and the rate of each value."""
    groups = getattr(baseline, "groups", None)
    if groups is None:
        return []
    out = []
    for name in groups.sensitive:
        for metric, (window, ref) in window_gaps(profile, baseline, name).items():
            out.append({"feature": name, "metric": metric, "value": round(window.value, 6),
                        "interval": [round(x, 6) for x in window.interval],
                        "reference": None if ref is None else round(ref.value, 6),
                        "reference_interval": None if ref is None else [round(x, 6) for x in ref.interval],
                        "rates": {v: round(r, 6) for v, r in window.rates.items()},
                        "counts": window.trials})
    return out


def group_quality_section(profile: Any, baseline: Any) -> list[dict[str, Any]]:
    """The ``quality_by_group`` section: each group's labelled predictions and metrics against its reference
    (groups with at least ``MIN_LABELLED`` labels)."""
    quality, groups = baseline.quality, getattr(baseline, "groups", None)
    if quality is None or groups is None:
        return []
    out = []
    for name in groups.fields:
        for value, g in sorted(profile.groups.get(name, {}).items(), key=lambda vg: -vg[1].labelled):
            if g.labelled < MIN_LABELLED:
                continue
            ref, own = group_reference_quality(quality, groups, name, value)
            window = metrics(g.quality, quality)
            out.append({"feature": name, "value": value, "predictions": g.predictions, "labelled": g.labelled,
                        "reference": "group" if own else "overall",
                        "metrics": {m: {"value": _finite(window.get(m)), "reference": _finite(ref.metrics.get(m))}
                                    for m in ref.metrics}})
    return out


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)
