"""What one window analysis moves over the wire: aggregations against scrolling every document.

Seeds 10,000 and 100,000 prediction records (the 20-feature records of the logging
benchmark) into a fresh osmem-server each, then prints for one window analysis:
requests made, response bytes, seconds; and what a naive approach (scrolling all
documents of the window) transfers. Target: response bytes for 100,000 records
within 1.5x of those for 10,000.

    python bench/es_window.py [--sizes 10000 100000]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import orjson  # noqa: E402
import pandas as pd  # noqa: E402
from elasticsearch import helpers  # noqa: E402
from osmem_server import OsmemServer  # noqa: E402

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


def seed(client, n: int) -> None:
    rng = random.Random(n)
    docs = []
    for i in range(n):
        ts = c.utc_iso(START + i * 3000 / n)
        record = {"@timestamp": ts, "message": "prediction",
                  "predwatch": {"model": {"name": "bench", "version": "1"}, "prediction_id": f"b{i}",
                                "features": make_features(rng), "prediction": make_score(rng)}}
        docs.append(Doc(f"predwatch-predictions-bench-{ts[:10].replace('-', '.')}", f"b{i}", orjson.dumps(record)))
    for i in range(0, n, 1000):
        out = send_bulk(client, docs[i:i + 1000])
        if out.retry or out.rejected:
            raise SystemExit(f"seeding failed: {out.error or out.rejected[:1]}")
    client.indices.refresh(index="predwatch-predictions-*")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    rng = random.Random(1)
    train = pd.DataFrame([{**make_features(rng), "score": make_score(rng)} for _ in range(20_000)])
    baseline = build_baseline(train, model="bench", version="1", kinds={"query": "text"}, predictions=["score"])
    rows = []
    for n in args.sizes:
        server = OsmemServer.start()
        try:
            settings = EsSettings(url=server.url, distribution="opensearch", request_timeout=300)
            client = make_client(settings, node_class=CountingNode)
            templates.install(client)
            print(f"seeding {n:,} records ...", flush=True)
            seed(client, n)
            start, end = c.utc_iso(START), c.utc_iso(START + 3600)
            CountingNode.requests = CountingNode.bytes = 0
            t0 = time.perf_counter()
            profile = EsWindowProfiler(client, baseline).profile(start, end, "1")
            analyze(profile, baseline)
            seconds = time.perf_counter() - t0
            agg = (CountingNode.requests, CountingNode.bytes, seconds, profile.records)
            CountingNode.requests = CountingNode.bytes = 0
            t0 = time.perf_counter()
            scrolled = sum(1 for _ in helpers.scan(client, index="predwatch-predictions-*", size=1000,
                                                   query={"query": {"range": {"@timestamp": {"gte": start, "lt": end}}}}))
            naive = (CountingNode.requests, CountingNode.bytes, time.perf_counter() - t0, scrolled)
            rows.append((n, agg, naive))
        finally:
            server.close()
    print(f"{'records':>9} | {'requests':>8} {'response bytes':>15} {'seconds':>8} | naive scroll: "
          f"{'requests':>8} {'bytes':>13} {'seconds':>8} | naive/aggregations")
    for n, (areq, abytes, asec, arec), (nreq, nbytes, nsec, nrec) in rows:
        assert arec == nrec == n, (arec, nrec, n)
        print(f"{n:>9,} | {areq:>8} {abytes:>15,} {asec:>8.2f} | {nreq:>21} {nbytes:>13,} {nsec:>8.2f} | "
              f"{nbytes / abytes:>8.0f}x")
    if len(rows) >= 2:
        growth = rows[-1][1][1] / rows[0][1][1]
        print(f"response bytes {rows[-1][0]:,} vs {rows[0][0]:,} records: {growth:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
