"""What one window analysis costs on a real engine: aggregations against pulling every document.

Seeds 10,000, 100,000 and 1,000,000 prediction records (the 20-feature records of the
logging benchmark) into a real Elasticsearch node (``tests/engines/run elasticsearch``,
started here unless ``--es-url`` names one), each size under an index prefix of its
own, then prints for one window analysis: requests made, response bytes, milliseconds;
and the same for the naive approach, which pulls every document of the window into
Python (``search_after`` pages of 5,000) and profiles it there. Target: response
bytes for the largest size within 1.5x of those for the smallest.

    python bench/es_window.py [--sizes 10000 100000 1000000] [--es-url URL --es-distribution D]
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import orjson  # noqa: E402
import pandas as pd  # noqa: E402

from analyzers.core.baseline import build_baseline  # noqa: E402
from analyzers.sources.elastic import EsWindowProfiler  # noqa: E402
from analyzers.core.window import analyze  # noqa: E402
from bench.records import make_features, make_score  # noqa: E402
from logging_adapter import contract as c, templates  # noqa: E402
from logging_adapter.bulk import Doc, send_bulk  # noqa: E402
from logging_adapter.elastic import EsSettings, PlainJsonNode, make_client  # noqa: E402

START = 1_795_330_800.0  # 2026-11-22T07:00:00Z


class CountingNode(PlainJsonNode):
    """Counts requests and response bytes."""

    requests = 0
    bytes = 0

    def perform_request(self, *args, **kwargs):
        response = super().perform_request(*args, **kwargs)
        CountingNode.requests += 1
        CountingNode.bytes += len(response.body)
        return response


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHUNK = 5000


def seed(client, prefix: str, n: int) -> None:
    """``n`` records of one hour, sent in bulk requests of 5,000."""
    rng = random.Random(n)
    for start in range(0, n, CHUNK):
        docs = []
        for i in range(start, min(n, start + CHUNK)):
            ts = c.utc_iso(START + i * 3000 / n)
            record = {"@timestamp": ts, "message": "prediction",
                      "predwatch": {"model": {"name": "bench", "version": "1"}, "prediction_id": f"b{i}",
                                    "features": make_features(rng), "prediction": make_score(rng)}}
            docs.append(Doc(templates.predictions_index("bench", ts, prefix), f"b{i}", orjson.dumps(record)))
        out = send_bulk(client, docs)
        if out.retry or out.rejected:
            raise SystemExit(f"seeding failed: {out.error or out.rejected[:1]}")
    client.indices.refresh(index=f"{prefix}-predictions-*")
    client.indices.forcemerge(index=f"{prefix}-predictions-*", max_num_segments=1)


def start_engine() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([os.path.join(ROOT, "tests", "engines", "run"), "elasticsearch"], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        raise SystemExit(f"the engine did not start: {line!r}")
    return proc, line.split()[1]


def pull_all(client, prefix: str, baseline, start: str, end: str) -> int:
    """The naive way: every document of the window into Python, in pages, then profiled there."""
    from analyzers.sources.jsonl import read_predictions
    from analyzers.sources.local import LocalProfiler
    profiler, after, total = LocalProfiler(baseline), None, None
    query = {"range": {"@timestamp": {"gte": start, "lt": end}}}
    while True:
        page = client.search(index=f"{prefix}-predictions-*", size=CHUNK, query=query, sort=[{"@timestamp": "asc"},
                             {"predwatch.prediction_id": "asc"}], **({"search_after": after} if after else {}))
        hits = page["hits"]["hits"]
        if not hits:
            return total.records if total else 0
        counted = profiler.profile(read_predictions([h["_source"] for h in hits]))
        total = counted if total is None else total.merge(counted)
        after = hits[-1]["sort"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--es-url", help="a running node (default: start tests/engines/run elasticsearch)")
    parser.add_argument("--es-distribution", default="elasticsearch")
    args = parser.parse_args()
    rng = random.Random(1)
    train = pd.DataFrame([{**make_features(rng), "score": make_score(rng)} for _ in range(20_000)])
    baseline = build_baseline(train, model="bench", version="1", kinds={"query": "text"}, predictions=["score"])
    engine, url = (None, args.es_url) if args.es_url else start_engine()
    rows = []
    try:
        settings = EsSettings(url=url, distribution=args.es_distribution, request_timeout=600)
        client = make_client(settings, node_class=CountingNode)
        info = client.info()["version"]
        version = f"{info.get('distribution', 'elasticsearch')} {info['number']}"
        for n in args.sizes:
            prefix = f"bench{n}"
            templates.install(client, prefix=prefix)
            if not client.indices.exists(index=f"{prefix}-predictions-*", allow_no_indices=False):
                print(f"seeding {n:,} records ...", flush=True)
                seed(client, prefix, n)
            start, end = c.utc_iso(START), c.utc_iso(START + 3600)
            CountingNode.requests = CountingNode.bytes = 0
            t0 = time.perf_counter()
            profile = EsWindowProfiler(client, baseline, prefix=prefix).profile(start, end, "1")
            analyze(profile, baseline)
            agg = (CountingNode.requests, CountingNode.bytes, time.perf_counter() - t0, profile.records)
            CountingNode.requests = CountingNode.bytes = 0
            t0 = time.perf_counter()
            pulled = pull_all(client, prefix, baseline, start, end)
            naive = (CountingNode.requests, CountingNode.bytes, time.perf_counter() - t0, pulled)
            rows.append((n, agg, naive))
    finally:
        if engine is not None:
            engine.terminate()
            engine.wait(60)
    print(f"engine: {version} at {url}")
    print(f"{'records':>9} | {'requests':>8} {'response bytes':>15} {'ms':>8} | pulled into Python: "
          f"{'requests':>8} {'bytes':>13} {'ms':>9} | bytes x  time x")
    for n, (areq, abytes, asec, arec), (nreq, nbytes, nsec, nrec) in rows:
        assert arec == nrec == n, (arec, nrec, n)
        print(f"{n:>9,} | {areq:>8} {abytes:>15,} {asec * 1000:>8.0f} | {nreq:>27} {nbytes:>13,} {nsec * 1000:>9.0f} | "
              f"{nbytes / abytes:>7.0f} {nsec / asec:>7.1f}")
    if len(rows) >= 2:
        growth = rows[-1][1][1] / rows[0][1][1]
        print(f"response bytes {rows[-1][0]:,} vs {rows[0][0]:,} records: {growth:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
