"""High-volume services: every prediction profiled in the process, a sample of full records shipped;
the daemon sums the profile records and finds what it finds from every record."""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

import synth
from analyzers.daemon.analyzer import Analyzer
from analyzers.files import analyze_local
from analyzers.store.baselines import store_baseline
from conftest import delete_indices, write_jsonl
from logging_adapter import PredictionLogger, configure
from logging_adapter.elastic import make_client
from logging_adapter.handler import ElasticsearchHandler
from test_es_analyzers import config_for

T0 = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)


def traffic(n: int, seed: int) -> list[dict]:
    """An hour of predictions with two incidents: a new country in 1% of the traffic, and age nulls
    jumping from 3% to 20%."""
    frame = synth.table(n, seed=seed)
    rng = np.random.default_rng(seed)
    frame.loc[rng.random(n) < 0.01, "country"] = "XX"
    frame.loc[rng.random(n) < 0.18, "age"] = np.nan
    return synth.records(frame)


def serve(records: list[dict], logger: logging.Logger, **options) -> PredictionLogger:
    plog = PredictionLogger("checkout-risk", "7", logger=logger, **options)
    step = 3600 / len(records)
    for i, rec in enumerate(records):
        p = rec["predwatch"]
        plog.log(p["features"], p["prediction"], prediction_id=f"{i}-{p['prediction_id']}",
                 timestamp=T0.timestamp() + i * step, latency_ms=1.0 + (i % 10) / 10)
    plog.close()
    return plog


