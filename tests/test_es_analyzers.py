"""Analyzers on Elasticsearch: aggregation profiles, results indexed back, the daemon (real server)."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import orjson
import pandas as pd
import pytest

import incidents
import synth
from analyzers.store import results as res
from analyzers.store.state import get_state
from analyzers.store.baselines import store_baseline
from analyzers.core.checks import findings
from analyzers.daemon.analyzer import Analyzer
from analyzers.daemon.config import DaemonConfig, ModelJob, align, iso, parse_duration
from analyzers.sources.elastic import EsWindowProfiler
from analyzers.sources.jsonl import read_predictions
from analyzers.sources.local import LocalProfiler
from analyzers.core.window import analyze
from conftest import state_of, terminate, wait_until
from logging_adapter.bulk import doc_from_line, send_bulk


def seed(es, records: list[dict]) -> None:
    docs = [doc_from_line(orjson.dumps(r), es.prefix) for r in records]
    for i in range(0, len(docs), 500):
        outcome = send_bulk(es.client, docs[i:i + 500])
        assert outcome.created == len(docs[i:i + 500]), outcome
    es.refresh()


def frame_records(frame: pd.DataFrame, start: datetime, seconds: float, version: str = "7") -> list[dict]:
    recs = synth.records(frame, version=version, start=start.strftime("%Y-%m-%dT%H:%M:%S"))
    step = seconds / max(len(recs), 1)
    for i, rec in enumerate(recs):
        rec["@timestamp"] = iso(start + timedelta(seconds=i * step))
        rec["predwatch"]["prediction_id"] = f"{start.isoformat()}-{version}-{i}"
    return recs


def config_for(es, **model) -> DaemonConfig:
    doc = {"elasticsearch": {"url": es.url, "distribution": es.settings.distribution, "prefix": es.prefix},
           "models": [{"name": "checkout-risk", "version": "7", "window": "1h", "lag": "0s", **model}]}
    return DaemonConfig.from_dict(doc)


T0 = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)


def test_elasticsearch_and_local_profiles_lead_to_the_same_findings(each_engine, baseline):
    es = each_engine  # the same test on each real engine
    quiet = synth.table(400, seed=101)
    bad, _ = incidents.unit_changes(400, 102)
    bad.loc[:39, "country"] = "XX"  # and a new category in a tenth
    bad["visits"] = bad["visits"].astype(object)
    bad.loc[40:99, "visits"] = "many"  # strings in a numeric feature
    bad["query"] = [q + " zzunknown qqnew" for q in bad["query"]]
    recs_quiet = frame_records(quiet, T0, 3000)
    recs_bad = frame_records(bad, T0 + timedelta(hours=1), 3000)
    seed(es, recs_quiet + recs_bad)
    store_baseline(es.client, baseline, es.prefix)
    for recs, start in ((recs_quiet, T0), (recs_bad, T0 + timedelta(hours=1))):
        profiler = EsWindowProfiler(es.client, baseline, prefix=es.prefix)
        remote = profiler.profile(iso(start), iso(start + timedelta(hours=1)), "7")
        local = LocalProfiler(baseline).profile(read_predictions(recs))
        assert remote.records == local.records == 400
        assert remote.start == local.start
        for name, lc in local.columns.items():
            rc = remote.columns[name]
            assert (rc.present - rc.nulls, rc.mismatched, rc.bins, rc.categories, rc.unseen) == \
                   (lc.present - lc.nulls, lc.mismatched, lc.bins, lc.categories, lc.unseen), name
            if lc.kind == "text":
                assert (rc.tokens, rc.oov_tokens) == (lc.tokens, lc.oov_tokens), "the sample is the whole window"
        r_find = {(f.check, f.feature, f.status): round(f.value, 6) for f in findings(analyze(remote, baseline).results)}
        l_find = {(f.check, f.feature, f.status): round(f.value, 6) for f in findings(analyze(local, baseline).results)}
        assert r_find == l_find
        assert profiler.requests <= 5, "a bounded number of searches per window (the fifth: the joint checks' sample)"
    assert {("out_of_range", "amount"), ("unseen_category", "country"), ("type_mismatch", "visits"),
            ("oov_rate", "query")} <= {(k[0], k[1]) for k in r_find}


def test_text_statistics_come_from_a_bounded_seeded_sample(es, baseline):
    recs = frame_records(synth.table(300, seed=103), T0, 3000)
    seed(es, recs)
    first = EsWindowProfiler(es.client, baseline, prefix=es.prefix, text_sample=50)
    a = first.profile(iso(T0), iso(T0 + timedelta(hours=1)))
    b = EsWindowProfiler(es.client, baseline, prefix=es.prefix, text_sample=50).profile(
        iso(T0), iso(T0 + timedelta(hours=1)))
    assert a.columns["query"].texts == 50 and a.columns["query"].present == 300
    assert a.columns["query"].tokens == b.columns["query"].tokens, "the same sample on a re-run"


def test_windows_are_analysed_and_results_indexed_exactly_once(each_engine, baseline):
    es = each_engine  # the same test on each real engine
    store_baseline(es.client, baseline, es.prefix)
    frames = [synth.table(300, seed=110), incidents.feature_vanishes(300, 111)[0], synth.table(300, seed=112)]
    seed(es, [r for i, f in enumerate(frames) for r in frame_records(f, T0 + timedelta(hours=i), 3000)])
    analyzer = Analyzer(es.client, config_for(es, backfill="3h"))
    job = analyzer.config.models[0]
    now = T0 + timedelta(hours=3)
    assert analyzer.due_windows(job, now) == [(T0 + timedelta(hours=i), T0 + timedelta(hours=i + 1)) for i in range(3)]
    assert analyzer.run_model(job, now=now) == 3
    assert analyzer.run_model(job, now=now) == 0, "the watermark remembers"
    metrics = es.docs("metrics")
    per_window = {}
    for hit in metrics:
        per_window.setdefault(hit["_source"]["predwatch"]["window"]["start"], []).append(hit["_id"])
    counts = [len(per_window[iso(T0 + timedelta(hours=i))]) for i in range(3)]
    assert counts[0] == counts[2] > counts[1] > 0, "checks that cannot measure a vanished feature are skipped"
    found = [h["_source"]["predwatch"] for h in es.docs("findings")]
    assert [(f["check"], f["feature"], f["window"]["start"]) for f in found] == \
           [("missing_feature", "age", iso(T0 + timedelta(hours=1)))]
    # a new baseline for the same version replaces the cached one
    from dataclasses import replace
    store_baseline(es.client, replace(baseline, created="2030-01-01T00:00:00.000Z"), es.prefix)
    assert analyzer.baselines.get("checkout-risk", "7").created == "2030-01-01T00:00:00.000Z"
    assert analyzer.baselines.get("checkout-risk", "nope") is None
    # a re-run of a window overwrites instead of duplicating
    analyzer.analyze_window(job, T0, T0 + timedelta(hours=1), refresh=True)
    assert len(es.docs("metrics")) == len(metrics)
    doc = next(h["_source"] for h in metrics if h["_source"]["predwatch"]["check"] == "distribution_shift")
    assert doc["event"]["dataset"] == res.METRIC_DATASET and doc["predwatch"]["status"] == "ok"
    assert doc["predwatch"]["n_window"] > 0 and doc["predwatch"]["threshold"] == 0.1


def test_missing_baseline_is_an_error_result_and_other_models_proceed(es, baseline):
    store_baseline(es.client, baseline, es.prefix)
    other = synth.records(synth.table(50, seed=120), model="fraud-model", version="3",
                          start=T0.strftime("%Y-%m-%dT%H:%M:%S"))
    seed(es, frame_records(synth.table(200, seed=121), T0, 3000) + other)
    cfg = DaemonConfig.from_dict({
        "elasticsearch": {"url": es.url, "distribution": es.settings.distribution, "prefix": es.prefix},
        "models": [{"name": "fraud-model", "window": "1h", "lag": "0s", "backfill": "1h"},
                   {"name": "checkout-risk", "version": "7", "window": "1h", "lag": "0s", "backfill": "1h"}]})
    analyzer = Analyzer(es.client, cfg)
    for job in cfg.models:
        analyzer.run_model(job, now=T0 + timedelta(hours=1))
    errors = [h["_source"] for h in es.docs("findings") if h["_source"]["predwatch"]["check"] == "analysis_error"]
    assert len(errors) == 1 and "no baseline for model 'fraud-model' version '3'" in errors[0]["message"]
    checked = {h["_source"]["predwatch"]["model"]["name"] for h in es.docs("metrics")}
    assert checked == {"checkout-risk"}


def test_records_without_a_version_use_the_unversioned_baseline(es, baseline):
    from dataclasses import replace
    store_baseline(es.client, replace(baseline, version=None), es.prefix)
    recs = frame_records(synth.table(100, seed=160), T0, 3000)
    for r in recs:
        del r["predwatch"]["model"]["version"]
    seed(es, recs)
    cfg = DaemonConfig.from_dict({"elasticsearch": {"url": es.url, "prefix": es.prefix,
                                                    "distribution": es.settings.distribution},
                                  "models": [{"name": "checkout-risk", "window": "1h"}]})
    summary = Analyzer(es.client, cfg).analyze_window(cfg.models[0], T0, T0 + timedelta(hours=1), refresh=True)
    assert summary == {"records": 100, "findings": 0, "errors": 0, "incomplete": 0}


def test_no_data_and_volume_drop_are_findings(es, baseline):
    store_baseline(es.client, baseline, es.prefix)
    days = [T0 - timedelta(days=d) for d in range(3, 0, -1)]
    recs = []
    for day in days:
        recs += frame_records(synth.table(200, seed=day.day), day, 3000)
    recs += frame_records(synth.table(30, seed=130), T0, 3000)  # today: far below the usual 200
    seed(es, recs)
    analyzer = Analyzer(es.client, config_for(es))
    job = analyzer.config.models[0]
    for day in days + [T0]:
        analyzer.analyze_window(job, day, day + timedelta(hours=1), refresh=True)
    analyzer.analyze_window(job, T0 + timedelta(hours=1), T0 + timedelta(hours=2), refresh=True)  # empty
    unversioned = DaemonConfig.from_dict({"elasticsearch": {"url": es.url, "prefix": es.prefix,
                                                            "distribution": es.settings.distribution},
                                          "models": [{"name": "checkout-risk", "window": "1h"}]})
    quiet_model = Analyzer(es.client, unversioned)
    quiet_model.analyze_window(unversioned.models[0], T0 + timedelta(hours=2), T0 + timedelta(hours=3), refresh=True)
    found = {(h["_source"]["predwatch"]["check"], h["_source"]["predwatch"]["window"]["start"])
             for h in es.docs("findings")}
    assert ("volume_drop", iso(T0)) in found
    assert ("no_data", iso(T0 + timedelta(hours=1))) in found
    assert ("no_data", iso(T0 + timedelta(hours=2))) in found, "an empty window without a version is no_data"
    assert "analysis_error" not in {check for check, _ in found}


def test_analyze_command_backfills_a_range(es, baseline, tmp_path):
    store_baseline(es.client, baseline, es.prefix)
    seed(es, frame_records(incidents.strings_in_numeric(200, 140)[0], T0, 3000))
    cfg = tmp_path / "predwatch.toml"
    cfg.write_text(f'[elasticsearch]\nurl = "{es.url}"\ndistribution = "{es.settings.distribution}"\n'
                   f'prefix = "{es.prefix}"\n\n[[models]]\nname = "checkout-risk"\nversion = "7"\nwindow = "30m"\n')
    proc = subprocess.run([sys.executable, "-m", "predwatch", "analyze", "--config", str(cfg), "--model",
                           "checkout-risk", "--start", iso(T0), "--end", iso(T0 + timedelta(hours=1))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.count("checkout-risk [") == 2 and "type_mismatch" not in proc.stderr
    found = {h["_source"]["predwatch"]["check"] for h in es.docs("findings")}
    assert "type_mismatch" in found


def test_daemon_killed_mid_backfill_resumes_every_window_exactly_once(es, baseline, tmp_path):
    store_baseline(es.client, baseline, es.prefix)
    now = datetime.now(timezone.utc)
    window = timedelta(minutes=1)
    first = align(now - timedelta(minutes=12), window)
    recs = []
    for i in range(12):
        recs += frame_records(synth.table(20, seed=150 + i), first + i * window, 50)
    seed(es, recs)
    cfg = tmp_path / "predwatch.toml"
    cfg.write_text(f'[elasticsearch]\nurl = "{es.url}"\ndistribution = "{es.settings.distribution}"\n'
                   f'prefix = "{es.prefix}"\n\n[daemon]\nheartbeat = "1s"\nlease = "3s"\n\n[[models]]\nname = "checkout-risk"\n'
                   f'version = "7"\nwindow = "1m"\nlag = "0s"\nbackfill = "14m"\nevery = "1s"\n')  # reaches first: the
    # daemon's own backfill start may be a minute or two later than the test's (it settles a tick before it works)
    cmd = [sys.executable, "-m", "predwatch", "daemon", "--config", str(cfg)]
    key = ModelJob("checkout-risk", "7").key

    def watermark() -> datetime | None:
        state = state_of(es, key)
        return datetime.fromisoformat(state["end"].replace("Z", "+00:00")) if state else None

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: (watermark() or first) >= first + 3 * window, 90, interval=0.1)
    proc.kill()  # mid-backfill, no chance to clean up
    proc.wait()
    stopped_at = watermark()
    assert stopped_at is not None and stopped_at < align(datetime.now(timezone.utc), window), "killed mid-backfill"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    target = align(datetime.now(timezone.utc), window)
    wait_until(lambda: (watermark() or first) >= target, 120)
    _, err = terminate(proc)
    assert proc.returncode == 0, err
    assert "predwatch daemon stopped" in err
    volume = [h["_source"]["predwatch"] for h in es.docs("metrics") if h["_source"]["predwatch"]["check"] == "volume"]
    starts = sorted(v["window"]["start"] for v in volume)
    assert len(starts) == len(set(starts)), "no window twice"
    final = watermark()
    assert final >= target
    begin = datetime.fromisoformat(starts[0].replace("Z", "+00:00"))
    assert begin <= first, "the backfill starts before the first records"
    expected = [iso(begin + i * window) for i in range(int((final - begin) / window))]
    assert starts == expected, "every window from the backfill start to the watermark"
    assert sum(v["value"] for v in volume) == 240
    status = get_state(es.client, es.prefix, "status:checkout-risk:7")
    assert status and status["instance"].startswith(os.uname().nodename + ":")
    assert get_state(es.client, es.prefix, f"heartbeat:{status['instance']}") is None, "a clean stop says goodbye"


def test_durations_and_config_errors():
    assert parse_duration("90s") == timedelta(seconds=90) and parse_duration("2h") == timedelta(hours=2)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")
    with pytest.raises(ValueError, match="secrets come from the environment"):
        DaemonConfig.from_dict({"elasticsearch": {"password": "x"}})
