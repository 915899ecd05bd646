"""An append-only on-disk spool of bulk documents, replayed oldest segment first.

Segments are NDJSON bulk bodies (action line, source line), so a replay sends
them as they are. A segment is deleted only after every document in it was
delivered or dead-lettered; a replay cut short resends the segment, which the
deterministic ids make harmless. Segments are 0600 files in a 0700 directory (they hold raw
features); a write the disk refuses is taken back whole, so a full disk never leaves a torn segment.

:class:`MemorySpool` stands in when no directory can be written: records then wait in memory.
"""
from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import orjson

from .bulk import Doc, open_private, private_dir

SEGMENT_BYTES = 8 * 1024 * 1024


class SpoolFull(Exception):
    """The document was not stored: the configured limit is reached (or the disk refused it)."""


class SpoolUnwritable(SpoolFull):
    """The disk refused the write (full, read-only, gone): the document was not stored."""


class Spool:
    """Thread-safe; ``append`` is called from the logging caller and the sender thread."""

    def __init__(self, directory: str | Path, max_bytes: int = 1024**3, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.dir = private_dir(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._fh = None
        self._current: Path | None = None
        self._bytes = 0
        for segment in self.segments():
            os.chmod(segment, 0o600)  # an older version wrote them 0644
            self._bytes += segment.stat().st_size

    def segments(self) -> list[Path]:
        return sorted(self.dir.glob("spool-*.ndjson"))

    def __len__(self) -> int:
        return len(self.segments())

    @property
    def bytes(self) -> int:
        return self._bytes

    def append(self, docs: list[Doc]) -> None:
        """Store documents at the end of the spool; raises :class:`SpoolFull` past ``max_bytes``
        and :class:`SpoolUnwritable` when the disk refuses (nothing of ``docs`` is then stored)."""
        data = b"".join(doc.action() + b"\n" + doc.source + b"\n" for doc in docs)
        with self._lock:
            if self._bytes + len(data) > self.max_bytes:
                raise SpoolFull(f"spool at {self._bytes:,} bytes, limit {self.max_bytes:,}")
            start = None
            try:
                if self._fh is None or self._fh.tell() >= self.segment_bytes:
                    self._open_next()
                start = self._fh.tell()
                view = memoryview(data)
                while view:
                    view = view[self._fh.write(view):]
            except OSError as exc:
                self._take_back(start)
                raise SpoolUnwritable(f"the spool directory {self.dir} cannot be written "
                                      f"({exc.strerror or exc})") from None
            self._bytes += len(data)

    def _take_back(self, start: int | None) -> None:
        """Cut a half-written append off the segment, so that it holds only whole documents."""
        if self._fh is None or start is None:
            return
        try:
            os.ftruncate(self._fh.fileno(), start)
            self._fh.seek(start)
        except OSError:
            self._fh.close()  # cannot even truncate: seal it; a torn end is skipped when read
            self._fh = None
            self._current = None

    def _open_next(self) -> None:
        self._close_current()
        existing = self.segments()
        number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 1
        current = self.dir / f"spool-{number:09d}.ndjson"
        self._fh = open_private(current, "ab", buffering=0)  # unbuffered: a refused write is known at once
        self._current = current

    def _close_current(self) -> None:
        if self._fh is not None:
            try:
                os.fsync(self._fh.fileno())
            except OSError:
                pass  # what was written stays in the page cache; nothing more can be done here
            self._fh.close()
            self._fh = None
            self._current = None

    def oldest(self) -> Path | None:
        """The oldest segment, sealed (no longer appended to) so it can be replayed."""
        with self._lock:
            segments = self.segments()
            if not segments:
                return None
            if segments[0] == self._current:
                self._close_current()
            return segments[0]

    def read(self, segment: Path) -> Iterator[Doc]:
        with segment.open("rb") as fh:
            while True:
                action = fh.readline()
                source = fh.readline()
                if not action or not source.endswith(b"\n"):
                    return  # a torn write at the very end (crash mid-append): nothing complete left
                meta = orjson.loads(action)["create"]
                yield Doc(meta["_index"], meta["_id"], source.rstrip(b"\n"))

    def remove(self, segment: Path) -> None:
        with self._lock:
            size = segment.stat().st_size if segment.exists() else 0
            segment.unlink(missing_ok=True)
            self._bytes = max(0, self._bytes - size)

    def close(self) -> None:
        with self._lock:
            self._close_current()


class MemorySpool:
    """The spool's stand-in when no spool directory can be written: records wait in memory, up to
    ``max_bytes``, and what is still here when the process ends is lost (the handler counts it)."""

    dir = None

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._segments: deque[list[Doc]] = deque()
        self._sizes: dict[int, int] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._segments)

    @property
    def bytes(self) -> int:
        return self._bytes

    def append(self, docs: list[Doc]) -> None:
        size = sum(len(doc.source) + len(doc.index) + len(doc.id) + 40 for doc in docs)
        with self._lock:
            if self._bytes + size > self.max_bytes:
                raise SpoolFull(f"in-memory spool at {self._bytes:,} bytes, limit {self.max_bytes:,}")
            segment = list(docs)
            self._segments.append(segment)
            self._sizes[id(segment)] = size
            self._bytes += size

    def oldest(self) -> list[Doc] | None:
        with self._lock:
            return self._segments[0] if self._segments else None

    def read(self, segment: list[Doc]) -> Iterator[Doc]:
        return iter(list(segment))

    def remove(self, segment: list[Doc]) -> None:
        with self._lock:
            if self._segments and self._segments[0] is segment:
                self._segments.popleft()
                self._bytes -= self._sizes.pop(id(segment), 0)

    def held(self) -> int:
        """How many documents wait here."""
        with self._lock:
            return sum(len(segment) for segment in self._segments)

    def close(self) -> None:
        pass
