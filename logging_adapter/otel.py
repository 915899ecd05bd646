"""Predictions through the OpenTelemetry logging bridge: one pipeline for a service's logs and its predictions.

A service whose Python logs already go through the OpenTelemetry SDK (``LoggingHandler`` and a
``LoggerProvider`` exporting to a collector or a file) logs its predictions through the same handler,
wrapped::

    from opentelemetry.sdk._logs import LoggingHandler
    from logging_adapter import PredictionLogger
    from logging_adapter.otel import OtelPredictionHandler

    otel = LoggingHandler(logger_provider=provider)          # the service's own, as it is
    logging.getLogger("predwatch.predictions").addHandler(OtelPredictionHandler(otel))
    plog = PredictionLogger(model="churn", version="12")      # logs as before

The wrapper hands the bridge a copy of each prediction or outcome record whose payload is written as flat
``predwatch.*`` attributes (:func:`otel_attributes`), the contract's own names, which the readers recognise
in OTLP JSON and in Elastic's OpenTelemetry layout without a field map (:mod:`logging_adapter.fieldmap`). Other
handlers of the same logger see the record unchanged. The service's name is the OpenTelemetry resource's
``service.name``; the time is the record's (``timestamp=`` of a replay too).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from . import contract as c
from .formatter import LABELS_ATTR, PAYLOAD_ATTR, SERVICE_ATTR

LABELS_PREFIX = "labels"


def otel_attributes(payload: Mapping[str, Any], labels: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A prediction or outcome payload (what :class:`~logging_adapter.PredictionLogger` logs under
    ``predwatch``) as flat OpenTelemetry attributes named as the contract's fields. Nested feature objects
    and several outputs become one attribute each (``predwatch.features.geo.lat``,
    ``predwatch.prediction.churn``); null values are left out (OpenTelemetry takes none: a null and an absent
    feature are both missing to the checks); lists stay lists.

    >>> otel_attributes({"model": {"name": "churn", "version": "12"}, "prediction_id": "p1",
    ...                  "features": {"age": 40, "geo": {"country": "DE"}, "note": None}, "prediction": 0.8})
    {'predwatch.model.name': 'churn', 'predwatch.model.version': '12', 'predwatch.prediction_id': 'p1', 'predwatch.features.age': 40, 'predwatch.features.geo.country': 'DE', 'predwatch.prediction': 0.8}
    """
    out: dict[str, Any] = {}
    model = payload.get("model") or {}
    if model.get("name") is not None:
        out[c.MODEL_NAME] = model["name"]
    if model.get("version") is not None:
        out[c.MODEL_VERSION] = str(model["version"])
    if payload.get("prediction_id") is not None:
        out[c.PREDICTION_ID] = str(payload["prediction_id"])
    if "actual" in payload:  # an outcome
        if payload["actual"] is not None:
            out[c.ACTUAL] = payload["actual"]
        return out
    for name, value in c.flatten(payload.get("features") or {}).items():
        if value is not None:
            out[c.feature_field(name)] = value
    prediction = payload.get("prediction")
    if isinstance(prediction, Mapping):
        for name, value in c.flatten(prediction).items():
            if value is not None:
                out[f"{c.PREDICTION}.{name}"] = value
    elif prediction is not None:
        out[c.PREDICTION] = prediction
    if payload.get("latency_ms") is not None:
        out[c.LATENCY_MS] = payload["latency_ms"]
    for name, value in (labels or {}).items():
        if value is not None:
            out[f"{LABELS_PREFIX}.{name}"] = value
    return out


class OtelPredictionHandler(logging.Handler):
    """Wraps an OpenTelemetry ``LoggingHandler`` (or any handler): prediction and outcome records reach it as
    copies with flat ``predwatch.*`` attributes (:func:`otel_attributes`) instead of the payload object; every
    other record as it is. Profile records (``profile=``) are not carried: they are predwatch's own counts,
    for its own pipeline."""

    def __init__(self, handler: logging.Handler, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.handler = handler

    def emit(self, record: logging.LogRecord) -> None:
        attrs = record.__dict__
        payload = attrs.get(PAYLOAD_ATTR)
        if payload is None:
            self.handler.handle(record)
            return
        if "profile" in payload:  # a profile record: not carried (see the class)
            return
        copy = logging.makeLogRecord(attrs)
        extra = copy.__dict__
        for name in (PAYLOAD_ATTR, SERVICE_ATTR, LABELS_ATTR):
            extra.pop(name, None)
        extra.update(otel_attributes(payload, attrs.get(LABELS_ATTR)))
        self.handler.handle(copy)

    def flush(self) -> None:
        self.handler.flush()

    def close(self) -> None:
        try:
            self.handler.close()
        finally:
            super().close()
