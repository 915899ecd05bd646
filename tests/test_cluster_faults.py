"""Wrong verdicts the cluster could cause: partial answers, time-outs, a feature mapped otherwise on some day,
re-analysis during errors, and errors nobody is told of. On the real engine, with a loopback proxy for the faults."""
from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

import incidents
import synth
from alerting.notifier import Notifier, Target
from analyzers.daemon.analyzer import Analyzer
from analyzers.daemon.config import iso
from analyzers.store.baselines import store_baseline
from analyzers.store.state import get_state
from logging_adapter.elastic import make_client
from test_es_analyzers import T0, config_for, frame_records, seed
from test_kibana_alerting import receiver  # noqa: F401 - a fixture
from test_nothing_lost import Gate


def partial(path: str, body: bytes) -> bytes:
    """The answer of a search where one of two shards failed, as Elasticsearch gives it (HTTP 200)."""
    if "_search" not in path:
        return body
    resp = orjson.loads(body)
    resp["_shards"] = {"total": 2, "successful": 1, "skipped": 0, "failed": 1, "failures": [
        {"shard": 0, "index": "x", "reason": {"type": "illegal_argument_exception",
                                             "reason": "Field [predwatch.features.age] of type [keyword] is not "
                                                       "supported for aggregation [range]"}}]}
    return orjson.dumps(resp)


def timed_out(path: str, body: bytes) -> bytes:
    if "_search" not in path:
        return body
    return orjson.dumps({**orjson.loads(body), "timed_out": True})


def analyzer_through(gate: Gate, es, notifier=None) -> Analyzer:
    cfg = config_for(es, backfill="2h")
    return Analyzer(make_client(es.settings.with_(url=gate.url)), cfg, notifier=notifier)


def seeded(es) -> None:
    """Two quiet hours of the model's records."""
    frames = [synth.table(300, seed=410), synth.table(300, seed=411)]
    seed(es, [r for i, f in enumerate(frames) for r in frame_records(f, T0 + timedelta(hours=i), 3000)])


def findings(es) -> list[dict]:
    return [h["_source"]["predwatch"] | {"message": h["_source"]["message"]} for h in es.docs("findings")]


def test_a_partial_answer_is_an_error_not_a_verdict_and_the_window_is_analysed_again(es, baseline):
    store_baseline(es.client, baseline, es.prefix)
    seeded(es)
    gate = Gate(es.url)
    try:
        for tamper in (partial, timed_out):
            gate.tamper = tamper
            analyzer = analyzer_through(gate, es)
            analyzer.client = analyzer.client.options(request_timeout=30)
            job = analyzer.config.models[0]
            assert analyzer.run_model(job, now=T0 + timedelta(hours=2)) == 0, "no window counts as analysed"
            assert get_state(es.client, es.prefix, job.key) is None, "the watermark did not move"
            found = findings(es)
            assert [f["check"] for f in found] == ["analysis_error"], found
            reason = found[0]["message"]
            assert ("not supported for aggregation [range]" in reason if tamper is partial else "timed out" in reason)
            assert not es.docs("metrics"), "nothing judged from half an answer"
        gate.tamper = None  # the cluster answers whole again: the same windows are analysed, the error goes
        analyzer = analyzer_through(gate, es)
        assert analyzer.run_model(analyzer.config.models[0], now=T0 + timedelta(hours=2)) == 2
        assert [f["check"] for f in findings(es)] == []
        assert {h["_source"]["predwatch"]["window"]["start"] for h in es.docs("metrics")} == \
            {iso(T0), iso(T0 + timedelta(hours=1))}
    finally:
        gate.close()


def test_a_failed_reanalysis_keeps_the_windows_earlier_results(es, baseline):
    store_baseline(es.client, baseline, es.prefix)
    seeded(es)
    analyzer = Analyzer(es.client, config_for(es, backfill="2h"))
    assert analyzer.run_model(analyzer.config.models[0], now=T0 + timedelta(hours=2)) == 2
    before = sorted(h["_id"] for h in es.docs("metrics"))
    gate = Gate(es.url)
    try:
        gate.tamper = partial
        again = analyzer_through(gate, es)
        summary = again.analyze_window(again.config.models[0], T0, T0 + timedelta(hours=1), refresh=True)
        assert summary["incomplete"] == 1
    finally:
        gate.close()
    assert sorted(h["_id"] for h in es.docs("metrics")) == before, "results are replaced only by a complete analysis"


