"""Quality on Elasticsearch: outcomes indexed apart, joined into their predictions by the daemon,
metrics from aggregations equal to the local ones, and backfill when labels arrive late."""
from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from analyzers.daemon.analyzer import Analyzer
from analyzers.sources.elastic import EsWindowProfiler
from analyzers.sources.jsonl import read_predictions
from analyzers.sources.local import LocalProfiler
from analyzers.sources.outcomes import join_outcomes
from analyzers.store.baselines import store_baseline
from analyzers.core.quality import metrics
from test_es_analyzers import config_for, seed as ship
from test_quality import MODEL, T0, build_baseline, draw, records


@pytest.fixture(scope="module")
def es_baseline():
    return build_baseline(draw(20_000, 1), model=MODEL, version="7", predictions=["score"], actual="label")


def quality_docs(es, window_start: str) -> dict[tuple[str, str | None], dict]:
    out = {}
    for hit in es.docs("metrics"):
        p = hit["_source"]["predwatch"]
        if p["window"]["start"] == window_start and "segment" not in p and p["check"] in (
                "quality_drop", "estimated_quality_drop", "label_coverage", "label_delay", "latency"):
            out[(p["check"], p.get("metric"))] = p
    return out


def test_outcomes_are_indexed_apart_and_never_read_as_predictions(es, es_baseline):
    preds, outs = records(draw(300, 80))
    ship(es, preds + outs)
    assert len(es.docs("predictions-*")) == 300
    assert len(es.docs("outcomes-*")) == 300
    store_baseline(es.client, es_baseline, es.prefix)
    profile = EsWindowProfiler(es.client, es_baseline, prefix=es.prefix).profile(
        "2026-11-23T00:00:00.000Z", "2026-11-23T01:00:00.000Z", "7")
    assert profile.records == 300 and profile.quality.labelled == 0, "not joined yet"


def test_joined_quality_from_aggregations_equals_the_local_one(each_engine, es_baseline):
    es = each_engine  # the same test on each real engine
    preds, outs = records(draw(600, 81, flipped=0.3))
    ship(es, preds + outs[:400])
    report = join_outcomes(es.client, es.prefix, MODEL, lambda v: es_baseline)
    assert (report.joined, report.unmatched) == (400, 0)
    again = join_outcomes(es.client, es.prefix, MODEL, lambda v: es_baseline)
    assert again.joined == 0, "an outcome is joined once"
    remote = EsWindowProfiler(es.client, es_baseline, prefix=es.prefix).profile(
        "2026-11-23T00:00:00.000Z", "2026-11-23T01:00:00.000Z", "7")
    profiler = LocalProfiler(es_baseline)
    local = profiler.profile(read_predictions(preds + outs[:400]))
    q = es_baseline.quality
    assert remote.quality.labelled == local.quality.labelled == 400
    assert remote.quality.positives == local.quality.positives and remote.quality.scored == local.quality.scored
    assert remote.quality.delays == local.quality.delays
    for name, value in metrics(local.quality, q).items():
        assert metrics(remote.quality, q)[name] == pytest.approx(value, abs=1e-9), name
    assert remote.latency == local.latency


