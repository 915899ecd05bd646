"""``predwatch ship``: tail JSONL prediction logs into Elasticsearch, as Filebeat would.

Each file is followed by its identity, not its name: device and inode while it exists, plus a
fingerprint of its content (a hash of its first 4 KiB, and of the bytes just before the read
offset) that tells two files apart even when their first records are alike, and that finds the
file again after logrotate copied or compressed it. A named file's rotated siblings are read too
(``name.1``, ``name-20261206``, ``name.1.gz``...), oldest first, compressed ones (gzip) included,
so lines written just before a rotation are read from wherever they went: the renamed file, the
copy ``copytruncate`` made, or the ``.gz`` that ``compress`` left. A file truncated or replaced
is read from its start. Lines that became unreachable (a file deleted, or compressed in a format
other than gzip, before it was read to its end) are reported with how many bytes were lost.

Delivery is at least once and, with the records' deterministic ids, exactly once in effect:
offsets advance only after a batch is delivered or dead-lettered. Malformed lines go to a
dead-letter file with the reason, and the shipper carries on. SIGTERM stops it cleanly at a batch
boundary.
"""
from __future__ import annotations

import glob
import hashlib
import logging
import os
import signal
import threading
import time
import zlib
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

HEAD_BYTES = 4096  # fingerprinted start of a file: records of one batch job share far more than 64 bytes
TAIL_BYTES = 1024  # fingerprinted bytes before the offset: a file truncated and rewritten differs there
FORGET_AFTER = 60.0  # seconds a file no longer found is remembered, in case a copy of it turns up
UNREADABLE = (".bz2", ".xz", ".zst", ".lz4", ".Z", ".lzma")  # logrotate's other compressors


@dataclass
class FileState:
    """Where reading stopped in one file, and what tells that file from any other."""

    offset: int  # bytes read and delivered (of the decompressed content, for a .gz)
    head: str = ""  # sha1 of the first head_len bytes
    path: str = ""
    head_len: int = 0
    tail: str = ""  # sha1 of the tail_len bytes that end at offset
    tail_len: int = 0
    size: int = 0  # the file's size when last seen (compressed size, for a .gz)
    gone_since: float | None = None  # when no file held it any more (a copy may still turn up)

    @classmethod
    def load(cls, raw: dict[str, Any]) -> "FileState":
        state = cls(**raw)
        if not state.head_len and state.head:  # an older offsets file: the first 64 bytes, in hex
            first = bytes.fromhex(state.head)
            state.head, state.head_len = _sha1(first), len(first)
        return state


