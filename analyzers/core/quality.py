"""Model quality from delayed outcomes, an estimate until they arrive, and latency.

The reference (:class:`QualityReference`, in the baseline) is the model's quality on
a held-out evaluation set, with the bootstrap spread of every metric, the score
bins and the calibration map. A window's :class:`QualityProfile` holds only
mergeable counts (labelled positives and negatives per score bin, a confusion
matrix, error sums, label delays, latencies), the same from local files and from
Elasticsearch aggregations, so every metric is computed here, once.

Judging (:func:`quality_measurements`): the effect is the metric's relative
degradation against the reference (``(ref - window) / ref`` for a score,
``(window - ref) / ref`` for an error; a regression's bias, ``prediction_bias``, as its mean error's shift in
reference RMSEs, never as a drop of quality, since the error can fall meanwhile); the
p-value is one-sided normal with the reference's bootstrap spread scaled to both
sample sizes. It joins the window's false-discovery family like every check.

The estimate is confidence-based performance estimation (CBPE, NannyML): each
prediction's calibrated probability of being right gives the window's expected
accuracy and confusion matrix without a single label. It assumes the relation of
inputs to outcomes has not changed (concept drift is what the realised metrics see).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .registry import Measured, Measurement, window_check
from .stats import excess_rate_p_value, normal_sf
from .values import category_of, is_measured

TASKS = ("binary", "multiclass", "regression")
HIGHER_IS_BETTER = {"roc_auc", "accuracy", "precision", "recall", "f1", "macro_f1"}
# The metrics judged for quality_drop; the others are reported. Precision, recall, F1 and the Brier score move
# with the share of positives (a stormy day has more late flights), so they would fire on prevalence alone;
# ROC AUC is blind to prevalence and accuracy is what CBPE estimates. Labels without scores: accuracy and F1.
JUDGED = {
    "binary": ("roc_auc", "accuracy"),
    "binary_labels": ("accuracy", "f1"),
    "multiclass": ("accuracy", "macro_f1"),
    "regression": ("mae", "mean_error"),
}
# A regression's bias (the mean error's shift, in reference RMSEs) is judged as its own check with its own levels:
# errors that shift by a constant while their spread shrinks can leave the model better (a lower MAE), and
# "quality drop" would then say the opposite of what happened.
CHECK_OF = {"mean_error": "prediction_bias"}
SCORE_BINS = 100  # quantile bins of the reference scores (AUC from binned counts is within ~0.005)
CALIBRATION_MIN_ROWS = 50  # labelled reference rows per calibration bin (thinner bins are merged)
CALIBRATION_MAX_ERROR = 0.02  # held-out calibration error beyond noise above which no estimate is made
CALIBRATION_GROUPS = 10
CALIBRATION_MIN_LABELLED = 500
BOOTSTRAP = 200
MIN_LABELLED = 100  # labelled predictions below which quality is reported but not judged
DELAY_BASE = 2.0  # label delay histogram: bin 0 holds delays under 1 s, bin k delays in [2^(k-1), 2^k) s
DELAY_EDGES = [DELAY_BASE ** k for k in range(0, 40)]  # 1 s .. 17,000 years
PREDICTION_FEATURE = "prediction"  # the feature quality findings name, whichever output holds the scores
LATENCY_RATIO = 1.05  # latency histogram: bin k holds [0.01 ms * 1.05^k, ... * 1.05^(k+1))


@dataclass
class QualityReference:
    """The model's quality on its evaluation data: what a window's quality is judged against."""

    task: str
    rows: int  # labelled reference rows
    metrics: dict[str, float]
    spread: dict[str, float]  # bootstrap standard deviation of each metric at ``rows``
    # standard deviation of each metric between windows beyond sampling (days differ: weather, mix), measured
    # on the reference's own days when it has a time column; it does not shrink with a window's size
    between: dict[str, float] = field(default_factory=dict)
    column: str = "prediction"  # the baseline column holding the model's output
    threshold: float | None = None  # binary with scores: predicted positive at score >= threshold
    positive: str | None = None  # binary: the positive class, as a category string
    classes: list[str] | None = None
    edges: list[float] | None = None  # binary with scores: score bin edges (the threshold is one)
    calibration: list[float] | None = None  # per score bin: share of positives (CBPE's calibration map)
    calibration_error: float | None = None  # held-out expected calibration error of that map
    scored: bool = False  # binary with probability scores (else labels)
    # multiclass: the column with the predicted class's probability, which CBPE calibrates into P(right)
    confidence_column: str | None = None

    @property
    def can_estimate(self) -> bool:
        return self.calibration is not None and (self.calibration_error or 0) <= CALIBRATION_MAX_ERROR

    @property
    def binned(self) -> str | None:
        """The output column counted into score bins for every prediction: the score (binary) or the
        predicted class's probability (multiclass); None for labels alone and regressions."""
        return self.column if self.scored else self.confidence_column

    @property
    def estimate_note(self) -> str:
        if self.binned is None:
            return ("no estimate: it needs probability scores (binary) or the predicted class's probability "
                    "(multiclass: a second --prediction column)" if self.task != "regression"
                    else "no estimate for regressions")
        if self.calibration is None:
            return f"no estimate: fewer than {CALIBRATION_MIN_LABELLED} labelled reference rows to calibrate on"
        if not self.can_estimate:
            return (f"no estimate: the scores are not calibrated enough (held-out calibration error beyond "
                    f"noise {self.calibration_error:.3f} > {CALIBRATION_MAX_ERROR})")
        what = "scores" if self.scored else "class probabilities"
        return f"estimated from calibrated {what} (CBPE); assumes no concept drift"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "QualityReference":
        return cls(**doc)


