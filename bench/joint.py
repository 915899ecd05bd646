"""Detection and false alarms of the joint checks on synthetic windows where the truth is known, and their cost.

multivariate_shift (analyzers.core.joint): windows of the tabular generator of tests/test_joint.py (two inputs
correlated 0.8, a segment that sets a numeric's level, 5% nulls in five inputs, two categoricals and a boolean),
each against its own reference fitted on 10,000 independent training rows. embedding_shift: topic embeddings
(6 clusters in a 12-dimensional subspace, noise off it) of dim 32 and 384, against one reference per dim.
A finding: effect at or above the default warning level and p-value at or below 0.01.

    python bench/joint.py [--seeds 30]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from analyzers.core.joint import DEFAULT_LEVELS, embedding_shift, fit_embedding_reference, fit_joint_reference, multivariate_shift  # noqa: E402
from test_joint import KINDS, embeddings, rows, table  # noqa: E402


def window_of(n: int, seed: int, marginals: bool = False, **kw):
    """A window of the tabular generator; ``marginals``: every change the per-feature checks see, none of the joint
    structure (amount x3 + 50, x2 x2 - 1, visits null 15% more often, France's rows become Germany's)."""
    frame = table(n, seed=seed, **kw)
    if marginals:
        frame["amount"] = frame["amount"] * 3 + 50
        frame["x2"] = frame["x2"] * 2 - 1
        frame.loc[np.random.default_rng(seed).random(n) < 0.15, "visits"] = None
        frame.loc[frame["country"] == "FR", "country"] = "DE"
    return frame


def rate(measured, check):
    warning = DEFAULT_LEVELS[check][0]
    return sum(m is not None and m.value >= warning and m.p_value <= 0.01 for m in measured) / len(measured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=30)
    seeds = parser.parse_args().seeds
    print(f"multivariate_shift: share of {seeds} windows that are findings (warning {DEFAULT_LEVELS['multivariate_shift'][0]}, p <= 0.01)")
    refs = [fit_joint_reference(table(10_000, seed=1000 + s), KINDS, seed=s) for s in range(seeds)]
    scenarios = [("from training", {}), ("x1, x2 independent (0.8 -> 0)", {"independent": True}),
                 ("x1, x2 weaker (0.8 -> 0.6)", {"rho": 0.6}), ("x1, x2 weaker (0.8 -> 0.7)", {"rho": 0.7}),
                 ("segment levels inverted", {"inverted": True})]
    scenarios.append(("marginals moved, joint kept", {"marginals": True}))
    for name, kw in scenarios:
        cells = []
        for n in (500, 2000, 5000):
            measured = [multivariate_shift(refs[s], rows(window_of(n, 2000 + s, **kw))) for s in range(seeds)]
            cells.append(f"{n:>5} rows {rate(measured, 'multivariate_shift'):4.0%} (median effect {np.median([m.value for m in measured]):.2f})")
        print(f"  {name:32s}" + " | ".join(cells))
    window = rows(table(50_000, seed=7))
    for n in (2000, 50_000):
        t = time.perf_counter()
        multivariate_shift(refs[0], window[:n])
        print(f"  cost: {n:,} rows {time.perf_counter() - t:.3f} s (rows already in memory as dicts)")
    t = time.perf_counter()
    fit_joint_reference(table(100_000, seed=3), KINDS)
    print(f"  cost: fit on 100,000 training rows {time.perf_counter() - t:.2f} s")

    print(f"embedding_shift: share of {seeds} windows that are findings (warning {DEFAULT_LEVELS['embedding_shift'][0]}, p <= 0.01)")
    for dim in (32, 384):
        training = embeddings(5000, dim, seed=1)
        t = time.perf_counter()
        ref = fit_embedding_reference(training, seed=0)
        fit = time.perf_counter() - t
        for name, kw, sizes in [("from training", {}, (500, 2000, 10_000)), ("centroid +0.3 sd per dim", {"move": 0.3}, (1000,)),
                                ("centroid +0.1 sd per dim", {"move": 0.1}, (1000,)), ("centroid +0.05 sd per dim", {"move": 0.05}, (1000,)),
                                ("new cluster 10%", {"new_cluster": 0.1}, (1000,)), ("new cluster 5%", {"new_cluster": 0.05}, (1000,)),
                                ("new cluster 2%", {"new_cluster": 0.02}, (1000, 2000))]:
            cells = []
            for n in sizes:
                measured = [embedding_shift(ref, embeddings(n, dim, seed=3000 + s, **kw)) for s in range(seeds)]
                cells.append(f"{n:>6} rows {rate(measured, 'embedding_shift'):4.0%} (median effect {np.median([m.value for m in measured]):.3f})")
            print(f"  dim {dim:3d} {name:28s}" + " | ".join(cells))
        vectors = embeddings(2000, dim, seed=5)
        t = time.perf_counter()
        embedding_shift(ref, vectors)
        print(f"  dim {dim}: cost per window of 2,000 vectors {time.perf_counter() - t:.3f} s; fit {fit:.2f} s; "
              f"reference {len(str(ref.to_dict())) / 1e3:.0f} KB as JSON")
    p_values = []
    for s in range(seeds):
        ref = fit_embedding_reference(embeddings(3000, 32, seed=4000 + s), seed=s)
        p_values.append(embedding_shift(ref, embeddings(1000, 32, seed=5000 + s)).p_value)
    print(f"  embedding_shift p-values over independent references (dim 32, 1,000 rows): "
          f"{np.mean(np.array(p_values) <= 0.05):.0%} <= 0.05, {np.mean(np.array(p_values) <= 0.01):.0%} <= 0.01")


if __name__ == "__main__":
    main()
