"""``predwatch ship``: tail JSONL prediction logs into Elasticsearch, as Filebeat would.

Read offsets are persisted per file, known by device and inode (names change on
rotation): a named file's rotated siblings (``name.1``, ``name.2``...) are read
too, oldest first, so records written just before a rotation are not missed; a
file that shrank was truncated and is read again from the start; a reused inode
is told apart by the file's first bytes. Delivery is at least once and, with the records'
deterministic ids, exactly once in effect: offsets advance only after a batch is
delivered or dead-lettered. Malformed lines go to a dead-letter file with the
reason, and the shipper carries on. SIGTERM stops it cleanly at a batch boundary.
"""
from __future__ import annotations

import glob
import logging
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from elasticsearch import Elasticsearch

from . import contract as c
from .bulk import (Backoff, BadRecord, DeadLetters, Doc, Throttled, deliver, doc_from_line, open_private,
                   outage_message, private_dir)
from .templates import DEFAULT_PREFIX

log = logging.getLogger("predwatch.ship")


@dataclass
class FileState:
    """Where reading stopped in one file, known by device and inode (names change on rotation)."""

    offset: int
    head: str  # hex of the file's first bytes: tells a reused inode from the file we read
    path: str = ""


FINGERPRINT = 64


class OffsetStore:
    """Offsets per file, written atomically (temp file + rename) after every delivered batch."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.files: dict[str, FileState] = {}
        if self.path.exists():
            try:
                for key, st in orjson.loads(self.path.read_bytes()).items():
                    self.files[key] = FileState(**st)
            except (orjson.JSONDecodeError, TypeError) as exc:
                log.warning("offset file %s unreadable (%s): starting from the beginning", self.path, exc)

    def save(self) -> None:
        private_dir(self.path.parent)
        tmp = self.path.with_suffix(".tmp")
        with open_private(tmp, "wb") as fh:
            fh.write(orjson.dumps({k: v.__dict__ for k, v in self.files.items()}))
        os.replace(tmp, self.path)


class Shipper:
    """Tails files matching ``patterns`` and ships their prediction records.

    Parameters:
        client: the Elasticsearch client.
        state_dir: holds ``offsets.json`` and ``dead-letter.jsonl``.
        prefix: index prefix, as for the handler.
    """

    def __init__(self, client: Elasticsearch, patterns: list[str], *, state_dir: str | Path,
                 prefix: str = DEFAULT_PREFIX, batch_size: int = 500, poll_interval: float = 0.5,
                 deadline: float | None = None) -> None:
        self.client = client.options(max_retries=0)
        self.patterns = patterns
        self.prefix = prefix
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.state_dir = Path(state_dir)
        self.offsets = OffsetStore(self.state_dir / "offsets.json")
        self.dead_letters = DeadLetters(self.state_dir / "dead-letter.jsonl", log=log)
        self.stats: Counter[str] = Counter()
        self.stop = threading.Event()
        self.deadline = deadline  # seconds a run may wait for an unavailable Elasticsearch (None: forever)
        self.undelivered = 0  # records that were still waiting when the deadline passed
        self._give_up_at: float | None = None
        self.incomplete: dict[str, int] = {}  # file -> bytes of a last line without its newline (yet)
        self._backoff = Backoff()
        self._say = Throttled(log.warning, every=60.0)

    # -- the loop --------------------------------------------------------------------------------
    def run(self, once: bool = False) -> Counter[str]:
        """Ship until stopped; with ``once``, ship what the files hold now and return.

        With a ``deadline``, a run gives up waiting for Elasticsearch after that many
        seconds: ``undelivered`` says how many records wait (their offsets are kept)."""
        self._give_up_at = None if self.deadline is None else time.monotonic() + self.deadline
        while not self.stop.is_set():
            progressed = self.poll()
            if once:
                break
            if not progressed:
                self.stop.wait(self.poll_interval)
        self.offsets.save()
        self.dead_letters.report.flush()
        return self.stats

    def _paths(self) -> list[Path]:
        """The files to read, oldest first: each named file, its rotated siblings, glob matches."""
        found: dict[tuple[int, int], tuple[float, Path]] = {}
        for pattern in self.patterns:
            names = glob.glob(pattern) if glob.has_magic(pattern) else [pattern, *glob.glob(glob.escape(pattern) + ".*")]
            for name in names:
                path = Path(name)
                if name.endswith((".gz", ".tmp")) or not path.is_file():
                    continue
                st = path.stat()
                found.setdefault((st.st_dev, st.st_ino), (st.st_mtime, path))
        # rotated files are older (earlier mtime); among equal times, higher rotation numbers first
        return [p for _, p in sorted(found.values(), key=lambda tp: (tp[0], -_rotation_number(tp[1])))]

    def poll(self) -> bool:
        """One pass over every file; True when anything was read."""
        progressed = False
        live: set[str] = set()
        for path in self._paths():
            if self.stop.is_set():
                return progressed  # an unfinished pass: forget nothing
            key, progressed_here = self._follow(path)
            live.add(key)
            progressed |= progressed_here
        for key in set(self.offsets.files) - live:  # rotated away for good
            del self.offsets.files[key]
        return progressed

    def _follow(self, path: Path) -> tuple[str, bool]:
        try:
            st = path.stat()
            with path.open("rb") as fh:
                head = fh.read(FINGERPRINT).hex()
        except OSError:
            return "", False
        key = f"{st.st_dev}:{st.st_ino}"
        state = self.offsets.files.get(key)
        if state is not None and not head.startswith(state.head):
            state = None  # the inode was reused by another file
        if state is None:
            state = FileState(0, head, str(path))
        elif st.st_size < state.offset:
            log.warning("%s shrank below its read offset: truncated, reading from the start", path)
            state = FileState(0, head, str(path))
        state.head, state.path = head, str(path)
        self.offsets.files[key] = state
        self.incomplete.pop(str(path), None)
        if st.st_size <= state.offset:
            return key, False
        return key, self._read(path, state)

    def _read(self, path: Path, state: FileState) -> bool:
        progressed = False
        with path.open("rb") as fh:
            fh.seek(state.offset)
            while not self.stop.is_set():
                docs, end, lines = self._batch(fh, path, state.offset)
                if not lines:
                    break
                if not self._deliver(docs):
                    return progressed  # stopped while Elasticsearch was away: offset not advanced
                state.offset = end
                self.offsets.save()
                progressed = True
        return progressed

    def _batch(self, fh, path: Path, offset: int) -> tuple[list[Doc], int, int]:
        """Up to ``batch_size`` complete lines from ``offset``; bad ones go to dead letters."""
        docs: list[Doc] = []
        lines = 0
        while len(docs) < self.batch_size:
            start = fh.tell()
            line = fh.readline(c.MAX_LINE + 1)
            if not line:
                break
            if not line.endswith(b"\n"):
                if len(line) <= c.MAX_LINE:
                    fh.seek(start)  # an incomplete last line: wait until its writer finishes it
                    self.incomplete[str(path)] = len(line)
                    break
                size = len(line) + _skip_line(fh)
                self._dead(line, c.too_long_reason(size), path, start)
                lines += 1
                continue
            lines += 1
            if not line.strip():
                continue
            try:
                docs.append(doc_from_line(line, self.prefix))
            except BadRecord as exc:
                self._dead(line, str(exc), path, start)
        return docs, fh.tell(), lines

    def _dead(self, line: bytes, reason: str, path: Path, offset: int) -> None:
        self.stats["rejected"] += 1
        self.dead_letters.add(line.rstrip(b"\n"), reason, source=f"{path}@{offset}")

    def _deliver(self, docs: list[Doc]) -> bool:
        """Deliver a batch, waiting out an unavailable Elasticsearch; False only when stopped."""

        def waiting(outcome, delay: float) -> None:
            self._say(f"{outage_message(outcome, 'in the files (offsets not advanced)')}; "
                      f"{len(outcome.retry)} records waiting, next try in {delay:.1f} s")

        pending, _ = deliver(self.client, docs, stats=self.stats, dead_letters=self.dead_letters,
                             waits=self._waits(), stop=self.stop, on_retry=waiting)
        if not pending:
            self._backoff.reset()
        elif not self.stop.is_set():  # the deadline passed: stop here, offsets kept for the next run
            self.undelivered += len(pending)
            self.stop.set()
        return not pending

    def _waits(self):
        """Backoff delays, until the run's deadline (if any) would be passed."""
        for delay in self._backoff.delays():
            if self._give_up_at is not None and time.monotonic() + delay > self._give_up_at:
                return
            yield delay

    def unmatched(self) -> list[str]:
        """The patterns that name no file (a typo, or files not written yet)."""
        return [p for p in self.patterns if not (glob.glob(p) if glob.has_magic(p) else Path(p).is_file())]


def _rotation_number(path: Path) -> int:
    """``predictions.jsonl.3`` -> 3 (RotatingFileHandler's numbering); 0 for the live file."""
    suffix = path.suffix.lstrip(".")
    return int(suffix) if suffix.isdigit() else 0


def _skip_line(fh) -> int:
    """Consume the rest of an over-long line; returns how many bytes were skipped."""
    skipped = 0
    while True:
        chunk = fh.readline(1024 * 1024)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def install_signal_handlers(shipper: Shipper) -> None:
    """SIGTERM and SIGINT stop the shipper at the next batch boundary, offsets saved."""

    def stop(signum: int, frame: Any) -> None:
        log.info("signal %d: stopping after the current batch", signum)
        shipper.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