@dataclass
class QualityProfile:
    """Mergeable quality counts of one window (labelled by joining outcomes to its predictions)."""

    predictions: int = 0  # predictions of the window (for coverage)
    labelled: int = 0
    scored: list[int] | None = None  # every prediction per score bin (binary with scores)
    positives: list[int] | None = None  # labelled predictions whose outcome was positive, per score bin
    negatives: list[int] | None = None
    brier: float = 0.0  # sum of squared (score - outcome)
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)  # predicted -> actual -> n
    errors: int = 0  # regression: predictions with numeric outcomes
    error_sum: float = 0.0
    abs_error_sum: float = 0.0
    sq_error_sum: float = 0.0
    delays: dict[str, int] = field(default_factory=dict)  # label delay histogram (DELAY_BASE bins)

    def merge(self, other: "QualityProfile") -> "QualityProfile":
        def vec(a, b):
            if a is None or b is None:
                return a if b is None else b
            return [x + y for x, y in zip(a, b)]
        confusion = {k: dict(v) for k, v in self.confusion.items()}
        for pred, row in other.confusion.items():
            into = confusion.setdefault(pred, {})
            for actual, n in row.items():
                into[actual] = into.get(actual, 0) + n
        return QualityProfile(
            predictions=self.predictions + other.predictions, labelled=self.labelled + other.labelled,
            scored=vec(self.scored, other.scored), positives=vec(self.positives, other.positives),
            negatives=vec(self.negatives, other.negatives), brier=self.brier + other.brier, confusion=confusion,
            errors=self.errors + other.errors, error_sum=self.error_sum + other.error_sum,
            abs_error_sum=self.abs_error_sum + other.abs_error_sum, sq_error_sum=self.sq_error_sum + other.sq_error_sum,
            delays=dict(Counter(self.delays) + Counter(other.delays)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "QualityProfile":
        return cls(**doc)

    def with_labels(self, joined: "QualityProfile") -> "QualityProfile":
        """These counts of every prediction (score bins, how many) with the labelled counts of ``joined``
        (outcomes joined to the sampled full records): what a window counted by profile records knows."""
        return QualityProfile(
            predictions=self.predictions, scored=self.scored, labelled=self.labelled + joined.labelled,
            positives=_vec_add(self.positives, joined.positives), negatives=_vec_add(self.negatives, joined.negatives),
            brier=self.brier + joined.brier, confusion=self.merge(QualityProfile(confusion=joined.confusion)).confusion,
            errors=self.errors + joined.errors, error_sum=self.error_sum + joined.error_sum,
            abs_error_sum=self.abs_error_sum + joined.abs_error_sum, sq_error_sum=self.sq_error_sum + joined.sq_error_sum,
            delays=dict(Counter(self.delays) + Counter(joined.delays)))

    def median_delay(self) -> float | None:
        """Median label delay in seconds, to the resolution of the histogram (the geometric middle of its
        bin: within a factor of 1.41)."""
        return _histogram_quantile(self.delays, 0.5, lambda k: DELAY_BASE ** (k - 0.5) if k > 0 else 0.5)


# -- building the reference ------------------------------------------------------------------------
def infer_task(actual: pd.Series) -> str:
    """binary for two distinct outcomes, multiclass for a few labels, regression for many numbers."""
    values = actual.dropna()
    distinct = values.nunique()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if distinct <= 2:
        return "binary"
    if numeric and (distinct > 20 or not np.allclose(values, np.round(values))):
        return "regression"
    return "multiclass"


def positive_class(actual: pd.Series) -> str:
    """The positive class of a binary outcome: 1, true, "yes"..., else the rarer one."""
    cats = [category_of(v) for v in actual.dropna().unique().tolist()]
    for name in ("1", "true", "1.0", "yes", "positive", "pos"):
        if name in cats:
            return name
    counts = Counter(category_of(v) for v in actual.dropna().tolist())
    return min(counts, key=lambda k: (counts[k], k))


def build_quality(predicted: pd.Series, actual: pd.Series, *, task: str | None = None,
                  threshold: float | None = None, column: str = "prediction", seed: int = 0,
                  groups: pd.Series | None = None, confidence: pd.Series | None = None,
                  confidence_column: str | None = None) -> QualityReference:
    """The reference quality of a model from its outputs and the actual outcomes of held-out data.

    ``groups`` (e.g. each row's day) lets the spread include how much the metrics differ between windows
    beyond sampling noise (:func:`between_windows`), as NannyML derives thresholds from reference chunks.
    ``confidence`` (multiclass): the probability the model gave its predicted class, for the estimate."""
    keep = predicted.notna() & actual.notna()
    if groups is not None:
        groups = pd.Series(np.asarray(groups), index=predicted.index)[keep].reset_index(drop=True)
    if confidence is not None:
        confidence = pd.Series(np.asarray(confidence, dtype=float), index=predicted.index)[keep].reset_index(drop=True)
    predicted, actual = predicted[keep].reset_index(drop=True), actual[keep].reset_index(drop=True)
    if len(actual) == 0:
        raise ValueError("no rows with both a prediction and an actual outcome")
    task = task or infer_task(actual)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    ref = QualityReference(task=task, rows=len(actual), metrics={}, spread={}, column=column)
    if task == "binary":
        ref.positive = positive_class(actual)
        ref.classes = sorted({category_of(v) for v in actual.unique().tolist()} | {ref.positive})
        numeric = pd.api.types.is_numeric_dtype(predicted) and not pd.api.types.is_bool_dtype(predicted)
        if numeric and predicted.nunique() > 2:
            ref.scored = True
            ref.threshold = 0.5 if threshold is None else float(threshold)
            ref.edges = score_edges(predicted.to_numpy(float), ref.threshold)
    elif task == "multiclass":
        ref.classes = sorted({category_of(v) for v in actual.unique().tolist()})
        if confidence is not None:
            ref.confidence_column = confidence_column or "prediction.score"
            ref.edges = score_edges(confidence.to_numpy(float), None)
    elif pd.api.types.is_numeric_dtype(actual) is False:
        raise ValueError("a regression needs numeric actual outcomes")
    profile_of = lambda idx: reference_profile(ref, predicted.iloc[idx], actual.iloc[idx])  # noqa: E731
    full = profile_of(np.arange(len(actual)))
    ref.metrics = metrics(full, ref)
    rng = np.random.default_rng(seed)
    draws = [metrics(profile_of(rng.integers(0, len(actual), len(actual))), ref) for _ in range(BOOTSTRAP)]
    ref.spread = {name: float(np.nanstd([d.get(name, np.nan) for d in draws])) for name in ref.metrics}
    if groups is not None:
        ref.between = between_windows(ref, predicted, actual, groups)
    if ref.binned is not None and len(actual) >= CALIBRATION_MIN_LABELLED:
        if ref.scored:  # the chance of being positive, per score bin
            scores, hits = predicted.to_numpy(float), [category_of(a) == ref.positive for a in actual.tolist()]
        else:  # the chance that the predicted class is the actual one, per confidence bin
            scores = confidence.to_numpy(float)
            hits = [category_of(p) == category_of(a) for p, a in zip(predicted.tolist(), actual.tolist())]
        ref.calibration, ref.calibration_error = calibration_map(ref, scores, np.array(hits, dtype=bool))
    return ref


MIN_GROUPS = 5  # reference windows needed to measure the variation between windows


def between_windows(ref: QualityReference, predicted: pd.Series, actual: pd.Series, groups: pd.Series
                    ) -> dict[str, float]:
    """Per metric, the standard deviation between reference windows (groups) that sampling does not explain:
    ``sqrt(max(0, var(metric per window) - sampling variance at the mean window size))``, a random-effects
    split of the window-to-window variance."""
    per: list[dict[str, float]] = []
    sizes = []
    for _, idx in groups.groupby(groups).groups.items():
        if len(idx) >= MIN_LABELLED:
            per.append(metrics(reference_profile(ref, predicted.loc[idx], actual.loc[idx]), ref))
            sizes.append(len(idx))
    if len(per) < MIN_GROUPS:
        return {}
    size = float(np.mean(sizes))
    out = {}
    for name, sd in ref.spread.items():
        values = np.array([m.get(name, np.nan) for m in per], dtype=float)
        values = values[np.isfinite(values)]
        if len(values) >= MIN_GROUPS:
            sampling = sd * sd * ref.rows / size
            out[name] = float(math.sqrt(max(0.0, float(np.var(values, ddof=1)) - sampling)))
    return out


def score_edges(scores: np.ndarray, threshold: float | None) -> list[float]:
    """Quantile edges of the reference scores, with the threshold (if any) as one of them."""
    edges = set(np.unique(np.quantile(scores[np.isfinite(scores)], np.linspace(0, 1, SCORE_BINS + 1))).tolist())
    if threshold is not None:
        edges.add(float(threshold))
    return sorted(edges)


def score_bins(ref: QualityReference, scores: np.ndarray) -> np.ndarray:
    """Bin of each score: 0 below the first edge, ``len(edges)`` at or above the last."""
    return np.searchsorted(np.asarray(ref.edges), scores, side="right")


def reference_profile(ref: QualityReference, predicted: pd.Series, actual: pd.Series) -> QualityProfile:
    prof = QualityProfile()
    add_labelled(prof, ref, predicted.tolist(), actual.tolist())
    return prof


def add_labelled(prof: QualityProfile, ref: QualityReference, predicted: list[Any], actual: list[Any],
                 delays: list[float] | None = None) -> None:
    """Count labelled predictions (``predicted[i]`` with outcome ``actual[i]``) into ``prof``."""
    pairs = [(p, a) for p, a in zip(predicted, actual) if p is not None and a is not None]
    prof.labelled += len(pairs)
    if delays:
        for k in np.searchsorted(np.asarray(DELAY_EDGES), np.asarray(delays, dtype=float), side="right").tolist():
            prof.delays[str(k)] = prof.delays.get(str(k), 0) + 1
    if not pairs:
        return
    if ref.task == "regression":
        err = np.array([float(p) - float(a) for p, a in pairs if is_measured(p) and is_measured(a)])
        prof.errors += len(err)
        prof.error_sum += float(err.sum())
        prof.abs_error_sum += float(np.abs(err).sum())
        prof.sq_error_sum += float((err * err).sum())  # not np.dot: no BLAS threads (see sources.local)
        return
    if ref.scored:
        scores = np.array([float(p) if is_measured(p) else np.nan for p, _ in pairs])
        positive = np.array([category_of(a) == ref.positive for _, a in pairs])
        ok = np.isfinite(scores)
        scores, positive = scores[ok], positive[ok]
        bins = score_bins(ref, scores)
        size = len(ref.edges) + 1
        prof.positives = _add(prof.positives, np.bincount(bins[positive], minlength=size))
        prof.negatives = _add(prof.negatives, np.bincount(bins[~positive], minlength=size))
        prof.brier += float(np.sum((scores - positive) ** 2))
        return
    for p, a in pairs:
        row = prof.confusion.setdefault(category_of(p) or "?", {})
        key = category_of(a) or "?"
        row[key] = row.get(key, 0) + 1


def add_scored(prof: QualityProfile, ref: QualityReference, binned: list[Any]) -> None:
    """Count every prediction of the window (labelled or not) into the bins of ``ref.binned`` (its score, or
    its class probability), for the estimate; ``binned`` holds that column's value of each prediction."""
    prof.predictions += len(binned)
    if ref.binned is None:
        return
    scores = np.array([float(p) for p in binned if is_measured(p)])
    scores = scores[np.isfinite(scores)]
    prof.scored = _add(prof.scored, np.bincount(score_bins(ref, scores), minlength=len(ref.edges) + 1))


def scored_profile(ref: QualityReference, outputs: list[Any], binned: list[Any] | None = None) -> QualityProfile:
    """The quality counts of a chunk of predictions before any outcome: how many, and (scores or class
    probabilities) their bins. ``binned``: the values of ``ref.binned`` when it is not the ``outputs``' column."""
    prof = QualityProfile()
    add_scored(prof, ref, outputs if binned is None else binned)
    return prof


def calibration_map(ref: QualityReference, scores: np.ndarray, positive: np.ndarray) -> tuple[list[float], float]:
    """Per score bin, the reference's share of hits (positives; right predictions for a multiclass
    confidence), bins merged to CALIBRATION_MIN_ROWS, and the expected calibration error of a map built on
    one half of the reference measured on the other."""
    def fit(idx: np.ndarray) -> np.ndarray:
        bins = score_bins(ref, scores[idx])
        size = len(ref.edges) + 1
        pos = np.bincount(bins[positive[idx]], minlength=size)
        tot = np.bincount(bins, minlength=size)
        rates = np.full(size, np.nan)
        start = 0
        while start < size:  # merge bins left to right until each holds enough rows
            end, count = start, 0
            while end < size and (count < CALIBRATION_MIN_ROWS or end == start):
                count += tot[end]
                end += 1
            if end < size and tot[end:].sum() < CALIBRATION_MIN_ROWS:
                end = size  # a thin tail joins the last group
            rate = pos[start:end].sum() / max(tot[start:end].sum(), 1)
            rates[start:end] = rate
            start = end
        return rates

    rows = np.arange(len(scores))
    half_a, half_b = rows[rows % 2 == 0], rows[rows % 2 == 1]
    expected = fit(half_a)[score_bins(ref, scores[half_b])]
    actual_b = positive[half_b].astype(float)
    # Expected calibration error over ten equal-count groups of the held-out half, less what sampling noise
    # alone gives a perfectly calibrated map (E|mean - p| = sqrt(2/pi) * sd): the error the map would add.
    order = np.argsort(expected, kind="stable")
    excess = 0.0
    for group in np.array_split(order, CALIBRATION_GROUPS):
        if not len(group):
            continue
        p = float(expected[group].mean())
        noise = math.sqrt(2 / math.pi) * math.sqrt(max(p * (1 - p), 1e-12) / len(group))
        excess += len(group) / len(order) * max(0.0, abs(p - float(actual_b[group].mean())) - noise)
    return [float(r) for r in fit(rows)], excess


# -- metrics -------------------------------------------------------------------------------------
def metrics(prof: QualityProfile, ref: QualityReference) -> dict[str, float]:
    """Every metric of the task from a window's counts (NaN where undefined, e.g. no positives)."""
    return {name: float(value) for name, value in _metrics(prof, ref).items()}


def _metrics(prof: QualityProfile, ref: QualityReference) -> dict[str, float]:
    if ref.task == "regression":
        n = prof.errors
        if not n:
            return {}
        return {"mae": prof.abs_error_sum / n, "rmse": math.sqrt(prof.sq_error_sum / n),
                "mean_error": prof.error_sum / n}
    if ref.scored:
        pos = np.asarray(prof.positives or [0] * (len(ref.edges) + 1), dtype=float)
        neg = np.asarray(prof.negatives or [0] * (len(ref.edges) + 1), dtype=float)
        t = int(np.searchsorted(ref.edges, ref.threshold, side="right"))  # first bin at or above the threshold
        tp, fp, fn, tn = pos[t:].sum(), neg[t:].sum(), pos[:t].sum(), neg[:t].sum()
        n_pos, n_neg = pos.sum(), neg.sum()
        auc = float("nan")
        if n_pos and n_neg:  # Mann-Whitney on the bins: ties within a bin count one half
            above = np.cumsum(pos[::-1])[::-1] - pos  # positives in higher bins
            auc = float(np.sum(neg * (above + 0.5 * pos)) / (n_pos * n_neg))
        n = n_pos + n_neg
        return {"roc_auc": auc, **_confusion_metrics(tp, fp, fn, tn), "brier": prof.brier / n if n else float("nan")}
    labels = sorted({*prof.confusion, *(a for row in prof.confusion.values() for a in row)})
    total = sum(n for row in prof.confusion.values() for n in row.values())
    if not total:
        return {}
    if ref.task == "binary":
        p = ref.positive
        get = lambda pred, act: prof.confusion.get(pred, {}).get(act, 0)  # noqa: E731
        tp = get(p, p)
        fp = sum(get(p, a) for a in labels if a != p)
        fn = sum(get(q, p) for q in labels if q != p)
        return _confusion_metrics(tp, fp, fn, total - tp - fp - fn)
    correct = sum(prof.confusion.get(k, {}).get(k, 0) for k in labels)
    f1s = []
    for k in ref.classes or labels:
        tp = prof.confusion.get(k, {}).get(k, 0)
        predicted = sum(prof.confusion.get(k, {}).values())
        actual = sum(row.get(k, 0) for row in prof.confusion.values())
        f1s.append(2 * tp / (predicted + actual) if predicted + actual else 0.0)
    return {"accuracy": correct / total, "macro_f1": float(np.mean(f1s))}


def _confusion_metrics(tp: float, fp: float, fn: float, tn: float) -> dict[str, float]:
    n = tp + fp + fn + tn
    nan = float("nan")
    precision = tp / (tp + fp) if tp + fp else nan
    recall = tp / (tp + fn) if tp + fn else nan
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else nan
    return {"accuracy": (tp + tn) / n if n else nan, "precision": precision, "recall": recall, "f1": f1}


def estimate(prof: QualityProfile, ref: QualityReference) -> dict[str, Any] | None:
    """CBPE: the expected accuracy and confusion matrix of every prediction of the window, from the
    calibrated probability that each is right. None when the reference cannot estimate."""
    if not ref.can_estimate or not prof.scored:
        return None
    scored = np.asarray(prof.scored, dtype=float)
    n = float(scored.sum())
    if not n:
        return None
    cal = np.asarray(ref.calibration)
    if not ref.scored:  # multiclass: each prediction is right with its calibrated confidence
        right = float(np.sum(scored * cal))
        sd = math.sqrt(float(np.sum(scored * cal * (1 - cal)))) / n
        return {"accuracy": right / n, "accuracy_sd": sd, "predictions": int(n)}
    t = int(np.searchsorted(ref.edges, ref.threshold, side="right"))
    tp, fp = float(np.sum(scored[t:] * cal[t:])), float(np.sum(scored[t:] * (1 - cal[t:])))
    fn, tn = float(np.sum(scored[:t] * cal[:t])), float(np.sum(scored[:t] * (1 - cal[:t])))
    right = np.concatenate([1 - cal[:t], cal[t:]])  # each bin's probability that its predictions are right
    sd = math.sqrt(float(np.sum(scored * right * (1 - right)))) / n  # Poisson-binomial spread of the count right
    return {"accuracy": (tp + tn) / n, "accuracy_sd": sd, "predictions": int(n),
            "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn}, **{
                k: v for k, v in _confusion_metrics(tp, fp, fn, tn).items() if k != "accuracy"}}


@dataclass
class QualityMeasurement:
    check: str  # quality_drop | prediction_bias | estimated_quality_drop | latency_regression
    metric: str
    value: float  # relative degradation
    p_value: float
    n_window: int
    observed: float
    expected: float
    detail: str


def degradation(metric: str, window: float, ref: QualityReference) -> float:
    """How much worse the window is, relative to the reference (0 or less: as good or better)."""
    base = ref.metrics[metric]
    if metric in HIGHER_IS_BETTER:
        return (base - window) / base if base else 0.0
    if metric == "mean_error":
        scale = ref.metrics.get("rmse") or 1.0
        return abs(window - base) / scale
    return (window - base) / base if base else 0.0


def _bias_detail(w: float, base: float, labelled: int, window: dict[str, float], ref: QualityReference) -> str:
    """The bias in the units of the outcome and of the reference RMSE, and what the absolute error did meanwhile."""
    shift = degradation("mean_error", w, ref)
    said = (f"mean error {w:+.4g} on {labelled:,} labelled predictions (evaluation data {base:+.4g}): "
            f"a systematic shift of {shift:.2f} reference RMSEs")
    mae, ref_mae = window.get("mae"), ref.metrics.get("mae")
    if mae is not None and ref_mae:
        said += f"; MAE {mae:.4g} ({'down' if mae <= ref_mae else 'up'} {abs(mae - ref_mae) / ref_mae:.0%})"
    return said


def quality_measurements(prof: QualityProfile, ref: QualityReference) -> list[QualityMeasurement]:
    """Each judged metric of the window against the reference, and the estimate when it can be made."""
    out = []
    if prof.labelled >= MIN_LABELLED:
        window = metrics(prof, ref)
        for name in JUDGED["binary_labels" if ref.task == "binary" and not ref.scored else ref.task]:
            w, base, sd = window.get(name), ref.metrics.get(name), ref.spread.get(name)
            if w is None or base is None or not sd or math.isnan(w) or math.isnan(base):
                continue
            # sampling at the window's size, the reference's own uncertainty, and the variation between windows
            spread = math.sqrt(sd * sd * (ref.rows / max(prof.labelled, 1) + 1.0) + ref.between.get(name, 0.0) ** 2)
            worse = abs(w - base) if name == "mean_error" else (base - w if name in HIGHER_IS_BETTER else w - base)
            p = normal_sf(worse / spread) * (2 if name == "mean_error" else 1)
            detail = f"{name} {w:.4g} on {prof.labelled:,} labelled predictions (evaluation data {base:.4g})"
            if name == "mean_error":  # a bias is not a drop of quality: the error may have fallen meanwhile
                detail = _bias_detail(w, base, prof.labelled, window, ref)
            out.append(QualityMeasurement(CHECK_OF.get(name, "quality_drop"), name, degradation(name, w, ref),
                                          min(p, 1.0), prof.labelled, w, base, detail))
    est = estimate(prof, ref)
    if est is not None and "accuracy" in ref.metrics:
        base = ref.metrics["accuracy"]
        spread = math.hypot(est["accuracy_sd"], ref.spread.get("accuracy", 0.0), ref.between.get("accuracy", 0.0))
        p = normal_sf((base - est["accuracy"]) / spread) if spread else 1.0
        out.append(QualityMeasurement("estimated_quality_drop", "accuracy", degradation("accuracy", est["accuracy"], ref),
                                      p, est["predictions"], est["accuracy"], base,
                                      f"expected accuracy {est['accuracy']:.4g} of {est['predictions']:,} predictions "
                                      f"from calibrated scores (evaluation data {base:.4g})"))
    return out


def quality_section(prof: QualityProfile | None, ref: QualityReference | None, unmatched: int = 0,
                    early: int = 0) -> dict[str, Any] | None:
    """The ``quality`` section of ``predwatch check --format json``."""
    if ref is None:
        return None
    prof = prof or QualityProfile()
    window = metrics(prof, ref) if prof.labelled else {}
    est = estimate(prof, ref)
    return {
        "task": ref.task,
        "labelled": prof.labelled,
        "predictions": prof.predictions,
        "label_coverage": round(prof.labelled / prof.predictions, 6) if prof.predictions else None,
        "median_label_delay_s": prof.median_delay(),
        "outcomes_without_prediction": unmatched,
        "outcomes_before_prediction": early,  # stamped before their prediction: not in the label delay
        "judged": prof.labelled >= MIN_LABELLED,
        "metrics": {name: {"value": _finite(window.get(name)), "reference": _finite(ref.metrics.get(name))}
                    for name in ref.metrics},
        "estimated": None if est is None else {k: (round(v, 6) if isinstance(v, float) else v)
                                               for k, v in est.items() if k != "accuracy_sd"},
        "estimate_note": ref.estimate_note,
    }


# -- latency -------------------------------------------------------------------------------------
LATENCY_TOP = 378  # the last latency bin holds everything from 0.01 ms * 1.05^378 (about 1,000 s) up


def latency_edges() -> list[float]:
    """The lower edge of every latency bin but the first (which starts at 0): Elasticsearch's ranges."""
    return [0.01 * LATENCY_RATIO ** k for k in range(1, LATENCY_TOP + 1)]


def latency_bin(ms: float) -> int:
    return min(LATENCY_TOP, max(0, int(math.floor(math.log(max(ms, 0.01) / 0.01, LATENCY_RATIO)))))


def latency_bins(values: list[float]) -> dict[str, int]:
    """A latency histogram of milliseconds: bin k holds [0.01 * 1.05^k, 0.01 * 1.05^(k+1)) ms."""
    arr = np.asarray([v for v in values if v is not None and v >= 0], dtype=float)
    if not len(arr):
        return {}
    bins = np.searchsorted(np.asarray(latency_edges()), arr, side="right")
    return {str(k): int(n) for k, n in zip(*np.unique(bins, return_counts=True))}


def latency_percentiles(hist: dict[str, int]) -> dict[str, float] | None:
    """p50, p95 and p99 in milliseconds from a latency histogram (to within 5%)."""
    if not hist:
        return None
    value = lambda k: 0.01 * LATENCY_RATIO ** (k + 0.5)  # noqa: E731 - the middle of the bin
    return {f"p{q}": round(_histogram_quantile(hist, q / 100, value), 4) for q in (50, 95, 99)}


LATENCY_MIN = 50  # latencies in the window below which latency is not judged


def latency_measurement(window: dict[str, int], reference: dict[str, int], against: str = "reference"
                        ) -> QualityMeasurement | None:
    """The window's p95 latency as a multiple of the reference's (``latency_regression``).

    Evidence: the share of the window's latencies above the reference p95, one-sided binomial
    against the 5% expected there."""
    n = sum(window.values())
    if n < LATENCY_MIN or sum(reference.values()) < LATENCY_MIN:
        return None
    ours, theirs = latency_percentiles(window), latency_percentiles(reference)
    cut = latency_bin(theirs["p95"])
    above = sum(k for b, k in window.items() if int(b) > cut)
    p = excess_rate_p_value(above, n, 0.05)
    return QualityMeasurement("latency_regression", "p95", ours["p95"] / theirs["p95"], p, n, ours["p95"],
                              theirs["p95"], f"p95 latency {ours['p95']:.4g} ms over {n:,} predictions "
                                             f"({against} p95 {theirs['p95']:.4g} ms; p50 {ours['p50']:.4g}, "
                                             f"p99 {ours['p99']:.4g})")


def _histogram_quantile(hist: dict[str, int], q: float, value) -> float | None:
    if not hist:
        return None
    items = sorted((int(k), n) for k, n in hist.items())
    total = sum(n for _, n in items)
    seen = 0
    for k, n in items:
        seen += n
        if seen >= q * total:
            return value(k)
    return value(items[-1][0])


def _vec_add(a: list[int] | None, b: list[int] | None) -> list[int] | None:
    if a is None or b is None:
        return a if b is None else b
    return [x + y for x, y in zip(a, b)]


def _add(a: list[int] | None, b: np.ndarray) -> list[int]:
    return b.tolist() if a is None else (np.asarray(a) + b).tolist()


def _finite(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else round(float(x), 6)


def _judged_quality(check: str) -> Callable[[Any, Any, str], list[Measured]]:
    """The window detector of one quality check: the measurements of :func:`quality_measurements` it owns."""
    def detector(profile: Any, baseline: Any, reference: str) -> list[Measured]:
        if baseline.quality is None or profile.quality is None:
            return []
        return [Measured(PREDICTION_FEATURE, "prediction", Measurement(
                    q.value, q.p_value, q.n_window, baseline.quality.rows, q.observed, q.expected, q.detail), q.metric)
                for q in quality_measurements(profile.quality, baseline.quality) if q.check == check]
    detector.__name__ = check
    detector.__doc__ = f"``{check}`` of the window's quality (see :func:`quality_measurements`)."
    return detector


# ``quality_drop`` is registered with the groups (analyzers.core.groups), which judge it per group too
overall_quality_drop = _judged_quality("quality_drop")


# a regression's mean error against the reference's, in reference RMSEs: a bias of b adds b^2 to the MSE, so
# 0.25 costs about 6% of the reference MSE (the size of a quality_drop warning), 0.5 a quarter
window_check("prediction_bias", (0.25, 0.5), "the mean error's shift in reference RMSEs",
             draws_observed=True)(_judged_quality("prediction_bias"))
window_check("estimated_quality_drop", (0.05, 0.15),
             "relative degradation of the accuracy expected from calibrated scores",
             draws_observed=True)(_judged_quality("estimated_quality_drop"))


@window_check("latency_regression", (1.5, 3.0), "window p95 latency as a multiple of the reference p95",
              draws_observed=True)
def latency_regression(profile: Any, baseline: Any, reference: str) -> list[Measured]:
    """The window's p95 latency against the reference's (:func:`latency_measurement`)."""
    if not baseline.latency or not profile.latency:
        return []
    lat = latency_measurement(profile.latency, baseline.latency, reference)
    if lat is None:
        return []
    return [Measured("latency", "latency", Measurement(lat.value, lat.p_value, lat.n_window,
                                                       sum(baseline.latency.values()), lat.observed, lat.expected,
                                                       lat.detail), lat.metric)]
