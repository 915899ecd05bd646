"""``ElasticsearchHandler``: ship prediction records from inside the service, never stalling it.

The caller's thread only formats the record and puts it on a bounded queue. A
background thread sends bulk ``create`` requests with each record's deterministic
id; on connection errors, timeouts, 429 and 5xx it retries with backoff and then
spools to disk. The spool is for outages: while Elasticsearch is away, records go
to it; once it answers, new records go straight to it again and the backlog is
replayed in between, oldest first (ids and timestamps make order irrelevant).
When the queue is full while Elasticsearch takes records (a service logging faster
than the cluster indexes), the caller waits for room, at most ``QUEUE_WAIT`` seconds:
that paces the service to the cluster instead of streaming it through the disk.
While Elasticsearch is away, or a request hangs, callers spool without waiting.
At interpreter exit it flushes with a deadline and spools the rest; the next
start replays it.

It ships prediction records only (records made by ``PredictionLogger``): never
its own log lines or the Elasticsearch client's (which would loop forever).
"""
from __future__ import annotations

import atexit
import fcntl
import logging
import os
import queue
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from . import contract as c
from .bulk import (Backoff, CountingReport, DeadLetters, Doc, Throttled, deliver, doc_id, open_private,
                   outage_message, private_dir, send_bulk)
from .elastic import EsSettings, make_client
from .formatter import PAYLOAD_ATTR, PredictionFormatter
from .spool import MemorySpool, Spool, SpoolFull
from .templates import DEFAULT_PREFIX, record_index

report = logging.getLogger("predwatch.shipper")
NEVER_SHIPPED = ("elastic_transport", "elasticsearch", "urllib3", "predwatch.shipper")
SPOOL_ENV = "PREDWATCH_SPOOL_DIR"
INLINE_ATTEMPTS = 3
QUEUE_WAIT = 0.5  # the longest a caller waits for room in a full queue while Elasticsearch takes records
HUNG = 5.0  # a bulk request this old hangs: callers spool without waiting (healthy ones take far less)
MEMORY_SPOOL_BYTES = 64 * 1024**2  # the in-memory stand-in, when no spool directory can be written


def claim_spool_dir(base: str | Path) -> tuple[Path, Any]:
    """A spool directory no other live process uses: ``base/slot-N``, held by an exclusive lock.

    A slot left by a process that died is claimed by the next one, which replays it; the
    spools of every other slot whose owner is gone are adopted too (after scaling from
    two workers to one, the second slot's records must still be delivered).
    """
    base = private_dir(base)
    for n in range(1024):
        slot = private_dir(base / f"slot-{n}")
        os.chmod(slot, 0o700)  # its own: an older version made it 0755
        lock = _try_lock(slot)
        if lock is not None:
            adopt_orphans(base, slot)
            return slot, lock
    raise RuntimeError(f"no free spool slot under {base}")


