"""Two versions of one model side by side on the same window: canary, shadow, champion and challenger.

A release manager asks: on the same traffic, in the same window, does version 8 behave like version 7, and is it
at least as right? Each window is profiled once per version (both on the champion's baseline: the candidate needs
none of its own), and the candidate is judged against the champion as two samples of the same window, never
against training:

- ``version_traffic_shift`` (one per input): the two versions did not receive the same traffic (PSI between the
  versions' bins of the input, a bin for the missing ones). A canary that is routed only the mobile users is a
  routing change, said as such.
- ``version_shift`` (the model's output): the candidate's outputs are distributed differently from the champion's
  *on comparable traffic*: when an input's traffic differs significantly between the versions, the champion's
  outputs are reweighted to the candidate's mix of that input (post-stratification on the segment feature that
  moved most, from per-segment-value output bins the profile keeps), so that a routing change is not blamed on
  the model. The message and examples name the segment value where the outputs differ most.
- ``version_quality_gap`` (per judged metric): realised quality (outcomes joined as for ``quality_drop``) differs
  significantly between the versions, two-sided (a candidate much better on live traffic than its champion is
  news too, e.g. a label leak).
- ``version_disagreement``: the ids both versions scored (a shadow: the same ``prediction_id`` under both
  versions, the shadow record flagged ``predwatch.shadow``) compared pair by pair: the share whose labels differ,
  the mean absolute score difference, and the segments where the disagreeing pairs concentrate.

All four are window checks of the registry (:mod:`analyzers.core.registry`): they join the window's
false-discovery family, and a window without a comparison (``WindowProfile.compared`` is None) measures
nothing, so its results are those of before, byte for byte.

Pure: counts in, measurements out; the sources feed :class:`VersionCounter` with columns.
"""
from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import stats
from .profile import ColumnProfile, WindowProfile
from .quality import HIGHER_IS_BETTER, MIN_LABELLED, QualityProfile, QualityReference, add_labelled, metrics
from .registry import Measured, Measurement, window_check
from .segments import MISSING, segment_features, segments_of
from .values import category_of, is_measured

if TYPE_CHECKING:
    from .baseline import Baseline, ColumnBaseline
    from .counting import Columns, ProfileCounter

OTHER = "(other)"  # the known categories outside a column's major ones
UNSEEN = "(unseen)"  # values training never saw
MAJOR_SHARE = 0.005  # a category with this share of training is a bin of its own (as distribution_shift bins)
MAJOR_KEPT = 30
ADJUST_P = 0.001  # an input's traffic shift this unlikely under "same traffic" makes the output comparison adjust for it
SEGMENT_MIN = 50  # records of a segment value in each version before its own outputs are compared
SHADOW_NOISE = 0.001  # disagreement a re-scoring of the same input shows without any change of model
DISAGREE_SD = 0.1  # a regression's outputs disagree when they differ by this many training SDs
WAITING_MAX = 200_000  # records waiting for their pair before ids are sampled by hash (see VersionCounter)
HASH_SPACE = 1 << 32
CHAMPION = "champion"  # the reference the version checks name: the champion on the same window, not training


# -- counts -------------------------------------------------------------------------------------------------------
@dataclass
class PairCounts:
    """Mergeable counts of the shadow pairs of a window: ids scored by both versions.

    ``segments``/``offending``: per segment feature, pairs and disagreeing pairs per value (the champion's record's
    value: both scored the same input). ``sampled``: the share of ids that took part in pairing, below 1 when the
    waiting records reached :data:`WAITING_MAX` (a hash sample of the ids: both records of a pair are in or out)."""

    pairs: int = 0
    disagreeing: int = 0
    scored: int = 0  # pairs with a numeric score on both sides
    abs_difference: float = 0.0  # sum of |candidate - champion| scores
    segments: dict[str, dict[str, int]] = field(default_factory=dict)
    offending: dict[str, dict[str, int]] = field(default_factory=dict)
    unpaired: int = 0  # records of either version whose id the other version never scored (a canary's)
    sampled: float = 1.0

    def merge(self, other: "PairCounts") -> "PairCounts":
        return PairCounts(self.pairs + other.pairs, self.disagreeing + other.disagreeing, self.scored + other.scored,
                          self.abs_difference + other.abs_difference, _add2(self.segments, other.segments),
                          _add2(self.offending, other.offending), self.unpaired + other.unpaired,
                          min(self.sampled, other.sampled))

    @property
    def disagreement(self) -> float | None:
        return self.disagreeing / self.pairs if self.pairs else None

    @property
    def mean_abs_difference(self) -> float | None:
        return self.abs_difference / self.scored if self.scored else None


