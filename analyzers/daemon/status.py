"""The monitor's own state, for ``predwatch status``: live instances, and who analyses each model, how far behind."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from elasticsearch import Elasticsearch

from logging_adapter.contract import parse_time

from ..store.state import find_state, get_state
from .config import DaemonConfig
from .leases import lease_id


@dataclass
class ModelStatus:
    model: str
    instance: str | None  # the lease holder, None when nobody holds a live lease
    last_window_end: str | None
    lag_seconds: float | None


@dataclass
class Status:
    instances: list[tuple[str, list[str], str]]  # (instance, models held, last heartbeat), live ones only
    models: list[ModelStatus]


def read_status(client: Elasticsearch, config: DaemonConfig, now: datetime | None = None) -> Status:
    now = now or datetime.now(timezone.utc)
    fresh = now - config.lease
    instances = [(b.get("instance", "?"), list(b.get("models") or []), b["@timestamp"])
                 for b in find_state(client, config.prefix, "heartbeat") if parse_time(b["@timestamp"]) >= fresh]
    rows = []
    for job in config.models:
        lease = get_state(client, config.prefix, lease_id(job.model_key)) or {}
        holder = lease.get("holder") if lease.get("expires", 0) > now.timestamp() else None
        mark = get_state(client, config.prefix, job.key)
        end = mark["end"] if mark else None
        rows.append(ModelStatus(job.model_key, holder or None, end,
                                (now - parse_time(end)).total_seconds() if end else None))
    return Status(sorted(instances), rows)


def format_status(status: Status) -> str:
    lines = [f"{len(status.instances)} live instance(s)"]
    lines += [f"  {name:32s} {len(models)} model(s), heartbeat {beat}" for name, models, beat in status.instances]
    lines.append(f"{'model':32s} {'instance':32s} {'last window end':26s} lag")
    for m in status.models:
        lag = "-" if m.lag_seconds is None else duration(m.lag_seconds)
        lines.append(f"{m.model:32s} {m.instance or '(none)':32s} {m.last_window_end or '-':26s} {lag}")
    return "\n".join(lines)


def duration(seconds: float) -> str:
    """A duration as one, read as such: "15 h 39 min", "2 d 3 h", "42 s" (``15:39:07`` reads as a time of day)."""
    seconds = round(seconds)
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        parts = [f"{days} d"] + ([f"{hours} h"] if hours else [])
    elif hours:
        parts = [f"{hours} h"] + ([f"{minutes} min"] if minutes else [])
    elif minutes:
        parts = [f"{minutes} min"] + ([f"{secs} s"] if secs else [])
    else:
        parts = [f"{secs} s"]
    return sign + " ".join(parts)
