"""Two versions side by side (``--compare CHAMPION CANDIDATE``): canary, shadow, champion and challenger, on local
files where the truth is known.

The model: a fraud-like score from a device, a country and an amount, outcomes drawn from the score itself (the
champion is calibrated). Its candidates: the same model (a retrained one, its scores jittered), one whose scores
are inverted for one country, one that is wrong more often (5 points of accuracy), and the same model on a canary
that is routed only mobile traffic.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analyzers.core.baseline import Baseline, build_baseline
from analyzers.core.versions import two_sample_psi
from analyzers.files import analyze_local
from conftest import write_jsonl
from logging_adapter import contract as c
from predwatch.cli import main

MODEL = "fraud"
DEVICES = np.array(["mobile", "desktop", "tablet"])
DEVICE_P = [0.35, 0.5, 0.15]
DEVICE_LOGIT = {"mobile": 1.2, "desktop": -0.6, "tablet": 0.0}
COUNTRIES = np.array(["DE", "FR", "US", "GB", "ES"])
COUNTRY_P = [0.3, 0.2, 0.2, 0.15, 0.15]
COUNTRY_LOGIT = {"DE": -0.5, "FR": -1.5, "US": 0.5, "GB": 0.0, "ES": 0.3}
VERSIONS = ("7", "8")
T0 = pd.Timestamp("2026-12-01T00:00:00", tz="UTC")


def traffic(n: int, seed: int, *, devices: list[float] = DEVICE_P) -> pd.DataFrame:
    """n requests with the champion's calibrated score and an outcome drawn from it."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "device": rng.choice(DEVICES, n, p=devices),
        "country": rng.choice(COUNTRIES, n, p=COUNTRY_P),
        "amount": rng.lognormal(3.0, 0.8, n).round(2),
    })
    logit = (frame["device"].map(DEVICE_LOGIT) + frame["country"].map(COUNTRY_LOGIT)
             + 0.03 * (frame["amount"] - 20)).to_numpy()
    frame["score"] = (1 / (1 + np.exp(-logit))).round(4)
    frame["label"] = (rng.random(n) < frame["score"]).astype(int)
    return frame


@pytest.fixture(scope="module")
def baseline() -> Baseline:
    return build_baseline(traffic(30_000, 1), model=MODEL, version="7", predictions=["score"], actual="label",
                          kinds={"device": "categorical", "country": "categorical"})


def records(frame: pd.DataFrame, version: str, tag: str, scores=None, shadow: bool = False) -> list[dict]:
    """Prediction records of one version; ``tag`` makes the ids (a shadow gives its champion's tag)."""
    scores = frame["score"].to_numpy() if scores is None else scores
    out = []
    for i, (row, score) in enumerate(zip(frame[["device", "country", "amount"]].to_dict("records"), scores)):
        ns = {"model": {"name": MODEL, "version": version}, "prediction_id": f"{tag}-{i}", "features": row,
              "prediction": round(float(score), 4)}
        if shadow:
            ns["shadow"] = True
        out.append({"@timestamp": c.utc_iso((T0 + pd.Timedelta(seconds=i % 3000)).to_pydatetime()), "predwatch": ns})
    return out


def outcomes(frame: pd.DataFrame, tag: str) -> list[dict]:
    return [c.outcome_record(f"{tag}-{i}", int(label), model=MODEL, version=None,
                             timestamp=c.utc_iso((T0 + pd.Timedelta(hours=2)).to_pydatetime()))
            for i, label in enumerate(frame["label"])]


def compared(baseline: Baseline, tmp: Path, *parts: list[dict]):
    """One window of everything, versions 7 and 8 compared: (result, the version findings as (check, feature))."""
    path = write_jsonl(tmp / "logs.jsonl", [r for part in parts for r in part])
    window = analyze_local([path], baseline, compare=VERSIONS).windows[0]
    found = {(f.check, f.metric or f.feature) for f in window.findings if f.check.startswith("version_")}
    return window, found


def jittered(frame: pd.DataFrame, seed: int, sd: float = 0.01) -> np.ndarray:
    """A retrained model that behaves alike: the same scores, each off by a little."""
    return np.clip(frame["score"].to_numpy() + np.random.default_rng(seed).normal(0, sd, len(frame)), 0, 1)


