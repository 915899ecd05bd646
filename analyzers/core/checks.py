"""The checks: each reads one column's baseline and window profile and measures one thing.

A detector returns a :class:`Measurement` (an effect size with its evidence) or
``None`` when it does not apply. :func:`evaluate` then decides, for all
measurements of a window together: a result is a finding only when its effect
reaches the configured threshold *and* its p-value survives Benjamini-Hochberg
false-discovery control across every test of the window. Large windows therefore
do not alarm on negligible differences, and small windows do not alarm on noise.

Effects are measured against what training data predicts, not against zero:
unseen categories against the Good-Turing unseen share, OOV against the held-out
OOV rate, nulls against the training null rate. A reference measured on few rows
(a thin hour of training, a few recent days) is itself noisy: rates are tested
against it as two samples (:func:`analyzers.core.stats.excess_over_reference_p_value`),
PSI on the effective size of both.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import stats
from .baseline import Baseline, ColumnBaseline
from .joint import ALL_INPUTS
from .config import CheckConfig
from .profile import UNSEEN_KEEP, ColumnProfile, WindowProfile
from .registry import Measurement, column_check, specs
from .segments import explain

SHOWN = 5  # examples per finding
MIN_JUDGED = 20  # values below which a check does not judge: it says so instead of guessing
RARE = 5  # training count below which a category is too rare to take part in shift bins


@dataclass
class CheckResult:
    """A decided measurement: ``status`` is ``ok``, ``warning`` or ``critical``."""

    check: str
    feature: str
    role: str
    status: str
    value: float
    threshold: float  # the level judged by: the critical level when critical, else the warning level
    critical_threshold: float
    p_value: float | None
    adjusted_p_value: float | None
    n_window: int
    n_baseline: int
    observed: float | None
    expected: float | None
    message: str
    examples: list[Any]
    judged: bool = True  # False: too few values in the window to judge (status stays ok)
    reference: str = "training"  # what the window was judged against ("training, same hours of day")
    segments: list[dict[str, Any]] | None = None  # where the offending records concentrate (None: not looked at)
    metric: str | None = None  # quality checks: which metric (accuracy, roc_auc, mae, ...); latency: p95
    labels_pending: bool | None = None  # label trends: the window's outcomes are still arriving
    warning_threshold: float | None = None  # the warning level (None: ``threshold`` was given as the warning level)
    segment: dict[str, str] | None = None  # the group judged on its own ({"feature": F, "value": V}), if not all

    def __post_init__(self) -> None:
        # One meaning of ``threshold`` everywhere (text, JSON, stored documents, report): the level that was
        # crossed. Callers that pass the two levels as ``threshold`` and ``critical_threshold`` still can.
        if self.warning_threshold is None:
            self.warning_threshold = self.threshold
            if self.status == "critical":
                self.threshold = self.critical_threshold

    @property
    def levels(self) -> dict[str, float]:
        """Both configured levels of the check, whichever was crossed."""
        return {"warning": self.warning_threshold, "critical": self.critical_threshold}

    @property
    def severity(self) -> str | None:
        return None if self.status == "ok" else self.status

    def finding(self) -> dict[str, Any]:
        """The finding as ``predwatch check --format json`` prints it."""
        return {
            "check": self.check,
            "feature": None if self.feature == ALL_INPUTS else self.feature,
            "severity": self.status,
            "value": stats.finite_or_none(round(self.value, 6)),
            "threshold": self.threshold,
            "levels": self.levels,
            "p_value": stats.finite_or_none(self.p_value),
            "message": self.message,
            "examples": self.examples,
            "observed": stats.finite_or_none(self.observed),
            "expected": stats.finite_or_none(self.expected),
            "n_window": self.n_window,
            "n_baseline": self.n_baseline,
            "reference": self.reference,
            "segments": self.segments or [],
            **({"metric": self.metric} if self.metric else {}),
            **({"segment": self.segment} if self.segment else {}),
        }


TRAINING = "training"  # the reference named in messages unless the caller names another


@column_check("missing_feature", (0.2, 0.5), "Cohen's h: missing share against the training null rate",
              problem="missing", noun="missing values", draws_observed=True)
def missing_feature(col: ColumnBaseline, prof: ColumnProfile, window: WindowProfile,
                    against: str = TRAINING) -> Measurement | None:
    """Share of records where the feature is absent or null, above the training null rate.

    Statistic: Cohen's h between ``(absent + null) / records`` and the baseline null
    rate (:func:`analyzers.core.stats.cohens_h`); one-sided binomial test against the
    baseline rate. A feature that vanishes scores about 3.1 (pi).

    >>> from analyzers.core.baseline import ColumnBaseline
    >>> col = ColumnBaseline("amount", "numeric", rows=1000, nulls=20)
    >>> m = missing_feature(col, ColumnProfile("numeric", present=600, nulls=10), WindowProfile(records=1000))
    >>> round(m.value, 2), round(m.observed, 2), m.p_value < 1e-10
    (1.11, 0.41, True)
    """
    n = window.records
    if n == 0:
        return None
    absent = n - prof.present
    missing = absent + prof.nulls
    rate = missing / n
    expected = col.null_rate
    parts = []
    if absent:
        parts.append(f"absent in {absent / n:.1%}")
    if prof.nulls:
        parts.append(f"null in {prof.nulls / n:.1%}")
    detail = (" and ".join(parts) or "never missing") + f" of {n:,} records ({against}: {expected:.1%} null)"
    return Measurement(stats.cohens_h(rate, expected), _excess(missing, n, expected, col.rows), n,
                       col.rows, rate, expected, detail)


@column_check("type_mismatch", (0.2, 0.5), "Cohen's h: share of values of the wrong type (0.2 ~ 1% from none)",
              problem="mismatch", noun="wrong-typed values", draws_observed=True)
def type_mismatch(col: ColumnBaseline, prof: ColumnProfile, window: WindowProfile,
                  against: str = TRAINING) -> Measurement | None:
    """Share of non-null values whose JSON type does not fit the feature's kind.

    Statistic: Cohen's h between ``mismatched / non-null values`` and the baseline
    mismatch rate; one-sided binomial test. Examples are the offending values.
    """
    n = prof.present - prof.nulls
    if n <= 0:
        return None
    base_n = col.rows - col.nulls
    expected = col.mismatched / base_n if base_n else 0.0
    rate = prof.mismatched / n
    detail = f"{prof.mismatched:,} of {n:,} values are not {_kind_phrase(col.kind)} ({against}: {expected:.1%})"
    return Measurement(stats.cohens_h(rate, expected), _excess(prof.mismatched, n, expected, base_n), n,
                       base_n, rate, expected, detail, [_example(v) for v in prof.mismatch_examples[:SHOWN]])


@column_check("unseen_category", (0.2, 0.5), "Cohen's h: unseen share against the Good-Turing expected share",
              problem="unseen", noun="unseen values", draws_observed=True)
def unseen_category(col: ColumnBaseline, prof: ColumnProfile, window: WindowProfile,
                    against: str = TRAINING) -> Measurement | None:
    """Share of values never seen in training, above the share training predicts.

    Statistic: Cohen's h between ``unseen / values`` and ``expected``, the Good-Turing
    estimate of unseen mass (training singletons / values, plus categories the
    baseline did not store); one-sided binomial test. A long tail of rare values
    therefore stays quiet, a new value taking a tenth of the traffic does not.
    Reference: Good (1953), Biometrika 40(3/4).
    """
    if col.kind != "categorical":
        return None
    n = prof.values
    if n <= 0:
        return None
    expected = col.expected_unseen_rate
    rate = prof.unseen / n
    top = sorted(prof.unseen_values.items(), key=lambda kv: -kv[1])[:SHOWN]
    distinct = f"{len(prof.unseen_values):,}{'+' if len(prof.unseen_values) >= UNSEEN_KEEP else ''}"
    detail = (f"{rate:.1%} of {n:,} values were never seen in training "
              f"({distinct} distinct; expected {expected:.1%} from {against})")
    return Measurement(stats.cohens_h(rate, expected), _excess(prof.unseen, n, expected, col.values), n,
                       col.values, rate, expected, detail, [{"value": v, "count": k} for v, k in top])


@column_check("out_of_range", (0.2, 0.5), "Cohen's h: share outside the training min..max against chance",
              problem="out_of_range", noun="out-of-range values", draws_observed=True,
              against_recent=False)  # judged against training's range only (PSI sees the tails)
def out_of_range(col: ColumnBaseline, prof: ColumnProfile, window: WindowProfile,
                 against: str = TRAINING) -> Measurement | None:
    """Share of numeric values outside the training minimum..maximum.

    Statistic: Cohen's h between ``outside / values`` and ``2 / (training values + 1)``
    (the chance a new draw from the training distribution beats its extremes);
    one-sided binomial test.
    """
    if col.kind != "numeric" or not prof.bins or col.min is None:
        return None
    n = sum(prof.bins)
    if n == 0:
        return None
    below, above = prof.bins[0], prof.bins[-1]
    expected = 2.0 / (col.values + 1)
    rate = (below + above) / n
    examples = []
    if below:
        examples.append({"below_min": col.min, "window_min": prof.min, "count": below})
    if above:
        examples.append({"above_max": col.max, "window_max": prof.max, "count": above})
    detail = (f"{rate:.1%} of {n:,} values outside the training range "
              f"[{_num(col.min)}, {_num(col.max)}] (window range [{_num(prof.min)}, {_num(prof.max)}])")
    return Measurement(stats.cohens_h(rate, expected), stats.excess_rate_p_value(below + above, n, expected), n,
                       col.values, rate, expected, detail, examples)


@column_check("oov_rate", (0.2, 0.5), "Cohen's h: out-of-vocabulary rate against the held-out rate",
              draws_observed=True)
def oov_rate(col: ColumnBaseline, prof: ColumnProfile, window: WindowProfile,
             against: str = TRAINING) -> Measurement | None:
    """Out-of-vocabulary token rate of a text feature, above the held-out training rate.

    Statistic: Cohen's h between ``oov tokens / tokens`` and the held-out OOV rate, so
    a rise from 1.5% to 7% of unknown words counts. The test counts texts, not
    tokens, as independent trials (words of one text are not independent), so its
    evidence is conservative; from Elasticsearch it counts the sampled texts only.
    """
    if col.kind != "text" or prof.tokens <= 0:
        return None
    expected = col.expected_oov_rate or 0.0
    rate = prof.oov_tokens / prof.tokens
    trials = max(prof.texts, 1)
    p = stats.excess_rate_p_value(round(rate * trials), trials, expected)
    top = sorted(prof.oov_values.items(), key=lambda kv: -kv[1])[:SHOWN]
    detail = (f"{rate:.1%} of {prof.tokens:,} words in {prof.texts:,} texts are not in the model's vocabulary "
              f"(expected {expected:.1%} from {against})")
    return Measurement(stats.cohens_h(rate, expected), p, prof.texts, col.values, rate, expected, detail,
                       [{"word": w, "count": k} for w, k in top])


INPUTS = frozenset({"input"})


@column_check("distribution_shift", (0.10, 0.25), "PSI on baseline bins", roles=INPUTS)
def distribution_shift(col: ColumnBaseline, prof: ColumnProfile, window: WindowProfile,
                       against: str = TRAINING) -> Measurement | None:
    """Population Stability Index between training and window on the baseline's bins.

    Numeric: decile bins plus the two out-of-range tails. Categorical: categories
    with at least 0.5% of training (top 30) plus one bin for the other known
    ones; unseen values are the ``unseen_category`` check's business.
    Thresholds: PSI 0.1 moderate, 0.25 significant; evidence: ``n_eff * PSI ~
    chi2(bins - 1)`` (see :func:`analyzers.core.stats.psi_p_value`).
    """
    expected, observed, detail = _shift_bins(col, prof, against)
    n_base, n_win = sum(expected), sum(observed)
    if n_base == 0 or n_win == 0:
        return None
    value = stats.psi(expected, observed)
    return Measurement(value, stats.psi_p_value(value, n_base, n_win, len(expected)), int(n_win), int(n_base),
                       None, None, f"PSI {value:.3f} against {against} over {len(expected)} bins; {detail}")



column_check("prediction_shift", (0.10, 0.25), "PSI on baseline bins of the model output",
             roles=frozenset({"prediction"}))(distribution_shift)


@column_check("category_share", (0.2, 0.5), "Cohen's h: one known category's share against training's")
def category_share(col: ColumnBaseline, prof: ColumnProfile, window: WindowProfile,
                   against: str = TRAINING) -> Measurement | None:
    """The largest rise of one known category's share, judged on its own (Cohen's h).

    PSI bins the rare categories together, so a value at 0.3% of training rising to 5%
    would vanish into that bin; this check looks at every category seen at least
    ``RARE`` times in all of training (rare at this hour of day or not). Statistic: the largest
    Cohen's h between a category's window share and its reference share; one-sided two-sample
    test (the reference's own noise counted), Bonferroni-corrected for the number of categories
    looked at.
    """
    if col.kind != "categorical" or col.role != "input" or not col.categories or col.values <= 0:
        return None  # model outputs have few labels, each its own bin of prediction_shift
    n = prof.values
    if n <= 0:
        return None
    best: tuple[float, str, int, float, float] | None = None
    trained = col.training_categories or col.categories
    for cat, k in prof.categories.items():
        if trained.get(cat, 0) < RARE:  # rare in all of training, not merely in this hour's share of it
            continue
        expected, observed = col.categories.get(cat, 0) / col.values, k / n
        h = stats.cohens_h(observed, expected)
        if best is None or h > best[0]:
            best = (h, cat, k, expected, observed)
    if best is None:
        return None
    h, cat, k, expected, observed = best
    p = min(1.0, _excess(k, n, expected, col.values) * len(prof.categories))
    return Measurement(h, p, n, col.values, observed, expected,
                       f"{cat!r} is {observed:.1%} of {n:,} values ({against} {expected:.1%})",
                       [{"value": cat, "count": k}])


def _shift_bins(col: ColumnBaseline, prof: ColumnProfile, against: str) -> tuple[list[float], list[float], str]:
    if col.kind == "numeric":
        base, win = list(col.bin_counts or []), list(prof.bins or [])
        if len(base) != len(win):
            return [], [], ""
        ms = prof.mean_std()
        detail = f"window mean {_num(ms[0])} sd {_num(ms[1])}" if ms else ""
        if ms and col.mean is not None:
            detail += f" vs {against} mean {_num(col.mean)} sd {_num(col.std)}"
        return base, win, detail
    if col.kind == "text" or not col.categories:
        return [], [], ""
    total = sum(col.categories.values())
    ranked = sorted(col.categories.items(), key=lambda kv: -kv[1])
    major = [cat for cat, n in ranked[:30] if n >= 0.005 * total]
    # The remaining categories form one bin; those seen fewer than RARE times in training
    # are left out on both sides: their training share overstates how often they recur
    # (the Good-Turing effect), which would read as a shift in every window.
    trained = col.training_categories or col.categories
    minor = [cat for cat, n in ranked[len(major):] if trained.get(cat, 0) >= RARE]
    base = [col.categories[cat] for cat in major]
    win = [prof.categories.get(cat, 0) for cat in major]
    base.append(sum(col.categories[cat] for cat in minor))
    win.append(sum(prof.categories.get(cat, 0) for cat in minor))
    if base[-1] == 0 and win[-1] == 0:
        base.pop()
        win.pop()
    moved = _largest_moves(major, base, win)
    return base, win, f"largest moves ({against} -> window): {moved}" if moved else ""


def _excess(successes: int, trials: int, expected: float, ref_trials: float) -> float:
    """One-sided p-value of a window's rate above the reference's, the reference's own noise counted (a thin
    hour of training, a few recent days): :func:`analyzers.core.stats.excess_over_reference_p_value`."""
    return stats.excess_over_reference_p_value(successes, trials, expected * ref_trials, ref_trials)


def _largest_moves(names: list[str], base: list[float], win: list[float]) -> str:
    nb, nw = sum(base) or 1, sum(win) or 1
    moves = [(name, b / nb, w / nw) for name, b, w in zip(names, base, win)]
    moves.sort(key=lambda m: -abs(m[2] - m[1]))
    return ", ".join(f"{name!r} {b:.1%} -> {w:.1%}" for name, b, w in moves[:3])


def evaluate(profile: WindowProfile, baseline: Baseline, config: CheckConfig | None = None,
             reference: str = "training") -> list[CheckResult]:
    """Every registered check (:mod:`analyzers.core.registry`): the column checks of every column, then the
    window checks (the model's quality and latency: :mod:`analyzers.core.quality`), decided together (one FDR
    family per window); findings on records then name the segments they concentrate in.

    ``baseline`` is the reference the window is judged against; ``reference`` names it in the results."""
    config = config or CheckConfig()
    checks = specs()
    # (check, feature, role, metric, group, measured)
    pending: list[tuple[str, str, str, str | None, dict[str, str] | None, Measurement]] = []
    for name, col in baseline.columns.items():
        prof = profile.columns.get(name) or ColumnProfile(kind=col.kind)
        for spec in checks:
            if spec.column is None or (spec.roles is not None and col.role not in spec.roles):
                continue
            if not config.level(spec.name, name).enabled:
                continue
            measured = spec.column(col, prof, profile, reference)
            if measured is not None:
                pending.append((spec.name, col.name, col.role, None, None, measured))
    for spec in checks:
        if spec.window is not None:
            pending.extend((spec.name, m.feature, m.role, m.metric, m.segment, m.measurement)
                           for m in spec.window(profile, baseline, reference)
                           if config.level(spec.name, m.feature).enabled)
    adjusted = stats.benjamini_hochberg([m.p_value if m.p_value is not None else 1.0 for *_, m in pending])
    results = []
    for (check, feature, role, metric, group, m), q in zip(pending, adjusted):
        level = config.level(check, feature)
        significant = q <= config.fdr
        judged = m.n_window >= MIN_JUDGED
        if not judged:
            status = "ok"
        elif significant and m.value >= level.critical:
            status = "critical"
        elif significant and m.value >= level.warning:
            status = "warning"
        else:
            status = "ok"
        results.append(CheckResult(
            check=check, feature=feature, role=role, status=status, value=m.value,
            threshold=level.critical if status == "critical" else level.warning, warning_threshold=level.warning,
            critical_threshold=level.critical, p_value=m.p_value,
            adjusted_p_value=q, n_window=m.n_window, n_baseline=m.n_baseline, observed=m.observed,
            expected=m.expected, examples=m.examples, judged=judged, reference=m.reference or reference, metric=metric,
            segment=group, segments=m.segments if group is None else [dict(group)],
            message=(m.detail if feature == ALL_INPUTS else f"{feature}: {m.detail}") if judged else
            f"{feature}: not judged, only {m.n_window} values in the window (at least {MIN_JUDGED} needed)",
        ))
    explain(results, profile)
    return results


def findings(results: list[CheckResult]) -> list[CheckResult]:
    """The alert-worthy results, most severe and largest effect first."""
    bad = [r for r in results if r.status != "ok"]
    return sorted(bad, key=lambda r: (r.status != "critical", -r.value / (r.warning_threshold or 1)))


def example_text(example: Any) -> str:
    """One finding example as short plain text: ``XX (104)`` or ``key: value, ...``."""
    if isinstance(example, dict):
        label = example.get("value", example.get("word"))
        if label is not None and "count" in example:
            return f"{label} ({example['count']:,})"
        if label is not None and "share" in example:
            return f"{label} ({example['share']:.0%})"
        return ", ".join(f"{k}: {v}" for k, v in example.items())
    return str(example)


def _kind_phrase(kind: str) -> str:
    return {"numeric": "numbers", "boolean": "booleans", "text": "strings", "categorical": "scalar values",
            "embedding": "arrays of numbers of the embedding's length"}[kind]


def _example(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "..."
    return value


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"
