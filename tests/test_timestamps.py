"""Timestamps: what ``timestamp=`` accepts, and one reading of a record's time from the logger to the cluster."""
from __future__ import annotations

import io
import json
import logging
import uuid
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from logging_adapter import PredictionFormatter, PredictionLogger

WHEN = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=timezone.utc)
WHEN_ISO = "2026-03-14T15:09:26.535Z"


@pytest.fixture
def capture():
    buf = io.StringIO()
    logger = logging.getLogger(f"test.{uuid.uuid4().hex}")
    handler = logging.StreamHandler(buf)
    handler.setFormatter(PredictionFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, lambda: [json.loads(line) for line in buf.getvalue().splitlines()]


# -- 27.5: timestamp= and features= of PredictionLogger.log and log_outcome -------------------------

ACCEPTED = {
    "seconds": WHEN.timestamp(),
    "int seconds": int(WHEN.timestamp()),
    "milliseconds": int(WHEN.timestamp() * 1000),
    "microseconds": int(WHEN.timestamp() * 1_000_000),
    "nanoseconds": int(WHEN.timestamp() * 1000) * 1_000_000,
    "numpy int64 ms": np.int64(int(WHEN.timestamp() * 1000)),
    "aware datetime": WHEN.astimezone(timezone(timedelta(hours=-5))),
    "naive datetime (UTC)": WHEN.replace(tzinfo=None),
    "pandas Timestamp": pd.Timestamp(WHEN),
    "numpy datetime64": np.datetime64(WHEN.replace(tzinfo=None), "ms"),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_timestamp_accepts_datetimes_and_epoch_numbers_by_magnitude(capture, name):
    logger, lines = capture
    plog = PredictionLogger("m", logger=logger)
    assert plog.log({"x": 1}, 0.5, timestamp=ACCEPTED[name]) is not None
    assert plog.log_outcome("p1", 1, timestamp=ACCEPTED[name]) is True
    expected = WHEN_ISO.replace(".535", ".000") if name == "int seconds" else WHEN_ISO
    assert [r["@timestamp"] for r in lines()] == [expected, expected] and plog.failures == 0


def test_other_timestamps_are_refused_at_the_call_one_message_per_problem(capture, caplog):
    logger, lines = capture
    plog = PredictionLogger("m", logger=logger)
    with caplog.at_level(logging.WARNING, logger="predwatch"):
        for bad in ("2026-03-14T15:09:26Z", "1710428966", date(2026, 3, 14), True, float("nan"), -5.0, 1e25,
                    np.datetime64("NaT")):
            assert plog.log({"x": 1}, 0.5, timestamp=bad) is None
        assert plog.log_outcome("p1", 1, timestamp="yesterday") is False
        assert plog.log_outcome("p1", 1, predicted_at=date(2026, 1, 1)) is False
    assert lines() == [] and plog.failures == 10
    said = [r.getMessage() for r in caplog.records]
    # str, date, bool, out of range (nan, negative, too large), NaT; then predicted_at's date: six problems
    assert len(said) == 6, said
    assert all("datetime" in m and "milliseconds" in m for m in said)
    assert any("timestamp= is a str" in m for m in said) and any("predicted_at= is a date" in m for m in said)


def test_a_pandas_series_or_numpy_record_is_logged_as_its_fields(capture):
    logger, lines = capture
    plog = PredictionLogger("m", logger=logger, redact=["secret"])
    row = pd.DataFrame({"amount": [12.5], "country": ["DE"], "n": [3], "secret": ["x"]}).iloc[0]
    plog.log(row, 0.5)
    rec = np.array([(1.5, b"FR", 7)], dtype=[("amount", "f8"), ("country", "S2"), ("n", "i4")])[0]
    plog.log(rec, 0.5)
    tuple_row = next(pd.DataFrame({"amount": [2.0], "country": ["IT"]}).itertuples(index=False))
    plog.log(tuple_row, 0.5)
    got = [r["predwatch"]["features"] for r in lines()]
    assert got == [{"amount": 12.5, "country": "DE", "n": 3}, {"amount": 1.5, "country": "FR", "n": 7},
                   {"amount": 2.0, "country": "IT"}]
    assert plog.log(["not", "a", "mapping"], 0.5) is None and plog.failures == 1
