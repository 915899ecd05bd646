"""Detection and false alarms of the joint checks on synthetic windows where the truth is known, and their cost.

multivariate_shift (analyzers.core.joint): windows of the tabular generator of tests/test_joint.py (two inputs
correlated 0.8, a segment that sets a numeric's level, 5% nulls in five inputs, two categoricals and a boolean),
each against its own reference fitted on independent training rows (50,000 by default; the check keeps a seeded
sample of 10,000 of them). embedding_shift: topic embeddings (6 clusters in a 12-dimensional subspace, noise off
it) of dim 32 and 384, against one reference per dim. A finding: effect at or above the default warning level and
p-value at or below 0.01.

With ``--nannyml-python``, the same training rows and the same windows (written to Parquet files) are judged by
NannyML's multivariate drift, ``DataReconstructionDriftCalculator`` (PCA on the standardized, count-encoded and
imputed inputs; a window's value is its rows' mean reconstruction error) in that interpreter: one calculator per
training set and window size, ``chunk_size`` = the window's size, so the reference is cut into chunks of the
window's size (100, 25 and 10 chunks of 50,000 rows) and each window is one chunk. Its own alert: the window's
error outside the reference chunks' mean +- 3 standard deviations (NannyML's defaults). Seconds per window: the
check on records already in memory (predwatch: dicts; NannyML: a DataFrame), the fits apart.
NannyML encodes a category by its share in the reference, so two segments of equal share (A and B, 40% each) become
nearly the same number (0.403 and 0.397 for seed 0) and an inversion of their levels is nearly invisible to it;
it has no effect size, so a small change is flagged once the window is large enough.

    python -m venv /tmp/nm && /tmp/nm/bin/pip install 'nannyml==0.13.1' statsmodels 'pandas<3'
    python bench/joint.py [--seeds 30] [--training-rows 50000] [--nannyml-python /tmp/nm/bin/python]

(NannyML 0.13.1 imports statsmodels without declaring it; it runs on pandas 3 too, but was released for pandas 2.)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

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


# Run by the NannyML interpreter: argv = training parquet, windows parquet, results JSON. One calculator per training
# seed and window size (chunk_size = the window's size: the reference is cut into chunks of that size, its
# thresholds are their mean +- 3 sd), each window one chunk; seconds of calculate() per window, of fit() per fit.
NANNYML_SCRIPT = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
import nannyml
from nannyml import DataReconstructionDriftCalculator
training, windows = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
inputs = [c for c in training.columns if c != "seed"]
results, fits = [], []
for (seed, n), group in windows.groupby(["seed", "n"], sort=True):
    reference = training[training["seed"] == seed][inputs].reset_index(drop=True)
    start = time.perf_counter()
    calc = DataReconstructionDriftCalculator(column_names=inputs, chunk_size=int(n)).fit(reference)
    fits.append({"seed": int(seed), "n": int(n), "seconds": time.perf_counter() - start})
    for scenario, window in group.groupby("scenario", sort=False):
        window = window[inputs].reset_index(drop=True)
        start = time.perf_counter()
        row = calc.calculate(window).filter(period="analysis").to_df().iloc[0]
        seconds = time.perf_counter() - start
        error = row[("reconstruction_error", "value")]
        results.append({"scenario": scenario, "n": int(n), "seed": int(seed), "seconds": seconds,
                        "error": float(error), "alert": bool(row[("reconstruction_error", "alert")]),
                        "lower": float(row[("reconstruction_error", "lower_threshold")]),
                        "upper": float(row[("reconstruction_error", "upper_threshold")])})
with open(sys.argv[3], "w") as fh:
    json.dump({"version": nannyml.__version__, "pandas": pd.__version__, "results": results, "fits": fits}, fh)
"""


