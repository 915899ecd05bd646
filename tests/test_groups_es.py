"""Quality per group and fairness on Elasticsearch: the group counts from one search of ``terms`` buckets with
the quality sub-aggregations equal the local ones on the same records (a parity test on the real engine)."""
from __future__ import annotations

import pytest

from analyzers.core.baseline import build_baseline
from analyzers.core.groups import fairness_section, group_quality_section
from analyzers.core.window import analyze
from analyzers.sources.elastic import EsWindowProfiler
from analyzers.sources.jsonl import read_predictions
from analyzers.sources.local import LocalProfiler
from analyzers.sources.outcomes import join_outcomes
from test_es_analyzers import seed as ship
from test_groups import MODEL, draw, window_records


@pytest.fixture(scope="module")
def group_baseline():
    return build_baseline(draw(20_000, 1), model=MODEL, version="1", predictions=["score"], actual="label",
                          sensitive=["gender"], segments=["service.version"])


def test_group_counts_from_aggregations_equal_the_local_ones(es, group_baseline):
    frame = draw(3_000, 31, turned=0.25, lower=0.4)
    preds, outs = window_records(frame, "es", around=lambda i, row: {
        "service": {"name": "loans", "version": "8" if i % 7 == 0 else "7"}})
    ship(es, preds + outs[:2_500])
    report = join_outcomes(es.client, es.prefix, MODEL, lambda v: group_baseline)
    assert report.joined == 2_500
    profiler = EsWindowProfiler(es.client, group_baseline, prefix=es.prefix)
    remote = profiler.profile("2026-11-23T00:00:00.000Z", "2026-11-23T01:00:00.000Z", "1")
    local = LocalProfiler(group_baseline).profile(read_predictions(preds + outs[:2_500]))
    assert set(remote.groups) == set(local.groups) == {"region", "store", "gender", "service.version"}
    for name, values in local.groups.items():
        assert set(remote.groups[name]) == set(values), name
        for value, g in values.items():
            r = remote.groups[name][value]
            assert (r.predictions, r.positive, r.labelled) == (g.predictions, g.positive, g.labelled), (name, value)
            assert r.quality.positives == g.quality.positives and r.quality.negatives == g.quality.negatives
    # the same figures and findings, then
    assert fairness_section(remote, group_baseline) == fairness_section(local, group_baseline)
    assert group_quality_section(remote, group_baseline) == group_quality_section(local, group_baseline)
    found = {(f.check, f.metric, str(f.segment)) for f in analyze(remote, group_baseline).findings
             if f.check in ("quality_drop", "fairness_gap")}
    assert found == {(f.check, f.metric, str(f.segment)) for f in analyze(local, group_baseline).findings
                     if f.check in ("quality_drop", "fairness_gap")}
    assert ("fairness_gap", "demographic_parity", "None") in found
    assert any("'value': 'north'" in seg for _, _, seg in found)


def test_the_daemon_writes_group_and_fairness_findings(es, group_baseline):
    from datetime import timedelta

    from analyzers.daemon.analyzer import Analyzer
    from analyzers.store.baselines import store_baseline
    from test_es_analyzers import config_for
    from test_groups import T0

    store_baseline(es.client, group_baseline, es.prefix)
    preds, outs = window_records(draw(5_000, 32, turned=0.25, lower=0.4), "d")
    ship(es, preds + outs)
    analyzer = Analyzer(es.client, config_for(es, name=MODEL, version="1", backfill="2h", recent_days=0))
    job = analyzer.config.models[0]
    assert analyzer.run_model(job, now=T0 + timedelta(hours=2)) >= 1
    analyzer.backfill_outcomes(job, T0 + timedelta(hours=30))
    found = [h["_source"]["predwatch"] for h in es.docs("findings")]
    groups = {f["segment_text"] for f in found if f["check"] == "quality_drop" and "segment_text" in f}
    assert "region=north" in groups, [f.get("segment_text") for f in found]
    assert {(f["feature"], f["metric"]) for f in found if f["check"] == "fairness_gap"} >= {
        ("gender", "demographic_parity")}


def test_an_input_problem_from_one_host_is_named_on_the_cluster_too(es):
    from datetime import timedelta

    from analyzers.daemon.analyzer import Analyzer
    from analyzers.store.baselines import store_baseline
    from test_es_analyzers import config_for
    from test_groups import HOSTS, T0

    baseline = build_baseline(draw(20_000, 1).drop(columns=["label"]), model=MODEL, version="1",
                              predictions=["score"])
    store_baseline(es.client, baseline, es.prefix)
    frame = draw(3_000, 33)
    frame["x"] = frame["x"].astype(object)
    host = [HOSTS[i % 5] for i in range(len(frame))]
    frame.loc[[h == "web-3" and i % 4 != 0 for i, h in enumerate(host)], "x"] = None
    preds, _ = window_records(frame, "h", around=lambda i, row: {
        "service": {"name": "loans", "version": "7"}, "host": {"name": host[i]}})
    ship(es, preds)
    analyzer = Analyzer(es.client, config_for(es, name=MODEL, version="1", backfill="2h", recent_days=0))
    assert analyzer.run_model(analyzer.config.models[0], now=T0 + timedelta(hours=2)) >= 1
    found = [h["_source"]["predwatch"] for h in es.docs("findings")]
    missing = next(f for f in found if f["check"] == "missing_feature" and f["feature"] == "x")
    assert missing["segments_text"][0] == "host.name=web-3", missing["segments_text"]
    assert missing["segments"][0]["share_of_window"] == pytest.approx(0.2)
