"""The rest of the stack: ``kibana install`` (dashboards) and ``alerts install`` (Watcher)."""
from __future__ import annotations

import argparse
import sys

from .common import (EXIT_OK, EXIT_USAGE, Subparsers, UsageError, add_config_args, daemon_config,
                     elasticsearch_errors, install_parser)


def _kibana(sub: Subparsers) -> None:
    inst = install_parser(sub, "kibana", "Kibana dashboards: install (import the saved objects)",
                          "import the dashboards through the saved objects API",
                          "Auth from PREDWATCH_KIBANA_API_KEY or PREDWATCH_KIBANA_USERNAME/_PASSWORD "
                          "(else the PREDWATCH_ES_* credentials).")
    inst.add_argument("--kibana-url", required=True, help="e.g. https://kibana:5601")
    inst.add_argument("--space", help="Kibana space id (default: the default space)")
    inst.add_argument("--prefix", default="predwatch", help="index name prefix the dashboards read (default: predwatch)")
    inst.add_argument("--kibana-ca-certs", "--ca-certs", dest="ca_certs", metavar="PEM",
                      help="CA bundle to verify Kibana")
    inst.set_defaults(run=run_kibana_install)


def run_kibana_install(args: argparse.Namespace) -> int:
    from kibana.dashboards import dashboard_id, dashboard_path, ndjson
    from kibana.install import KibanaAuth, import_saved_objects
    from logging_adapter.elastic import safe_url

    result = import_saved_objects(args.kibana_url, ndjson(args.prefix, args.space), space=args.space,
                                  auth=KibanaAuth.from_env(), ca_certs=args.ca_certs)
    for line in result.created:
        print(f"imported {line}")
    for line in result.errors:
        print(f"failed: {line}", file=sys.stderr)
    if not result.ok:
        return EXIT_USAGE
    dashboard = result.id_of(dashboard_id(args.prefix, args.space))
    print(f"dashboard: {safe_url(args.kibana_url).rstrip('/')}{dashboard_path(args.prefix, args.space, dashboard)}")
    return EXIT_OK


def _alerts(sub: Subparsers) -> None:
    inst = install_parser(sub, "alerts", "Watcher alerts: install (or render) the watches",
                          "put the watches ([alerts] in predwatch.toml)",
                          "Reads the cluster licence first; without Watcher it says so and points "
                          "to the daemon's built-in notifier ([notify]).")
    add_config_args(inst)
    inst.add_argument("--per-model", action="store_true", help="one watch per configured model")
    inst.add_argument("--print", action="store_true", help="print the watches instead of installing them")
    inst.set_defaults(run=run_alerts_install)


def run_alerts_install(args: argparse.Namespace) -> int:
    import json

    from alerting.watches import (AlertConfig, error_watch_id, install, render_error_watch, render_watch, watch_id,
                                  watcher_available)
    from kibana.dashboards import dashboard_url
    from logging_adapter.elastic import make_client

    config = daemon_config(args)
    try:
        cfg = AlertConfig.from_dict(config.raw.get("alerts"))
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    models = [m.name for m in config.models] if args.per_model else [None]
    dashboard = dashboard_url(cfg.kibana_url, config.prefix, cfg.kibana_space)
    if args.print:
        kinds = ((watch_id, render_watch), (error_watch_id, render_error_watch))  # the two install puts per scope
        print(json.dumps([{"id": wid(config.prefix, model), "watch": render(cfg, config.prefix, model, dashboard)}
                          for model in models for wid, render in kinds], indent=2))
        return EXIT_OK
    client = make_client(config.settings)
    available, why = watcher_available(client)
    if not available:
        print(f"Watcher is not available: {why}.")
        print("Alerts still work: `predwatch daemon` tells incidents (opened, escalated, closed) to the webhooks and "
              "Slack URLs under [notify] in predwatch.toml (any licence), and Kibana's Elasticsearch-query rule can "
              f"watch {config.prefix}-incidents.")
        return EXIT_OK
    with elasticsearch_errors(config.settings):
        for wid in install(client, cfg, config.prefix, models, dashboard):
            print(f"installed watch {wid}")
    return EXIT_OK


COMMANDS = (_kibana, _alerts)  # each adds its subcommand to the parser