def nannyml_judgements(python: str, training: dict[int, pd.DataFrame], windows: dict[tuple[str, int, int], pd.DataFrame]):
    """NannyML's data-reconstruction drift on the same training rows and windows, in its own interpreter; the frames
    go through Parquet files. Returns the JSON the script writes, or None (with the reason printed)."""
    with tempfile.TemporaryDirectory(prefix="predwatch-bench-joint-") as tmp:
        paths = [os.path.join(tmp, name) for name in ("training.parquet", "windows.parquet", "results.json")]
        pd.concat([frame.assign(seed=seed) for seed, frame in training.items()], ignore_index=True).to_parquet(paths[0])
        pd.concat([frame.assign(scenario=scenario, n=n, seed=seed) for (scenario, n, seed), frame in windows.items()],
                  ignore_index=True).to_parquet(paths[1])
        env = dict(os.environ, NML_DISABLE_USAGE_LOGGING="1")  # no usage reports sent while it is timed
        try:
            proc = subprocess.run([python, "-c", NANNYML_SCRIPT, *paths], capture_output=True, text=True, env=env)
        except OSError as exc:
            print(f"  NannyML not measured: {exc}")
            return None
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            print(f"  NannyML not measured: {lines[-1] if lines else 'failed'}")
            return None
        with open(paths[2]) as fh:
            return json.load(fh)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--training-rows", type=int, default=50_000,
                        help="training rows per seed (NannyML's thresholds come from the reference cut into chunks of "
                             "the window's size: 50,000 rows give 10 chunks of 5,000)")
    parser.add_argument("--nannyml-python", default=None,
                        help="a Python with nannyml==0.13.1 (its own venv, see the docstring): adds NannyML's "
                             "data-reconstruction drift on the same windows")
    args = parser.parse_args()
    seeds, sizes = args.seeds, (500, 2000, 5000)
    print(f"multivariate_shift: share of {seeds} windows that are findings (warning {DEFAULT_LEVELS['multivariate_shift'][0]}, "
          f"p <= 0.01); each seed its own {args.training_rows:,} training rows")
    training = {s: table(args.training_rows, seed=1000 + s) for s in range(seeds)}
    refs, fit_seconds = [], []
    for s in range(seeds):
        t = time.perf_counter()
        refs.append(fit_joint_reference(training[s], KINDS, seed=s))
        fit_seconds.append(time.perf_counter() - t)
    scenarios = [("from training", {}), ("x1, x2 independent (0.8 -> 0)", {"independent": True}),
                 ("x1, x2 weaker (0.8 -> 0.6)", {"rho": 0.6}), ("x1, x2 weaker (0.8 -> 0.7)", {"rho": 0.7}),
                 ("segment levels inverted", {"inverted": True})]
    scenarios.append(("marginals moved, joint kept", {"marginals": True}))
    windows, measured, check_seconds = {}, {}, {n: [] for n in sizes}
    for name, kw in scenarios:
        for n in sizes:
            for s in range(seeds):
                windows[name, n, s] = window_of(n, 2000 + s, **kw)
                records = rows(windows[name, n, s])
                t = time.perf_counter()
                measured[name, n, s] = multivariate_shift(refs[s], records)
                check_seconds[n].append(time.perf_counter() - t)
    nannyml = nannyml_judgements(args.nannyml_python, training, windows) if args.nannyml_python else None
    judged = {(r["scenario"], r["n"], r["seed"]): r for r in nannyml["results"]} if nannyml else {}
    if nannyml:
        print(f"  against NannyML {nannyml['version']} (pandas {nannyml['pandas']}) DataReconstructionDriftCalculator, "
              f"defaults, chunk_size = the window's size; its alert: error outside the reference chunks' mean +- 3 sd")
    header = f"  {'window':32s} {'rows':>5}  {'predwatch (median effect)':26s}"
    print((header + ("  NannyML (median error; thresholds)" if judged else "")).rstrip())
    for name, _ in scenarios:
        for n in sizes:
            cell = [measured[name, n, s] for s in range(seeds)]
            line = (f"  {name:32s} {n:>5}  {rate(cell, 'multivariate_shift'):4.0%} "
                    f"({np.median([m.value for m in cell]):.2f}){'':15s}")
            if judged:
                runs = [judged[name, n, s] for s in range(seeds)]
                line += (f"  {np.mean([r['alert'] for r in runs]):4.0%} ({np.median([r['error'] for r in runs]):.3f};"
                         f" {np.median([r['lower'] for r in runs]):.3f}-{np.median([r['upper'] for r in runs]):.3f})")
            print(line.rstrip())
    for n in sizes:
        line = f"  seconds per window of {n:,} rows (median): predwatch {np.median(check_seconds[n]):.4f} (rows as dicts)"
        if nannyml:
            line += (f", NannyML {np.median([r['seconds'] for r in nannyml['results'] if r['n'] == n]):.4f} (a DataFrame); "
                     f"NannyML fit {np.median([f['seconds'] for f in nannyml['fits'] if f['n'] == n]):.2f} s")
        print(line)
    print(f"  predwatch fit on {args.training_rows:,} training rows (median): {np.median(fit_seconds):.2f} s")
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
