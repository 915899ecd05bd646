"""The flights demo: ``demo``, and its live form for compose: ``demo-service``, ``demo-traffic``."""
from __future__ import annotations

import argparse
import os

from .common import EXIT_OK, Subparsers, UsageError, check_url, server_distribution


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _demo(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="the whole idea on real data (NYC flights 2013), locally or on Elasticsearch",
                       description="Train a small model on January-March 2013 flights, replay April-December "
                                   "through a model service that logs every prediction, check each day, and "
                                   "write an HTML report. With --es, do the same through Elasticsearch.")
    p.add_argument("--workdir", default="predwatch-demo", help="where logs, baseline and report go")
    p.add_argument("--days", type=positive_int, help="replay only the first N days of April onwards")
    p.add_argument("--es", metavar="URL", help="run against Elasticsearch at URL")
    p.add_argument("--es-distribution", choices=("elasticsearch", "opensearch"),
                   help="with --es: opensearch for plain JSON media types")
    p.add_argument("--kibana", metavar="URL", help="with --es: also install dashboards and alerts in Kibana")
    p.add_argument("--prefix", default="predwatch", help="with --es: index name prefix (default: predwatch)")
    p.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    distribution = args.es_distribution
    if args.es:
        check_url(args.es, "--es")
        if not distribution and not os.environ.get("PREDWATCH_ES_DISTRIBUTION"):
            from logging_adapter.elastic import EsSettings

            distribution = server_distribution(EsSettings.from_env(url=args.es))
    try:
        if args.es:
            from predwatch.demo.elastic import run_es

            run_es(args.workdir, args.days, es_url=args.es, distribution=distribution,
                   kibana_url=args.kibana, prefix=args.prefix)
        else:
            from predwatch.demo.flights import run

            run(args.workdir, args.days, progress=lambda line: print(line, flush=True))
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


def _demo_service(sub: Subparsers) -> None:
    p = sub.add_parser("demo-service", help="the demo's model service over HTTP (POST /predict)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    p.add_argument("--log", default="logs/predictions.jsonl", help="the JSONL prediction log (rotated)")
    p.add_argument("--store-baseline", action="store_true", help="store the baseline in Elasticsearch (PREDWATCH_ES_*)")
    p.add_argument("--prefix", default="predwatch", help="index name prefix for --store-baseline")
    p.set_defaults(run=lambda a: _demo_call("serve", a.port, a.log, a.store_baseline, a.prefix))


def _demo_traffic(sub: Subparsers) -> None:
    p = sub.add_parser("demo-traffic", help="replay the April-December flights against demo-service")
    p.add_argument("--url", default="http://localhost:8000", help="the demo service (default: http://localhost:8000)")
    p.add_argument("--rate", type=float, default=20.0, help="requests per second")
    p.add_argument("--limit", type=int, help="stop after this many predictions")
    p.set_defaults(run=lambda a: _demo_call("traffic", a.url, a.rate, a.limit))


def _demo_call(name: str, *args) -> int:
    from predwatch.demo import service as demo_service

    try:
        result = getattr(demo_service, name)(*args)
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None
    if name == "traffic":
        print(f"{result:,} predictions answered")
    return EXIT_OK


COMMANDS = (_demo, _demo_service, _demo_traffic)  # each adds its subcommand to the parser