def _try_lock(slot: Path) -> Any:
    lock = open_private(slot / ".lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return lock
    except OSError:
        lock.close()
        return None


def adopt_orphans(base: Path, own: Path) -> int:
    """Move the spool segments of every unlocked (ownerless) slot into ``own``, after its own; returns how many."""
    moved = 0
    for slot in sorted(base.glob("slot-*")):
        if slot == own or not slot.is_dir() or not any(slot.glob("spool-*.ndjson")):
            continue
        lock = _try_lock(slot)
        if lock is None:
            continue  # a live process owns it
        try:
            for segment in sorted(slot.glob("spool-*.ndjson")):
                mine = sorted(own.glob("spool-*.ndjson"))
                number = int(mine[-1].stem.split("-")[1]) + 1 if mine else 1
                os.replace(segment, own / f"spool-{number:09d}.ndjson")
                moved += 1
        finally:
            lock.close()
    if moved:
        report.warning("predwatch shipper: adopted %d spool segment(s) of stopped processes into %s", moved, own)
    return moved


class ElasticsearchHandler(logging.Handler):
    """A ``logging.Handler`` delivering prediction records to daily indices, without loss.

    Parameters:
        client: an ``Elasticsearch`` client; default one from ``settings`` / ``PREDWATCH_ES_*``.
        prefix: index prefix (records go to ``<prefix>-predictions-<model>.YYYY.MM.DD``).
        spool_dir: where undeliverable records wait; default ``$PREDWATCH_SPOOL_DIR`` or
            ``~/.cache/predwatch/spool``. Each process claims its own slot below it.
        queue_size: records held in memory before spilling to disk.
        max_spool_bytes: the disk limit; beyond it records are dropped, counted and reported.
        exit_timeout: how long interpreter exit may spend flushing before spooling the rest.
    """

    def __init__(
        self,
        client: Elasticsearch | None = None,
        *,
        settings: EsSettings | None = None,
        prefix: str = DEFAULT_PREFIX,
        spool_dir: str | Path | None = None,
        service: str | None = None,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        request_timeout: float = 10.0,
        max_spool_bytes: int = 1024**3,
        exit_timeout: float = 5.0,
        level: int = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        self.setFormatter(PredictionFormatter(service=service))
        client = client or make_client(settings)
        self.client = client.options(max_retries=0, request_timeout=request_timeout)  # we retry, with backoff
        self.prefix = prefix
        base = spool_dir or os.environ.get(SPOOL_ENV) or Path.home() / ".cache" / "predwatch" / "spool"
        self.spool_dir: Path | None = None
        self._slot_lock = None
        self.spool: Spool | MemorySpool
        try:
            self.spool_dir, self._slot_lock = claim_spool_dir(base)
            self.spool = Spool(self.spool_dir, max_bytes=max_spool_bytes)
        except (OSError, RuntimeError) as exc:  # a service that cannot write its home must still start
            if self._slot_lock is not None:
                self._slot_lock.close()
            self.spool_dir, self._slot_lock = None, None
            self.spool = MemorySpool(min(max_spool_bytes, MEMORY_SPOOL_BYTES))
            report.warning("predwatch shipper: the spool directory %s cannot be used (%s): records wait in memory "
                           "only (up to %s bytes) while Elasticsearch is unavailable, and are lost if the process "
                           "ends first", base, exc, f"{self.spool.max_bytes:,}")
        self.dead_letters = DeadLetters(self.spool_dir / "dead-letter.jsonl" if self.spool_dir else None,
                                        log=report)
        self.drops = CountingReport(report.error, "predwatch shipper: DROPPED prediction records, kept nowhere")
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.exit_timeout = exit_timeout
        self.stats: Counter[str] = Counter()
        self._queue: queue.Queue[Doc] = queue.Queue(queue_size)
        self._inflight: list[Doc] = []
        self._backoff = Backoff()
        self._next_probe = 0.0
        self._sending_since: float | None = None  # when the request in flight started
        self._replaying: tuple[Any, list[Doc], int] | None = None  # segment, its documents, how many sent
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._closed = False
        self._say = Throttled(report.error, every=60.0)
        self._thread = threading.Thread(target=self._run, name="predwatch-es-shipper", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- the caller's side: format, enqueue, never raise, wait at most QUEUE_WAIT ----------------
    def handle(self, record: logging.LogRecord) -> bool:
        """As ``logging.Handler.handle`` without the handler lock: ``emit`` is thread-safe, and one
        caller waiting for queue room must not hold up the others behind a lock."""
        result = self.filter(record)
        if isinstance(result, logging.LogRecord):
            record = result
        if result:
            self.emit(record)
        return bool(result)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            payload = record.__dict__.get(PAYLOAD_ATTR)
            if payload is None or record.name.startswith(NEVER_SHIPPED) or threading.current_thread() is self._thread:
                self.stats["ignored"] += 1
                return
            try:  # the contract, checked where records enter: a poison pill is dead-lettered, never shipped
                pred = c.read_record({c.NAMESPACE: payload}, flat=False)
            except c.RecordError as exc:
                self._reject(record, str(exc))
                return
            line = self.format(record).encode("utf-8", "replace")
            day = time.strftime("%Y-%m-%d", time.gmtime(record.created))
            doc = Doc(record_index(pred, day, self.prefix),
                      doc_id(pred, c.utc_iso(record.created), line, shadow=payload.get("shadow") is True), line)
            self._idle.clear()
            try:
                self._queue.put_nowait(doc)
            except queue.Full:
                self._when_full(doc)
        except Exception as exc:  # noqa: BLE001 - never into the model service
            self.stats["errors"] += 1
            self._drop(1, f"could not be queued ({type(exc).__name__})")
            self._alarm(f"could not queue a prediction record: {exc!r}")

    def _when_full(self, doc: Doc) -> None:
        """The queue is full: wait for room while Elasticsearch takes records, else spool."""
        now = time.monotonic()
        sending_since = self._sending_since
        if not self._away(now) and (sending_since is None or now - sending_since < HUNG):
            self.stats["paced"] += 1
            try:
                self._queue.put(doc, timeout=QUEUE_WAIT)
                return
            except queue.Full:
                pass
        self._to_spool([doc])

    def _away(self, now: float) -> bool:
        """Elasticsearch is known to be unavailable (a backlog waits for its next probe)."""
        return bool(len(self.spool)) and now < self._next_probe

    def _reject(self, record: logging.LogRecord, reason: str) -> None:
        self.stats["rejected"] += 1
        try:
            line = self.format(record).encode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - too broken to format: keep what can be shown
            line = repr(record.__dict__.get(PAYLOAD_ATTR))[:DeadLetters.KEEP_BYTES].encode("utf-8", "replace")
        self.dead_letters.add(line, reason, source="handler")

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self.stats["errors"] += 1

    # -- the background thread -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - the shipper thread must survive anything
                self.stats["errors"] += 1
                self._alarm(f"shipper error: {exc!r}")
                self._stop.wait(1.0)
        self._final_flush()

    def _step(self) -> None:
        batch = self._take(self.flush_interval)
        if batch:
            if self._away(time.monotonic()):
                self._to_spool(batch)  # no use knocking before the next probe
            else:
                self._deliver(batch)
        if len(self.spool) and time.monotonic() >= self._next_probe and self._has_room():
            self._replay_some()  # between new batches: the backlog drains while new records go straight
        elif not batch:
            if len(self.spool):
                self._stop.wait(min(0.2, max(0.0, self._next_probe - time.monotonic())))
            elif self._queue.empty():
                self._idle.set()

    def _has_room(self) -> bool:
        """New records come first: the backlog is replayed while the queue is at most half full."""
        return self._queue.qsize() <= self._queue.maxsize // 2

    def _take(self, timeout: float) -> list[Doc]:
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _deliver(self, batch: list[Doc], attempts: int = INLINE_ATTEMPTS) -> bool:
        self._inflight = batch
        self._sending_since = time.monotonic()
        try:
            pending, outcome = deliver(self.client, batch, stats=self.stats, dead_letters=self.dead_letters,
                                       waits=[0.2 * 2**i for i in range(attempts - 1)], stop=self._stop)
            if not pending:
                self._backoff.reset()
                return True
            kept = self._to_spool(pending)
            self._next_probe = time.monotonic() + self._backoff.next_delay()
            if kept:
                self._alarm(outage_message(outcome, self._where()))
            else:
                self._alarm(f"Elasticsearch unavailable ({outcome.error or 'items to retry'}) and the records "
                            "could not be kept (see DROPPED)")
            return False
        finally:
            self._inflight = []
            self._sending_since = None

    def _replay_some(self) -> None:
        """Send the next batch of the oldest spooled segment; the segment goes once all of it is sent."""
        if self._replaying is None:
            segment = self.spool.oldest()
            if segment is None:
                return
            self._replaying = (segment, list(self.spool.read(segment)), 0)
        segment, docs, sent = self._replaying
        chunk = docs[sent:sent + self.batch_size]
        if chunk:
            self._sending_since = time.monotonic()
            try:
                outcome = send_bulk(self.client, chunk)
            finally:
                self._sending_since = None
            outcome.account(self.stats, self.dead_letters, "replayed")
            if outcome.retry:  # still down (or the credentials still refused): keep the segment, try later
                self._next_probe = time.monotonic() + self._backoff.next_delay()
                self._alarm(outage_message(outcome, self._where()))
                return
            self._backoff.reset()
            self._next_probe = 0.0
        if sent + len(chunk) < len(docs):
            self._replaying = (segment, docs, sent + len(chunk))
            return
        self.spool.remove(segment)
        self._replaying = None

    def _to_spool(self, docs: list[Doc]) -> bool:
        """Keep documents for later; False when they could not be kept (counted as dropped, with why)."""
        if not docs:
            return True
        try:
            self.spool.append(docs)
        except SpoolFull as exc:
            self._drop(len(docs), str(exc))
            return False
        self.stats["spooled"] += len(docs)
        return True

    def _drop(self, count: int, reason: str) -> None:
        self.stats["dropped"] += count
        self.drops.add(reason, count)

    @property
    def drop_reasons(self) -> Counter[str]:
        """Records kept nowhere, by reason (their sum is ``stats["dropped"]``)."""
        return self.drops.total

    def _where(self) -> str:
        if self.spool_dir is None:
            return "in memory (no spool directory can be written) until the process ends"
        return f"in the spool {self.spool_dir}"

    def _final_flush(self) -> None:
        deadline = time.monotonic() + self.exit_timeout * 0.8
        while not self._queue.empty() and time.monotonic() < deadline:
            batch = self._take(0)
            if self._away(time.monotonic()) or not self._deliver(batch, attempts=1):
                self._to_spool(batch + self._drain())
                return

    def _drain(self) -> list[Doc]:
        docs = []
        while True:
            try:
                docs.append(self._queue.get_nowait())
            except queue.Empty:
                return docs

    def _alarm(self, message: str) -> None:
        """On the ``predwatch.shipper`` logger, at most once a minute."""
        self._say(f"predwatch shipper: {message} (stats {dict(self.stats)})")

    # -- control -----------------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued and spooled is delivered, at most ``timeout`` seconds
        (default ``exit_timeout``: ``logging.shutdown`` calls this and must not hang)."""
        if self._closed:
            return False
        deadline = time.monotonic() + (self.exit_timeout if timeout is None else timeout)
        while True:
            if self._queue.empty() and not len(self.spool) and self._idle.is_set() and not self._inflight:
                return True
            if time.monotonic() >= deadline:
                return False
            self._idle.wait(0.05)

    def close(self) -> None:
        """Stop the thread: flush within ``exit_timeout``, spool whatever is left."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(self.exit_timeout)
        leftovers = list(self._inflight) + self._drain()  # in flight: resending is harmless (same ids)
        if leftovers:
            self._to_spool(leftovers)
        if isinstance(self.spool, MemorySpool) and self.spool.held():
            self._drop(self.spool.held(), "still waiting in memory at close (no spool directory could be written)")
        self.spool.close()
        self.drops.flush()
        self.dead_letters.report.flush()
        try:
            if self._slot_lock is not None:
                self._slot_lock.close()
        except OSError:
            pass
        atexit.unregister(self.close)
        super().close()

    def __repr__(self) -> str:
        return f"<ElasticsearchHandler prefix={self.prefix} spool={self.spool_dir} stats={dict(self.stats)}>"
