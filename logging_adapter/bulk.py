"""Bulk delivery shared by the in-process handler and ``predwatch ship``.

Every record becomes a :class:`Doc` with a deterministic ``_id`` (its
``prediction_id``, or a hash of the line) and a daily index routed by its own
timestamp, and is sent as a bulk ``create``: a retry of something already
indexed answers 409, which counts as delivered. Outcomes are data
(:class:`BulkOutcome`), never exceptions: the caller decides about retrying.
"""
from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import ApiError, Elasticsearch

from . import contract as c
from .templates import DEFAULT_PREFIX, predictions_index

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Doc:
    """One document ready for a bulk ``create``: where it goes, its id, and its JSON source."""

    index: str
    id: str
    source: bytes

    def action(self, op: str = "create") -> bytes:
        return orjson.dumps({op: {"_index": self.index, "_id": self.id}})


class BadRecord(ValueError):
    """A line that cannot become a document; the message is the reason for the dead letter."""


def doc_from_line(line: bytes, prefix: str = DEFAULT_PREFIX) -> Doc:
    """A JSONL line of a prediction record as a :class:`Doc`; raises :class:`BadRecord` with the reason."""
    line = line.rstrip(b"\r\n")
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadRecord(c.unparsable_reason(exc)) from None
    try:
        pred = c.read_prediction(obj)
    except c.RecordError as exc:
        raise BadRecord(str(exc)) from None
    if not pred.model:
        raise BadRecord("no predwatch.model.name")
    stamp = pred.timestamp
    if not isinstance(stamp, str) or len(stamp) < 10 or stamp[4] != "-" or stamp[7] != "-":
        raise BadRecord(f"no usable @timestamp ({stamp!r})")
    doc_id = pred.prediction_id if isinstance(pred.prediction_id, str) and pred.prediction_id else line_id(line)
    return Doc(predictions_index(pred.model, stamp, prefix), doc_id, line)


def line_id(line: bytes) -> str:
    """A deterministic id for a record that carries no ``prediction_id``: the same line, the same id."""
    return hashlib.sha1(line).hexdigest()


@dataclass
class BulkOutcome:
    """What happened to each document of one bulk request."""

    created: int = 0
    duplicates: int = 0  # 409: already indexed by an earlier attempt
    retry: list[Doc] = field(default_factory=list)
    rejected: list[tuple[Doc, str]] = field(default_factory=list)
    error: str | None = None  # the whole request failed (connection, timeout, 5xx)

    @property
    def delivered(self) -> int:
        return self.created + self.duplicates

    def account(self, stats: Counter[str], dead_letters: "DeadLetters", delivered_as: str = "sent") -> None:
        """Add this outcome to a sender's counters; rejected documents go to its dead letters."""
        stats[delivered_as] += self.created
        stats["duplicates"] += self.duplicates
        for doc, reason in self.rejected:
            stats["rejected"] += 1
            dead_letters.add(doc.source, reason, source=doc.index)


def send_bulk(client: Elasticsearch, docs: list[Doc], *, op: str = "create", refresh: bool = False) -> BulkOutcome:
    """One bulk request. Connection problems and retryable statuses come back in ``retry``.

    ``op="create"`` (records: a retry of an indexed one answers 409) or ``"index"`` (results: overwrite).
    """
    out = BulkOutcome()
    if not docs:
        return out
    operations: list[bytes] = []
    for doc in docs:
        operations.append(doc.action(op))
        operations.append(doc.source)
    try:
        resp = client.bulk(operations=operations, refresh=refresh or None)
    except (TransportConnectionError, ConnectionTimeout) as exc:
        out.error, out.retry = f"{type(exc).__name__}: {exc}", list(docs)
        return out
    except ApiError as exc:
        out.error = f"HTTP {exc.meta.status}: {exc.message}"
        if exc.meta.status in RETRYABLE_STATUS:
            out.retry = list(docs)
        else:
            out.rejected = [(doc, out.error) for doc in docs]
        return out
    except TransportError as exc:
        out.error, out.retry = f"{type(exc).__name__}: {exc}", list(docs)
        return out
    for doc, item in zip(docs, resp["items"]):
        result = next(iter(item.values()))
        status = result.get("status", 500)
        if status in (200, 201):
            out.created += 1
        elif status == 409:
            out.duplicates += 1
        elif status in RETRYABLE_STATUS:
            out.retry.append(doc)
        else:
            err = result.get("error") or {}
            reason = f"{err.get('type', status)}: {err.get('reason', '')}" if isinstance(err, dict) else str(err)
            out.rejected.append((doc, reason))
    return out


def deliver(client: Elasticsearch, docs: list[Doc], *, stats: Counter[str], dead_letters: "DeadLetters",
            waits: Iterable[float], stop: threading.Event,
            on_retry: Callable[[BulkOutcome, float], None] | None = None) -> tuple[list[Doc], BulkOutcome]:
    """Send, then resend what is retryable after each of ``waits``, until all is delivered or
    dead-lettered, the waits run out, or ``stop`` is set. Returns what is still undelivered."""
    waits = iter(waits)
    pending = docs
    while True:
        outcome = send_bulk(client, pending)
        outcome.account(stats, dead_letters)
        if not outcome.retry:
            return [], outcome
        pending = outcome.retry
        stats["retried"] += len(pending)
        delay = next(waits, None)
        if delay is None:
            return pending, outcome
        if on_retry is not None:
            on_retry(outcome, delay)
        if stop.wait(delay):
            return pending, outcome


class Backoff:
    """Exponential backoff with full jitter: 0.5 s, 1 s, 2 s ... capped, reset on success."""

    def __init__(self, base: float = 0.5, cap: float = 30.0) -> None:
        self.base, self.cap, self.failures = base, cap, 0

    def next_delay(self) -> float:
        self.failures += 1
        return random.uniform(0, min(self.cap, self.base * 2 ** (self.failures - 1)))

    def reset(self) -> None:
        self.failures = 0

    def delays(self) -> Iterator[float]:
        """Endless delays, each longer (up to the cap)."""
        while True:
            yield self.next_delay()


class DeadLetters:
    """Rejected records with their reason, one JSON object per line, never retried."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    KEEP_BYTES = 64 * 1024  # of a huge line, enough to recognise it

    def add(self, raw: bytes, reason: str, source: str = "") -> None:
        kind = reason.split(":", 1)[0].split("(", 1)[0].strip()
        self.counts[kind] += 1
        entry: dict[str, Any] = {"@timestamp": c.utc_iso(time.time()), "reason": reason, "source": source}
        if len(raw) > self.KEEP_BYTES:
            entry["truncated_from_bytes"] = len(raw)
            raw = raw[: self.KEEP_BYTES]
        try:
            entry["line"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            entry["line"] = raw.decode("latin-1")
            entry["encoding"] = "latin-1 (the line was not UTF-8)"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as fh:
                fh.write(orjson.dumps(entry) + b"\n")
