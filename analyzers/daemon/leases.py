"""Which models this daemon instance analyses: leases in ``<prefix>-state``, no second coordinator.

Each model has one lease document naming its holder and when the lease expires.
An instance creates a missing lease (``op_type=create``), renews its own, and takes
over an expired one, always with a conditional write (``if_seq_no`` and
``if_primary_term``): of two instances racing for one lease, exactly one write
succeeds. An instance believes it holds a lease only until a third of the period
before it expires, so an instance that cannot renew stops analysing before anyone
else may take over. Work spreads by share: with N live instances (fresh heartbeats)
and M models, nobody keeps more than ceil(M/N); extras are released, free leases
are taken by whoever is under its share, preferring the models that hash highest for
it (rendezvous hashing), so the same models tend to stay where they are.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from elasticsearch import ConflictError, Elasticsearch, NotFoundError

from logging_adapter import contract as c

from ..sources.search import search
from ..store.results import state_index

log = logging.getLogger("predwatch.daemon")


@dataclass(frozen=True)
class Lease:
    """One lease as read: who holds it, until when (epoch seconds), and its version for conditional writes."""

    key: str
    holder: str
    expires: float
    seq_no: int
    primary_term: int


def lease_id(key: str) -> str:
    return f"lease:{key}"


def weight(key: str, instance: str) -> int:
    """Rendezvous hashing: how much ``instance`` prefers ``key`` (stable, spread evenly)."""
    return int.from_bytes(hashlib.sha1(f"{key}|{instance}".encode()).digest()[:8], "big")


class Leases:
    """The leases of one instance. ``clock`` returns epoch seconds (a parameter for the tests)."""

    def __init__(self, client: Elasticsearch, prefix: str, instance: str, period: timedelta,
                 clock: Callable[[], float] = time.time) -> None:
        self.client, self.prefix, self.instance = client, prefix, instance
        self.period = period.total_seconds()
        self.clock = clock
        self.held: dict[str, float] = {}  # key -> expiry this instance wrote

    # -- one lease -----------------------------------------------------------------------------
    def read(self, key: str) -> Lease | None:
        try:
            doc = self.client.get(index=state_index(self.prefix), id=lease_id(key))
        except NotFoundError:
            return None
        src = doc["_source"]
        return Lease(key, src.get("instance", ""), float(src.get("document", {}).get("expires", 0)),
                     doc["_seq_no"], doc["_primary_term"])

    def acquire(self, key: str, current: Lease | None = None, *, read: bool = True) -> bool:
        """Create, renew or take over the lease; False when another live instance holds it or won the race."""
        if current is None and read:
            current = self.read(key)
        now = self.clock()
        if current is not None and current.holder != self.instance and current.expires > now:
            self.held.pop(key, None)
            return False
        expires = now + self.period
        body = {"@timestamp": c.utc_iso(now), "kind": "lease", "model": key, "instance": self.instance,
                "document": {"holder": self.instance, "expires": expires}}
        try:
            if current is None:
                self.client.index(index=state_index(self.prefix), id=lease_id(key), document=body, op_type="create",
                                  refresh=True)
            else:
                self.client.index(index=state_index(self.prefix), id=lease_id(key), document=body, refresh=True,
                                  if_seq_no=current.seq_no, if_primary_term=current.primary_term)
        except ConflictError:  # another instance wrote first: it holds the lease
            self.held.pop(key, None)
            return False
        if key not in self.held:
            log.info("instance %s now analyses %s", self.instance, key)
        self.held[key] = expires
        return True

    def release(self, key: str) -> None:
        """Give the lease up at once (a clean stop, or more than this instance's share)."""
        self.held.pop(key, None)
        current = self.read(key)
        if current is None or current.holder != self.instance:
            return
        body = {"@timestamp": c.utc_iso(self.clock()), "kind": "lease", "model": key, "instance": "",
                "document": {"holder": "", "expires": 0}}
        try:
            self.client.index(index=state_index(self.prefix), id=lease_id(key), document=body, refresh=True,
                              if_seq_no=current.seq_no, if_primary_term=current.primary_term)
        except ConflictError:
            pass
        log.info("instance %s released %s", self.instance, key)

    def holds(self, key: str) -> bool:
        """Held, with a third of the period to spare (an instance that cannot renew stops first)."""
        expires = self.held.get(key)
        return expires is not None and expires - self.clock() > self.period / 3

    # -- all of them -----------------------------------------------------------------------------
    def balance(self, keys: Iterable[str], instances: int) -> set[str]:
        """Renew what is held, shed what is above the share, take free leases up to it; returns what is held."""
        keys = sorted(set(keys), key=lambda k: -weight(k, self.instance))  # most preferred first
        share = math.ceil(len(keys) / max(1, instances))
        leases = {k: self.read(k) for k in keys}
        mine = [k for k in keys if leases[k] is not None and leases[k].holder == self.instance]
        for key in mine[share:]:
            self.release(key)
        for key in mine[:share]:
            self.acquire(key, leases[key], read=False)
        held = {k for k in keys if k in self.held}
        for key in keys:
            if len(held) >= share:
                break
            lease = leases[key]
            if key not in held and (lease is None or lease.expires <= self.clock()) \
                    and self.acquire(key, lease, read=False):
                held.add(key)
        return held

    def release_all(self) -> None:
        for key in list(self.held):
            self.release(key)


def live_instances(client: Elasticsearch, prefix: str, within: timedelta, now: datetime | None = None) -> list[str]:
    """Instances whose heartbeat is fresher than ``within``."""
    now = now or datetime.now(timezone.utc)
    try:
        resp = search(client, index=state_index(prefix), size=1000, ignore_unavailable=True, allow_no_indices=True,
                      _source=["instance"],
                      query={"bool": {"filter": [{"term": {"kind": "heartbeat"}},
                                                 {"range": {"@timestamp": {"gte": c.utc_iso(now - within)}}}]}})
    except NotFoundError:
        return []
    return sorted({h["_source"].get("instance", "") for h in resp["hits"]["hits"]} - {""})
