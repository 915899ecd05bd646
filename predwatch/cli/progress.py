"""Progress on long work, on stderr, only when stderr is a terminal (pipes and CI logs stay clean)."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """One status line, rewritten in place at most a few times a second: what is done, the rate, time left.

    >>> p = Progress("checking", unit="records", total=1000, stream=None)  # inert without a terminal
    >>> p.update(500); p.close()
    """

    def __init__(self, what: str, *, unit: str = "records", total: float | None = None,
                 stream: TextIO | None = sys.stderr, every: float = 0.2) -> None:
        self.what, self.unit, self.total, self.every = what, unit, total, every
        self.stream = stream if stream is not None and _is_terminal(stream) else None
        self.started = self._last = time.monotonic()
        self.done = 0.0
        self._shown = False

    @property
    def active(self) -> bool:
        return self.stream is not None

    def update(self, done: float, note: str = "") -> None:
        self.done = done
        now = time.monotonic()
        if self.stream is None or now - self._last < self.every:
            return
        self._last = now
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        parts = [f"{self.what}: {done:,.0f} {self.unit}"]
        if self.total:
            parts[0] += f" of ~{self.total:,.0f} ({min(done / self.total, 1):.0%})"
        parts.append(f"{rate:,.0f} {self.unit}/s")
        if self.total and rate > 0 and done < self.total:
            parts.append(f"~{(self.total - done) / rate:,.0f} s left")
        if note:
            parts.append(note)
        self.stream.write("\r\033[K" + ", ".join(parts))
        self.stream.flush()
        self._shown = True

    def say(self, text: str) -> None:
        """A stage of the work, shown at once (``reading train.csv ...``)."""
        if self.stream is not None:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self._shown = True

    def close(self) -> None:
        if self.stream is not None and self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
