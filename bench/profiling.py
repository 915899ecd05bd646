"""In-process profiling: the caller's cost per prediction, and what reaches Elasticsearch.

Caller-thread CPU per ``PredictionLogger.log`` of the same 20-feature record (``bench/records.py``),
interleaved rounds in one process: today's ``log()``, ``log()`` with ``profile=`` (every
record logged and profiled), and with ``profile=`` and ``sample=0.01``. The profiling itself
runs on a background thread; its cost per prediction is shown apart. Target: at most a few
microseconds per prediction on top of today's ``log()``.

Then 100,000 predictions (10 s of traffic at 10,000 a second, one-minute intervals) written both
ways: the documents and bytes that ``ship`` or the handler would index.

    python bench/profiling.py [--records 20000] [--rounds 5] [--volume 100000]
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pandas as pd  # noqa: E402

from analyzers.core.baseline import build_baseline  # noqa: E402
from bench.logging_overhead import file_logger as _file_logger  # noqa: E402
from bench.records import make_features, make_score  # noqa: E402
from logging_adapter import PredictionFormatter, PredictionLogger  # noqa: E402


def file_logger(name: str, path: str) -> logging.Logger:
    return _file_logger(name, PredictionFormatter(service="checkout-api"), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--volume", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(7)
    train = [dict(make_features(rng), score=make_score(rng)) for _ in range(20_000)]
    baseline = build_baseline(pd.DataFrame(train), model="checkout-risk", version="7", kinds={"query": "text"},
                              predictions=["score"])
    inputs = [(make_features(rng), make_score(rng)) for _ in range(args.records)]
    tmp = tempfile.mkdtemp(prefix="predwatch-bench-")
    variants = {
        "log()": dict(),
        "log() with profile=": dict(profile=baseline),
        "log() with profile=, sample=0.01": dict(profile=baseline, sample=0.01),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    background: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.rounds):
        for i, (name, options) in enumerate(variants.items()):
            plog = PredictionLogger("checkout-risk", "7", "checkout-api",
                                    logger=file_logger(f"b{r}{i}", f"{tmp}/{r}-{i}"), **options)
            start = time.thread_time()
            for features, score in inputs:
                plog.log(dict(features), score)
            times[name].append((time.thread_time() - start) / len(inputs) * 1e6)
            if plog._profiler is not None:
                begin = time.perf_counter()
                plog.flush()  # whatever the background thread had not counted yet, and the last interval
                background[name].append(time.perf_counter() - begin)
                plog.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["log()"]
    print(f"caller-thread CPU per prediction, median of {args.rounds} interleaved rounds of {args.records:,}")
    for name, us in med.items():
        print(f"  {name:34s} {us:6.2f} us  ({us - base:+.2f} us, {us / base:.2f}x today's log())")
    # the background thread's cost: profile the same records synchronously
    from analyzers.sources.process import ProcessProfiler
    sink: list = []
    profiler = ProcessProfiler(baseline, lambda payload, t: sink.append(payload), model={"name": "checkout-risk"})
    profiler._closed = True  # no thread of its own here: count on this thread, to time it
    t0 = 1_795_330_800.0
    begin = time.process_time()
    for i, (features, score) in enumerate(inputs):
        profiler.add(t0 + i * 0.001, None, dict(features), score, None)
    profiler.flush()
    per = (time.process_time() - begin) / len(inputs) * 1e6
    print(f"  profiling on the background thread: {per:.2f} us CPU per prediction (off the caller's thread)")

    # what gets indexed for --volume predictions at 10,000 a second
    sizes = {}
    for name, options in (("full records", {}), ("profile=, sample=0.01", dict(profile=baseline, sample=0.01))):
        path = f"{tmp}/volume-{len(sizes)}"
        plog = PredictionLogger("checkout-risk", "7", "checkout-api", logger=file_logger(f"v{len(sizes)}", path),
                                **options)
        for i in range(args.volume):
            features, score = inputs[i % len(inputs)]
            plog.log(dict(features), score, timestamp=t0 + i / 10_000)
        plog.close()
        for h in plog.logger.handlers:
            h.flush()
        with open(path, "rb") as fh:
            data = fh.read()
        sizes[name] = (data.count(b"\n"), len(data))
    print(f"indexed for {args.volume:,} predictions at 10,000/s (one profile record per minute and process):")
    for name, (docs, size) in sizes.items():
        print(f"  {name:24s} {docs:8,} documents {size / 1e6:8.2f} MB")
    (d0, b0), (d1, b1) = sizes.values()
    print(f"  {d0 / d1:.0f}x fewer documents, {b0 / b1:.0f}x fewer bytes")


if __name__ == "__main__":
    main()