@pytest.mark.parametrize("n", [500, 20_000])
def test_a_candidate_that_behaves_alike_raises_nothing_as_a_canary_or_in_shadow(baseline, tmp_path, n):
    champion, candidate = traffic(n, 10 + n), traffic(n, 20 + n)
    window, found = compared(baseline, tmp_path,
                             records(champion, "7", "a"), records(candidate, "8", "b", jittered(candidate, 3)),
                             outcomes(champion, "a"), outcomes(candidate, "b"))
    assert found == set(), [f.message for f in window.findings]
    section = window.to_json()["versions_compared"]
    assert section["records"] == {"7": n, "8": n} and section["quality"]["8"]["labelled"] == n
    judged = {r.check for r in window.results}
    assert {"version_shift", "version_traffic_shift", "version_quality_gap"} <= judged

    shadow = records(champion, "8", "a", jittered(champion, 4), shadow=True)
    window, found = compared(baseline, tmp_path, records(champion, "7", "a"), shadow, outcomes(champion, "a"))
    assert found == set(), [f.message for f in window.findings]
    pairs = window.to_json()["versions_compared"]["shadow"]
    assert pairs["pairs"] == n and pairs["unpaired"] == 0 and 0 < pairs["label_disagreement"] < 0.02
    assert "version_disagreement" in {r.check for r in window.results}


def inverted(frame: pd.DataFrame, country: str = "FR") -> np.ndarray:
    """The candidate's bug: its scores are inverted for one country."""
    scores = frame["score"].to_numpy().copy()
    at = (frame["country"] == country).to_numpy()
    scores[at] = 1 - scores[at]
    return scores


def test_scores_inverted_for_one_country_are_a_version_shift_naming_it(baseline, tmp_path):
    champion, candidate = traffic(5000, 31), traffic(5000, 32)
    window, found = compared(baseline, tmp_path, records(champion, "7", "a"), records(candidate, "8", "b", inverted(candidate)))
    assert found == {("version_shift", "prediction")}, found
    shift = next(f for f in window.findings if f.check == "version_shift")
    assert shift.examples[0]["feature"] == "country" and shift.examples[0]["value"] == "FR", shift.examples
    assert "country=FR" in shift.message


def test_scores_inverted_for_one_country_disagree_in_shadow_and_the_segment_is_named(baseline, tmp_path):
    frame = traffic(5000, 41)
    window, found = compared(baseline, tmp_path, records(frame, "7", "a"),
                             records(frame, "8", "a", inverted(frame), shadow=True))
    assert ("version_disagreement", "prediction") in found, found
    finding = next(f for f in window.findings if f.check == "version_disagreement")
    assert finding.status == "critical" and finding.segments[0]["feature"] == "country"
    assert finding.segments[0]["value"] == "FR" and finding.segments[0]["share_of_offending"] == 1.0
    assert "country=FR" in finding.message
    shadow = window.to_json()["versions_compared"]["shadow"]
    assert shadow["pairs"] == 5000 and shadow["mean_abs_score_difference"] > 0.05


def test_a_candidate_worse_by_five_points_of_accuracy_is_a_version_quality_gap(baseline, tmp_path):
    champion, candidate = traffic(3000, 51), traffic(3000, 52)
    accuracy = float(((champion["score"] >= 0.5) == champion["label"]).mean())
    # wrong more often: a random share of its decisions flipped, as many as cost 5 points on average
    flip = np.random.default_rng(53).random(3000) < 0.05 / (2 * accuracy - 1)
    scores = np.where(flip, 1 - candidate["score"], candidate["score"])
    truth = float(((scores >= 0.5) == candidate["label"]).mean())
    assert accuracy - truth > 0.035, (accuracy, truth)  # the truth: about 5 points worse on these 3,000
    window, found = compared(baseline, tmp_path, records(champion, "7", "a"), records(candidate, "8", "b", scores),
                             outcomes(champion, "a"), outcomes(candidate, "b"))
    assert ("version_quality_gap", "accuracy") in found, found
    gap = next(f for f in window.findings if f.check == "version_quality_gap" and f.metric == "accuracy")
    assert gap.observed < gap.expected and "worse" in gap.message
    assert window.to_json()["versions_compared"]["quality"]["8"]["labelled"] == 3000


