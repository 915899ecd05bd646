"""Daemon state in Elasticsearch: watermarks, heartbeats, the notifier's open incidents."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from logging_adapter import contract as c

from ..sources.search import search
from .results import state_index


def get_state(client: Elasticsearch, prefix: str, key: str) -> dict[str, Any] | None:
    try:
        return client.get(index=state_index(prefix), id=key)["_source"]["document"]
    except NotFoundError:
        return None


def put_state(client: Elasticsearch, prefix: str, key: str, kind: str, document: dict[str, Any],
              **indexed: Any) -> None:
    """Write one state document whole; ``indexed`` fields (``instance``, ``model``, ``lag_seconds``...) are
    searchable, for ``predwatch status`` and the dashboard's monitoring panel; ``document`` is kept as is."""
    client.index(index=state_index(prefix), id=key, refresh=True, document={
        "@timestamp": c.utc_iso(datetime.now(timezone.utc)), "kind": kind, **indexed, "document": document})


def delete_state(client: Elasticsearch, prefix: str, key: str) -> None:
    try:
        client.delete(index=state_index(prefix), id=key, refresh=True)
    except NotFoundError:
        pass


def find_state(client: Elasticsearch, prefix: str, kind: str, size: int = 1000) -> list[dict[str, Any]]:
    """Every state document of one kind, whole (``_source``), newest first."""
    try:
        resp = search(client, index=state_index(prefix), size=size, query={"term": {"kind": kind}},
                      sort=[{"@timestamp": "desc"}], ignore_unavailable=True, allow_no_indices=True)
    except NotFoundError:
        return []
    return [h["_source"] for h in resp["hits"]["hits"]]


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
