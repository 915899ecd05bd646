"""The prediction record: shape, value hygiene, PII options, wiring, and never raising into the caller."""
from __future__ import annotations

import io
import json
import logging
import logging.config
import math
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from logging_adapter import PredictionFormatter, PredictionLogger, configure
from logging_adapter import contract as c
from logging_adapter.logger import new_prediction_id


@pytest.fixture
def capture():
    """A fresh logger writing through PredictionFormatter into a buffer; yields (logger, lines())."""
    buf = io.StringIO()
    logger = logging.getLogger(f"test.{uuid.uuid4().hex}")
    handler = logging.StreamHandler(buf)
    handler.setFormatter(PredictionFormatter(service="checkout-api"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, lambda: [json.loads(line) for line in buf.getvalue().splitlines()]


def test_record_has_the_contract_shape(capture):
    logger, lines = capture
    plog = PredictionLogger(model="checkout-risk", version=7, service="checkout-api", logger=logger)
    pid = plog.log({"amount": 12.5, "country": "DE", "query": "red shoes"}, 0.83, latency_ms=1.4, tenant="eu")
    (rec,) = lines()
    assert rec["@timestamp"].endswith("Z") and datetime.fromisoformat(rec["@timestamp"].replace("Z", "+00:00"))
    assert rec["log.level"] == "info" and rec["message"] == "prediction" and rec["ecs.version"] == c.ECS_VERSION
    assert rec["service"] == {"name": "checkout-api"}
    assert rec["event"] == {"kind": "event", "dataset": c.DATASET}
    assert rec["labels"] == {"tenant": "eu"}
    assert rec["predwatch"] == {
        "model": {"name": "checkout-risk", "version": "7"},
        "prediction_id": pid,
        "features": {"amount": 12.5, "country": "DE", "query": "red shoes"},
        "prediction": 0.83,
        "latency_ms": 1.4,
    }
    assert uuid.UUID(pid).version == 4


def test_timestamp_is_the_records_creation_time_in_utc(capture):
    logger, lines = capture
    before = datetime.now(timezone.utc)
    PredictionLogger("m", logger=logger).log({}, 1)
    stamp = datetime.fromisoformat(lines()[0]["@timestamp"].replace("Z", "+00:00"))
    assert abs((stamp - before).total_seconds()) < 2


def test_prediction_ids_are_unique_and_given_ids_are_kept(capture):
    ids = {new_prediction_id() for _ in range(20000)}
    assert len(ids) == 20000
    logger, lines = capture
    PredictionLogger("m", logger=logger).log({}, 1, prediction_id="given-1")
    assert lines()[0]["predwatch"]["prediction_id"] == "given-1"


def test_nested_and_dotted_records_read_the_same():
    nested = {"@timestamp": "2026-11-22T07:00:00.123Z",
              "predwatch": {"model": {"name": "m", "version": "7"}, "prediction_id": "p1",
                            "features": {"amount": 12.5, "geo": {"country": "DE"}},
                            "prediction": {"label": "fraud", "score": 0.93}}}
    dotted = {"@timestamp": "2026-11-22T07:00:00.123Z", "predwatch.model.name": "m", "predwatch.model.version": 7,
              "predwatch.prediction_id": "p1", "predwatch.features.amount": 12.5,
              "predwatch.features.geo.country": "DE",
              "predwatch.prediction": {"label": "fraud", "score": 0.93}}
    mixed = {"@timestamp": "2026-11-22T07:00:00.123Z",
             "predwatch": {"model.name": "m", "model": {"version": "7"}, "prediction_id": "p1",
                           "features.amount": 12.5, "features": {"geo.country": "DE"},
                           "prediction.label": "fraud", "prediction.score": 0.93}}
    reads = [c.read_prediction(r) for r in (nested, dotted, mixed)]
    assert reads[0] == reads[1] == reads[2]
    assert reads[0].features == {"amount": 12.5, "geo.country": "DE"}
    assert reads[0].columns() == {"amount": 12.5, "geo.country": "DE", "prediction.label": "fraud",
                                  "prediction.score": 0.93}


def test_not_a_prediction_record_gets_a_reason():
    with pytest.raises(c.RecordError, match="no 'predwatch' object"):
        c.read_prediction({"message": "hello"})
    with pytest.raises(c.RecordError, match="not an object"):
        c.read_prediction([1, 2])
    with pytest.raises(c.RecordError, match="features"):
        c.read_prediction({"predwatch": {"features": [1, 2]}})


class Opaque:
    def __str__(self) -> str:
        return "opaque!"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_odd_values_become_valid_json(capture):
    logger, lines = capture
    features = {
        "np_float32": np.float32(1.5), "np_int64": np.int64(3), "np_bool": np.bool_(True),
        "np_nan": np.float64("nan"), "nan": float("nan"), "inf": float("inf"), "ninf": -math.inf,
        "np_array": np.array([1, 2]), "datetime": datetime(2026, 1, 2, 3, 4, 5), "date": date(2026, 1, 2),
        "timestamp": pd.Timestamp("2026-01-02T03:04:05Z"), "nat": pd.NaT, "na": pd.NA,
        "decimal": Decimal("2.5"), "bytes": b"caf\xc3\xa9", "bad_bytes": b"\xff\xfe", "big": 2**70,
        "opaque": Opaque(), "unprintable": Unprintable(), "set": {"b", "a"}, "np_str": np.str_("x"),
    }
    PredictionLogger("m", logger=logger).log(features, np.float64(0.25))
    (rec,) = lines()
    got = rec["predwatch"]["features"]
    assert got["np_float32"] == 1.5 and got["np_int64"] == 3 and got["np_bool"] is True
    assert got["np_nan"] is None and got["nan"] is None and got["inf"] is None and got["ninf"] is None
    assert got["np_array"] == [1, 2]
    assert got["datetime"] == "2026-01-02T03:04:05" and got["date"] == "2026-01-02"
    assert got["timestamp"].startswith("2026-01-02T03:04:05")
    assert got["nat"] is None and got["na"] is None
    assert got["decimal"] == 2.5 and got["bytes"] == "café" and got["bad_bytes"] == "\ufffd\ufffd"
    assert got["big"] == str(2**70)
    assert got["opaque"] == "opaque!" and got["unprintable"] == "<unprintable Unprintable>"
    assert got["set"] == ["a", "b"] and got["np_str"] == "x"
    assert rec["predwatch"]["prediction"] == 0.25


def test_redact_and_keyed_hash(capture):
    logger, lines = capture
    plog = PredictionLogger("m", logger=logger, redact=["ssn"], hash=["email"], hash_key="secret-key-of-16+bytes")
    features = {"ssn": "123", "email": "a@b.c", "amount": 1}
    plog.log(features, 1)
    plog.log(features, 1)
    a, b = (r["predwatch"]["features"] for r in lines())
    assert "ssn" not in a and a["amount"] == 1
    assert a["email"] == b["email"] and len(a["email"]) == 64 and "a@b.c" not in json.dumps(a)
    assert features["ssn"] == "123", "the caller's dict is not modified"
    other = PredictionLogger("m", logger=logger, hash=["email"], hash_key="other-key-of-16+bytes")
    other.log(features, 1)
    assert lines()[-1]["predwatch"]["features"]["email"] != a["email"], "the hash is keyed"
    with pytest.raises(ValueError, match="hash_key"):
        PredictionLogger("m", hash=["email"], hash_key="")


def test_timing_helpers_fill_latency(capture):
    logger, lines = capture
    plog = PredictionLogger("m", logger=logger)
    with plog.timed({"x": 1}) as call:
        call.prediction = "yes"

    @plog.wrap
    def predict(features):
        return 0.5

    assert predict({"x": 2}) == 0.5
    with pytest.raises(KeyError):
        with plog.timed({"x": 3}):
            raise KeyError("model failed")
    recs = lines()
    assert [r["predwatch"]["features"]["x"] for r in recs] == [1, 2], "a failed prediction is not logged"
    assert all(r["predwatch"]["latency_ms"] >= 0 for r in recs)
    assert recs[0]["predwatch"]["prediction"] == "yes"
    assert call.prediction_id == recs[0]["predwatch"]["prediction_id"]


def test_dictconfig_wiring_to_a_rotating_file(tmp_path):
    path = tmp_path / "predictions.jsonl"
    logging.config.dictConfig({
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"ecs": {"()": "logging_adapter.PredictionFormatter", "service": "svc"}},
        "handlers": {"file": {"class": "logging.handlers.RotatingFileHandler", "filename": str(path),
                              "maxBytes": 10_000, "backupCount": 2, "formatter": "ecs"}},
        "loggers": {"predwatch.predictions.dict": {"handlers": ["file"], "level": "INFO", "propagate": False},
                    "app.dict": {"handlers": ["file"], "level": "INFO", "propagate": False}},
    })
    PredictionLogger("m", logger=logging.getLogger("predwatch.predictions.dict")).log({"a": 1}, 2)
    logging.getLogger("app.dict").warning("cache miss for %s", "user-1", extra={"cache": "redis"})
    pred, app = (json.loads(line) for line in path.read_text().splitlines())
    assert pred["service"]["name"] == "svc" and pred["predwatch"]["features"] == {"a": 1}
    assert app["message"] == "cache miss for user-1" and app["log.level"] == "warning"
    assert app["log"]["logger"] == "app.dict" and app["cache"] == "redis" and app["service"]["name"] == "svc"


def test_application_logs_carry_ecs_error_fields():
    buf = io.StringIO()
    logger = logging.getLogger("test.app.errors")
    handler = logging.StreamHandler(buf)
    handler.setFormatter(PredictionFormatter())
    logger.handlers[:] = [handler]
    logger.propagate = False
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        logger.exception("failed")
    rec = json.loads(buf.getvalue())
    assert rec["error"]["type"] == "ZeroDivisionError" and rec["error"]["message"] == "boom"
    assert "Traceback" in rec["error"]["stack_trace"] and "exc_info" not in rec


def test_configure_writes_to_a_file_and_stops_propagation(tmp_path):
    name = f"test.configure.{uuid.uuid4().hex}"
    configure(path=tmp_path / "logs" / "p.jsonl", service="svc", logger=name)
    PredictionLogger("m", logger=logging.getLogger(name)).log({"a": 1}, 0.5)
    (line,) = (tmp_path / "logs" / "p.jsonl").read_text().splitlines()
    assert json.loads(line)["predwatch"]["prediction"] == 0.5
    assert logging.getLogger(name).propagate is False


class BrokenHandler(logging.Handler):
    def emit(self, record):
        raise OSError("disk full")

    def handleError(self, record):  # the default prints a traceback; a stricter handler re-raises
        raise OSError("disk full, re-raised")


class BrokenFilter(logging.Filter):
    def filter(self, record):
        raise RuntimeError("filter bug")


@pytest.mark.parametrize("breakage", ["handler", "filter", "formatter"])
def test_a_broken_logging_setup_never_raises_into_the_caller(breakage, caplog):
    logger = logging.getLogger(f"test.broken.{breakage}")
    logger.handlers[:] = []
    logger.filters[:] = []
    logger.propagate = False
    logger.setLevel(logging.INFO)
    if breakage == "handler":
        logger.addHandler(BrokenHandler())
    elif breakage == "filter":
        logger.addFilter(BrokenFilter())
    else:
        handler = logging.StreamHandler(io.StringIO())
        handler.setFormatter(PredictionFormatter())
        handler.format = lambda record: 1 / 0
        handler.handleError = lambda record: (_ for _ in ()).throw(RuntimeError("strict"))
        logger.addHandler(handler)
    plog = PredictionLogger("m", logger=logger)
    with caplog.at_level(logging.WARNING, logger="predwatch"):
        assert plog.log({"a": 1}, 1) is None
        assert plog.log({"a": 2}, 1) is None
    assert plog.failures == 2 and plog.records == 0
    assert any("not logged" in r.getMessage() for r in caplog.records if r.name == "predwatch")


def test_disabled_level_logs_nothing_and_costs_nothing(capture):
    logger, lines = capture
    logger.setLevel(logging.WARNING)
    assert PredictionLogger("m", logger=logger).log({"a": 1}, 1) is None
    assert lines() == []
