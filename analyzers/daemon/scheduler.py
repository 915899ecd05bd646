"""The daemon: one APScheduler job per model (one run at a time, misfires coalesced), leases, retention.

Per model the job analyses every window that is due: from the persisted
watermark (or the configured backfill) up to ``now - lag``, but only while this
instance holds the model's lease (``leases.py``): several daemons share the models
of one cluster, and when one dies the others take its models over within a lease
period. A coordination tick (every third of the lease period, or the heartbeat if
sooner) writes the heartbeat, balances the leases and records each held model's
lag. SIGTERM finishes the current window, gives the leases up, then stops.
"""
from __future__ import annotations

import logging
import signal
import socket
import threading
from datetime import datetime, timezone
from typing import Any

from elasticsearch import Elasticsearch

from logging_adapter.contract import parse_time
from logging_adapter.elastic import make_client
from logging_adapter.templates import apply_retention

from ..store.results import MODEL_STATUS, state_index
from ..store.state import delete_state, get_state, put_state
from .analyzer import Analyzer
from .config import DaemonConfig, ModelJob
from .leases import Leases, live_instances

log = logging.getLogger("predwatch.daemon")


def run_daemon(config: DaemonConfig, stop: threading.Event | None = None, *, notifier: Any = None,
               client: Elasticsearch | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``): one job per model, a heartbeat, retention.

    ``notifier`` (an ``alerting.notifier.Notifier``, or None) is built and closed by the caller, the
    command line: the daemon only hands it findings, so it knows neither ``[notify]`` nor Kibana."""
    from apscheduler.schedulers.background import BackgroundScheduler

    stop = stop or threading.Event()
    client = client or make_client(config.settings)
    analyzer = Analyzer(client, config, notifier)
    leases = Leases(client, config.prefix, config.instance, config.lease)
    jobs = {job.model_key: job for job in config.models}
    scheduler = BackgroundScheduler(timezone=timezone.utc, job_defaults={"coalesce": True, "max_instances": 1})
    tick = min(config.heartbeat, config.lease / 3)

    def model_job(job: ModelJob) -> None:
        if not leases.holds(job.model_key):
            return  # another instance analyses this model
        try:
            analyzer.run_model(job, stop=stop, held=lambda: leases.holds(job.model_key))
        except Exception:  # noqa: BLE001 - keep serving the other models
            log.exception("model %s: run failed; trying again at the next interval", job.name)

    announce(client, config, held=[])  # be seen first: replicas started together split the work from the start,
    client.cluster.health(index=state_index(config.prefix), wait_for_status="yellow", timeout="30s")
    stop.wait(tick.total_seconds())  # (instead of the first to coordinate taking every lease)
    coordinate(client, config, leases, jobs)  # hold leases before the first model runs
    now = datetime.now(timezone.utc)
    for job in config.models:
        scheduler.add_job(model_job, "interval", args=[job], id=f"model:{job.model_key}",
                          seconds=job.interval.total_seconds(), next_run_time=now,
                          misfire_grace_time=int(job.interval.total_seconds()))
    scheduler.add_job(lambda: coordinate(client, config, leases, jobs), "interval", id="coordinate",
                      seconds=tick.total_seconds(), next_run_time=now + tick)
    if config.retention_days:
        scheduler.add_job(lambda: apply_retention(client, config.prefix, config.retention_days), "interval",
                          id="retention", hours=6, next_run_time=now)

    def on_signal(signum: int, frame: Any) -> None:
        log.info("signal %d: finishing the current window, then stopping", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    scheduler.start()
    log.info("predwatch daemon: %d model(s) on %s", len(config.models), config.settings.describe())
    stop.wait()
    scheduler.shutdown(wait=True)
    try:  # let the others take over at once instead of after a lease period
        leases.release_all()
        delete_state(client, config.prefix, heartbeat_key(config.instance))
    except Exception as exc:  # noqa: BLE001
        log.warning("leases not released (they expire by themselves): %s", exc)
    log.info("predwatch daemon stopped")


def heartbeat_key(instance: str) -> str:
    return f"heartbeat:{instance}"


def announce(client: Elasticsearch, config: DaemonConfig, held: list[str]) -> None:
    """This instance's heartbeat: alive, and the models it holds (what the others balance against)."""
    put_state(client, config.prefix, heartbeat_key(config.instance), "heartbeat",
              {"instance": config.instance, "host": socket.gethostname(), "models": held},
              instance=config.instance, models=held)


def coordinate(client: Elasticsearch, config: DaemonConfig, leases: Leases, jobs: dict[str, ModelJob]) -> None:
    """Heartbeat, balance the leases among the live instances, record each held model's lag."""
    try:
        alive = set(live_instances(client, config.prefix, config.lease)) | {config.instance}
        held = sorted(leases.balance(jobs, len(alive)))
        now = datetime.now(timezone.utc)
        for key in held:
            mark = get_state(client, config.prefix, jobs[key].key)
            end = mark["end"] if mark else None
            lag = (now - parse_time(end)).total_seconds() if end else None
            put_state(client, config.prefix, f"status:{key}", MODEL_STATUS,
                      {"model": key, "instance": config.instance, "last_window_end": end, "lag_seconds": lag},
                      model=jobs[key].name, version=jobs[key].version, instance=config.instance,
                      last_window_end=end, lag_seconds=lag)
        announce(client, config, held)
    except Exception as exc:  # noqa: BLE001 - a missed tick only delays; leases expire safely
        log.warning("coordination tick failed: %s", exc)