def test_a_canary_routed_only_mobile_traffic_is_a_traffic_shift_not_a_version_shift(baseline, tmp_path):
    """Nor a quality gap: within the mobile users the scores separate outcomes less well (ROC AUC 0.72 against
    0.79 for everyone), which the champion's own mobile users show too."""
    champion, candidate = traffic(6000, 61), traffic(3000, 62, devices=[1.0, 0.0, 0.0])
    window, found = compared(baseline, tmp_path, records(champion, "7", "a"), records(candidate, "8", "b"),
                             outcomes(champion, "a"), outcomes(candidate, "b"))
    assert ("version_traffic_shift", "device") in found, found
    assert {check for check, _ in found} == {"version_traffic_shift"}, [f.message for f in window.findings]
    gap = next(r for r in window.results if r.check == "version_quality_gap" and r.metric == "roc_auc")
    assert "mix of device" in gap.message and gap.n_baseline < 2500  # judged at the champion's mobile users' size
    # and the outputs do differ before the comparison adjusts for the routing: the test means something
    cmp = window.profile.compared
    bins = {v: {str(i): n for i, n in enumerate(cmp.side(v).columns["prediction"].bins)} for v in VERSIONS}
    unadjusted = two_sample_psi(bins["7"], bins["8"])
    assert unadjusted[0] > 0.25 and unadjusted[1] < 1e-10, unadjusted
    shift = next(r for r in window.results if r.check == "version_shift")
    assert "mix of device" in shift.message


def test_check_compare_json_contract_and_the_window_without_it_is_unchanged(baseline, tmp_path, capsys):
    """``predwatch check --compare 7 8 --format json``: the findings of the contract and a versions_compared
    section; without ``--compare`` the same window's JSON has neither."""
    base = tmp_path / "baseline.json"
    baseline.save(base)
    frame = traffic(3000, 71)
    logs = write_jsonl(tmp_path / "logs.jsonl", records(frame, "7", "a")
                       + records(frame, "8", "a", inverted(frame), shadow=True))
    code = main(["check", "--baseline", str(base), "--logs", str(logs), "--format", "json", "--compare", "7", "8"])
    out = json.loads(capsys.readouterr().out.splitlines()[0])
    assert code == 1
    checks = {(f["check"], f["feature"]) for f in out["findings"]}
    assert {("version_shift", "prediction"), ("version_disagreement", "prediction")} <= checks, checks
    assert out["versions_compared"]["champion"] == "7" and out["versions_compared"]["shadow"]["pairs"] == 3000
    assert {f["reference"] for f in out["findings"] if f["check"].startswith("version_")} == {"champion"}
    main(["check", "--baseline", str(base), "--logs", str(logs), "--format", "json"])
    plain = json.loads(capsys.readouterr().out.splitlines()[0])
    assert "versions_compared" not in plain and not any(f["check"].startswith("version_") for f in plain["findings"])


def test_shadow_pairs_stay_bounded_by_a_hash_sample_of_the_ids(baseline, tmp_path, monkeypatch):
    """Beyond the bound of waiting records, ids are sampled by hash: both records of a pair in or out, the
    share said, the disagreement still measured on the sample."""
    from analyzers.core import versions

    monkeypatch.setattr(versions, "WAITING_MAX", 500)
    frame = traffic(4000, 81)
    window, found = compared(baseline, tmp_path, records(frame, "7", "a"),  # every champion record waits first
                             records(frame, "8", "a", inverted(frame), shadow=True))
    shadow = window.to_json()["versions_compared"]["shadow"]
    assert shadow["sampled_share"] <= 0.125 and 0 < shadow["pairs"] <= 500 and shadow["unpaired"] == 0
    assert abs(shadow["pairs"] / 4000 - shadow["sampled_share"]) < 0.05
    assert ("version_disagreement", "prediction") in found