@dataclass
class VersionProfiles:
    """One window's records of the champion and of the candidate, each profiled on the champion's baseline.

    ``outputs``: per version, per output column, per segment feature, per value, the records per output bin
    (:func:`output_bin_keys`): what comparing outputs on comparable traffic reweights. Bounded: major categories
    only (:func:`segment_value_keys`), at most ~33 values by ~33 bins per feature."""

    champion: str
    candidate: str
    profiles: dict[str, WindowProfile] = field(default_factory=dict)
    outputs: dict[str, dict[str, dict[str, dict[str, dict[str, int]]]]] = field(default_factory=dict)
    pairs: PairCounts = field(default_factory=PairCounts)
    # per version, per value of the segment feature the comparison adjusts for (none while the versions' traffic is
    # alike): the labelled predictions' quality counts, reweighted by version_quality_gap
    quality: dict[str, dict[str, dict[str, QualityProfile]]] = field(default_factory=dict)

    def side(self, version: str) -> WindowProfile:
        return self.profiles.get(version) or WindowProfile()

    def merge(self, other: "VersionProfiles") -> "VersionProfiles":
        profiles = dict(self.profiles)
        for v, p in other.profiles.items():
            profiles[v] = profiles[v].merge(p) if v in profiles else p
        outputs = {v: dict(cols) for v, cols in self.outputs.items()}
        for v, cols in other.outputs.items():
            mine = outputs.setdefault(v, {})
            for col, feats in cols.items():
                into = mine.setdefault(col, {})
                for feat, values in feats.items():
                    into[feat] = _add2(into.get(feat, {}), values)
        quality = {v: {f: dict(vals) for f, vals in feats.items()} for v, feats in self.quality.items()}
        for v, feats in other.quality.items():
            for feat, values in feats.items():
                into = quality.setdefault(v, {}).setdefault(feat, {})
                for value, q in values.items():
                    into[value] = into[value].merge(q) if value in into else q
        return VersionProfiles(self.champion, self.candidate, profiles, outputs, self.pairs.merge(other.pairs),
                               quality)

    def to_dict(self) -> dict[str, Any]:
        return {"champion": self.champion, "candidate": self.candidate,
                "profiles": {v: p.to_dict() for v, p in self.profiles.items()}, "outputs": self.outputs,
                "pairs": dict(self.pairs.__dict__),
                "quality": {v: {f: {k: q.to_dict() for k, q in vals.items()} for f, vals in feats.items()}
                            for v, feats in self.quality.items()}}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "VersionProfiles":
        return cls(doc["champion"], doc["candidate"],
                   {v: WindowProfile.from_dict(p) for v, p in doc.get("profiles", {}).items()},
                   doc.get("outputs", {}), PairCounts(**doc.get("pairs", {})),
                   {v: {f: {k: QualityProfile.from_dict(q) for k, q in vals.items()} for f, vals in feats.items()}
                    for v, feats in doc.get("quality", {}).items()})


def major_categories(col: "ColumnBaseline") -> list[str]:
    """The categories of a column that are bins of their own: at least 0.5% of training, the top 30."""
    cats = col.categories or {}
    total = sum(cats.values()) or 1
    return [k for k, n in sorted(cats.items(), key=lambda kv: -kv[1])[:MAJOR_KEPT] if n >= MAJOR_SHARE * total]


def output_bin_keys(col: "ColumnBaseline", values: Sequence[Any]) -> list[str | None]:
    """Each value's bin as a string: the baseline bin index of a number; a major category, ``(other)`` for the
    other known ones, ``(unseen)``; None for a null or a value of the wrong type.

    >>> from analyzers.core.baseline import ColumnBaseline
    >>> output_bin_keys(ColumnBaseline("p", "numeric", edges=[0.0, 0.5, 1.0]), [0.2, 0.7, None, "x"])
    ['1', '2', None, None]
    """
    if col.kind == "numeric":
        from .baseline import bin_index

        arr = np.array([float(v) if is_measured(v) else np.nan for v in values], dtype=float)
        ok = np.isfinite(arr)
        out: list[str | None] = [None] * len(values)
        if ok.any():
            for i, b in zip(np.flatnonzero(ok).tolist(), bin_index(col.edges or [], arr[ok]).tolist()):
                out[i] = str(b)
        return out
    major = set(major_categories(col))
    mapping = {cat: cat if cat in major else OTHER for cat in col.categories or {}}
    get = mapping.get
    if all(v.__class__ is str for v in values):  # the usual chunk: strings only, no conversion
        return [get(v, UNSEEN) for v in values]
    keys: list[str | None] = []
    for v in values:
        cat = None if v is None else category_of(v)
        keys.append(None if cat is None else get(cat, UNSEEN))
    return keys


def segment_value_keys(col: "ColumnBaseline", values: Sequence[Any]) -> list[str]:
    """Each record's value of a segment feature, bounded: a major category, ``(other)``, ``(unseen)`` or
    ``(missing)``."""
    return [MISSING if k is None else k for k in output_bin_keys(col, values)]


def column_counts(col: "ColumnBaseline", prof: ColumnProfile, records: int) -> dict[str, int]:
    """A window's counts of one column on the bins the versions are compared on, with a ``(missing)`` bin (absent,
    null or of the wrong type): what routing can change too."""
    if col.kind == "numeric":
        counts = {str(i): n for i, n in enumerate(prof.bins or []) if n}
        values = sum(prof.bins or [])
    else:
        major = set(major_categories(col))
        counts = Counter()
        for cat, n in prof.categories.items():
            counts[cat if cat in major else OTHER] += n
        if prof.unseen:
            counts[UNSEEN] += prof.unseen
        values = sum(counts.values())
        counts = dict(counts)
    if records - values > 0:
        counts[MISSING] = records - values
    return counts


