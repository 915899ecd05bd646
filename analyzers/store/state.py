"""Daemon state in Elasticsearch: watermarks, heartbeats, the notifier's open incidents."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from logging_adapter import contract as c

from .results import state_index


def get_state(client: Elasticsearch, prefix: str, key: str) -> dict[str, Any] | None:
    try:
        return client.get(index=state_index(prefix), id=key)["_source"]["document"]
    except NotFoundError:
        return None


def put_state(client: Elasticsearch, prefix: str, key: str, kind: str, document: dict[str, Any]) -> None:
    client.index(index=state_index(prefix), id=key, refresh=True, document={
        "@timestamp": c.utc_iso(datetime.now(timezone.utc)), "kind": kind, "document": document})


@dataclass
class StateDocument:
    """One document of ``<prefix>-state``, loaded and saved whole (e.g. the notifier's open incidents)."""

    client: Elasticsearch
    prefix: str
    key: str
    kind: str

    def load(self) -> dict[str, Any] | None:
        return get_state(self.client, self.prefix, self.key)

    def save(self, document: dict[str, Any]) -> None:
        put_state(self.client, self.prefix, self.key, self.kind, document)