def test_pairs_split_across_the_byte_ranges_of_two_workers_are_paired_all_the_same(baseline, tmp_path, monkeypatch):
    """The champion's records in the first half of a file, the shadow's in the second: read by two workers in
    byte ranges, every pair is still found, and the window says what one process says."""
    from analyzers.sources import local

    frame = traffic(4000, 91)
    path = write_jsonl(tmp_path / "logs.jsonl", records(frame, "7", "a") + records(frame, "8", "a", inverted(frame),
                                                                                   shadow=True) + outcomes(frame, "a"))
    monkeypatch.setattr(local, "PARALLEL_MIN_BYTES", path.stat().st_size // 6)
    one, two = (analyze_local([path], baseline, compare=VERSIONS, workers=w).windows[0].to_json() for w in (1, 2))
    assert two == one
    assert one["versions_compared"]["shadow"]["pairs"] == 4000 and one["versions_compared"]["quality"]["8"]["labelled"] == 4000


def test_the_logger_marks_a_shadow_record_and_check_pairs_it_with_the_serving_one(baseline, tmp_path):
    """``PredictionLogger.log(..., shadow=True)`` under the serving record's id: the flag in the record, read by
    the fast reader, and the pair found."""
    import logging

    from logging_adapter import PredictionLogger, configure

    path = tmp_path / "service.jsonl"
    configure(path=str(path), logger="predwatch.test.shadow")
    logger = logging.getLogger("predwatch.test.shadow")
    serving = PredictionLogger(MODEL, "7", logger=logger)
    shadow = PredictionLogger(MODEL, "8", logger=logger)
    frame = traffic(300, 95)
    rows = frame[["device", "country", "amount"]].to_dict("records")
    for row, score, candidate in zip(rows, frame["score"], inverted(frame)):
        pid = serving.log(row, float(score))
        shadow.log(row, float(candidate), prediction_id=pid, shadow=True)
    for handler in logger.handlers:
        handler.flush()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["predwatch"].get("shadow") for line in lines[:2]] == [None, True]
    assert lines[0]["predwatch"]["prediction_id"] == lines[1]["predwatch"]["prediction_id"]
    window = analyze_local([path], baseline, compare=VERSIONS).windows[0]
    assert window.to_json()["versions_compared"]["shadow"]["pairs"] == 300


def test_the_report_and_the_text_draw_the_two_versions_side_by_side(baseline, tmp_path, capsys):
    base = tmp_path / "baseline.json"
    baseline.save(base)
    champion, candidate = traffic(3000, 101), traffic(3000, 102, devices=[1.0, 0.0, 0.0])
    logs = write_jsonl(tmp_path / "logs.jsonl", records(champion, "7", "a") + records(candidate, "8", "b")
                       + outcomes(champion, "a") + outcomes(candidate, "b"))
    out = tmp_path / "report.html"
    assert main(["report", "--baseline", str(base), "--logs", str(logs), "--compare", "7", "8", "--out", str(out)]) == 1
    html = out.read_text()
    assert "Versions side by side: 7 (champion) and 8 (candidate)" in html
    side = html.split("Versions side by side")[1].split("<h2>Features")[0]
    assert side.count("<section class=\"feature") == 4 and "version_traffic_shift" in side  # outputs and inputs
    assert "device" in side.split("<section")[1]  # the column with the finding first
    main(["report", "--baseline", str(base), "--logs", str(logs), "--out", str(out)])
    assert "Versions side by side" not in out.read_text()
    capsys.readouterr()
    main(["check", "--baseline", str(base), "--logs", str(logs), "--compare", "7", "8"])
    text = capsys.readouterr().out
    assert "versions: 7 (champion) 3,000 records, 8 (candidate) 3,000" in text and "on 3,000 labels" in text


# -- on the cluster ------------------------------------------------------------------------------------------------