def test_a_feature_mapped_otherwise_on_one_day_is_one_conflict_not_nine_missing_features(es, baseline):
    """Records shipped before ``baseline --es`` typed the model's indices: ``age`` arrived first as text one day and
    was mapped ``keyword`` in that day's index. Today the feature is judged from the other day's index."""
    day1, day2 = T0, T0 + timedelta(days=1)
    first = frame_records(synth.table(300, seed=420), day1, 3000)
    first[0]["predwatch"]["features"]["age"] = "forty"  # the day's first value: age becomes a keyword there
    seed(es, first)
    store_baseline(es.client, baseline, es.prefix)  # from now on the model's new indices are typed
    seed(es, frame_records(synth.table(300, seed=421), day2, 3000))
    mapping = es.client.indices.get_field_mapping(index=f"{es.prefix}-predictions-*",
                                                  fields="predwatch.features.age").body
    assert sorted(m["mappings"]["predwatch.features.age"]["mapping"]["age"]["type"] for m in mapping.values()) == \
        ["double", "keyword"]
    cfg = config_for(es, window="2d")
    summary = Analyzer(es.client, cfg).analyze_window(cfg.models[0], day1, day1 + timedelta(days=2), refresh=True)
    assert summary["incomplete"] == 0
    found = findings(es)
    assert [(f["check"], f["feature"]) for f in found if f["check"] != "type_mismatch"] == \
        [("mapping_conflict", "age")], found
    assert "keyword" in found[0]["message"] and "baseline --es" in found[0]["message"]


def test_an_analysis_error_is_notified_once_per_episode(es, baseline, receiver):
    seeded(es)  # no baseline stored: each window is an analysis_error
    hook = receiver()
    notifier = Notifier([Target(hook.url)], backoff=0.01)
    analyzer = Analyzer(es.client, config_for(es, backfill="2h"), notifier=notifier)
    analyzer.run_model(analyzer.config.models[0], now=T0 + timedelta(hours=2))  # two windows, one episode
    store_baseline(es.client, baseline, es.prefix)
    analyzer.analyze_window(analyzer.config.models[0], T0, T0 + timedelta(hours=1), refresh=True)
    assert notifier.drain(10)
    notifier.close()
    events = [orjson.loads(r["body"]) for r in hook.requests]
    said = [(e["status"], e["check"]) for e in events]
    assert said == [("firing", "analysis_error"), ("resolved", "analysis_error")], said
    assert "no baseline" in events[0]["message"]


def test_a_feature_left_unmapped_past_the_field_limit_is_a_conflict_never_a_type_mismatch(es, baseline):
    """Elasticsearch 8.14+ drops fields past ``index.mapping.total_fields.limit`` into ``_ignored`` instead of refusing
    the record: a baseline feature that came after the limit (an index created before ``baseline --es`` typed the
    model's features) is present and unmapped there, and must not read as a type mismatch."""
    day = T0.strftime("%Y.%m.%d")
    es.client.indices.create(index=f"{es.prefix}-predictions-checkout-risk.{day}",
                             settings={"index.mapping.total_fields.limit": 40})
    records = frame_records(synth.table(300, seed=430), T0, 3000)
    for rec in records:  # sixty keys of another kind come first and take every field the limit allows
        rec["predwatch"]["features"] = {**{f"a_{k:02d}": k for k in range(60)}, **rec["predwatch"]["features"]}
    seed(es, records)
    mapped = es.client.indices.get_field_mapping(index=f"{es.prefix}-predictions-*", fields="predwatch.features.amount")
    if not next(iter(mapped.body.values()))["mappings"] == {}:
        pytest.skip("this engine maps past the limit or refuses instead (no ignore_dynamic_beyond_limit)")
    store_baseline(es.client, baseline, es.prefix)
    cfg = config_for(es)
    Analyzer(es.client, cfg).analyze_window(cfg.models[0], T0, T0 + timedelta(hours=1), refresh=True)
    found = {(f["check"], f["feature"]) for f in findings(es)}
    assert not {check for check, _ in found} & {"type_mismatch", "missing_feature"}, found
    assert ("mapping_conflict", "amount") in found, found
