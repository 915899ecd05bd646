"""Findings that say where: the segments over-represented among a finding's offending records,
the same from local files and from Elasticsearch."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import numpy as np
import pytest

import incidents
import synth
from analyzers.core.checks import evaluate, findings
from analyzers.core.segments import segments_of
from analyzers.core.profile import ColumnProfile, WindowProfile
from analyzers.daemon.analyzer import Analyzer
from analyzers.sources.jsonl import read_predictions
from analyzers.sources.local import LocalProfiler
from analyzers.store.baselines import store_baseline
from conftest import write_jsonl
from test_es_analyzers import T0, config_for, frame_records, seed


def concentrated(n: int, seed: int):
    """A window with four problems, each in one segment: nulls in age from country=FR, amounts in
    thousands from members, a new country from non-members, strings in visits from country=DE."""
    frame = synth.table(n, seed=seed)
    rng = np.random.default_rng(seed)
    fr, member = frame["country"] == "FR", frame["is_member"]
    frame.loc[fr & (rng.random(n) < 0.9), "age"] = np.nan
    frame.loc[member & (rng.random(n) < 0.5), "amount"] *= 1000
    frame.loc[~member & ~fr & (rng.random(n) < 0.2), "country"] = "XX"
    frame["visits"] = frame["visits"].astype(object)
    frame.loc[(frame["country"] == "DE") & (rng.random(n) < 0.6), "visits"] = "many"
    return frame


EXPECTED = {("missing_feature", "age"): ("country", "FR"), ("out_of_range", "amount"): ("is_member", "true"),
            ("unseen_category", "country"): ("is_member", "false"), ("type_mismatch", "visits"): ("country", "DE")}


def local_findings(baseline, frame):
    profile = LocalProfiler(baseline).profile(read_predictions(synth.records(frame)))
    return {(f.check, f.feature): f for f in findings(evaluate(profile, baseline))}


@pytest.mark.parametrize("rows", [300, 2000])
def test_each_kind_of_problem_names_the_segment_it_comes_from(baseline, rows):
    found = local_findings(baseline, concentrated(rows, seed=7))
    for key, (feature, value) in EXPECTED.items():
        assert key in found, sorted(found)
        first = found[key].segments[0]
        assert (first["feature"], first["value"]) == (feature, value), found[key].segments
        assert first["share_of_offending"] > first["share_of_window"] + 0.25
        assert f"come from {feature}={value}, which is" in found[key].message


@pytest.mark.parametrize("incident", [incidents.null_rate_jumps, incidents.feature_vanishes,
                                      incidents.new_category_takes_a_tenth, incidents.unit_changes,
                                      incidents.strings_in_numeric], ids=lambda f: f.__name__)
def test_a_problem_spread_over_all_records_names_no_segment(baseline, incident):
    frame, key = incident(2000, 61)
    found = local_findings(baseline, frame)
    assert key in found
    assert found[key].segments == [], found[key].segments
    assert "come from" not in found[key].message


def test_quiet_windows_and_ok_results_carry_no_segments(baseline):
    profile = LocalProfiler(baseline).profile(read_predictions(synth.records(synth.table(20_000, seed=62))))
    results = evaluate(profile, baseline)
    assert findings(results) == []
    assert all(r.segments is None for r in results), "only findings are explained"
    # the natural nulls were counted all the same, bounded per segment feature
    assert sum(profile.columns["age"].offending["missing"]["country"].values()) == \
        profile.absent("age") + profile.columns["age"].nulls


def test_an_unseen_segment_value_the_profile_did_not_keep_is_never_overstated():
    window = WindowProfile(records=1000, columns={"device": ColumnProfile(
        "categorical", present=1000, categories={"web": 900}, unseen=100, unseen_values={"a": 30, "b": 20})})
    # "zz" is among the 50 unseen records not kept: counted as large as it could be (20), not as 0
    (zz,) = segments_of({"device": {"zz": 20, "web": 5}}, window)
    assert (zz.value, zz.share_of_window) == ("zz", 0.02)
    (a,) = segments_of({"device": {"a": 25, "web": 5}}, window)
    assert (a.value, a.share_of_window) == ("a", 0.03)


def test_check_json_text_and_report_show_the_segments(baseline_file, tmp_path):
    logs = write_jsonl(tmp_path / "preds.jsonl", synth.records(concentrated(2000, seed=8)))
    run = [sys.executable, "-m", "predwatch", "check", "--baseline", str(baseline_file), "--logs", str(logs)]
    as_json = subprocess.run([*run, "--format", "json"], capture_output=True, text=True, timeout=120)
    assert as_json.returncode == 1, as_json.stderr
    out = json.loads(as_json.stdout)
    ages = [f for f in out["findings"] if (f["check"], f["feature"]) == ("missing_feature", "age")]
    assert ages[0]["segments"][0]["feature"] == "country" and ages[0]["segments"][0]["value"] == "FR"
    assert set(ages[0]["segments"][0]) == {"feature", "value", "count", "share_of_offending", "share_of_window"}
    as_text = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert "of the missing values come from country=FR" in as_text.stdout
    page = tmp_path / "report.html"
    report = subprocess.run([sys.executable, "-m", "predwatch", "report", "--baseline", str(baseline_file),
                             "--logs", str(logs), "--out", str(page)], capture_output=True, text=True, timeout=120)
    assert report.returncode == 1, report.stderr
    assert "of the missing values come from country=FR" in page.read_text()


def test_elasticsearch_names_the_same_segments_with_one_search_per_finding(es, baseline):
    store_baseline(es.client, baseline, es.prefix)
    recs = frame_records(concentrated(600, seed=9), T0, 3000)
    seed(es, recs)
    local = local_findings_of_records(baseline, recs)
    analyzer = Analyzer(es.client, config_for(es, recent_days=0))
    job = analyzer.config.models[0]
    analyzer.analyze_window(job, T0, T0 + timedelta(hours=1), refresh=True)
    docs = [h["_source"] for h in es.docs("findings")]
    remote = {(d["predwatch"]["check"], d["predwatch"]["feature"]): d for d in docs}
    assert set(EXPECTED) <= set(remote)
    for key in EXPECTED:
        assert remote[key]["predwatch"]["segments"] == local[key].segments, key
        # (the messages differ only where Elasticsearch reads a null as absent)
        assert remote[key]["message"].split("; ")[-1] == local[key].message.split("; ")[-1]
        assert remote[key]["predwatch"]["segments_text"][0] == "=".join(EXPECTED[key])
    # the segments can be searched for in Kibana
    hits = es.client.search(index=f"{es.prefix}-findings*", query={"term": {"predwatch.segments_text": "country=FR"}})
    assert hits["hits"]["total"]["value"] >= 1
    # one search per explained finding, on top of what a quiet window costs
    seed(es, frame_records(synth.table(600, seed=10), T0 + timedelta(hours=1), 3000))
    before = analyzer.requests
    analyzer.analyze_window(job, T0 + timedelta(hours=1), T0 + timedelta(hours=2), refresh=True)
    quiet = analyzer.requests - before
    before = analyzer.requests
    analyzer.analyze_window(job, T0, T0 + timedelta(hours=1), refresh=True)
    explained = sum(1 for d in docs if d["predwatch"]["check"] in
                    ("missing_feature", "type_mismatch", "unseen_category", "out_of_range"))
    assert analyzer.requests - before == quiet + explained


def local_findings_of_records(baseline, recs):
    profile = LocalProfiler(baseline).profile(read_predictions(recs))
    return {(f.check, f.feature): f for f in findings(evaluate(profile, baseline))}