def logger_to(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"predwatch.test.{uuid.uuid4().hex[:8]}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def findings_of(es, baseline, tmp_path) -> tuple[set, int]:
    es.refresh()  # a real engine shows what was indexed after its refresh (1 s), not at once
    store_baseline(es.client, baseline, es.prefix)
    analyzer = Analyzer(es.client, config_for(es, recent_days=0))
    analyzer.analyze_window(analyzer.config.models[0], T0, T0 + timedelta(hours=1), refresh=True)
    found = {(h["_source"]["predwatch"]["check"], h["_source"]["predwatch"]["feature"],
              h["_source"]["predwatch"]["severity"]) for h in es.docs("findings")}
    indexed = len(es.docs("predictions-*")) + len(es.docs("intervals-*"))
    return found, indexed


def test_profiles_with_a_one_percent_sample_find_what_every_record_finds(es, baseline, tmp_path):
    records = traffic(6000, 7)
    # once as full records ...
    full = ElasticsearchHandler(make_client(es.settings), prefix=es.prefix, spool_dir=tmp_path / "a", flush_interval=0.05)
    serve(records, logger_to(full))
    assert full.flush(60)
    full.close()
    every, indexed_full = findings_of(es, baseline, tmp_path)
    assert {("unseen_category", "country"), ("missing_feature", "age")} <= {(c, f) for c, f, _ in every}, every
    # ... and once profiled in the process, 1% of the records shipped, into a fresh index set
    for pattern in ("predictions-*", "metrics*", "findings*", "profiles*"):
        delete_indices(es.client, f"{es.prefix}-{pattern}")
    handler = ElasticsearchHandler(make_client(es.settings), prefix=es.prefix, spool_dir=tmp_path / "b",
                                   flush_interval=0.05)
    plog = serve(records, logger_to(handler), profile=baseline, sample=0.01)
    assert handler.flush(60)
    handler.close()
    assert plog._profiler.counted == 6000 and plog._profiler.emitted == 60, "one profile record per minute"
    profiled, indexed = findings_of(es, baseline, tmp_path)
    assert profiled == every, (profiled, every)
    assert indexed_full >= 50 * indexed, (indexed_full, indexed)
    sampled = len(es.docs("predictions-*"))
    assert 30 <= sampled <= 90, "a 1% sample, chosen by prediction id"


def test_replicas_restarts_and_retries_add_up_once(es, baseline, tmp_path):
    """Two replicas serving halves of the traffic, one restarting midway, and every profile record sent
    twice: the sum is the traffic, once."""
    records = traffic(2000, 8)
    handler = ElasticsearchHandler(make_client(es.settings), prefix=es.prefix, spool_dir=tmp_path / "s",
                                   flush_interval=0.05)
    logger = logger_to(handler)
    sent: list = []

    class Twice(logging.Handler):
        def emit(self, record):  # a retried profile record: the same document again
            if record.msg == "profile":
                sent.append(record)
                handler.emit(record)

    logger.addHandler(Twice())
    halves = [records[0::2], records[1::2]]
    serve(halves[0][:500], logger, profile=baseline, sample=0.0)
    serve(halves[0][500:], logger, profile=baseline, sample=0.0)  # the restarted replica: a new process id
    serve(halves[1], logger, profile=baseline, sample=0.0)
    assert handler.flush(60)
    handler.close()
    assert len(es.docs("predictions-*")) == 0, "sample=0: counts only"
    store_baseline(es.client, baseline, es.prefix)
    from analyzers.sources.elastic import EsWindowProfiler
    window = EsWindowProfiler(es.client, baseline, prefix=es.prefix).interval_profile(
        "2026-11-20T06:00:00.000Z", "2026-11-20T07:00:00.000Z", "7")
    assert window.records == 2000, "each part once, whatever the retries"
    assert len(es.docs("intervals-*")) == len(sent), "every profile record was sent twice, indexed once"


def test_local_files_of_profile_records_alone_or_mixed_with_records(baseline, tmp_path):
    records = traffic(3000, 9)
    path = tmp_path / "service.jsonl"
    configure(path=str(path), logger="predwatch.test.profiled-file")
    logger = logging.getLogger("predwatch.test.profiled-file")
    plog = serve(records, logger, profile=baseline, sample=0.02)
    for h in logger.handlers:
        h.flush()
    every = write_jsonl(tmp_path / "every.jsonl", records)
    (whole,) = analyze_local([every], baseline).windows
    (mixed,) = analyze_local([path], baseline).windows
    assert mixed.profile.records == whole.profile.records == 3000
    key = lambda w: sorted((f.check, f.feature, f.status, round(f.value, 6)) for f in w.findings)  # noqa: E731
    assert key(mixed) == key(whole)
    lines = path.read_text().splitlines()
    only_profiles = write_jsonl(tmp_path / "profiles.jsonl",
                                [__import__("json").loads(x) for x in lines if '"predwatch.profile"' in x])
    (alone,) = analyze_local([only_profiles], baseline).windows
    assert key(alone) == key(whole)
    assert plog.sampled("x") in (True, False) and 30 <= sum('"predwatch.prediction"' in x for x in lines) <= 100


def test_the_caller_thread_only_queues_and_sample_needs_a_profile(baseline):
    with pytest.raises(ValueError, match="sample= needs profile="):
        PredictionLogger("checkout-risk", "7", sample=0.1)
    with pytest.raises(ValueError, match="baseline of 'checkout-risk'"):
        PredictionLogger("other-model", profile=baseline)


def test_outcomes_of_sampled_out_predictions_count_through_the_profile(tmp_path):
    from test_quality import draw, records as labelled_records
    from analyzers.core.baseline import build_baseline

    reference = build_baseline(draw(20_000, 1), model="checkout-risk", version="7", predictions=["score"],
                               actual="label")
    preds, outs = labelled_records(draw(2000, 12, flipped=0.4))
    path = tmp_path / "service.jsonl"
    configure(path=str(path), logger="predwatch.test.labelled")
    logger = logging.getLogger("predwatch.test.labelled")
    plog = PredictionLogger("checkout-risk", "7", logger=logger, profile=reference, sample=0.05)
    from logging_adapter.contract import parse_time
    for p in preds:
        ns = p["predwatch"]
        plog.log(ns["features"], ns["prediction"], prediction_id=ns["prediction_id"],
                 timestamp=parse_time(p["@timestamp"]).timestamp())
    for p, o in zip(preds, outs):  # the labelling job knows each prediction's score and time
        plog.log_outcome(o["predwatch"]["prediction_id"], o["predwatch"]["actual"],
                         timestamp=parse_time(o["@timestamp"]).timestamp(), score=p["predwatch"]["prediction"],
                         predicted_at=parse_time(p["@timestamp"]).timestamp())
    plog.close()
    for h in logger.handlers:
        h.flush()
    (window,) = analyze_local([path], reference).windows
    quality = window.to_json()["quality"]
    assert quality["predictions"] == 2000 and quality["labelled"] == 2000, quality
    assert quality["outcomes_without_prediction"] == 0
    assert ("quality_drop", "accuracy") in {(f.check, f.metric) for f in window.findings}
    outcome_lines = sum('"predwatch.outcome"' in line for line in path.read_text().splitlines())
    assert 50 <= outcome_lines <= 150, "only the sampled predictions' outcomes are logged as records"


def test_the_profile_baseline_can_come_from_the_baselines_index(es, baseline, monkeypatch):
    monkeypatch.setenv("PREDWATCH_PREFIX", es.prefix)
    store_baseline(es.client, baseline, es.prefix)
    es.refresh()
    plog = PredictionLogger("checkout-risk", "7", logger=logging.getLogger("predwatch.test.from-index"),
                            profile=es.client)
    assert plog._profiler.baseline.columns.keys() == baseline.columns.keys()
    plog.close()
    with pytest.raises(ValueError, match="no baseline of 'checkout-risk' version '8'"):
        PredictionLogger("checkout-risk", "8", profile=es.client)
