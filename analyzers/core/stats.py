"""Pure statistics behind the checks: effect sizes, tests, and false-discovery control.

Every function takes counts and returns numbers; no I/O, no profiles.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special as _special  # scipy.stats costs a second to import; these are its kernels

PSEUDO_COUNT = 0.5


def psi(expected_counts: Sequence[float], observed_counts: Sequence[float]) -> float:
    """Population Stability Index between two count vectors over the same bins.

    ``PSI = sum((q - p) * ln(q / p))``, with ``p`` the expected (baseline) and ``q``
    the observed (window) proportions, each smoothed with 0.5 pseudo-counts so that
    empty bins stay finite. Rule of thumb: < 0.1 stable, 0.1-0.25 moderate,
    > 0.25 significant shift (Siddiqi, *Credit Risk Scorecards*, 2006).

    >>> round(psi([50, 50], [50, 50]), 6)
    0.0
    >>> round(psi([500, 500], [800, 200]), 3)
    0.415
    """
    p = np.asarray(expected_counts, dtype=float) + PSEUDO_COUNT
    q = np.asarray(observed_counts, dtype=float) + PSEUDO_COUNT
    p /= p.sum()
    q /= q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def psi_p_value(value: float, n_expected: float, n_observed: float, bins: int) -> float:
    """p-value of a PSI under "same distribution": ``n_eff * PSI ~ chi2(bins - 1)``.

    PSI is the symmetric Kullback-Leibler (Jeffreys) divergence, which for two
    multinomial samples of sizes ``n`` and ``m`` is asymptotically chi-square
    distributed after scaling by ``n*m/(n+m)``. Returns 1.0 when a side is empty.
    """
    if n_expected <= 0 or n_observed <= 0 or bins < 2:
        return 1.0
    n_eff = n_expected * n_observed / (n_expected + n_observed)
    return float(_special.chdtrc(bins - 1, max(n_eff * value, 0.0)))


def cohens_h(observed_rate: float, expected_rate: float) -> float:
    """Cohen's h: the difference of two proportions on the arcsine (variance-stabilised) scale.

    ``h = 2*asin(sqrt(p1)) - 2*asin(sqrt(p0))``. A rise from 1% to 6% (h 0.30) weighs
    more than one from 40% to 45% (h 0.10), as it should for rates of nulls, unknown
    words or bad values; the scale is the same at any rate. Conventions: 0.2 small,
    0.5 medium, 0.8 large (Cohen, *Statistical Power Analysis*, 1988).

    >>> round(cohens_h(0.06, 0.01), 2), round(cohens_h(0.45, 0.40), 2), round(cohens_h(1.0, 0.0), 2)
    (0.29, 0.1, 3.14)
    """
    p1 = min(max(observed_rate, 0.0), 1.0)
    p0 = min(max(expected_rate, 0.0), 1.0)
    return 2.0 * math.asin(math.sqrt(p1)) - 2.0 * math.asin(math.sqrt(p0))


def excess_rate_p_value(successes: int, trials: int, expected_rate: float) -> float:
    """One-sided binomial test: is the observed rate above ``expected_rate``?

    >>> excess_rate_p_value(10, 1000, 0.01) > 0.4
    True
    >>> excess_rate_p_value(100, 1000, 0.01) < 1e-30
    True
    """
    if trials <= 0 or successes <= 0:
        return 1.0
    rate = min(max(expected_rate, 1e-12), 1.0 - 1e-12)
    return float(_special.bdtrc(successes - 1, trials, rate))  # P(X >= successes)


def excess_over_reference_p_value(successes: int, trials: int, ref_successes: float, ref_trials: float) -> float:
    """One-sided test of a window's rate against a reference rate that was itself measured on ``ref_trials``.

    A reference of 500 rows is noisy: its share of a category is known to about 1/sqrt(500). The variance of the
    difference of the two rates is ``p(1-p) (1/n + 1/m)``, that of one binomial sample of the effective size
    ``n m / (n + m)``; the test is the binomial tail of the window's rate on that many trials (real-valued, through
    the regularised incomplete beta function), against the reference rate with Jeffreys' half count, so that a
    category the reference saw no or few times is not taken to be impossible. A reference of all of training
    (``ref_trials`` much larger than the window) gives back :func:`excess_rate_p_value`.

    >>> round(excess_over_reference_p_value(100, 5000, 5, 500), 3) > 0.01  # 2% against 1% of only 500 rows
    True
    >>> excess_over_reference_p_value(100, 5000, 50, 50_000) < 1e-10  # against 1% of 50,000 rows
    True
    """
    if trials <= 0 or successes <= 0:
        return 1.0
    if ref_trials <= 0:
        return excess_rate_p_value(successes, trials, 0.0)
    rate = min(max((ref_successes + 0.5) / (ref_trials + 1.0), 1e-12), 1.0 - 1e-12)
    n_eff = trials * ref_trials / (trials + ref_trials)
    k_eff = successes / trials * n_eff
    if k_eff <= 0:
        return 1.0
    return float(_special.betainc(k_eff, max(n_eff - k_eff + 1.0, 1e-9), rate))  # P(X >= k_eff)


def normal_sf(z: float) -> float:
    """One-sided p-value of a standard normal score: ``P(Z >= z)``.

    >>> round(normal_sf(1.6449), 3)
    0.05
    """
    return float(_special.ndtr(-z))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), controlling the false discovery rate.

    A result is significant at FDR ``alpha`` when its adjusted p-value is <= ``alpha``.
    Benjamini & Hochberg (1995), J. R. Stat. Soc. B 57(1).

    >>> [round(q, 3) for q in benjamini_hochberg([0.01, 0.04, 0.03, 0.5])]
    [0.04, 0.053, 0.053, 0.5]
    """
    m = len(p_values)
    if m == 0:
        return []
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        adjusted[i] = min(running, 1.0)
    return adjusted


def finite_or_none(value: float | None) -> float | None:
    """JSON-safe float: NaN and infinities become None."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