def test_the_daemon_compares_the_versions_from_aggregations_as_the_local_files_do(es, baseline):
    """``[[models]] compare = ["7", "8"]``: the shadow inverted for one country, shipped to the real engine. The
    comparison counted from aggregations equals the local one (outputs per segment value, labelled counts, pairs),
    the champion's window holds version_shift and version_disagreement naming the country, and the candidate
    without a baseline of its own is no analysis_error."""
    from datetime import timedelta

    from analyzers.core.versions import adjusted_feature
    from analyzers.daemon.analyzer import Analyzer
    from analyzers.daemon.config import DaemonConfig
    from analyzers.sources.elastic import EsWindowProfiler
    from analyzers.sources.jsonl import read_predictions
    from analyzers.sources.local import LocalProfiler
    from analyzers.sources.outcomes import join_outcomes
    from analyzers.store.baselines import store_baseline
    from test_es_analyzers import seed as ship

    frame = traffic(2000, 111)
    champion = traffic(1500, 112, devices=[0.2, 0.6, 0.2])  # and a canary's traffic apart, mostly desktop
    recs = (records(frame, "7", "a") + records(frame, "8", "a", inverted(frame), shadow=True)
            + records(champion, "7", "c"))
    outs = outcomes(frame, "a") + outcomes(champion, "c")
    ship(es, recs + outs)
    store_baseline(es.client, baseline, es.prefix)
    joined = join_outcomes(es.client, es.prefix, MODEL, lambda v: baseline)
    assert joined.joined == 2000 + 2000 + 1500  # a shadow's id is joined into both versions' records
    es.refresh()

    start, end = c.utc_iso(T0.to_pydatetime()), c.utc_iso((T0 + pd.Timedelta(hours=1)).to_pydatetime())
    remote = EsWindowProfiler(es.client, baseline, prefix=es.prefix).compared(start, end, *VERSIONS)
    local = LocalProfiler(baseline, compare=VERSIONS).profile(read_predictions(recs + outs)).compared
    assert remote.outputs == local.outputs
    assert {v: p.records for v, p in remote.profiles.items()} == {"7": 3500, "8": 2000}
    assert adjusted_feature(remote, baseline) == "device"
    for version in VERSIONS:
        assert remote.side(version).quality.labelled == local.side(version).quality.labelled
        for value, q in local.quality[version]["device"].items():
            got = remote.quality[version]["device"][value]
            assert (got.labelled, got.positives, got.negatives) == (q.labelled, q.positives, q.negatives), value
    assert (remote.pairs.pairs, remote.pairs.disagreeing, remote.pairs.offending) == \
           (local.pairs.pairs, local.pairs.disagreeing, local.pairs.offending)

    config = DaemonConfig.from_dict({
        "elasticsearch": {"url": es.url, "distribution": es.settings.distribution, "prefix": es.prefix},
        "models": [{"name": MODEL, "window": "1h", "lag": "0s", "backfill": "1h", "recent_days": 0,
                    "compare": ["7", "8"]}]})
    analyzer = Analyzer(es.client, config)
    assert analyzer.run_model(config.models[0], now=(T0 + timedelta(hours=1)).to_pydatetime()) == 1
    found = [h["_source"]["predwatch"] for h in es.docs("findings")]
    said = {(f["check"], f["feature"], f["model"].get("version")) for f in found}
    assert {("version_shift", "prediction", "7"), ("version_disagreement", "prediction", "7")} <= said, said
    assert not any(f["check"] == "analysis_error" for f in found), found
    disagreement = next(f for f in found if f["check"] == "version_disagreement")
    assert disagreement["reference"] == "champion"
    incidents = [h["_source"]["predwatch"] for h in es.docs("incidents")]
    assert {("version_disagreement", "champion")} <= {(i["check"], i["reference"]) for i in incidents}, incidents
    assert disagreement["segments"][0]["value"] == "FR", disagreement


@pytest.mark.parametrize("compare, error", [
    (["7", "8"], None), ([7, 8], None), (["7"], "two different versions"), (["7", "7"], "two different versions"),
    ("7,8", "two different versions")])
def test_the_daemon_config_takes_a_champion_and_a_candidate(compare, error):
    from analyzers.daemon.config import DaemonConfig

    doc = {"elasticsearch": {"url": "http://127.0.0.1:9"}, "models": [{"name": MODEL, "compare": compare}]}
    if error is None:
        assert DaemonConfig.from_dict(doc).models[0].compare == ("7", "8")
    else:
        with pytest.raises(ValueError, match=error):
            DaemonConfig.from_dict(doc)
    doc["models"][0].update(compare=["7", "8"], version="8")
    with pytest.raises(ValueError, match="never be compared"):
        DaemonConfig.from_dict(doc)
