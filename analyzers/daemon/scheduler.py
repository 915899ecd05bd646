"""The daemon: one APScheduler job per model (one run at a time, misfires coalesced), heartbeat, retention.

Per model the job analyses every window that is due: from the persisted
watermark (or the configured backfill) up to ``now - lag``. SIGTERM finishes the
current window, then stops.
"""
from __future__ import annotations

import logging
import signal
import socket
import threading
from datetime import datetime, timezone
from typing import Any

from elasticsearch import Elasticsearch

from logging_adapter.elastic import make_client
from logging_adapter.templates import apply_retention

from ..store.state import StateDocument, put_state
from .analyzer import Analyzer
from .config import DaemonConfig, ModelJob

log = logging.getLogger("predwatch.daemon")


def run_daemon(config: DaemonConfig, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``): one job per model, a heartbeat, retention."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from alerting.notifier import Notifier
    from kibana.dashboards import dashboard_path

    stop = stop or threading.Event()
    client = make_client(config.settings)
    alerts = config.raw.get("alerts", {})
    kibana_url, space = alerts.get("kibana_url"), alerts.get("kibana_space")
    notifier = Notifier.from_config(config.raw.get("notify"), renotify=config.renotify,
                                    dashboard_url=kibana_url.rstrip("/") + dashboard_path(config.prefix, space)
                                    if kibana_url else None,
                                    state=StateDocument(client, config.prefix, "notifier:active", "notifier"))
    analyzer = Analyzer(client, config, notifier)
    scheduler = BackgroundScheduler(timezone=timezone.utc, job_defaults={"coalesce": True, "max_instances": 1})
    now = datetime.now(timezone.utc)

    def model_job(job: ModelJob) -> None:
        try:
            analyzer.run_model(job, stop=stop)
        except Exception:  # noqa: BLE001 - keep serving the other models
            log.exception("model %s: run failed; trying again at the next interval", job.name)

    for job in config.models:
        scheduler.add_job(model_job, "interval", args=[job], id=f"model:{job.name}",
                          seconds=job.interval.total_seconds(), next_run_time=now,
                          misfire_grace_time=int(job.interval.total_seconds()))
    scheduler.add_job(lambda: heartbeat(client, config), "interval", id="heartbeat",
                      seconds=config.heartbeat.total_seconds(), next_run_time=now)
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
    if notifier is not None:
        notifier.close()
    log.info("predwatch daemon stopped")


def heartbeat(client: Elasticsearch, config: DaemonConfig) -> None:
    try:
        put_state(client, config.prefix, f"heartbeat:{socket.gethostname()}", "heartbeat",
                      {"host": socket.gethostname(), "models": [m.name for m in config.models]})
    except Exception as exc:  # noqa: BLE001
        log.warning("heartbeat not written: %s", exc)
