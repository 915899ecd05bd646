"""What every command group shares: exit codes, the usage error, connection flags, configuration files."""
from __future__ import annotations

import argparse
import contextlib
import os
import tomllib
from collections.abc import Iterator

# Exit codes: each means one thing.
EXIT_OK = 0          # nothing found, or the work is done
EXIT_FINDINGS = 1    # findings
EXIT_USAGE = 2       # bad usage or unusable input: one line naming the file and the problem
EXIT_INTERNAL = 3    # an internal error (a bug): a short message; the traceback with --debug or PREDWATCH_DEBUG=1
EXIT_UNFINISHED = 4  # the destination did not take the work within the deadline; nothing lost, run again
EXIT_HELP = ("Exit codes: 0 nothing found, 1 findings, 2 unusable input or bad usage, 3 internal error, "
             "4 unfinished (run again).")

Subparsers = argparse._SubParsersAction


class UsageError(Exception):
    """Bad arguments or unusable input: printed as one line, exit code 2."""


def default_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def load_config(path: str | None) -> dict:
    if not path:
        return {}
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None


def add_es_args(p: argparse.ArgumentParser, prefix_default: str | None = "predwatch") -> None:
    """Connection flags, the same on every command that talks to Elasticsearch; each falls back to its
    PREDWATCH_ES_* environment variable (and, with --config, to predwatch.toml's [elasticsearch])."""
    g = p.add_argument_group("Elasticsearch (flags override PREDWATCH_ES_* environment variables)")
    g.add_argument("--es-url", help="e.g. https://localhost:9200 (PREDWATCH_ES_URL)")
    g.add_argument("--es-api-key", help="prefer PREDWATCH_ES_API_KEY: flags show up in process lists")
    g.add_argument("--es-username", help="basic auth user (PREDWATCH_ES_USERNAME)")
    g.add_argument("--es-password", help="prefer PREDWATCH_ES_PASSWORD")
    g.add_argument("--es-ca-certs", metavar="PEM", help="CA bundle to verify the cluster (PREDWATCH_ES_CA_CERTS)")
    g.add_argument("--es-distribution", choices=("elasticsearch", "opensearch"),
                   help="opensearch: plain JSON media types (PREDWATCH_ES_DISTRIBUTION)")
    g.add_argument("--prefix", default=prefix_default,
                   help="index name prefix (default: " + (prefix_default or "[elasticsearch] prefix, else predwatch") + ")")


def connection_overrides(args: argparse.Namespace) -> dict:
    """The connection flags given on the command line, as EsSettings keywords."""
    return {"url": args.es_url, "api_key": args.es_api_key, "username": args.es_username,
            "password": args.es_password, "ca_certs": args.es_ca_certs, "distribution": args.es_distribution}


def es_client(args: argparse.Namespace):
    from logging_adapter.elastic import EsSettings, make_client

    try:
        settings = EsSettings.from_env(**connection_overrides(args))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    settings = usable_settings(settings, url_from="--es-url" if args.es_url else None,
                               distribution_given=bool(args.es_distribution))
    return settings, make_client(settings)


def usable_settings(settings, *, url_from: str | None, distribution_given: bool):
    """The settings with a URL the client can use (else a usage error naming where the URL came from), and the
    distribution the server says it is when nobody said which (OpenSearch refuses the Elasticsearch 8 client's
    media types with a bare 406)."""
    from dataclasses import replace

    check_url(settings.url, url_from or ("PREDWATCH_ES_URL" if os.environ.get("PREDWATCH_ES_URL")
                                         else "the Elasticsearch URL"))
    if distribution_given or os.environ.get("PREDWATCH_ES_DISTRIBUTION"):
        return settings
    detected = server_distribution(settings)
    return replace(settings, distribution=detected) if detected else settings


def check_url(url: str, where: str) -> None:
    """A usage error naming ``where`` the URL came from unless it is http(s)://host: the client's own error
    (``localhost:9200``) would be an internal one."""
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        usable = False
    if not usable:
        shown = str(url).rpartition("@")[2]  # never a password
        raise UsageError(f"{where}: {shown!r} is not a URL with http:// or https:// "
                         f"(e.g. http://{shown or 'localhost:9200'})")


