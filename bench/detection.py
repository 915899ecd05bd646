"""Quiet by default, loud when it matters: false-alarm and detection rates of the default checks.

False alarms: windows drawn from the training distribution (natural nulls, a Zipf long
tail of categories, rare words) at several sizes; any finding counts. Detection: each
incident of ``tests/incidents.py`` injected into windows of 300 and 1,000 rows, and small
rates (1% -> 5.5% nulls, about 0% -> 6% unknown words, a 0.3% category at 5%) at 2,000;
hourly windows of traffic that moves with the hour of day against baselines with and without
``--time-column``; issue 26's classes (quiet hourly windows at every hour with thin nights, daytime
amounts stamped at night, a rare category's surge at a busy hour, a regression's bias while its error
fell). Target: no false alarm (against the same hours), every incident caught.

    python bench/detection.py [--seeds 40] [--hourly-seeds 20] [--training-days 1 2] [--only-held-out]
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
    parser.add_argument("--hourly-seeds", type=int, default=20, help="quiet windows per hour and size (issue 26)")
    parser.add_argument("--training-days", type=int, nargs="+", default=[1, 2],
                        help="days of hour-of-day training traffic (issue 26)")
    parser.add_argument("--only-held-out", action="store_true", help="issue 26's classes alone")
    args = parser.parse_args()
    if args.only_held_out:
        held_out_classes(args.hourly_seeds, args.training_days)
        return
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
    held_out_classes(args.hourly_seeds, args.training_days)


def held_out_classes(seeds: int, days: list[int]) -> None:
    """Issue 26's classes on tests/test_held_out_classes.py's traffic (mix and spread moving with the hour, thin
    nights): quiet hourly windows at every hour, daytime amounts stamped 03:00, a 0.3% country at 5% at 14:00;
    and regressions whose errors shift by a constant while their spread shrinks (tests/test_quality.py)."""
    import time

    import numpy as np

    import test_held_out_classes as held

    for d in days:
        started = time.monotonic()
        by_hour, flat = held.baselines(held.training(days=d))
        print(f"hour-of-day traffic, {d} day(s) of training ({by_hour.rows:,} rows, "
              f"{len(by_hour.time_slices['slices'])} merged slices), against the same hours:")
        for rows in (300, 1_000, 5_000):
            alarms, by_check = 0, {}
            for hour in range(24):
                for s in range(seeds):
                    got = held.found(by_hour, held.hourly(rows, 60_000 + 100 * hour + s, [hour]))
                    alarms += bool(got)
                    for key in got:
                        by_check[key] = by_check.get(key, 0) + 1
            worst = ", ".join(f"{c} {f} {k}" for (c, f), k in sorted(by_check.items(), key=lambda kv: -kv[1])[:3])
            print(f"  quiet {rows:>5,} records, every hour x {seeds} seeds: {alarms} of {24 * seeds} windows alarm"
                  + (f" ({worst})" if worst else ""))
        caught = only = 0
        for s in range(seeds):
            got = held.found(by_hour, held.hourly(2000, 61_000 + s, [3], amount_hour=14))
            caught += ("distribution_shift", "amount") in got
            only += got == {("distribution_shift", "amount")}
        print(f"  daytime amounts stamped 03:00, 2,000 records: caught in {caught} of {seeds} "
              f"({only} with nothing else)")
        surge = {("category_share", "country"), ("distribution_shift", "country")}
        caught = caught_flat = 0
        for s in range(seeds):
            frame = held.hourly(2000, 62_000 + s, [14])
            frame.loc[np.random.default_rng(s).random(2000) < 0.047, "country"] = "LU"
            caught += bool(surge & held.found(by_hour, frame))
            caught_flat += bool(surge & held.found(flat, frame))
        print(f"  a 0.3% country at ~5% of 2,000 records at 14:00: caught in {caught} of {seeds} "
              f"(against all hours: {caught_flat})")
        print(f"  ({time.monotonic() - started:.0f} s)")
    regression_bias(min(seeds, 5))


def regression_bias(seeds: int) -> None:
    """Months whose errors shift by a constant while their spread shrinks (MAE 4-6% lower): what is raised.
    Five months per case at most: each goes through files and the outcome join (about 5 s each here)."""
    import tempfile
    from pathlib import Path

    import test_quality as tq
    from conftest import write_jsonl

    from analyzers.files import analyze_local

    baseline = build_baseline(tq.demand(30_000, 10, days=90), model="demand", version="1", predictions=["forecast"],
                              actual="sold", time_column="ts")
    print("regression months, errors shifted by a constant, spread shrunk (3,000 labelled predictions):")
    with tempfile.TemporaryDirectory() as tmp:
        for bias, sd in ((1.6, 9.3), (3.0, 9.0), (8.0, 10.0)):
            said: dict[tuple[str, str, str], int] = {}
            for s in range(seeds):
                preds, outs = tq.demand_records(tq.demand(3000, 80_000 + s, bias=bias, sd=sd, start="2026-05-01"), "m")
                paths = [write_jsonl(Path(tmp) / "p.jsonl", preds), write_jsonl(Path(tmp) / "o.jsonl", outs)]
                (window,) = analyze_local(paths, baseline).windows
                for f in window.findings:
                    if f.feature == "prediction":
                        key = (f.check, f.metric or "", f.status)
                        said[key] = said.get(key, 0) + 1
            shown = ", ".join(f"{c} {m} {st} {k}" for (c, m, st), k in sorted(said.items())) or "nothing"
            print(f"  bias {bias / 10:.2f} reference RMSEs, error sd {sd:g} (MAE {'down' if sd < 10 else 'up'}): "
                  f"{shown} (of {seeds})")


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
