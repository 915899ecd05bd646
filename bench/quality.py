"""The cost of a labelled window: quality from joined outcomes, locally and by aggregation, against
computing the same metrics with scikit-learn on the joined frame.

Local: N predictions and N outcome records (in a second file, shuffled) checked with
``analyze_local`` (the join, every metric, the estimate and every input check) against
the baseline: reading both files with pandas, merging on prediction_id and computing
ROC AUC, accuracy, precision, recall, F1 and Brier with scikit-learn. The extra cost of
the outcomes is also shown: the same check without the outcome file.

Elasticsearch (the real Elasticsearch 8.19 node of ``tests/engines/run``, started here): the
daemon's join of every outcome into its prediction, and the one aggregation search
that gives the window's quality counts, against scikit-learn on a frame of the same
rows already in memory.

    python bench/quality.py [--rows 100000] [--es-rows 5000]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import orjson  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from analyzers.core.baseline import build_baseline  # noqa: E402
from analyzers.core.quality import metrics  # noqa: E402
from analyzers.files import analyze_local  # noqa: E402
from test_quality import MODEL, draw, records  # noqa: E402


def sklearn_metrics(frame: pd.DataFrame) -> dict[str, float]:
    y, s = frame["actual"].to_numpy(), frame["score"].to_numpy()
    pred = s >= 0.5
    return {"roc_auc": skm.roc_auc_score(y, s), "accuracy": skm.accuracy_score(y, pred),
            "precision": skm.precision_score(y, pred), "recall": skm.recall_score(y, pred),
            "f1": skm.f1_score(y, pred), "brier": skm.brier_score_loss(y, s)}


def joined_frame(preds: Path, outs: Path) -> pd.DataFrame:
    p = pd.json_normalize(pd.read_json(preds, lines=True).to_dict("records"))
    o = pd.json_normalize(pd.read_json(outs, lines=True).to_dict("records"))
    p = p[["predwatch.prediction_id", "predwatch.prediction"]].rename(
        columns={"predwatch.prediction_id": "id", "predwatch.prediction": "score"})
    o = o[["predwatch.prediction_id", "predwatch.actual"]].rename(
        columns={"predwatch.prediction_id": "id", "predwatch.actual": "actual"})
    return p.merge(o, on="id")


def write(path: Path, recs: list[dict]) -> Path:
    with path.open("wb") as fh:
        for r in recs:
            fh.write(orjson.dumps(r) + b"\n")
    return path


def local(rows: int, baseline, tmp: Path) -> None:
    preds, outs = records(draw(rows, 5, flipped=0.1))
    random.Random(0).shuffle(outs)
    p, o = write(tmp / "preds.jsonl", preds), write(tmp / "outcomes.jsonl", outs)
    t = time.perf_counter()
    (window,) = analyze_local([p, o], baseline).windows
    ours = time.perf_counter() - t
    t = time.perf_counter()
    analyze_local([p], baseline)
    unlabelled = time.perf_counter() - t
    t = time.perf_counter()
    frame = joined_frame(p, o)
    theirs_values = sklearn_metrics(frame)
    theirs = time.perf_counter() - t
    t = time.perf_counter()
    sklearn_metrics(frame)
    metrics_only = time.perf_counter() - t
    got = metrics(window.profile.quality, baseline.quality)
    gap = max(abs(got[k] - v) for k, v in theirs_values.items())
    print(f"local, {rows:,} predictions + {rows:,} outcomes (two files, outcomes shuffled):")
    print(f"  predwatch check (join, quality, estimate, all input checks): {ours:6.2f} s")
    print(f"  the same check without the outcome file:                      {unlabelled:6.2f} s "
          f"(outcomes add {ours - unlabelled:.2f} s)")
    print(f"  pandas read_json + merge + scikit-learn metrics:              {theirs:6.2f} s "
          f"(of which the metrics {metrics_only:.3f} s)")
    print(f"  ratio predwatch / scikit-learn path: {ours / theirs:.2f}x; "
          f"largest metric difference {gap:.4f} (binned ROC AUC)")


def elastic(rows: int, baseline) -> None:
    from analyzers.sources.elastic import EsWindowProfiler
    from analyzers.sources.outcomes import join_outcomes
    from analyzers.store.baselines import store_baseline
    from logging_adapter import templates
    from logging_adapter.bulk import doc_from_line, send_bulk
    from logging_adapter.elastic import EsSettings, make_client
    from bench.es_window import start_engine

    engine, url = start_engine()
    try:
        client = make_client(EsSettings(url=url, request_timeout=120))
        templates.install(client, prefix="predwatch")
        store_baseline(client, baseline, "predwatch")
        preds, outs = records(draw(rows, 6, flipped=0.1), span=3000.0)
        docs = [doc_from_line(orjson.dumps(r)) for r in preds + outs]
        for i in range(0, len(docs), 1000):
            send_bulk(client, docs[i:i + 1000])
        client.indices.refresh(index="predwatch-*")
        t = time.perf_counter()
        report = join_outcomes(client, "predwatch", MODEL, lambda v: baseline, limit=rows * 2)
        join = time.perf_counter() - t
        profiler = EsWindowProfiler(client, baseline)
        query = profiler.window_query("2026-11-23T00:00:00.000Z", "2026-11-23T01:00:00.000Z", "7")
        t = time.perf_counter()
        prof = profiler.quality(query, rows)
        aggregate = time.perf_counter() - t
        frame = pd.DataFrame({"score": [r["predwatch"]["prediction"] for r in preds],
                              "actual": [o["predwatch"]["actual"] for o in outs]})
        t = time.perf_counter()
        sklearn_metrics(frame)
        theirs = time.perf_counter() - t
        info = client.info()["version"]["number"]
        print(f"Elasticsearch {info} (tests/engines/run), {rows:,} predictions + {rows:,} outcomes:")
        print(f"  join of {report.joined:,} outcomes into their predictions: {join:6.2f} s "
              f"({1e3 * join / max(report.joined, 1):.2f} ms per outcome; once per outcome, not per analysis)")
        print(f"  the window's quality counts, one aggregation search:   {aggregate:6.3f} s ({prof.labelled:,} labelled)")
        print(f"  scikit-learn metrics on the same rows already in memory: {theirs:6.3f} s "
              f"(ratio {aggregate / theirs:.1f}x, without moving a row out of the cluster)")
    finally:
        engine.terminate()
        engine.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--es-rows", type=int, default=5_000)
    args = parser.parse_args()
    baseline = build_baseline(draw(20_000, 1), model=MODEL, version="7", predictions=["score"], actual="label")
    with tempfile.TemporaryDirectory() as tmp:
        local(args.rows, baseline, Path(tmp))
    if args.es_rows:
        elastic(args.es_rows, baseline)


if __name__ == "__main__":
    main()
