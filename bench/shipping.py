"""Delivery throughput of the handler and ``predwatch ship`` against ``helpers.streaming_bulk``.

Each variant sends the same records to a fresh osmem-server process (templates
installed) in the same run: records/s from first record to all delivered, and the
ratio to a plain ``elasticsearch.helpers.streaming_bulk`` loop. Target: no slower
than that baseline. Also prints the caller-thread cost per record with the
handler attached.

    python bench/shipping.py [--records 5000]
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
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import orjson  # noqa: E402
from elasticsearch import helpers  # noqa: E402
from osmem_server import OsmemServer  # noqa: E402

from bench.records import make_features, make_score  # noqa: E402
from logging_adapter import PredictionFormatter, PredictionLogger, templates  # noqa: E402
from logging_adapter.elastic import EsSettings, make_client  # noqa: E402
from logging_adapter.handler import ElasticsearchHandler  # noqa: E402
from logging_adapter.ship import Shipper  # noqa: E402


def fresh_server():
    server = OsmemServer.start()
    # osmem-server pauses for seconds now and then (compaction?): generous timeouts for every variant
    client = make_client(EsSettings(url=server.url, distribution="opensearch", request_timeout=120))
    templates.install(client)
    return server, client


def count(client) -> int:
    client.indices.refresh(index="predwatch-predictions-*")
    return client.count(index="predwatch-predictions-*")["count"]


def records_file(path: Path, inputs) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(PredictionFormatter(service="bench"))
    logger = logging.getLogger("bench.file")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    plog = PredictionLogger("bench", "1", logger=logger)
    for features, score in inputs:
        plog.log(features, score)
    handler.close()


def run_baseline(client, lines: list[bytes]) -> float:
    def actions():
        for line in lines:
            doc = orjson.loads(line)
            yield {"_op_type": "create", "_index": "predwatch-predictions-bench-" + doc["@timestamp"][:10].replace("-", "."),
                   "_id": doc["predwatch"]["prediction_id"], "_source": doc}

    start = time.perf_counter()
    for ok, item in helpers.streaming_bulk(client, actions(), chunk_size=500, raise_on_error=False):
        if not ok:
            raise SystemExit(f"baseline failed: {item}")
    return time.perf_counter() - start


def run_handler(client, inputs, spool: str) -> tuple[float, float]:
    handler = ElasticsearchHandler(client, spool_dir=spool, flush_interval=0.05, queue_size=len(inputs) + 1,
                                   request_timeout=120)
    logger = logging.getLogger("bench.handler")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    plog = PredictionLogger("bench", "1", logger=logger)
    start = time.perf_counter()
    cpu = time.thread_time()
    for features, score in inputs:
        plog.log(features, score)
    caller_us = (time.thread_time() - cpu) / len(inputs) * 1e6
    if not handler.flush(600):
        raise SystemExit(f"handler did not finish: {handler.stats}")
    seconds = time.perf_counter() - start
    handler.close()
    return seconds, caller_us


def run_ship(client, path: Path, state: str) -> float:
    start = time.perf_counter()
    Shipper(client, [str(path)], state_dir=state).run(once=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is printed")
    args = parser.parse_args()
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    rng = random.Random(5)
    inputs = [(make_features(rng), make_score(rng)) for _ in range(args.records)]
    tmp = Path(tempfile.mkdtemp(prefix="predwatch-bench-ship-"))
    path = tmp / "predictions.jsonl"
    records_file(path, inputs)
    lines = path.read_bytes().splitlines()

    runs: dict[str, list[float]] = {}
    callers: list[float] = []
    for round_ in range(args.rounds):
        for name in ("streaming_bulk baseline", "ElasticsearchHandler", "predwatch ship"):
            server, client = fresh_server()
            try:
                if name.startswith("streaming"):
                    seconds = run_baseline(client, lines)
                elif name == "ElasticsearchHandler":
                    seconds, caller_us = run_handler(client, inputs, str(tmp / f"spool{round_}"))
                    callers.append(caller_us)
                else:
                    seconds = run_ship(client, path, str(tmp / f"ship{round_}"))
                delivered = count(client)
                assert delivered == args.records, f"{name}: {delivered} of {args.records} delivered"
                runs.setdefault(name, []).append(seconds)
            finally:
                server.close()
    results = {name: statistics.median(times) for name, times in runs.items()}
    caller_us = statistics.median(callers)
    base = results["streaming_bulk baseline"]
    print(f"{args.records:,} records to osmem-server (a fresh process each), all delivered; "
          f"median of {args.rounds} interleaved rounds:")
    for name, seconds in results.items():
        print(f"  {name:26s} {args.records / seconds:9,.0f} records/s   ratio to streaming_bulk {base / seconds:5.2f}x")
    print(f"  caller-thread CPU per record with ElasticsearchHandler attached: {caller_us:.1f} us")


if __name__ == "__main__":
    main()