# -- counting -----------------------------------------------------------------------------------------------------
class VersionCounter:
    """Counts one model's records per version for the comparison of ``champion`` and ``candidate``.

    Pairs (shadow): a record waits, keyed by its ``prediction_id``, until the other version's record of the same
    id comes; the pair then counts in the window of the record that came second. Memory is bounded: beyond
    :data:`WAITING_MAX` waiting records, only ids whose hash (CRC-32) falls below a limit take part, and the limit
    halves until the waiting records fit (distinct sampling, Gibbons 2001, VLDB): both records of an id share its
    hash, so a pair is never half kept, pairs stay an unbiased sample of the ids, and ``PairCounts.sampled`` says
    which share. Records still waiting at the end are the window's ``unpaired``.
    """

    def __init__(self, baseline: "Baseline", counter: "ProfileCounter", champion: str, candidate: str) -> None:
        self.baseline, self.counter = baseline, counter
        self.champion, self.candidate = str(champion), str(candidate)
        self.outputs = [col for col in baseline.columns.values()
                        if col.role == "prediction" and col.kind in ("numeric", "categorical", "boolean")]
        self.segments = segment_features(baseline)
        self.paired = pair_output(baseline)
        self.waiting: dict[str, tuple] = {}  # prediction_id -> (version, label, score, segment values, window)
        self.limit = HASH_SPACE

    def count(self, records: "Columns", stamps: Any = None, window: Any = None) -> VersionProfiles:
        """The comparison's counts of one chunk of one window (``window``: its key, for the pairs)."""
        from .counting import outputs_of, scored_outputs

        out = VersionProfiles(self.champion, self.candidate)
        ref = self.baseline.quality
        for version in (self.champion, self.candidate):
            rows = [i for i, v in enumerate(records.versions) if v == version]
            if not rows:
                continue
            group = records.take(rows)
            prof = self.counter.count(group, None if stamps is None else stamps[rows])
            if ref is not None:
                prof.quality = scored_outputs(ref, group)
            out.profiles[version] = prof
            segs = {s.name: segment_value_keys(s, [_feature(f, s.name) for f in group.features])
                    for s in self.segments}
            per_col = out.outputs.setdefault(version, {})
            for col in self.outputs:
                bins = output_bin_keys(col, outputs_of(group, col.name))
                per_col[col.name] = {name: _cross(values, bins) for name, values in segs.items()}
        if self.paired is not None:
            self._pair(records, out.pairs, window)
        return out

    def segment_values(self, features: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
        """Each record's bounded value of every segment feature (:func:`segment_value_keys`), in their order."""
        columns = [segment_value_keys(s, [_feature(f, s.name) for f in features]) for s in self.segments]
        return list(zip(*columns)) if columns else [()] * len(features)

    def add_labelled(self, cmp: VersionProfiles, version: str, ref: QualityReference, outputs: list[Any],
                     actuals: list[Any], segments: list[tuple[str, ...]], only: str | None = None) -> None:
        """Outcomes joined to one version's predictions of the window: into its quality, and per value of the
        segment feature ``only`` (the one the comparison adjusts for: the window is complete when outcomes join,
        so it is known; none when the versions' traffic is alike)."""
        side = cmp.profiles.get(version)
        if side is None:
            return
        side.quality = side.quality or QualityProfile()
        add_labelled(side.quality, ref, outputs, actuals)
        per_feature = cmp.quality.setdefault(version, {})
        for i, s in enumerate(self.segments):
            if s.name != only:
                continue
            groups: dict[str, tuple[list, list]] = {}
            for output, actual, segs in zip(outputs, actuals, segments):
                o, a = groups.setdefault(segs[i], ([], []))
                o.append(output)
                a.append(actual)
            into = per_feature.setdefault(s.name, {})
            for value, (o, a) in groups.items():
                add_labelled(into.setdefault(value, QualityProfile()), ref, o, a)

    def _pair(self, records: "Columns", into: PairCounts, window: Any) -> None:
        from .counting import outputs_of

        column, read = self.paired
        wanted = (self.champion, self.candidate)
        rows = [i for i, (v, pid) in enumerate(zip(records.versions, records.prediction_ids))
                if v in wanted and pid is not None]
        if not rows:
            return
        group = records.take(rows)
        labels, scores = read(outputs_of(group, column))
        segments = self.segment_values(group.features)
        limit, waiting, formed = self.limit, self.waiting, []
        for pid, version, label, score, segs in zip(group.prediction_ids, group.versions, labels, scores, segments):
            if limit < HASH_SPACE and _hash(pid) >= limit:
                continue
            mine = (version, label, score, segs, window)
            other = waiting.get(pid)
            if other is None or other[0] == version:  # first of its id (or the same version twice: the latest)
                waiting[pid] = mine
                if len(waiting) > WAITING_MAX:
                    self._shrink()
                    limit, waiting = self.limit, self.waiting
                continue
            del waiting[pid]
            formed.append((other, mine) if other[0] == self.champion else (mine, other))
        add_pairs(into, [s.name for s in self.segments], formed)

    def _shrink(self) -> None:
        while len(self.waiting) > WAITING_MAX:
            self.limit //= 2
            self.waiting = {pid: w for pid, w in self.waiting.items() if _hash(pid) < self.limit}

    def absorb(self, waiting: dict[str, tuple], limit: int, windows: dict[Any, WindowProfile]) -> None:
        """A worker's records still waiting (its byte range ended first): paired with the ones waiting here,
        counted into the window of the later one."""
        if limit < self.limit:
            self.limit = limit
            self.waiting = {pid: w for pid, w in self.waiting.items() if _hash(pid) < limit}
        names = [s.name for s in self.segments]
        for pid, mine in waiting.items():
            if self.limit < HASH_SPACE and _hash(pid) >= self.limit:
                continue
            other = self.waiting.get(pid)
            if other is None or other[0] == mine[0]:
                self.waiting[pid] = mine
                continue
            del self.waiting[pid]
            pair = (other, mine) if other[0] == self.champion else (mine, other)
            target = windows.get(mine[4]) or windows.get(other[4])
            if target is not None and target.compared is not None:
                add_pairs(target.compared.pairs, names, [pair])
        if len(self.waiting) > WAITING_MAX:
            self._shrink()

    def finish(self, windows: dict[Any, WindowProfile]) -> None:
        """Count the records still waiting as their window's unpaired ones, and the sampled share."""
        for pid, w in self.waiting.items():
            target = windows.get(w[4])
            if target is not None and target.compared is not None:
                target.compared.pairs.unpaired += 1
        for prof in windows.values():
            if prof.compared is not None:
                prof.compared.pairs.sampled = self.limit / HASH_SPACE
        self.waiting = {}


def pair_output(baseline: "Baseline") -> tuple[str, Any] | None:
    """The output column shadow pairs are compared on (the quality reference's, else the first output) and how
    the outputs of a chunk become their labels and scores, ``read(outputs) -> (labels, scores)``: a binary score is
    labelled at the reference threshold (0.5 without a reference, for outputs within 0..1); a regression's two
    outputs disagree when they differ by ``DISAGREE_SD`` training SDs (its "label" is the value in those units,
    a float); a class is its own label (and has no score)."""
    ref: QualityReference | None = baseline.quality
    outputs = [col for col in baseline.columns.values() if col.role == "prediction"]
    if not outputs:
        return None
    col = next((o for o in outputs if ref is not None and o.name == ref.column), outputs[0])
    if col.kind != "numeric":
        return col.name, lambda values: ([None if v is None else category_of(v) for v in values], [None] * len(values))
    regression = ref.task == "regression" if ref is not None else (col.min or 0) < 0 or (col.max or 0) > 1
    unit = (col.std or 1.0) * DISAGREE_SD
    cut = ref.threshold if ref is not None and ref.threshold is not None else 0.5

    def read(values: Sequence[Any]) -> tuple[list[Any], list[float | None]]:
        arr = np.array([float(v) if is_measured(v) else np.nan for v in values], dtype=float)
        ok = np.isfinite(arr)
        scores = [float(x) if good else None for x, good in zip(arr.tolist(), ok.tolist())]
        if regression:
            labels = [x / unit if x is not None else None for x in scores]
        else:
            labels = [bool(hi) if good else None for hi, good in zip((arr >= cut).tolist(), ok.tolist())]
        return labels, scores
    return col.name, read


def add_pairs(into: PairCounts, names: list[str], pairs: list[tuple[tuple, tuple]]) -> None:
    """Count pairs of (version, label, score, segment values, window), the champion's first: whether their labels
    differ (a regression's: by more than one unit), their score difference, and per segment value (the
    champion's record's) the pairs and the disagreeing ones."""
    differs: list[bool] = []
    for champ, cand in pairs:
        label_a, score_a, label_b, score_b = champ[1], champ[2], cand[1], cand[2]
        if label_a.__class__ is float and label_b.__class__ is float:
            differ = abs(label_a - label_b) > 1.0
        else:
            differ = label_a != label_b
        differs.append(differ)
        if score_a is not None and score_b is not None:
            into.scored += 1
            into.abs_difference += abs(score_b - score_a)
    into.pairs += len(pairs)
    into.disagreeing += sum(differs)
    for i, name in enumerate(names):
        every = Counter(champ[3][i] for champ, _ in pairs)
        bad = Counter(champ[3][i] for (champ, _), differ in zip(pairs, differs) if differ)
        into.segments[name] = dict(Counter(into.segments.get(name, {})) + every)
        if bad:
            into.offending[name] = dict(Counter(into.offending.get(name, {})) + bad)


def _feature(features: dict[str, Any], name: str) -> Any:
    """A record's value of a feature, a dotted name looked up in nested objects too (chunks keep them nested)."""
    if name in features or "." not in name:
        return features.get(name)
    value: Any = features
    for part in name.split("."):
        if type(value) is not dict:
            return None
        value = value.get(part)
    return value


def _hash(pid: str) -> int:
    return zlib.crc32(pid.encode())


def _cross(values: list[str], bins: list[str | None]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (value, b), n in Counter(zip(values, bins)).items():
        if b is not None:
            per = out.setdefault(value, {})
            per[b] = per.get(b, 0) + n
    return out


def _add2(a: dict, b: dict) -> dict:
    """Nested counts added (dicts of dicts of ints, any depth)."""
    if not b:
        return a
    if not a:
        return b
    out = dict(a)
    for k, v in b.items():
        out[k] = (_add2(out[k], v) if isinstance(v, dict) else out[k] + v) if k in out else v
    return out


# -- statistics ---------------------------------------------------------------------------------------------------
def two_sample_psi(expected: dict[str, float], observed: dict[str, float], n_expected: float | None = None
                   ) -> tuple[float, float, int]:
    """PSI between two windows' counts over the union of their bins, its p-value (``n_eff * PSI ~ chi2``, see
    :func:`analyzers.core.stats.psi_p_value`) and the number of bins. ``n_expected``: the effective size of
    ``expected`` when it is reweighted (Kish), else its total.

    >>> value, p, bins = two_sample_psi({"a": 500, "b": 500}, {"a": 800, "b": 200})
    >>> round(value, 3), p < 1e-10, bins
    (0.415, True, 2)
    """
    keys = sorted(set(expected) | set(observed))
    e = [expected.get(k, 0.0) for k in keys]
    o = [observed.get(k, 0.0) for k in keys]
    n_e, n_o = sum(e), sum(o)
    if n_e <= 0 or n_o <= 0:
        return 0.0, 1.0, len(keys)
    value = stats.psi(e, o)
    return value, stats.psi_p_value(value, n_e if n_expected is None else n_expected, n_o, len(keys)), len(keys)


def reweighted(champion: dict[str, dict[str, int]], candidate_mix: dict[str, int]
               ) -> tuple[dict[str, float], float]:
    """The champion's output bins reweighted to the candidate's mix of one segment feature (post-stratification):
    ``sum over values v of candidate share(v) * champion's bins given v``; values the champion never had keep
    the champion's overall bins. Returns the bins (on the champion's total) and Kish's effective size
    ``(sum w)^2 / sum w^2`` over the champion's records.

    >>> bins, n_eff = reweighted({"mobile": {"low": 90, "high": 10}, "desktop": {"low": 10, "high": 90}},
    ...                          {"mobile": 50})
    >>> {k: round(v) for k, v in bins.items()}, round(n_eff)
    ({'low': 180, 'high': 20}, 100)
    """
    total_cand = sum(candidate_mix.values())
    sizes = {v: sum(b.values()) for v, b in champion.items()}
    n = sum(sizes.values())
    if not total_cand or not n:
        return {}, 0.0
    overall: Counter = Counter()
    for b in champion.values():
        overall.update(b)
    out: dict[str, float] = {}
    sum_w, sum_w2 = 0.0, 0.0
    for value, k in candidate_mix.items():
        share = k / total_cand
        bins, size = (champion[value], sizes[value]) if sizes.get(value) else (overall, n)
        w = share * n / size  # the weight of each champion record of this value
        sum_w += w * size
        sum_w2 += w * w * size
        for key, count in bins.items():
            out[key] = out.get(key, 0.0) + count * w
    return out, (sum_w * sum_w / sum_w2 if sum_w2 else 0.0)


def hanley_mcneil_se(auc: float, positives: float, negatives: float) -> float:
    """Standard error of a ROC AUC (Hanley & McNeil 1982, Radiology 143(1)).

    >>> round(hanley_mcneil_se(0.8, 500, 500), 3)
    0.014
    """
    if positives <= 0 or negatives <= 0:
        return float("inf")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives)
    return math.sqrt(max(var, 0.0))


def metric_with_se(prof: QualityProfile, ref: QualityReference, name: str, n_eff: float | None = None
                   ) -> tuple[float, float, int] | None:
    """A realised metric of one version's labelled predictions with its standard error and sample size:
    accuracy (binomial), ROC AUC (Hanley-McNeil), MAE (the spread of the absolute errors). ``n_eff``: the
    effective size of a reweighted profile (:func:`reweighted_quality`), which the standard error is taken at.

    >>> ref = QualityReference("binary", 100, {}, {}, positive="1", classes=["0", "1"])
    >>> value, se, n = metric_with_se(QualityProfile(labelled=400, confusion={"1": {"1": 150, "0": 50},
    ...                                              "0": {"0": 150, "1": 50}}), ref, "accuracy")
    >>> value, round(se, 4), n
    (0.75, 0.0217, 400)
    """
    values = metrics(prof, ref)
    value = values.get(name)
    if value is None or not math.isfinite(value):
        return None
    if name == "accuracy":
        n = (n_eff or prof.labelled) if ref.task != "regression" else 0
        return (value, math.sqrt(max(value * (1 - value), 1e-12) / n), round(n)) if n else None
    if name == "roc_auc":
        pos, neg = float(sum(prof.positives or [])), float(sum(prof.negatives or []))
        scale = n_eff / (pos + neg) if n_eff and pos + neg else 1.0
        return value, hanley_mcneil_se(value, pos * scale, neg * scale), round((pos + neg) * scale)
    if name == "mae" and prof.errors > 1:
        n = n_eff or prof.errors
        var = max(prof.sq_error_sum / prof.errors - value * value, 0.0)
        return value, math.sqrt(var / n), round(n)
    return None


def scaled_quality(prof: QualityProfile, weight: float) -> QualityProfile:
    """Every labelled count of a quality profile times ``weight`` (the metrics are ratios of them)."""
    times = lambda xs: None if xs is None else [x * weight for x in xs]  # noqa: E731
    return QualityProfile(labelled=prof.labelled * weight, positives=times(prof.positives),
                          negatives=times(prof.negatives), brier=prof.brier * weight,
                          confusion={p: {a: n * weight for a, n in row.items()} for p, row in prof.confusion.items()},
                          errors=prof.errors * weight, error_sum=prof.error_sum * weight,
                          abs_error_sum=prof.abs_error_sum * weight, sq_error_sum=prof.sq_error_sum * weight)


def reweighted_quality(champion: dict[str, QualityProfile], candidate: dict[str, QualityProfile],
                       overall: QualityProfile) -> tuple[QualityProfile, float]:
    """The champion's labelled counts reweighted to the candidate's mix of labelled predictions over one segment
    feature's values (as :func:`reweighted` does for outputs), and Kish's effective size; a value the champion
    has no label in takes the champion's overall counts."""
    mix = {v: q.labelled for v, q in candidate.items() if q.labelled}
    n, total = sum(q.labelled for q in champion.values()), sum(mix.values())
    out, sum_w, sum_w2 = QualityProfile(), 0.0, 0.0
    if not n or not total:
        return overall, float(overall.labelled)
    for value, k in mix.items():
        q = champion.get(value)
        if q is None or not q.labelled:
            q = overall
        w = (k / total) * n / q.labelled
        out = out.merge(scaled_quality(q, w))
        sum_w += w * q.labelled
        sum_w2 += w * w * q.labelled
    return out, (sum_w * sum_w / sum_w2 if sum_w2 else 0.0)


def adjusted_feature(cmp: VersionProfiles, baseline: "Baseline") -> str | None:
    """The segment feature the versions are made comparable on: the one whose traffic moved most between them,
    when it moved beyond chance (p below ``ADJUST_P``); None when the traffic is alike."""
    segs = {s.name for s in segment_features(baseline)}
    moved = [(v, name) for name, v, p, _, _ in traffic_shifts(cmp, baseline) if name in segs and p < ADJUST_P]
    return max(moved)[1] if moved else None


def compared_metrics(ref: QualityReference) -> tuple[str, ...]:
    """The metrics the versions' quality is compared on: those ``quality_drop`` judges that have a standard
    error from counts (macro F1 and F1 have none here)."""
    if ref.task == "regression":
        return ("mae",)
    if ref.task == "binary" and ref.scored:
        return ("roc_auc", "accuracy")
    return ("accuracy",)


# -- the checks ---------------------------------------------------------------------------------------------------
def _sides(profile: WindowProfile) -> tuple[VersionProfiles, WindowProfile, WindowProfile] | None:
    cmp = profile.compared
    if cmp is None:
        return None
    return cmp, cmp.side(cmp.champion), cmp.side(cmp.candidate)


def traffic_shifts(cmp: VersionProfiles, baseline: "Baseline") -> list[tuple[str, float, float, int, str]]:
    """Per input (text aside): (feature, PSI, p-value, bins, largest moves) between the versions' traffic."""
    champ, cand = cmp.side(cmp.champion), cmp.side(cmp.candidate)
    out = []
    for col in (col for col in baseline.columns.values() if col.role == "input"):
        if col.kind == "text":
            continue
        a = column_counts(col, champ.columns.get(col.name) or ColumnProfile(col.kind), champ.records)
        b = column_counts(col, cand.columns.get(col.name) or ColumnProfile(col.kind), cand.records)
        value, p, bins = two_sample_psi(a, b)
        out.append((col.name, value, p, bins, _moves(a, b, cmp, col)))
    return out


@window_check("version_traffic_shift", (0.10, 0.25),
              "PSI between the champion's and the candidate's traffic of one input, on the same window",
              against_recent=False)
def version_traffic_shift(profile: WindowProfile, baseline: "Baseline", reference: str) -> list[Measured]:
    """Each input's distribution in the candidate's traffic against the champion's, in the same window.

    Statistic: PSI on the baseline's bins (numeric: deciles and tails; categorical: the major categories,
    ``(other)``, ``(unseen)``) plus a ``(missing)`` bin, both sides windows: ``n_eff * PSI ~ chi2(bins - 1)`` with
    ``n_eff`` of both sizes (:func:`two_sample_psi`). Levels as ``distribution_shift`` (0.1 moderate, 0.25
    significant: Siddiqi 2006), since it is the same question asked of two windows.
    """
    sides = _sides(profile)
    if sides is None or not sides[1].records or not sides[2].records:
        return []
    cmp, champ, cand = sides
    return [Measured(name, "input", Measurement(value, p, cand.records, champ.records, reference=CHAMPION, detail=(
                f"PSI {value:.3f} between version {cmp.candidate}'s traffic ({cand.records:,} records) and version "
                f"{cmp.champion}'s ({champ.records:,}) over {bins} bins; {moves}")))
            for name, value, p, bins, moves in traffic_shifts(cmp, baseline)]


@window_check("version_shift", (0.10, 0.25),
              "PSI between the candidate's and the champion's output bins on comparable traffic of the same window",
              against_recent=False)
def version_shift(profile: WindowProfile, baseline: "Baseline", reference: str) -> list[Measured]:
    """The candidate's outputs against the champion's on the same window, on comparable traffic.

    Statistic: PSI between the two versions' output bins (numeric: the baseline's deciles; classes: major
    categories). When an input's traffic differs between the versions beyond chance (p below ``ADJUST_P``), the
    champion's bins are first reweighted to the candidate's mix of the segment feature that moved most
    (:func:`reweighted`), and its effective size (Kish) enters the p-value: a canary that gets only mobile users
    is compared with the champion's mobile users. One feature only (a cross of several would thin the cells);
    numeric inputs are not adjusted for. Levels as ``prediction_shift`` (PSI 0.1, 0.25). Examples: the segment
    values where the outputs differ most (their own PSI, Bonferroni-significant).
    """
    sides = _sides(profile)
    if sides is None or not sides[1].records or not sides[2].records:
        return []
    cmp, champ, cand = sides
    adjust = adjusted_feature(cmp, baseline)
    out = []
    for col in baseline.columns.values():
        if col.role != "prediction" or col.kind not in ("numeric", "categorical", "boolean"):
            continue
        a_by = cmp.outputs.get(cmp.champion, {}).get(col.name, {})
        b_by = cmp.outputs.get(cmp.candidate, {}).get(col.name, {})
        observed = column_counts(col, cand.columns.get(col.name) or ColumnProfile(col.kind), cand.records)
        observed.pop(MISSING, None)
        if adjust is not None and a_by.get(adjust):
            mix = {v: sum(b.values()) for v, b in b_by.get(adjust, {}).items()}
            expected, n_eff = reweighted(a_by[adjust], mix)
            how = f"version {cmp.champion} reweighted to version {cmp.candidate}'s mix of {adjust} (effective size {n_eff:,.0f})"
        else:
            expected = column_counts(col, champ.columns.get(col.name) or ColumnProfile(col.kind), champ.records)
            expected.pop(MISSING, None)
            n_eff, how = None, f"version {cmp.champion}"
        if not expected or not observed:
            continue
        value, p, bins = two_sample_psi(expected, observed, n_eff)
        where = _where_outputs_differ(a_by, b_by)
        said = (f"PSI {value:.3f} between version {cmp.candidate}'s outputs ({sum(observed.values()):,}) and {how} "
                f"over {bins} bins")
        if where:
            said += "; most different where " + ", ".join(f"{w['feature']}={w['value']} (PSI {w['psi']:.2f})"
                                                          for w in where)
        out.append(Measured(col.name, "prediction", Measurement(
            value, p, sum(observed.values()), int(sum(expected.values())), detail=said, examples=where,
            reference=CHAMPION)))
    return out


def _where_outputs_differ(champ: dict[str, dict[str, dict[str, int]]], cand: dict[str, dict[str, dict[str, int]]]
                          ) -> list[dict[str, Any]]:
    """The segment values whose own outputs differ most between the versions (PSI within the value, significant
    at 0.001 after Bonferroni over the values looked at), largest first, at most three."""
    tests = []
    for feature, values in cand.items():
        for value, b in values.items():
            a = champ.get(feature, {}).get(value, {})
            if sum(a.values()) >= SEGMENT_MIN and sum(b.values()) >= SEGMENT_MIN:
                tests.append((feature, value, a, b))
    found = []
    for feature, value, a, b in tests:
        psi, p, _ = two_sample_psi(a, b)
        if p * len(tests) < 1e-3 and psi >= 0.1:
            found.append({"feature": feature, "value": value, "psi": round(psi, 4), "records": sum(b.values())})
    found.sort(key=lambda f: -f["psi"])
    return found[:3]


@window_check("version_quality_gap", (0.05, 0.15),
              "relative difference of a realised quality metric, candidate against champion, on the same window",
              against_recent=False, draws_observed=True)
def version_quality_gap(profile: WindowProfile, baseline: "Baseline", reference: str) -> list[Measured]:
    """Realised quality of the candidate against the champion's, from the outcomes joined to each version's
    predictions of the window.

    Statistic: ``|candidate - champion| / champion`` of each compared metric (:func:`compared_metrics`), the scale
    and levels of ``quality_drop`` (5% warning, 15% critical); two-sided normal test of the difference with both
    versions' standard errors (accuracy: binomial; ROC AUC: Hanley-McNeil; MAE: the absolute errors' spread),
    as independent samples: a canary's are; a shadow's are positively correlated, which makes the test
    conservative. Each version needs ``MIN_LABELLED`` labelled predictions. On comparable traffic, as
    ``version_shift``: when the versions' traffic differs in a segment feature, the champion's labelled counts are
    reweighted to the candidate's mix of it (:func:`reweighted_quality`) and judged at their effective size, so
    that a canary routed the harder users is not called worse (``version_traffic_shift`` says the routing).
    """
    sides = _sides(profile)
    ref = baseline.quality
    if sides is None or ref is None:
        return []
    cmp, champ, cand = sides
    qa, qb = champ.quality or QualityProfile(), cand.quality or QualityProfile()
    if qa.labelled < MIN_LABELLED or qb.labelled < MIN_LABELLED:
        return []
    adjust, n_eff, how = adjusted_feature(cmp, baseline), None, f"version {cmp.champion}"
    by_value = cmp.quality.get(cmp.champion, {}).get(adjust or "")
    if adjust is not None and by_value:
        qa, n_eff = reweighted_quality(by_value, cmp.quality.get(cmp.candidate, {}).get(adjust, {}), qa)
        how = f"version {cmp.champion} reweighted to version {cmp.candidate}'s mix of {adjust}"
    out = []
    for name in compared_metrics(ref):
        a, b = metric_with_se(qa, ref, name, n_eff), metric_with_se(qb, ref, name)
        if a is None or b is None or not a[0]:
            continue
        se = math.hypot(a[1], b[1])
        z = abs(b[0] - a[0]) / se if se else 0.0
        better = (b[0] > a[0]) == (name in HIGHER_IS_BETTER)
        gap = abs(b[0] - a[0]) / abs(a[0])
        out.append(Measured("prediction", "prediction", Measurement(
            gap, min(1.0, 2 * stats.normal_sf(z)), b[2], a[2], b[0], a[0],
            f"{name} {b[0]:.4g} for version {cmp.candidate} on {b[2]:,} labelled predictions against {a[0]:.4g} for "
            f"{how} {'on' if n_eff is None else '(effective size'} {a[2]:,}{'' if n_eff is None else ')'}: "
            f"{'better' if better else 'worse'} by {gap:.1%}", reference=CHAMPION), name))
    return out


@window_check("version_disagreement", (0.2, 0.5),
              "Cohen's h: share of ids both versions scored whose labels disagree, against the noise share (0.1%)",
              against_recent=False, draws_observed=True)
def version_disagreement(profile: WindowProfile, baseline: "Baseline", reference: str) -> list[Measured]:
    """The shadow pairs of the window: ids both versions scored, compared pair by pair.

    Statistic: Cohen's h between the share of pairs whose labels differ (binary: the scores on either side of
    the threshold; classes: different classes; regression: outputs more than ``DISAGREE_SD`` training SDs apart)
    and ``SHADOW_NOISE`` (0.1%: what re-scoring the same input may differ by with no change of model); one-sided
    binomial test against it. Levels: 0.2 is about 2% of decisions flipped (a retrained model that behaves alike
    flips about 1%, near its threshold), 0.5 about 8%. Segments: where the disagreeing pairs concentrate
    (:func:`analyzers.core.segments.segments_of` with offending = disagreeing pairs, on the pairs' own mix).
    """
    cmp = profile.compared
    if cmp is None or not cmp.pairs.pairs:
        return []
    pairs = cmp.pairs
    share = pairs.disagreement or 0.0
    p = stats.excess_rate_p_value(pairs.disagreeing, pairs.pairs, SHADOW_NOISE)
    columns = {}
    for name, values in pairs.segments.items():
        missing = values.get(MISSING, 0)
        columns[name] = ColumnProfile("categorical", present=pairs.pairs - missing,
                                      categories={v: n for v, n in values.items() if v != MISSING})
    named = segments_of(pairs.offending, WindowProfile(records=pairs.pairs, columns=columns))
    diff = pairs.mean_abs_difference
    said = (f"{share:.1%} of {pairs.pairs:,} ids scored by version {cmp.champion} and version {cmp.candidate} get "
            f"different labels" + (f"; scores differ by {diff:.4g} on average" if diff is not None else "")
            + (f" (pairs of a {pairs.sampled:.1%} hash sample of the ids)" if pairs.sampled < 1 else ""))
    if named:
        said += "; " + named[0].text("disagreements")
    return [Measured("prediction", "prediction", Measurement(
        stats.cohens_h(share, SHADOW_NOISE), p, pairs.pairs, pairs.pairs, share, SHADOW_NOISE, said,
        segments=[s.to_dict() for s in named], reference=CHAMPION))]


def _moves(a: dict[str, int], b: dict[str, int], cmp: VersionProfiles, col: "ColumnBaseline") -> str:
    na, nb = sum(a.values()) or 1, sum(b.values()) or 1
    keys = sorted(set(a) | set(b), key=lambda k: -abs(b.get(k, 0) / nb - a.get(k, 0) / na))[:3]
    label = (lambda k: _bin_label(col, k)) if col.kind == "numeric" else repr
    return "largest moves (version {} -> {}): {}".format(cmp.champion, cmp.candidate, ", ".join(
        f"{label(k)} {a.get(k, 0) / na:.1%} -> {b.get(k, 0) / nb:.1%}" for k in keys))


def _bin_label(col: "ColumnBaseline", key: str) -> str:
    if key == MISSING or not col.edges:
        return key
    i, edges = int(key), col.edges
    if i == 0:
        return f"< {edges[0]:.4g}"
    if i >= len(edges):
        return f">= {edges[-1]:.4g}"
    return f"[{edges[i - 1]:.4g}, {edges[i]:.4g})"


def comparison_section(cmp: VersionProfiles, ref: QualityReference | None) -> dict[str, Any]:
    """The ``versions_compared`` section of ``predwatch check --format json``: records of each version, their
    realised quality, and the shadow pairs."""
    quality = None
    if ref is not None:
        quality = {}
        for v in (cmp.champion, cmp.candidate):
            q = cmp.side(v).quality or QualityProfile()
            values = metrics(q, ref) if q.labelled else {}
            quality[v] = {"labelled": q.labelled,
                          **{k: round(x, 6) for k, x in values.items() if x is not None and math.isfinite(x)}}
    pairs = cmp.pairs
    return {
        "champion": cmp.champion, "candidate": cmp.candidate,
        "records": {v: cmp.side(v).records for v in (cmp.champion, cmp.candidate)},
        **({"quality": quality} if quality is not None else {}),
        "shadow": {"pairs": pairs.pairs, "unpaired": pairs.unpaired,
                   "label_disagreement": None if pairs.disagreement is None else round(pairs.disagreement, 6),
                   "mean_abs_score_difference": None if pairs.mean_abs_difference is None
                   else round(pairs.mean_abs_difference, 6),
                   "sampled_share": pairs.sampled},
    }