def test_late_outcomes_backfill_windows_already_analysed_without_duplicates(each_engine, es_baseline):
    es = each_engine  # the same test on each real engine
    store_baseline(es.client, es_baseline, es.prefix)
    good, good_outs = records(draw(600, 90), start=T0, tag="a")
    bad, bad_outs = records(draw(600, 91, flipped=0.5), start=T0 + timedelta(hours=1), tag="b")
    ship(es, good + bad)
    analyzer = Analyzer(es.client, config_for(es, backfill="2h", recent_days=0))
    job = analyzer.config.models[0]
    now = T0 + timedelta(hours=2)
    assert analyzer.run_model(job, now=now) == 2
    first, second = "2026-11-23T00:00:00.000Z", "2026-11-23T01:00:00.000Z"
    before = quality_docs(es, second)
    assert before[("label_coverage", None)]["value"] == 0.0 and before[("label_coverage", None)]["labels_pending"]
    assert not [k for k in before if k[0] == "quality_drop"], "nothing labelled: no realised quality yet"
    assert before[("estimated_quality_drop", "accuracy")]["status"] == "ok", "the estimate needs no label"
    assert before[("latency", "p95")]["value"] > 0
    counts = (len(es.docs("metrics")), len(es.docs("findings")))
    # hours later the outcomes arrive, in any order; the daemon has no new window to analyse
    ship(es, bad_outs[::-1] + good_outs)
    redone = analyzer.backfill_outcomes(job, now + timedelta(hours=30))
    assert [d.isoformat() for d in redone] == ["2026-11-23T00:00:00+00:00", "2026-11-23T01:00:00+00:00"]
    after_good, after_bad = quality_docs(es, first), quality_docs(es, second)
    assert after_good[("label_coverage", None)]["value"] == 1.0
    assert after_bad[("quality_drop", "accuracy")]["status"] in ("warning", "critical")
    assert after_good[("quality_drop", "accuracy")]["status"] == "ok"
    assert after_bad[("label_delay", None)]["value"] > 3 * 3600
    found = [h["_source"]["predwatch"] for h in es.docs("findings")]
    drops = [f for f in found if f["check"] == "quality_drop"]
    assert drops and {f["window"]["start"] for f in drops} == {second}, "stamped with the prediction window"
    realised = sum(1 for k in after_good if k[0] == "quality_drop") + sum(1 for k in after_bad if k[0] == "quality_drop")
    assert realised == 4, "the two judged metrics of each window gained"
    grouped = sum(1 for h in es.docs("metrics") if "segment" in h["_source"]["predwatch"])  # quality per device
    assert len(es.docs("metrics")) == counts[0] + realised + grouped + 2, \
        "overwritten, not duplicated (plus two label delays and the groups' quality)"
    assert len(es.docs("findings")) == counts[1] + len(drops)
    # a second pass has nothing new: nothing re-analysed
    assert analyzer.backfill_outcomes(job, now + timedelta(hours=31)) == []


def test_log_outcome_goes_through_the_handler_and_ship_like_any_record(es, es_baseline, tmp_path):
    import logging

    from logging_adapter import PredictionLogger, configure
    from logging_adapter.elastic import make_client
    from logging_adapter.handler import ElasticsearchHandler
    from logging_adapter.ship import Shipper
    from test_shipping import plog_to

    handler = ElasticsearchHandler(make_client(es.settings), prefix=es.prefix, spool_dir=tmp_path / "spool",
                                   flush_interval=0.05)
    plog = plog_to(handler)
    pid = plog.log({"x": 0.3, "device": "ios"}, 0.7, timestamp=T0.timestamp())
    assert plog.log_outcome(pid, 1, timestamp=T0.timestamp() + 3600)
    assert plog.log_outcome(pid, 1, timestamp=T0.timestamp() + 3600)  # a retry of the same outcome
    assert plog.log_outcome(pid, 0, timestamp=T0.timestamp() + 7200)  # a correction, later
    assert handler.flush(30)
    handler.close()
    (pred,) = es.docs("predictions-*")
    outcomes = es.docs("outcomes-*")
    assert pred["_id"] == pid and len(outcomes) == 2, "the retry is a duplicate, the correction is kept"
    assert {o["_source"]["event"]["dataset"] for o in outcomes} == {"predwatch.outcome"}
    # a file of outcomes written by the logger, shipped by `predwatch ship`
    path = tmp_path / "outcomes.jsonl"
    configure(path=str(path), logger="predwatch.outcomes.test")
    labeller = PredictionLogger(MODEL, "7", logger=logging.getLogger("predwatch.outcomes.test"))
    labeller.log_outcome("from-a-file", "yes", timestamp=T0.timestamp())
    for h in logging.getLogger("predwatch.outcomes.test").handlers:
        h.flush()
    line = orjson.loads(path.read_bytes().splitlines()[0])
    assert line["event"]["dataset"] == "predwatch.outcome" and line["predwatch"]["actual"] == "yes"
    shipper = Shipper(make_client(es.settings), [str(path)], state_dir=tmp_path / "state", prefix=es.prefix)
    shipper.run(once=True)
    assert len(es.docs("outcomes-*")) == 3
    # the join keeps the latest outcome: the correction
    join_outcomes(es.client, es.prefix, MODEL, lambda v: es_baseline)
    (pred,) = es.docs("predictions-*")
    assert pred["_source"]["predwatch"]["outcome"]["actual"] == "0"
    assert pred["_source"]["predwatch"]["outcome"]["positive"] is False
    assert pred["_source"]["predwatch"]["outcome"]["delay_s"] == pytest.approx(7200, abs=1)


