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
    return settings, make_client(settings)


@contextlib.contextmanager
def elasticsearch_errors(settings) -> Iterator[None]:
    """Any client error inside becomes one clear line (and exit code 2), never a traceback."""
    try:
        yield
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - connection, auth, TLS, API errors alike
        raise UsageError(f"cannot use Elasticsearch at {settings.describe()}: {type(exc).__name__}: {exc}") from None


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
        return DaemonConfig.load(args.config, prefix=args.prefix, **connection_overrides(args))
    except FileNotFoundError:
        raise UsageError(f"config file not found: {args.config}") from None
    except (ValueError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{args.config}: {exc}") from None


def service_logging() -> None:
    """Log lines for long-running commands; the client's and the scheduler's chatter kept to warnings."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
