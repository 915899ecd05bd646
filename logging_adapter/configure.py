"""``configure()``: the common logging setups in one call.

For anything else, use ``logging.config.dictConfig`` with
``logging_adapter.PredictionFormatter`` (and ``logging_adapter.ElasticsearchHandler``).
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path
from typing import IO

from .formatter import PAYLOAD_ATTR, PredictionFormatter
from .logger import DEFAULT_LOGGER

CONFIGURED = "_predwatch_configured"  # marks the handler configure() installed


class PredictionFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating JSONL file that a full or failing disk cannot flood or tear.

    Each record is one unbuffered write, taken back (truncated) if the disk took only part of it,
    so a full disk never leaves half a line for ``ship`` to stumble on. A prediction record that
    could not be written raises to its ``PredictionLogger``, which counts it in ``failures`` and
    says so at most once a minute; the standard handler would print a traceback per record instead.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.failures = 0  # records of other kinds (application lines) that could not be written
        self._last_report = float("-inf")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.stream is None:
                self.stream = self._open()
            if self.shouldRollover(record):
                self.doRollover()
            data = (self.format(record) + self.terminator).encode(self.encoding or "utf-8", "replace")
            self._write(data)
        except Exception:  # noqa: BLE001 - handleError decides who hears of it
            self.handleError(record)

    def _write(self, data: bytes) -> None:
        self.stream.flush()  # nothing is written through the buffer, but be sure
        fd = self.stream.fileno()
        start = os.lseek(fd, 0, os.SEEK_END)
        written = 0
        try:
            while written < len(data):
                written += os.write(fd, data[written:])
        except OSError:
            if written:
                try:
                    os.ftruncate(fd, start)  # no torn line: the whole record is refused
                except OSError:
                    pass
            raise

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        if record.__dict__.get(PAYLOAD_ATTR) is not None:
            raise  # noqa: PLE0704 - the exception being handled: PredictionLogger counts it in .failures
        self.failures += 1
        now = time.monotonic()
        if now - self._last_report >= 60.0:
            self._last_report = now
            exc = sys.exc_info()[1]
            try:
                logging.getLogger("predwatch").warning("predwatch: %d log line(s) not written to %s so far: %r",
                                                       self.failures, self.baseFilename, exc)
            except Exception:  # noqa: BLE001
                pass


def configure(
    *,
    path: str | Path | None = None,
    stream: IO[str] | None = None,
    handler: logging.Handler | None = None,
    service: str | None = None,
    logger: str = DEFAULT_LOGGER,
    max_bytes: int = 100 * 1024 * 1024,
    backup_count: int = 5,
    level: int = logging.INFO,
) -> logging.Handler:
    """Route prediction records to one destination and return its handler.

    Parameters:
        path: a JSONL file, rotated at ``max_bytes`` keeping ``backup_count`` old files
            (``predwatch ship`` and Filebeat follow the rotation).
        stream: a text stream (default ``sys.stdout`` when neither ``path`` nor ``handler`` is given).
        handler: any handler, e.g. ``ElasticsearchHandler``; it gets the formatter if it has none.
        service: ``service.name`` written on every record.
        logger: the logger the records go through; it stops propagating to the root logger,
            so prediction records do not end up in the application's own log.
    """
    if handler is None:
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            handler = PredictionFileHandler(
                path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
            )
        else:
            handler = logging.StreamHandler(stream or sys.stdout)
    if handler.formatter is None:
        handler.setFormatter(PredictionFormatter(service=service))
    target = logging.getLogger(logger)
    for old in [h for h in target.handlers if getattr(h, CONFIGURED, False) and h is not handler]:
        target.removeHandler(old)  # configure() again (a re-run notebook cell) replaces, never doubles
        old.close()
    setattr(handler, CONFIGURED, True)
    target.addHandler(handler)
    target.setLevel(level)
    target.propagate = False
    return handler
