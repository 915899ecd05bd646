"""Bulk delivery shared by the in-process handler and ``predwatch ship``.

Every record becomes a :class:`Doc` with a deterministic ``_id`` (its
``prediction_id``, or a hash of the line) and a daily index routed by its own
timestamp, and is sent as a bulk ``create``: a retry of something already
indexed answers 409, which counts as delivered. Outcomes are data
(:class:`BulkOutcome`), never exceptions: the caller decides about retrying.
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
import weakref
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
from .refit import MappedFields, refit
from .templates import DEFAULT_PREFIX, record_index

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Refused credentials are an outage of the destination, never a verdict on the records: an expired or
# rotated API key must delay delivery, not drop all traffic.
AUTH_STATUS = frozenset({401, 403})
MAX_ID_BYTES = 512  # Elasticsearch refuses the *whole* bulk request when one _id is longer
MAX_INDEX_BYTES = 255


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
    line = c.strip_bom(line.rstrip(b"\r\n"))
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadRecord(c.unparsable_reason(exc)) from None
    try:
        pred = c.read_record(obj)
    except c.RecordError as exc:
        raise BadRecord(str(exc)) from None
    if not pred.model:
        raise BadRecord("no predwatch.model.name")
    stamp = pred.timestamp
    if not isinstance(stamp, str) or len(stamp) < 10 or stamp[4] != "-" or stamp[7] != "-":
        raise BadRecord(f"no usable @timestamp ({stamp!r})")
    return Doc(record_index(pred, stamp, prefix), doc_id(pred, stamp, line), line)


def line_id(line: bytes) -> str:
    """A deterministic id for a record that carries no ``prediction_id``: the same line, the same id."""
    return hashlib.sha1(line).hexdigest()


def record_id(prediction_id: str | None, line: bytes) -> str:
    """The document ``_id`` of a record: its ``prediction_id``, hashed when Elasticsearch would refuse it
    (over 512 bytes), or a hash of the line when it has none. Deterministic either way."""
    if not prediction_id:
        return line_id(line)
    if len(prediction_id.encode("utf-8")) > MAX_ID_BYTES:
        return "sha1-" + hashlib.sha1(prediction_id.encode("utf-8")).hexdigest()
    return prediction_id


def doc_id(record: "c.Prediction | c.Outcome", timestamp: str, line: bytes) -> str:
    """The ``_id`` of a record's document. An outcome's is its prediction and its time: a retry of the same
    outcome is a duplicate, a corrected one (a later time) is kept beside it and the join takes the latest."""
    if isinstance(record, c.Outcome):
        return "outcome-" + hashlib.sha1(f"{record.prediction_id}\n{timestamp}".encode("utf-8")).hexdigest()
    if isinstance(record, c.ProfileRecord):
        return record.prediction_id  # profile-<process>-<interval start>-<part>
    return record_id(record.prediction_id, line)


def refusal(doc: Doc) -> str | None:
    """Why Elasticsearch would refuse this document before reading it (and the rest of its request)."""
    if len(doc.id.encode("utf-8")) > MAX_ID_BYTES:
        return f"_id of {len(doc.id.encode('utf-8')):,} bytes exceeds Elasticsearch's {MAX_ID_BYTES}-byte limit"
    if len(doc.index.encode("utf-8")) > MAX_INDEX_BYTES:
        return f"index name of {len(doc.index.encode('utf-8'))} bytes exceeds the {MAX_INDEX_BYTES}-byte limit"
    return None


@dataclass
class BulkOutcome:
    """What happened to each document of one bulk request."""

    created: int = 0
    duplicates: int = 0  # 409: already indexed by an earlier attempt
    retry: list[Doc] = field(default_factory=list)
    rejected: list[tuple[Doc, str]] = field(default_factory=list)
    error: str | None = None  # the whole request failed (connection, timeout, 5xx, refused credentials)
    auth_refused: bool = False  # 401/403: the records wait until the credentials work again
    refitted: int = 0  # indexed with what the mapping refused kept aside, unindexed (logging_adapter.refit)

    def add(self, other: "BulkOutcome") -> "BulkOutcome":
        self.created += other.created
        self.duplicates += other.duplicates
        self.retry += other.retry
        self.rejected += other.rejected
        self.error = self.error or other.error
        self.auth_refused |= other.auth_refused
        self.refitted += other.refitted
        return self

    def account(self, stats: Counter[str], dead_letters: "DeadLetters", delivered_as: str = "sent") -> None:
        """Add this outcome to a sender's counters; rejected documents go to its dead letters."""
        stats[delivered_as] += self.created
        stats["duplicates"] += self.duplicates
        if self.refitted:
            stats["refitted"] += self.refitted
        for doc, reason in self.rejected:
            stats["rejected"] += 1
            dead_letters.add(doc.source, reason, source=doc.index)


