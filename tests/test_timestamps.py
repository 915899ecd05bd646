"""Timestamps: what ``timestamp=`` accepts, and one reading of a record's time from the logger to the cluster."""
from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta, timezone

import numpy as np
import orjson
import pandas as pd
import pytest

from conftest import formatted_logger
from logging_adapter import PredictionLogger

WHEN = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=timezone.utc)
WHEN_ISO = "2026-03-14T15:09:26.535Z"


@pytest.fixture
def capture():
    logger, buf = formatted_logger()
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


# -- 24.10: one grammar of record times; the UTC day; outcomes before their prediction; giving up --------

SAME_EVERYWHERE = {  # accepted?
    "2026-11-22T07:00:00.123Z": True, "2026-11-22T07:00:00Z": True, "2026-11-22T07:00:00.123456789Z": True,
    "2026-11-22T07:00:00.123+05:30": True, "2026-11-22T07:00:00-0500": True, "2026-11-22T07:00": True,
    "2026-11-22": True, "2026-11-22T07:00:00": True,
    "2026-11-22 07:00:00.123Z": False, "2026-11-22 07:00:00": False, "20261122T070000Z": False,
    "2026-11-2T7:00:00.1Z": False, "2026-11-22T07:00:00.123+05": False, "2026-11-22T07:00:00.123 +05:30": False,
    "2026-11-22t07:00:00Z": False, "22/11/2026 07:00": False, "": False,
}


def test_check_and_the_cluster_accept_the_same_timestamps():
    from logging_adapter import contract as c
    from logging_adapter.bulk import BadRecord, doc_from_line

    texts = list(SAME_EVERYWHERE)
    batch = c.record_times(texts)  # the local reader's path (check, report)
    for text, accepted in SAME_EVERYWHERE.items():
        line = orjson.dumps({"@timestamp": text, "predwatch": {"model": {"name": "m"}, "prediction_id": "p",
                                                               "features": {"x": 1}, "prediction": 1}})
        try:
            doc_from_line(line)  # the shipper's path (ship, handler spool replays) to the cluster
            shipped = True
        except BadRecord:
            shipped = False
        try:
            c.parse_time(text)
            parsed = True
        except ValueError:
            parsed = False
        assert (shipped, parsed, not pd.isna(batch[texts.index(text)])) == (accepted,) * 3, text


def test_a_time_with_an_offset_goes_to_the_index_of_its_utc_day():
    from logging_adapter.bulk import doc_from_line

    def index_of(stamp: str) -> str:
        return doc_from_line(orjson.dumps({"@timestamp": stamp, "predwatch": {
            "model": {"name": "m"}, "prediction_id": stamp, "features": {"x": 1}, "prediction": 1}})).index

    assert index_of("2026-11-22T23:30:00.000-05:00").endswith(".2026.11.23")
    assert index_of("2026-11-23T01:30:00+0500").endswith(".2026.11.22")
    assert index_of("2026-11-22T23:30:00.000Z").endswith(".2026.11.22")
    assert index_of("2026-11-22").endswith(".2026.11.22")


def test_check_refuses_a_space_separated_timestamp_like_the_cluster(tmp_path):
    from analyzers.files import analyze_local
    from test_quality import MODEL, T0, build_baseline, draw, records

    baseline = build_baseline(draw(2000, 1), model=MODEL, version="7", predictions=["score"], actual="label")
    preds, _ = records(draw(200, 5))
    preds[0]["@timestamp"] = preds[0]["@timestamp"].replace("T", " ")
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in preds))
    analysis = analyze_local([path], baseline, window=timedelta(hours=1))
    assert analysis.records == 199 and analysis.rejected == 1
    assert "@timestamp" in analysis.rejections[0].reason or "timestamp" in str(analysis.rejections[0])