class InProgress(Exception):
    """A copy (or compressed copy) of a known file that logrotate is still writing."""


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class OffsetStore:
    """Offsets per file, written atomically (temp file + rename, 0600) after every delivered batch."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.files: dict[str, FileState] = {}
        self._say = Throttled(log.warning, every=60.0)
        if self.path.exists():
            try:
                for key, st in orjson.loads(self.path.read_bytes()).items():
                    self.files[key] = FileState.load(st)
            except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
                log.warning("offset file %s unreadable (%s): starting from the beginning", self.path, exc)

    def save(self) -> None:
        """Write the offsets; a disk that refuses is said once a minute, never fatal: the offsets stay
        in memory, and a restart before they are written re-sends records, which their ids make harmless."""
        tmp = self.path.with_suffix(".tmp")
        try:
            private_dir(self.path.parent)
            with open_private(tmp, "wb") as fh:
                fh.write(orjson.dumps({k: v.__dict__ for k, v in self.files.items()}))
            os.replace(tmp, self.path)
        except OSError as exc:
            self._say(f"offsets not saved to {self.path} ({exc.strerror or exc}): kept in memory; records read "
                      "since the last save are sent again after a restart (their ids make that harmless)")


class GzipLines:
    """A gzip file read as its decompressed bytes (``readline``, ``read``, ``tell``, ``seek``).

    A stream that ends early (logrotate still compressing) just ends: what is complete is read,
    the rest on a later pass. Seeking backwards within the current buffer is cheap, further back
    decompresses again from the start."""

    CHUNK = 256 * 1024

    def __init__(self, path: str | Path) -> None:
        self._raw = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._rewind()

    def _rewind(self) -> None:
        self._raw.seek(0)
        self._z = zlib.decompressobj(31)
        self._buf = b""
        self._base = 0  # decompressed position of _buf[0]
        self._i = 0  # cursor in _buf
        self._ended = False

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "GzipLines":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _fill(self) -> bool:
        """Decompress more onto the buffer; False at the end of what the file holds now."""
        if self._i > 2 * self.CHUNK:  # drop what was read, keeping some behind the cursor for the tail
            drop = self._i - self.CHUNK
            self._base += drop
            self._buf = self._buf[drop:]
            self._i -= drop
        while not self._ended:
            try:
                if self._z.eof:  # another gzip member may follow
                    rest = self._z.unused_data
                    self._z = zlib.decompressobj(31)
                    data = self._z.decompress(rest) if rest else b""
                    if not rest:
                        chunk = self._raw.read(self.CHUNK)
                        if not chunk:
                            self._ended = True
                            return False
                        data = self._z.decompress(chunk)
                else:
                    chunk = self._raw.read(self.CHUNK)
                    if not chunk:
                        self._ended = True
                        return False
                    data = self._z.decompress(chunk)
            except zlib.error as exc:
                log.warning("%s: not readable as gzip past byte %d (%s)", self._raw.name, self.tell(), exc)
                self._ended = True
                return False
            if data:
                self._buf += data
                return True
        return False

    def tell(self) -> int:
        return self._base + self._i

    def seek(self, pos: int) -> int:
        if pos < self._base:
            self._rewind()
        while pos > self._base + len(self._buf) and self._fill():
            pass
        self._i = max(0, min(pos - self._base, len(self._buf)))
        return self.tell()

    def read(self, size: int) -> bytes:
        while len(self._buf) - self._i < size and self._fill():
            pass
        out = self._buf[self._i:self._i + size]
        self._i += len(out)
        return out

    def readline(self, limit: int) -> bytes:
        while True:
            end = self._buf.find(b"\n", self._i, self._i + limit)
            if end >= 0:
                size = end + 1 - self._i
                break
            if len(self._buf) - self._i >= limit:
                size = limit
                break
            if not self._fill():
                size = len(self._buf) - self._i
                break
        out = self._buf[self._i:self._i + size]
        self._i += size
        return out


def _open(path: Path):
    return GzipLines(path) if path.name.endswith(".gz") else path.open("rb")


def _bytes_at(fh, start: int, size: int) -> bytes:
    if isinstance(fh, GzipLines):
        fh.seek(start)
        return fh.read(size)
    return os.pread(fh.fileno(), size, start)


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
        self._unreadable_said: set[str] = set()

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
        """The files to read: each named (or globbed) file and its rotated siblings, plain ones oldest
        first, then gzip ones oldest first (a copy of a file being read is then known for one)."""
        names: set[str] = set()
        for pattern in self.patterns:
            for name in (glob.glob(pattern) if glob.has_magic(pattern) else [pattern]):
                names.add(name)
                names.update(glob.glob(glob.escape(name) + "[-._]*"))
        found: dict[tuple[int, int], tuple[bool, float, int, Path]] = {}
        for name in names:
            path = Path(name)
            if name.endswith(".tmp"):
                continue
            if name.endswith(UNREADABLE):
                if name not in self._unreadable_said:
                    self._unreadable_said.add(name)
                    log.warning("%s: compressed in a format predwatch ship cannot read (use logrotate's default "
                                "gzip, or delaycompress): lines not read before it was compressed are lost", name)
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            if not path.is_file():
                continue
            found.setdefault((st.st_dev, st.st_ino),
                             (name.endswith(".gz"), st.st_mtime, -_rotation_number(path), path))
        return [entry[3] for entry in sorted(found.values())]

    def poll(self) -> bool:
        """One pass over every file; True when anything was read."""
        progressed = False
        seen: set[str] = set()
        before = {key: (state.path, state.gone_since) for key, state in self.offsets.files.items()}
        for path in self._paths():
            if self.stop.is_set():
                return progressed  # an unfinished pass: forget nothing
            key, progressed_here = self._follow(path)
            if key:
                seen.add(key)
            progressed |= progressed_here
        self._forget_gone(seen)
        if before != {key: (state.path, state.gone_since) for key, state in self.offsets.files.items()}:
            self.offsets.save()
        return progressed

    def _forget_gone(self, seen: set[str]) -> None:
        """Files no longer found are kept a while (a copy may turn up), then forgotten, loudly if unread."""
        now = time.time()
        for key, state in list(self.offsets.files.items()):
            if key in seen:
                continue
            if state.gone_since is None:
                state.gone_since = now
            elif now - state.gone_since >= FORGET_AFTER:
                del self.offsets.files[key]
                unread = state.size - state.offset if not state.path.endswith(".gz") else 0
                continued = any(other.head == state.head and other.offset >= state.size
                                for other in self.offsets.files.values())  # a copy of it was read
                if continued:
                    continue
                if unread > 0:
                    self.stats["unreachable_bytes"] += unread
                    log.warning("%s: %s byte(s) of lines were never read: the file was deleted (or compressed in "
                                "a format predwatch ship cannot read) before it was shipped; those records are lost",
                                state.path, f"{unread:,}")
                elif state.path in self._named():
                    log.warning("%s (read up to byte %s) was rotated away and not found again (deleted at once, or "
                                "compressed in a format predwatch ship cannot read): lines written to it after the "
                                "last pass may be lost; keep at least one rotated file (rotate 1 or more)",
                                state.path, f"{state.offset:,}")

    def _named(self) -> set[str]:
        """The live files: the names given, and what the globs match now (not their rotated siblings)."""
        return {name for pattern in self.patterns
                for name in (glob.glob(pattern) if glob.has_magic(pattern) else [pattern])}

    def _follow(self, path: Path) -> tuple[str, bool]:
        try:
            fh = _open(path)
        except OSError:
            return "", False
        with fh:
            st = os.fstat(fh.fileno())  # of what is open: the name may have moved on since it was listed
            key = f"{st.st_dev}:{st.st_ino}"
            state = self.offsets.files.get(key)
            compressed = isinstance(fh, GzipLines)
            if state is not None and compressed and state.gone_since is None and state.size == st.st_size:
                return key, False  # a compressed file does not change once written
            if state is not None and not state.offset:
                state = None  # nothing read from it, so nothing known: its inode may be another file's now
            elif state is not None and not self._same(state, fh, st.st_size, compressed):
                if not compressed:
                    log.warning("%s was truncated or replaced: reading it from the start", path)
                self.offsets.files[f"{key}@{state.offset}:{state.head[:12]}"] = state  # a copy may turn up
                state.gone_since = state.gone_since or time.time()
                state = None
            if state is None:
                try:
                    state = self._known_copy(path, key, fh, st.st_size, compressed) or FileState(0)
                except InProgress:
                    return "", False  # read on a later pass, once it holds what was already read
            state.path, state.size, state.gone_since = str(path), st.st_size, None
            self.offsets.files[key] = state
            self.incomplete.pop(str(path), None)
            if not compressed and st.st_size <= state.offset:
                return key, False
            return key, self._read(fh, path, state)

    def _same(self, state: FileState, fh, size: int, compressed: bool) -> bool:
        """Whether the open file is the one ``state`` was read from (up to its offset)."""
        if not compressed and size < max(state.offset, state.head_len):
            return False
        if state.head_len and _sha1(_bytes_at(fh, 0, state.head_len)) != state.head:
            return False
        if state.tail_len:
            tail = _bytes_at(fh, state.offset - state.tail_len, state.tail_len)
            if len(tail) != state.tail_len or _sha1(tail) != state.tail:
                return False
        elif compressed and state.offset and len(_bytes_at(fh, state.offset - 1, 1)) != 1:
            return False
        return True

    def _known_copy(self, path: Path, key: str, fh, size: int, compressed: bool) -> FileState | None:
        """A file seen for the first time may hold what another one held (logrotate renamed, copied or
        compressed it): continue from the furthest offset of a state whose content it starts with.
        Raises :class:`InProgress` for a copy still being written that does not reach that offset yet."""
        best_key, best, in_progress = None, None, False
        for other_key, other in self.offsets.files.items():
            if other_key == key or not other.head_len or (best is not None and other.offset <= best.offset):
                continue
            head = _bytes_at(fh, 0, other.head_len)
            if len(head) != other.head_len or _sha1(head) != other.head:
                continue
            if other.offset and len(_bytes_at(fh, other.offset - 1, 1)) != 1:
                in_progress = True  # starts like it, but is shorter: logrotate is still copying or compressing
            elif self._same(other, fh, size, compressed):
                best_key, best = other_key, other
        if best is None:
            if in_progress:
                raise InProgress(path)
            return None
        copy = FileState(**best.__dict__)
        if best.gone_since is not None:  # its file is gone: this one takes over
            del self.offsets.files[best_key]
        log.info("%s continues %s from byte %s", path, best.path, f"{best.offset:,}")
        return copy

    def _read(self, fh, path: Path, state: FileState) -> bool:
        progressed = False
        fh.seek(state.offset)
        compressed = isinstance(fh, GzipLines)
        while not self.stop.is_set():
            docs, bad, end, lines, raw = self._batch(fh, path, state.offset)
            if not lines:
                break
            marks = self._marks(fh, state, end, raw)
            if not compressed and not self._same(state, fh, os.fstat(fh.fileno()).st_size, False):
                return progressed  # truncated while this batch was read (copytruncate): the next pass sees it
            for line, reason, at in bad:
                self._dead(line, reason, path, at)
            if not self._deliver(docs):
                return progressed  # stopped while Elasticsearch was away: offset not advanced
            state.offset = end
            state.head, state.head_len, state.tail, state.tail_len = marks
            self.offsets.save()
            progressed = True
            fh.seek(end)
        return progressed

    @staticmethod
    def _marks(fh, state: FileState, end: int, raw: bytes | None) -> tuple[str, int, str, int]:
        """The fingerprint once a batch read ``raw`` (from ``state.offset`` to ``end``): a hash of the file's
        start and of the bytes before ``end``, taken from what was read wherever it covers them. (Read
        again later, a file copytruncate emptied in between would give the new content's.) Whatever
        is read again here is checked by the caller's ``_same`` afterwards."""
        if state.head_len >= HEAD_BYTES:
            head, head_len = state.head, state.head_len
        else:
            start = raw if raw is not None and state.offset == 0 else _bytes_at(fh, 0, HEAD_BYTES)
            head_len = min(HEAD_BYTES, len(start))
            head = _sha1(start[:head_len])
        tail_len = min(TAIL_BYTES, end)
        if raw is not None and len(raw) >= tail_len:
            tail = raw[len(raw) - tail_len:]
        else:
            tail = _bytes_at(fh, end - tail_len, tail_len)
        return head, head_len, _sha1(tail) if tail_len else "", tail_len

    def _batch(self, fh, path: Path, offset: int) -> tuple[list[Doc], list[tuple[bytes, str, int]], int, int,
                                                           bytes | None]:
        """Up to ``batch_size`` complete lines from ``offset``: the documents, the bad lines (with their
        reason and offset, dead-lettered by the caller), where the batch ends, how many lines it read,
        and the bytes it read (None when an over-long line was skipped unread)."""
        docs: list[Doc] = []
        bad: list[tuple[bytes, str, int]] = []
        read: list[bytes] | None = []
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
                bad.append((line, c.too_long_reason(size), start))
                read = None
                lines += 1
                continue
            lines += 1
            if read is not None:
                read.append(line)
            if not line.strip():
                continue
            try:
                docs.append(doc_from_line(line, self.prefix))
            except BadRecord as exc:
                bad.append((line, str(exc), start))
        return docs, bad, fh.tell(), lines, None if read is None else b"".join(read)

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