def send_bulk(client: Elasticsearch, docs: list[Doc], *, op: str = "create", refresh: bool = False) -> BulkOutcome:
    """One bulk request. Connection problems, retryable statuses and refused credentials come back in
    ``retry``; documents Elasticsearch refuses come back in ``rejected`` with the reason.

    ``op="create"`` (records: a retry of an indexed one answers 409) or ``"index"`` (results: overwrite).
    Documents that would make Elasticsearch refuse the whole request are rejected before sending; when
    a whole request is refused anyway (400, 413), it is split in halves until only the offending
    documents are left, so one bad document never takes its neighbours with it.
    """
    out = BulkOutcome()
    sendable = []
    for doc in docs:
        why = refusal(doc)
        if why is None:
            sendable.append(doc)
        else:
            out.rejected.append((doc, why))
    if not sendable:
        return out
    return out.add(_send(client, sendable, op, refresh))


def _send(client: Elasticsearch, docs: list[Doc], op: str, refresh: bool) -> BulkOutcome:
    out = BulkOutcome()
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
        status = exc.meta.status
        out.error = f"HTTP {status}: {exc.message}"
        if status in AUTH_STATUS:
            out.error = f"HTTP {status}: Elasticsearch refused the credentials ({exc.message})"
            out.auth_refused, out.retry = True, list(docs)
        elif status in RETRYABLE_STATUS:
            out.retry = list(docs)
        elif len(docs) > 1:  # the request as a whole was refused: find the documents that cause it
            half = len(docs) // 2
            return _send(client, docs[:half], op, refresh).add(_send(client, docs[half:], op, refresh))
        else:
            out.rejected = [(docs[0], out.error)]
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
        elif status in RETRYABLE_STATUS or status in AUTH_STATUS:
            out.retry.append(doc)
            out.auth_refused |= status in AUTH_STATUS
            if status in AUTH_STATUS and out.error is None:
                out.error = f"HTTP {status}: Elasticsearch refused the credentials for {doc.index}"
        else:
            err = result.get("error") or {}
            reason = f"{err.get('type', status)}: {err.get('reason', '')}" if isinstance(err, dict) else str(err)
            out.rejected.append((doc, reason))
    return _refitted(client, out, op, refresh) if out.rejected else out


def _refitted(client: Elasticsearch, out: BulkOutcome, op: str, refresh: bool) -> BulkOutcome:
    """Send again, once, the refused documents whose refusal was the mapping's (a value of another type, the
    field limit), with the refused values kept aside unindexed (:mod:`logging_adapter.refit`)."""
    mapped = _mapped_fields(client)
    again, still = [], []
    for doc, reason in out.rejected:
        try:
            source = refit(doc.source, reason, lambda: mapped.of(doc.index))  # noqa: B023 - called at once
        except Exception:  # noqa: BLE001 - the mapping could not be read: the refusal stands
            source = None
        (again.append(Doc(doc.index, doc.id, source)) if source else still.append((doc, reason)))
    if not again:
        return out
    out.rejected = still
    resent = _send(client, again, op, refresh)
    resent.refitted = resent.created
    return out.add(resent)


_MAPPED: "weakref.WeakKeyDictionary[Elasticsearch, MappedFields]" = weakref.WeakKeyDictionary()


def _mapped_fields(client: Elasticsearch) -> MappedFields:
    found = _MAPPED.get(client)
    if found is None:
        found = _MAPPED[client] = MappedFields(client)
    return found


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


class Throttled:
    """Says a thing at most once per ``every`` seconds (an outage is loud, not a flood)."""

    def __init__(self, say: Callable[[str], None], every: float = 60.0) -> None:
        self.say, self.every, self._last = say, every, float("-inf")

    def __call__(self, message: str, force: bool = False) -> bool:
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return False
        self._last = now
        try:
            self.say(message)
        except Exception:  # noqa: BLE001 - saying it must never break delivery
            pass
        return True


