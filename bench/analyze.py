"""Speed and memory of ``predwatch check`` and ``predwatch baseline`` on 1,000,000 records.

Generates a window of prediction records (20 features as in the logging benchmark)
and training rows from the same generator, then measures, each in a fresh process:
``predwatch baseline`` on 1M CSV rows and ``predwatch check`` on the 1M-record window
(seconds and peak RSS), and rows/s next to Evidently's ``DataDriftPreset`` on 100,000
rows of the same data (the ``bench`` extra), and the time ``pyarrow.json.read_json``
takes to parse the same file: check and read_json in turns, ``--repeat`` rounds, each run after the file
was read once, best against best. Targets: check < 15 s and < 1 GB peak RSS; at least 10x
Evidently's rows/s; at most 1.5x ``read_json``'s time.

    python -m venv /tmp/ev && /tmp/ev/bin/pip install 'evidently==0.7.*' 'pandas<3'
    python bench/analyze.py [--records 1000000] [--repeat 3] [--evidently-rows 100000] --evidently-python /tmp/ev/bin/python
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import pandas as pd  # noqa: E402

from bench.records import make_features, make_score  # noqa: E402
from logging_adapter import contract as c  # noqa: E402


def generate(workdir: Path, records: int) -> tuple[Path, Path]:
    train_csv, window = workdir / "train.csv", workdir / "window.jsonl"
    if train_csv.exists() and window.exists():
        return train_csv, window
    rng = random.Random(1)
    rows = []
    for _ in range(records):
        row = make_features(rng)
        row["score"] = make_score(rng)
        rows.append(row)
    pd.DataFrame(rows).to_csv(train_csv, index=False)
    del rows
    rng = random.Random(2)
    t0 = 1_795_000_000.0
    with window.open("wb") as fh:
        for i in range(records):
            fh.write(orjson.dumps({
                "@timestamp": c.utc_iso(t0 + i * 0.05), "log.level": "info", "message": "prediction",
                "ecs.version": c.ECS_VERSION, "service": {"name": "bench"},
                "event": {"kind": "event", "dataset": c.DATASET},
                "predwatch": {"model": {"name": "bench", "version": "1"}, "prediction_id": f"id-{i}",
                              "features": make_features(rng), "prediction": make_score(rng)}}) + b"\n")
    return train_csv, window


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a command, summed over its process tree (worker processes too)."""
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root] + root.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed: {proc.stderr.read()}")
    return seconds, peak / 2**20


def warm(path: Path) -> None:
    """Read a file once, so that the next program finds it in the page cache."""
    with path.open("rb") as fh:
        while fh.read(1 << 23):
            pass


def evidently_rows_per_second(python: str, train_csv: Path, rows: int) -> float | None:
    code = f"""
import sys, time, pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref = pd.read_csv({str(train_csv)!r}, nrows={rows})
cur = pd.read_csv({str(train_csv)!r}, skiprows=range(1, {rows} + 1), nrows={rows})
start = time.perf_counter()
Report([DataDriftPreset()]).run(cur, ref)
print(time.perf_counter() - start)
"""
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  Evidently not measured: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'failed'}")
        return None
    seconds = float(proc.stdout.strip().splitlines()[-1])
    print(f"  Evidently DataDriftPreset on {rows:,} rows: {seconds:.1f} s")
    return rows / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--evidently-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of check and read_json, in turns")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "predwatch-bench-analyze"))
    parser.add_argument("--evidently-python", default=sys.executable,
                        help="a Python with evidently==0.7.* (it needs pandas<3: use a separate venv)")
    args = parser.parse_args()
    workdir = Path(args.workdir) / str(args.records)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"generating {args.records:,} training rows and window records in {workdir} ...")
    train_csv, window = generate(workdir, args.records)
    baseline = workdir / "baseline.json"
    predwatch = [sys.executable, "-m", "predwatch"]

    b_sec, b_rss = timed(predwatch + ["baseline", "--data", str(train_csv), "--model", "bench", "--version", "1",
                                         "--text", "query", "--prediction", "score", "--out", str(baseline)])
    print(f"predwatch baseline, {args.records:,} rows: {b_sec:.1f} s, peak RSS {b_rss:,.0f} MB")
    # check and read_json in turns, each after reading the file once (this machine's page cache is reclaimed
    # behind its back: a cold file costs seconds of waiting that neither program spends on parsing)
    check = predwatch + ["check", "--baseline", str(baseline), "--logs", str(window), "--format", "json"]
    arrow = [sys.executable, "-c", f"import pyarrow.json as j; j.read_json({str(window)!r})"]
    rounds = []
    for _ in range(args.repeat):
        warm(window)
        c_sec, c_rss = timed(check)
        warm(window)
        a_sec, a_rss = timed(arrow)
        rounds.append((c_sec, c_rss, a_sec, a_rss))
        print(f"  round: check {c_sec:.1f} s, read_json {a_sec:.1f} s -> {c_sec / a_sec:.2f}x")
    c_sec, a_sec = min(r[0] for r in rounds), min(r[2] for r in rounds)
    c_rss, a_rss = max(r[1] for r in rounds), max(r[3] for r in rounds)
    ratios = sorted(r[0] / r[2] for r in rounds)
    print(f"predwatch check, {args.records:,} records: {c_sec:.1f} s (best of {args.repeat}), peak RSS {c_rss:,.0f} MB "
          f"(all processes)  -> {args.records / c_sec:,.0f} rows/s")
    print(f"  target: < 15 s {'met' if c_sec < 15 else 'NOT met'}; < 1 GB {'met' if c_rss < 1024 else 'see note'}")
    print(f"pyarrow.json.read_json on the same file (a fresh process, its threads): {a_sec:.1f} s (best of "
          f"{args.repeat}), peak RSS {a_rss:,.0f} MB -> predwatch check / read_json = {c_sec / a_sec:.2f}x best to "
          f"best, {ratios[len(ratios) // 2]:.2f}x the median round (target <= 1.5x)")
    ev = evidently_rows_per_second(args.evidently_python, train_csv, args.evidently_rows)
    if ev:
        ratio = (args.records / c_sec) / ev
        print(f"  Evidently {ev:,.0f} rows/s; predwatch check / Evidently = {ratio:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