def server_distribution(settings) -> str | None:
    """What ``GET /`` says the server is (asked in plain JSON, which both answer): "opensearch" or
    "elasticsearch"; None when it cannot be asked now (the command then says why, itself)."""
    from dataclasses import replace

    from logging_adapter.elastic import DISTRIBUTIONS, make_client

    try:
        info = make_client(replace(settings, distribution="opensearch")).info()
    except Exception:  # noqa: BLE001 - unreachable or refused: the command's own request will say so
        return None
    found = str((info.get("version") or {}).get("distribution") or "elasticsearch")
    return found if found in DISTRIBUTIONS else None


@contextlib.contextmanager
def elasticsearch_errors(settings) -> Iterator[None]:
    """Any client error inside becomes one clear line (and exit code 2), never a traceback."""
    try:
        yield
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - connection, auth, TLS, API errors alike
        hint = ""
        if getattr(exc, "status_code", None) == 406 or "compatible-with" in str(exc):
            hint = (" -- an OpenSearch server? say so with --es-distribution opensearch (or "
                    "PREDWATCH_ES_DISTRIBUTION=opensearch, or distribution = \"opensearch\" in [elasticsearch])")
        raise UsageError(f"cannot use Elasticsearch at {settings.describe()}: {type(exc).__name__}: {exc}{hint}"
                         ) from None


def install_parser(sub: Subparsers, group: str, group_help: str, help: str, description: str
                   ) -> argparse.ArgumentParser:
    """``predwatch GROUP install``: the parser of the one action a stack group has today."""
    actions = sub.add_parser(group, help=group_help).add_subparsers(dest="action", required=True, metavar="ACTION")
    return actions.add_parser("install", help=help, description=description)


def add_config_args(p: argparse.ArgumentParser) -> None:
    """predwatch.toml, and the same connection flags as every other command (they override the file)."""
    p.add_argument("--config", required=True, help="predwatch.toml")
    add_es_args(p, prefix_default=None)


def daemon_config(args: argparse.Namespace):
    from analyzers.daemon.config import DaemonConfig

    try:
        config = DaemonConfig.load(args.config, prefix=args.prefix, **connection_overrides(args))
    except FileNotFoundError:
        raise UsageError(f"config file not found: {args.config}") from None
    except (ValueError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{args.config}: {exc}") from None
    in_file = config.raw.get("elasticsearch", {})
    url_from = "--es-url" if args.es_url else f"{args.config}: [elasticsearch] url" if "url" in in_file else None
    config.settings = usable_settings(config.settings, url_from=url_from,
                                      distribution_given=bool(args.es_distribution or in_file.get("distribution")))
    return config


def service_logging() -> None:
    """Log lines for long-running commands; the client's and the scheduler's chatter kept to warnings."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def add_fields_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fields", metavar="MAP.toml",
                   help="a field map: where model, version, prediction_id, timestamp, features, prediction, "
                        "latency_ms (and for outcomes actual, outcome_id) live in records of your own layout, each a "
                        "dotted path (OpenTelemetry log records are recognised without one)")


def load_fields(args: argparse.Namespace):
    """The ``--fields`` map, or None; a usage error naming the file and the problem when it is unusable."""
    from logging_adapter.fieldmap import FieldMap

    if not getattr(args, "fields", None):
        return None
    try:
        return FieldMap.load(args.fields)
    except FileNotFoundError:
        raise UsageError(f"field map not found: {args.fields}") from None
    except PermissionError:
        raise UsageError(f"{args.fields}: permission denied") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def say_unseen_paths(command: str, logs, fields) -> None:
    """Once, at the start: each path of the field map that none of the first records holds."""
    import sys

    from analyzers.sources.jsonl import CHUNK, unseen_paths

    records, unseen = unseen_paths(logs, fields, CHUNK)
    if not records:
        return
    for path, keys in unseen.items():
        print(f"predwatch {command}: warning: fields {fields.source}: path \"{path}\" ({', '.join(keys)}) never "
              f"occurs in the first {records:,} records", file=sys.stderr)
