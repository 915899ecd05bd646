"""Caller-thread CPU cost of logging one prediction record.

Compares ``PredictionLogger.log`` with python-json-logger's ``JsonFormatter`` and
``OrjsonFormatter`` logging the same record through ``logging``, all writing to
the same kind of file handler, interleaved in one process (absolute times swing
on shared machines; the ratio is what counts). Target: predwatch <= 0.6x OrjsonFormatter.

    python bench/logging_overhead.py [--records 20000] [--rounds 7]
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
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pythonjsonlogger.json import JsonFormatter  # noqa: E402
from pythonjsonlogger.orjson import OrjsonFormatter  # noqa: E402

from bench.records import make_features, make_score  # noqa: E402
from logging_adapter import PredictionFormatter, PredictionLogger  # noqa: E402


def file_logger(name: str, formatter: logging.Formatter, path: str) -> logging.Logger:
    handler = logging.StreamHandler(open(path, "w", encoding="utf-8"))  # noqa: SIM115
    handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    rng = random.Random(7)
    inputs = [(make_features(rng), make_score(rng)) for _ in range(args.records)]
    tmp = tempfile.mkdtemp(prefix="predwatch-bench-")

    plog = PredictionLogger("checkout-risk", "7", "checkout-api",
                            logger=file_logger("b.predwatch", PredictionFormatter(service="checkout-api"), f"{tmp}/a"))

    def pjl(name: str, formatter: logging.Formatter):
        logger = file_logger(name, formatter, f"{tmp}/{name}")

        def call(features: dict, score: float) -> None:
            logger.info("prediction", extra={
                "ecs.version": "8.11.0", "service": {"name": "checkout-api"},
                "event": {"kind": "event", "dataset": "predwatch.prediction"},
                "predwatch": {"model": {"name": "checkout-risk", "version": "7"}, "prediction_id": str(uuid.uuid4()),
                              "features": features, "prediction": score}})
        return call

    fmt = dict(fmt="%(levelname)s %(message)s", timestamp="@timestamp")
    variants = {
        "predwatch PredictionLogger.log": lambda f, s: plog.log(f, s),
        "python-json-logger JsonFormatter": pjl("b.json", JsonFormatter(**fmt)),
        "python-json-logger OrjsonFormatter": pjl("b.orjson", OrjsonFormatter(**fmt)),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, call in variants.items():
            start = time.thread_time()
            for features, score in inputs:
                call(features, score)
            times[name].append((time.thread_time() - start) / len(inputs) * 1e6)

    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["python-json-logger OrjsonFormatter"]
    print(f"caller-thread CPU per record, median of {args.rounds} interleaved rounds of {args.records:,} records")
    for name, us in med.items():
        print(f"  {name:38s} {us:7.2f} us   ratio to OrjsonFormatter {us / base:5.2f}x")
    ratio = med["predwatch PredictionLogger.log"] / base
    print(f"target <= 0.60x: {'met' if ratio <= 0.6 else 'NOT met'} ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