def test_outcomes_before_their_prediction_are_counted_not_taken_as_zero_delay(tmp_path):
    from analyzers.files import analyze_local
    from test_quality import MODEL, build_baseline, draw, records

    baseline = build_baseline(draw(2000, 1), model=MODEL, version="7", predictions=["score"], actual="label")
    preds, outs = records(draw(300, 6))  # delays of 3 to 30 hours
    for o in outs[:180]:  # most outcomes stamped an hour BEFORE their prediction (a skewed clock)
        pred = next(p for p in preds if p["predwatch"]["prediction_id"] == o["predwatch"]["prediction_id"])
        o["@timestamp"] = (datetime.fromisoformat(pred["@timestamp"].replace("Z", "+00:00"))
                           - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    paths = [tmp_path / "p.jsonl", tmp_path / "o.jsonl"]
    for path, recs in zip(paths, (preds, outs)):
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    (window,) = analyze_local(paths, baseline).windows
    quality = window.to_json()["quality"]
    assert quality["labelled"] == 300 and quality["outcomes_before_prediction"] == 180
    assert quality["median_label_delay_s"] > 2 * 3600, "the early ones do not pull the median to zero"


def test_joined_outcomes_keep_negative_delays_and_are_given_up_only_7_days_after_first_seen(es, caplog):
    from analyzers.sources.outcomes import join_outcomes
    from test_es_analyzers import seed
    from test_quality import MODEL, build_baseline, draw, records

    baseline = build_baseline(draw(2000, 1), model=MODEL, version="7", predictions=["score"], actual="label")
    preds, outs = records(draw(100, 7))  # dated 2026-11-23: "now" below is a month later
    for o, p in zip(outs[:40], preds[:40]):  # stamped before their prediction
        o["@timestamp"] = (datetime.fromisoformat(p["@timestamp"].replace("Z", "+00:00"))
                           - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    now = datetime(2026, 12, 23, tzinfo=timezone.utc)
    seed(es, outs)  # the outcomes arrive first: their predictions are not indexed yet
    first = join_outcomes(es.client, es.prefix, MODEL, lambda v: baseline, now=now)
    assert (first.joined, first.unmatched, first.given_up) == (0, 100, 0), "not given up for their old time"
    with caplog.at_level(logging.WARNING, logger="predwatch"):
        seed(es, preds[:50])
        second = join_outcomes(es.client, es.prefix, MODEL, lambda v: baseline, now=now + timedelta(days=6))
        assert (second.joined, second.given_up) == (50, 0)
        seed(es, preds[50:])
        third = join_outcomes(es.client, es.prefix, MODEL, lambda v: baseline, now=now + timedelta(days=6, hours=1))
    assert third.joined == 50 and (second.early, third.early) == (40, 0)
    delays = sorted(h["_source"]["predwatch"]["outcome"]["delay_s"] for h in es.docs("predictions-*"))
    assert len(delays) == 100 and delays[:40] == [-300.0] * 40 and delays[40] >= 3 * 3600
    assert any("40 outcome(s) stamped before their prediction" in r.getMessage() for r in caplog.records)


def test_an_outcome_whose_prediction_never_comes_is_given_up_7_days_after_first_seen(es):
    from analyzers.sources.outcomes import join_outcomes
    from test_es_analyzers import seed
    from test_quality import MODEL, build_baseline, draw, records

    baseline = build_baseline(draw(2000, 1), model=MODEL, version="7", predictions=["score"], actual="label")
    _, outs = records(draw(10, 8))
    now = datetime(2027, 1, 1, tzinfo=timezone.utc)
    seed(es, outs)
    assert join_outcomes(es.client, es.prefix, MODEL, lambda v: baseline, now=now).given_up == 0
    later = join_outcomes(es.client, es.prefix, MODEL, lambda v: baseline, now=now + timedelta(days=6, hours=23))
    assert (later.unmatched, later.given_up) == (10, 0)
    last = join_outcomes(es.client, es.prefix, MODEL, lambda v: baseline, now=now + timedelta(days=7, hours=1))
    assert last.given_up == 10
    assert join_outcomes(es.client, es.prefix, MODEL, lambda v: baseline, now=now + timedelta(days=8)).unmatched == 0


@pytest.mark.parametrize("same_length", [False, True])
def test_the_batch_reader_and_the_single_parser_agree_on_edge_cases(same_length):
    from logging_adapter import contract as c

    edge = ["2026-03-14T15:09:26.1234567891Z", "2026-03-14T15:09:26.535 +05:30", "2026-03-14T15:09:26.535+05",
            "2026-03-14T15:09:26+05", "2026-03-14T15:09:26.Z", "2026-03-14T15:09:26.535+05:3",
            "2026-03-14T15:09:26.535+5:30", "2026-03-14T15:09:26.535-00:00", "2026-03-14T15:09:26.535+05:30",
            "2026-03-14T15:09:26+05:30", "2026-03-14T15:09:26Z", "2026-03-14T15:09:26", "2026-03-14T15:09:26.5Z",
            "2026-03-14T15:09:26.123456789Z", "2026-03-14T15:09:26.123456789+05:30", "2026-03-14 15:09:26.535Z",
            "2026-03-14", "2026-03-14T15:09", "2026-03-14T15:09:26+0530", "x", None, 5,
            "2026-03-14T15:09:26.5a5Z", "2026-03-14T15:09:26.535+0a:30", "2026-03-14T15:09:26.5 5Z",
            "2026-03-14T15:09:26.535Zé", "é2026-03-14T15:09:26.535Z", "2026-03-14T15:09:26.535Z"]
    groups = [[t] * 3 for t in edge] if same_length else [edge]
    for texts in groups:
        batch = c.record_times(texts)
        for text, value in zip(texts, batch):
            try:
                single = c.parse_time(text)
            except ValueError:
                single = None
            assert (single is None) == pd.isna(value), text
            if single is not None:
                assert abs(value.timestamp() - single.timestamp()) < 1e-6, text
