"""Quiet by default, loud when it matters: false-alarm and detection rates of the default checks.

False alarms: windows drawn from the training distribution (natural nulls, a Zipf long
tail of categories, rare words) at several sizes; any finding counts. Detection: each
incident of ``tests/incidents.py`` injected into windows of 300 and 1,000 rows, and small
rates (1% -> 5.5% nulls, about 0% -> 6% unknown words, a 0.3% category at 5%) at 2,000;
hourly windows of traffic that moves with the hour of day against baselines with and without
``--time-column``. Target: no false alarm (against the same hours),
every incident caught.

    python bench/detection.py [--seeds 40]
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import incidents  # noqa: E402
import synth  # noqa: E402

from analyzers.core.baseline import build_baseline  # noqa: E402
from analyzers.core.checks import evaluate, findings  # noqa: E402
from analyzers.sources.jsonl import read_predictions  # noqa: E402
from analyzers.sources.local import LocalProfiler  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    args = parser.parse_args()
    baseline = build_baseline(synth.table(50_000, seed=1), model="checkout-risk", version="7", kinds=synth.KINDS,
                              predictions=["score"])

    def found(frame):
        profile = LocalProfiler(baseline).profile(read_predictions(synth.records(frame)))
        return {(f.check, f.feature) for f in findings(evaluate(profile, baseline))}

    print("false alarms (windows from the training distribution with any finding):")
    for rows in (300, 500, 2_000, 20_000):
        alarms = sum(bool(found(synth.table(rows, seed=10_000 + s))) for s in range(args.seeds))
        print(f"  {rows:>7,} rows: {alarms} of {args.seeds} windows")
    for rows in (300, 1000):
        print(f"detection at {rows:,} rows:")
        for incident in incidents.ALL:
            caught = 0
            for s in range(args.seeds // 2):
                frame, expected = incident(rows, 20_000 + s)
                caught += expected in found(frame)
            print(f"  {incident.__name__:30s} {caught} of {args.seeds // 2}")
    print("small rates at 2,000 rows (Cohen's h; a plain difference of shares, or PSI, misses them):")
    import numpy as np

    for name, expected in (("nulls 1% -> 5.5%", ("missing_feature", "country")),
                           ("unknown words ~0% -> 6%", ("oov_rate", "query")),
                           ("merchant m31 0.3% -> 5%", ("category_share", "merchant"))):
        caught = 0
        for s in range(args.seeds // 2):
            frame, rng = synth.table(2000, seed=30_000 + s), np.random.default_rng(s)
            if expected[0] == "missing_feature":
                frame.loc[rng.random(len(frame)) < 0.046, "country"] = None
            elif expected[0] == "category_share":
                frame.loc[rng.random(len(frame)) < 0.05, "merchant"] = "m31"
            else:
                frame["query"] = [" ".join("zz" + t if rng.random() < 0.06 else t for t in q.split())
                                  for q in frame["query"]]
            caught += expected in found(frame)
        print(f"  {name:30s} {caught} of {args.seeds // 2}")
    time_of_day(args.seeds)


def time_of_day(seeds: int) -> None:
    """Traffic whose mix moves with the hour of day (tests/test_time_of_day.py): hourly windows against a
    baseline with ``--time-column`` and against one without; daytime traffic stamped at night."""
    import pandas as pd

    import test_time_of_day as tod

    train = pd.concat([tod.traffic(60_000, 1, list(range(24)), day=f"2026-10-{d:02d}") for d in (5, 6, 7)])
    kw = dict(model="m", version="1", kinds=tod.KINDS, predictions=["score"])
    by_hour, flat = build_baseline(train, time_column="ts", **kw), build_baseline(train.drop(columns=["ts"]), **kw)
    print("hourly windows of traffic that moves with the hour of day (any finding counts):")
    for rows in (300, 5000):
        windows = [tod.traffic(rows, 40_000 + s, [s % 24]) for s in range(seeds)]
        same = sum(bool(tod.found(by_hour, w)) for w in windows)
        alldays = sum(bool(tod.found(flat, w)) for w in windows)
        print(f"  {rows:>7,} rows: {same} of {seeds} against the same hours, {alldays} of {seeds} against all hours")
    caught = 0
    for s in range(seeds // 2):
        day = tod.traffic(300, 50_000 + s, [14])
        day["ts"] = day["ts"] - pd.Timedelta(hours=11)
        caught += ("distribution_shift", "channel") in tod.found(by_hour, day)
    print(f"  daytime traffic stamped 03:00, 300 rows: caught in {caught} of {seeds // 2}")


if __name__ == "__main__":
    main()