def outage_message(outcome: BulkOutcome, where: str) -> str:
    """One line for the operator: what is wrong with the destination, and that nothing is lost."""
    if outcome.auth_refused:
        return (f"Elasticsearch refuses the credentials ({outcome.error}): records are kept {where} and "
                "delivered once the API key or password works again")
    return f"Elasticsearch unavailable ({outcome.error or 'items to retry'}): records are kept {where}"


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


def private_dir(path: str | Path) -> Path:
    """``path`` as a directory; the ones created here (parents too) are 0700 whatever the umask,
    because what predwatch keeps on disk (spooled records, dead letters) holds raw features."""
    path = Path(path)
    missing = []
    walk = path
    while not walk.exists():
        missing.append(walk)
        walk = walk.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            pass  # another process made it at the same moment
        os.chmod(directory, 0o700)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a directory")
    return path


def open_private(path: str | Path, mode: str = "ab", buffering: int = -1):
    """Open ``path`` for writing as a 0600 file, whatever the umask (an older 0644 file is tightened)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, mode, buffering=buffering)
    except BaseException:
        os.close(fd)
        raise


class CountingReport:
    """Counts events by reason and says them at most once per ``every`` seconds, with the counts
    since the last time and in all: a flood of drops or refusals is one line a minute, never silent."""

    def __init__(self, say: Callable[[str], None], what: str, every: float = 60.0) -> None:
        self.say, self.what, self.every = say, what, every
        self.total: Counter[str] = Counter()
        self._pending: Counter[str] = Counter()
        self._last = float("-inf")
        self._lock = threading.Lock()

    def add(self, reason: str, count: int = 1, where: str = "") -> None:
        with self._lock:
            self.total[reason] += count
            self._pending[reason] += count
            if time.monotonic() - self._last >= self.every:
                self._say_pending(where)

    def flush(self, where: str = "") -> None:
        """Say what was counted since the last time (at close: nothing counted goes unsaid)."""
        with self._lock:
            if self._pending:
                self._say_pending(where)

    def _say_pending(self, where: str) -> None:
        self._last = time.monotonic()
        reasons = "; ".join(f"{n:,} {reason}" for reason, n in self._pending.most_common())
        message = (f"{self.what}: {sum(self._pending.values()):,} since the last report ({reasons}), "
                   f"{sum(self.total.values()):,} in all{where}")
        self._pending.clear()
        try:
            self.say(message)
        except Exception:  # noqa: BLE001 - saying it must never break delivery
            pass


class DeadLetters:
    """Rejected records with their reason, one JSON object per line, never retried.

    The file is capped at ``max_bytes`` like the spool: once full, the oldest entries are kept and
    the new ones are counted in ``not_kept``. Refusals are reported on ``log`` at WARNING, at most
    once a minute with their counts. A file that cannot be written never raises into the sender."""

    KEEP_BYTES = 64 * 1024  # of a huge line, enough to recognise it

    def __init__(self, path: str | Path | None, max_bytes: int = 64 * 1024**2,
                 log: logging.Logger | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.max_bytes = max_bytes
        self.counts: Counter[str] = Counter()
        self.not_kept = 0  # refused records whose dead letter could not be written (full, or no file)
        self._bytes: int | None = None
        self._lock = threading.Lock()
        say = (log or logging.getLogger("predwatch.shipper")).warning
        self.report = CountingReport(say, "predwatch: records refused and dead-lettered")

    def add(self, raw: bytes, reason: str, source: str = "") -> bool:
        """Keep one refused record with its reason; False when it could not be kept (counted)."""
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
        data = orjson.dumps(entry) + b"\n"
        with self._lock:
            why = self._write(data)
        if why is None:
            self.report.add(kind, where=f"; kept in {self.path}")
            return True
        self.not_kept += 1
        self.report.add(f"{kind}, NOT kept ({why})")
        return False

    def _write(self, data: bytes) -> str | None:
        """Append one entry; the reason it was not kept, or None."""
        if self.path is None:
            return "no dead-letter file: its directory cannot be written"
        try:
            if self._bytes is None:
                private_dir(self.path.parent)
                self._bytes = self.path.stat().st_size if self.path.exists() else 0
            if self._bytes + len(data) > self.max_bytes:
                return f"{self.path} is at its limit of {self.max_bytes:,} bytes; the oldest entries are kept"
            with open_private(self.path, "ab") as fh:
                fh.write(data)
            self._bytes += len(data)
            return None
        except OSError as exc:
            return f"{self.path} cannot be written: {exc.strerror or exc}"
