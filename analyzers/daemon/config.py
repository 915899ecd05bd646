"""The daemon's configuration: ``predwatch.toml`` read once, durations parsed here and handed on as values."""
from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from logging_adapter import contract as c
from logging_adapter.elastic import EsSettings

from ..core.config import CheckConfig, parse_duration
from ..core.incidents import DEFAULT_GAP
from ..sources.layout import OWN, Layout, layout_from_config


@dataclass
class ModelJob:
    """One monitored model: window size, lag for late records, how often to look, how far back to start, and
    where its records are (``layout``: predwatch's own indices, or the user's own ``index`` read through
    ``fields``, a field map, or ``fields = "otel"``)."""

    name: str
    version: str | None = None
    window: timedelta = timedelta(hours=1)
    lag: timedelta = timedelta(minutes=5)
    every: timedelta | None = None
    backfill: timedelta = timedelta(days=1)
    recent_days: int = 7  # the recent reference: the same window on this many previous days (0: none)
    alert_on: tuple[str, ...] = ("training", "champion")  # which references' findings are notified
    labels_within: timedelta = timedelta(days=7)  # outcomes usually known by then: windows younger are "pending"
    incident_gap: int = DEFAULT_GAP  # quiet windows that do not split an incident
    layout: Layout = OWN
    # (champion, candidate): the candidate judged against the champion on each window (analyzers.core.versions),
    # with the champion's results; the candidate needs no baseline of its own
    compare: tuple[str, str] | None = None

    @property
    def interval(self) -> timedelta:
        return self.every or min(self.window, timedelta(minutes=5))

    @property
    def model_key(self) -> str:
        """The model (and version) this job watches: what a lease is for."""
        return f"{self.name}:{self.version or '*'}"

    @property
    def key(self) -> str:
        return f"watermark:{self.model_key}"


REFERENCES = ("training", "recent", "champion")  # champion: the version checks ([[models]] compare)


def _whole(table: dict[str, Any], key: str, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"[[models]] {key}: a whole number of 0 or more, not {value!r}")
    return value


def _references(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list) or not set(values) <= set(REFERENCES):
        raise ValueError(f"[[models]] alert_on: a list of {', '.join(REFERENCES)}, not {values!r}")
    return tuple(values)


def _compare(values: Any) -> tuple[str, str] | None:
    if values is None:
        return None
    if not isinstance(values, list) or len(values) != 2 or not all(isinstance(v, (str, int)) for v in values) \
            or str(values[0]) == str(values[1]):
        raise ValueError(f'[[models]] compare: two different versions, champion first, e.g. ["7", "8"], not {values!r}')
    return str(values[0]), str(values[1])


def default_instance() -> str:
    """Host and process id: unique among the daemons sharing one cluster."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class DaemonConfig:
    settings: EsSettings
    prefix: str = "predwatch"
    models: list[ModelJob] = field(default_factory=list)
    checks: CheckConfig = field(default_factory=CheckConfig)
    retention_days: int | None = None
    heartbeat: timedelta = timedelta(seconds=60)
    instance: str = field(default_factory=default_instance)  # [daemon] instance: this process among several
    lease: timedelta = timedelta(seconds=60)  # [daemon] lease: how soon another instance takes a dead one's models
    renotify: timedelta = timedelta(hours=6)  # [notify] renotify: when an open finding is said again
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> "DaemonConfig":
        with open(path, "rb") as fh:
            return cls.from_dict(tomllib.load(fh), **overrides)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], **overrides: Any) -> "DaemonConfig":
        es = dict(doc.get("elasticsearch", {}))
        prefix = overrides.pop("prefix", None) or es.pop("prefix", "predwatch")
        es.pop("prefix", None)
        unknown = set(es) - {"url", "distribution", "ca_certs", "verify_certs", "request_timeout", "username"}
        if unknown:
            raise ValueError(f"[elasticsearch]: unknown keys {', '.join(sorted(unknown))} (secrets come from the "
                             "environment: PREDWATCH_ES_API_KEY, PREDWATCH_ES_PASSWORD)")
        settings = EsSettings.from_toml(es, **overrides)
        daemon = doc.get("daemon", {})
        models = []
        for m in doc.get("models", []):
            if "name" not in m:
                raise ValueError("[[models]] entries need a name")
            compare = _compare(m.get("compare"))
            if compare and m.get("version") is not None and str(m["version"]) != compare[0]:
                raise ValueError(f"[[models]] {m['name']}: compare's champion ({compare[0]!r}) is the version the "
                                 f"results are written under: version = {m['version']!r} would never be compared")
            models.append(ModelJob(
                name=m["name"], version=None if m.get("version") is None else str(m["version"]),
                window=parse_duration(m.get("window", "1h")), lag=parse_duration(m.get("lag", "5m")),
                every=parse_duration(m["every"]) if "every" in m else None,
                backfill=parse_duration(m.get("backfill", "1d")),
                recent_days=_whole(m, "recent_days", 7), alert_on=_references(m.get("alert_on", ["training", "champion"])),
                labels_within=parse_duration(m.get("labels_within", "7d")),
                incident_gap=_whole(m, "incident_gap", DEFAULT_GAP), layout=layout_from_config(m, m["name"]),
                compare=compare))
        return cls(settings=settings, prefix=prefix, models=models, checks=CheckConfig.from_dict(doc),
                   retention_days=daemon.get("retention_days"),
                   heartbeat=parse_duration(daemon.get("heartbeat", "60s")),
                   instance=str(daemon.get("instance") or default_instance()),
                   lease=parse_duration(daemon.get("lease", "60s")),
                   renotify=parse_duration(doc.get("notify", {}).get("renotify", "6h")), raw=doc)

    def model(self, name: str) -> ModelJob:
        for job in self.models:
            if job.name == name:
                return job
        raise KeyError(f"model {name!r} is not in the configuration (models: {', '.join(m.name for m in self.models)})")


def iso(dt: datetime) -> str:
    return c.utc_iso(dt)


def align(dt: datetime, size: timedelta) -> datetime:
    """The window boundary at or before ``dt`` (windows are aligned to the Unix epoch, UTC)."""
    seconds = size.total_seconds()
    return datetime.fromtimestamp((dt.timestamp() // seconds) * seconds, tz=timezone.utc)
