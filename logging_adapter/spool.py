"""An append-only on-disk spool of bulk documents, replayed oldest segment first.

Segments are NDJSON bulk bodies (action line, source line), so a replay sends
them as they are. A segment is deleted only after every document in it was
delivered or dead-lettered; a replay cut short resends the segment, which the
deterministic ids make harmless.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson

from .bulk import Doc

SEGMENT_BYTES = 8 * 1024 * 1024


class SpoolFull(Exception):
    """The configured disk limit is reached: the document was not stored."""


class Spool:
    """Thread-safe; ``append`` is called from the logging caller and the sender thread."""

    def __init__(self, directory: str | Path, max_bytes: int = 1024**3, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._fh = None
        self._current: Path | None = None
        self._bytes = sum(p.stat().st_size for p in self.segments())

    def segments(self) -> list[Path]:
        return sorted(self.dir.glob("spool-*.ndjson"))

    def __len__(self) -> int:
        return len(self.segments())

    @property
    def bytes(self) -> int:
        return self._bytes

    def append(self, docs: list[Doc]) -> None:
        """Store documents at the end of the spool; raises :class:`SpoolFull` past ``max_bytes``."""
        data = b"".join(doc.action() + b"\n" + doc.source + b"\n" for doc in docs)
        with self._lock:
            if self._bytes + len(data) > self.max_bytes:
                raise SpoolFull(f"spool at {self._bytes:,} bytes, limit {self.max_bytes:,}")
            if self._fh is None or self._fh.tell() >= self.segment_bytes:
                self._open_next()
            self._fh.write(data)
            self._fh.flush()
            self._bytes += len(data)

    def _open_next(self) -> None:
        self._close_current()
        existing = self.segments()
        number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 1
        self._current = self.dir / f"spool-{number:09d}.ndjson"
        self._fh = self._current.open("ab")

    def _close_current(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
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
