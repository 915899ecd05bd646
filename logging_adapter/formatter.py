"""ECS-shaped JSON lines for prediction records and for ordinary application logs.

``PredictionFormatter`` is a python-json-logger formatter (orjson-backed), so it
plugs into ``logging.config.dictConfig`` like any other::

    "formatters": {"ecs": {"()": "logging_adapter.PredictionFormatter", "service": "checkout-api"}}

Records made by :class:`~logging_adapter.PredictionLogger` carry their prebuilt
``predwatch`` payload and take a fast path: one timestamp, one ``orjson.dumps``.
Every other record gets the ECS basics (``log.logger``, ``log.origin``,
``error.*``) plus its ``extra`` fields.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from pythonjsonlogger.orjson import OrjsonFormatter

from . import contract as c
from .values import dumps

PAYLOAD_ATTR = "predwatch"  # LogRecord attribute holding a prediction payload
SERVICE_ATTR = "service_name"
LABELS_ATTR = "labels"

_ECS_EVENT = {"kind": "event", "dataset": c.DATASET}
_ECS_EVENTS = {c.OUTCOME_MESSAGE: {"kind": "event", "dataset": c.OUTCOME_DATASET},
               c.PROFILE_MESSAGE: {"kind": "metric", "dataset": c.PROFILE_DATASET}}


class _TimestampCache:
    """ISO timestamps with one ``strftime`` per second, not per record."""

    __slots__ = ("_second", "_prefix")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            self._second = second
        return f"{self._prefix}{int((created - second) * 1000):03d}Z"


class PredictionFormatter(OrjsonFormatter):
    """One JSON object per line in ECS style; prediction records on a fast path.

    Parameters:
        service: ``service.name`` for every record (a record's own wins).
        static_fields, rename_fields, ...: as python-json-logger's formatters, for
            ordinary application logs.
    """

    def __init__(self, *args: Any, service: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.service = service
        self._timestamp = _TimestampCache()
        self._skip_fields.add(SERVICE_ATTR)
        self._static: dict[tuple, str] = {}

    def format(self, record: logging.LogRecord) -> str:
        attrs = record.__dict__
        payload = attrs.get(PAYLOAD_ATTR)
        if payload is None:
            return super().format(record)
        service = attrs.get(SERVICE_ATTR) or self.service
        labels = attrs.get(LABELS_ATTR)
        key = (record.levelname, record.msg if isinstance(record.msg, str) else c.PREDICTION_MESSAGE, service)
        static = self._static.get(key)
        if static is None:
            static = self._static[key] = self._static_fields(*key)
        middle = f',"labels":{dumps(labels).decode()}' if labels else ""
        return f'{{"{c.TIMESTAMP}":"{self._timestamp(record.created)}"{static}{middle},"{c.NAMESPACE}":{dumps(payload).decode()}}}'

    @staticmethod
    def _static_fields(levelname: str, msg: str, service: str | None) -> str:
        """The part of a prediction document that is the same for every record: serialized once."""
        doc: dict[str, Any] = {
            c.LOG_LEVEL: levelname.lower(),
            c.MESSAGE: msg,
            c.ECS_VERSION_FIELD: c.ECS_VERSION,
        }
        if service:
            doc["service"] = {"name": service}
        doc["event"] = _ECS_EVENTS.get(msg, _ECS_EVENT)
        return "," + dumps(doc).decode()[1:-1]

    # -- ordinary application logs -------------------------------------------------
    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data[c.TIMESTAMP] = self._timestamp(record.created)
        log_data[c.LOG_LEVEL] = record.levelname.lower()
        log_data[c.MESSAGE] = record.message
        log_data[c.ECS_VERSION_FIELD] = c.ECS_VERSION
        service = getattr(record, SERVICE_ATTR, None) or self.service
        if service:
            log_data["service"] = {"name": service}
        log_data["log"] = {
            "logger": record.name,
            "origin": {"file": {"name": record.filename, "line": record.lineno}, "function": record.funcName},
        }
        log_data["process"] = {"pid": record.process, "thread": {"id": record.thread, "name": record.threadName}}
        exc_text = message_dict.pop("exc_info", None)
        if exc_text:
            exc_type = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else None
            exc_value = record.exc_info[1] if record.exc_info else None
            log_data["error"] = {"type": exc_type, "message": str(exc_value) if exc_value else None, "stack_trace": exc_text}
        stack = message_dict.pop("stack_info", None)
        if stack:
            log_data.setdefault("error", {})["stack_trace"] = stack
        super().add_fields(log_data, record, message_dict)

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        return dumps(log_data).decode()
