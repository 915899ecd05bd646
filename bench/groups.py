"""Quality per group and fairness: false alarms on quiet windows and detections, with their sizes.

A binary model with calibrated scores, 8 regions (one with 12% of the traffic), 50 stores and a gender; the
baseline is built from 20,000 held-out rows with ``--sensitive gender``. Quiet windows are drawn from the same
process; broken ones turn a quarter of north's labels (its accuracy -15 points, the overall -1.8), or lower
gender F's scores (its positive rate falls, the parity gap doubles). Every window runs through the local
checks (:func:`analyzers.files.analyze_local`), as ``predwatch check`` does.

    python bench/groups.py [--seeds 20] [--large-seeds 5]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from analyzers.core.baseline import build_baseline  # noqa: E402
from analyzers.files import analyze_local  # noqa: E402
from test_groups import MODEL, draw, write_window  # noqa: E402  (the tests' generator: the same windows)


def findings(frame: pd.DataFrame, baseline, work: Path) -> dict[str, set]:
    window = analyze_local(write_window(frame, work, "w"), baseline).windows[0]
    out: dict[str, set] = {"group": set(), "overall": set(), "fairness": set()}
    for f in window.findings:
        if f.check == "quality_drop":
            out["group" if f.segment else "overall"].add(f"{f.segment['feature']}={f.segment['value']}"
                                                         if f.segment else f.metric)
        elif f.check == "fairness_gap":
            out["fairness"].add(f"{f.feature} {f.metric}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--large-seeds", type=int, default=5)
    args = parser.parse_args()
    baseline = build_baseline(draw(20_000, 1), model=MODEL, version="1", predictions=["score"], actual="label",
                              sensitive=["gender"])
    parity = build_baseline(draw(20_000, 2, lower=0.3), model=MODEL, version="1", predictions=["score"],
                            actual="label", sensitive=["gender"])
    work = Path(tempfile.mkdtemp(prefix="predwatch-groups-"))
    cases = [
        ("quiet, 1,000 labels", baseline, lambda s: draw(1_000, 100 + s), args.seeds, None),
        ("quiet, 5,000 labels", baseline, lambda s: draw(5_000, 200 + s), args.seeds, None),
        ("quiet, 100,000 labels", baseline, lambda s: draw(100_000, 300 + s), args.large_seeds, None),
        ("north (12%) -15 points, 5,000 labels", baseline, lambda s: draw(5_000, 400 + s, turned=0.25), args.seeds,
         "region=north"),
        ("parity gap 0.11 -> 0.23, 5,000 predictions", parity, lambda s: draw(5_000, 500 + s, lower=0.65),
         args.seeds, "gender demographic_parity"),
    ]
    for name, base, make, seeds, target in cases:
        started = time.perf_counter()
        windows = [findings(make(s), base, work) for s in range(seeds)]
        group = sum(bool(w["group"]) for w in windows)
        overall = sum(bool(w["overall"]) for w in windows)
        fair = sum(bool(w["fairness"]) for w in windows)
        said = (f"{name}: {seeds} windows; with a group quality_drop {group}, an overall quality_drop {overall}, "
                f"a fairness_gap {fair}")
        if target is not None:
            hit = sum(target in w["group"] or target in w["fairness"] for w in windows)
            others = sum(bool(w["group"] - {target}) for w in windows)
            said += f"; {target} caught in {hit}, another group named in {others}"
        print(f"{said} ({time.perf_counter() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
