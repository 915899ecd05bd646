"""``configure()``: the common logging setups in one call.

For anything else, use ``logging.config.dictConfig`` with
``logging_adapter.PredictionFormatter`` (and ``logging_adapter.ElasticsearchHandler``).
"""
from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import IO

from .formatter import PredictionFormatter
from .logger import DEFAULT_LOGGER

CONFIGURED = "_predwatch_configured"  # marks the handler configure() installed


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
            handler = logging.handlers.RotatingFileHandler(
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