def test_multiclass_confusion_and_confidence_bins_from_aggregations_equal_the_local_ones(es):
    from test_quality import class_records, three_classes

    baseline = build_baseline(three_classes(5000, 1), model="router", version="1", predictions=["label", "proba"],
                              actual="actual")
    preds, outs = class_records(three_classes(400, 5, swapped=0.2))
    ship(es, preds + outs)
    join_outcomes(es.client, es.prefix, "router", lambda v: baseline)
    remote = EsWindowProfiler(es.client, baseline, prefix=es.prefix).profile(
        "2026-11-23T00:00:00.000Z", "2026-11-23T01:00:00.000Z", "1")
    local = LocalProfiler(baseline).profile(read_predictions(preds + outs))
    assert remote.quality.confusion == local.quality.confusion and remote.quality.labelled == 400
    assert remote.quality.scored == local.quality.scored
    assert metrics(remote.quality, baseline.quality) == metrics(local.quality, baseline.quality)


def test_regression_errors_from_aggregations_equal_the_local_ones(es):
    import numpy as np
    import pandas as pd

    from logging_adapter import contract as c

    rng = np.random.default_rng(3)
    y = rng.normal(100, 20, 3000)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 3000).round(3), "eta": (y + rng.normal(0, 5, 3000)).round(2),
                              "minutes": y.round(2)})
    baseline = build_baseline(reference, model="eta", version="2", predictions=["eta"], actual="minutes")
    assert baseline.quality.task == "regression"
    preds, outs = [], []
    for i in range(300):
        at = T0 + timedelta(seconds=10 * i)
        truth = float(rng.normal(100, 20))
        preds.append({"@timestamp": c.utc_iso(at), "predwatch": {"model": {"name": "eta", "version": "2"},
                      "prediction_id": f"e{i}", "features": {"x": 0.1}, "prediction": round(truth + 30, 2)}})
        outs.append(c.outcome_record(f"e{i}", round(truth, 2), model="eta", version="2",
                                     timestamp=c.utc_iso(at + timedelta(minutes=40))))
    ship(es, preds + outs)
    join_outcomes(es.client, es.prefix, "eta", lambda v: baseline)
    remote = EsWindowProfiler(es.client, baseline, prefix=es.prefix).profile(
        "2026-11-23T00:00:00.000Z", "2026-11-23T01:00:00.000Z", "2")
    local = LocalProfiler(baseline).profile(read_predictions(preds + outs))
    got, want = metrics(remote.quality, baseline.quality), metrics(local.quality, baseline.quality)
    assert got == pytest.approx(want) and want["mean_error"] == pytest.approx(30, abs=0.01)
    from analyzers.core.window import analyze
    found = {(f.check, f.metric) for f in analyze(remote, baseline).findings}
    assert {("quality_drop", "mae"), ("prediction_bias", "mean_error")} <= found, "a 30-minute bias"


def test_the_analyze_command_joins_outcomes_before_it_analyses(es, es_baseline, tmp_path):
    import subprocess
    import sys

    store_baseline(es.client, es_baseline, es.prefix)
    preds, outs = records(draw(400, 95, flipped=0.5))
    ship(es, preds + outs)
    cfg = tmp_path / "predwatch.toml"
    cfg.write_text(f'[elasticsearch]\nurl = "{es.url}"\ndistribution = "{es.settings.distribution}"\n'
                   f'prefix = "{es.prefix}"\n\n[[models]]\nname = "{MODEL}"\nversion = "7"\nwindow = "1h"\n')
    proc = subprocess.run([sys.executable, "-m", "predwatch", "analyze", "--config", str(cfg), "--model", MODEL,
                           "--start", "2026-11-23T00:00:00Z", "--end", "2026-11-23T01:00:00Z"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "400 outcomes joined to their predictions" in proc.stdout
    drops = [h["_source"]["predwatch"] for h in es.docs("findings") if h["_source"]["predwatch"]["check"] == "quality_drop"]
    assert {d["metric"] for d in drops} >= {"accuracy"}
