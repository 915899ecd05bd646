"""Who is affected: quality per group and fairness between groups, on local files through ``predwatch check``.

The truth is known: a binary model with calibrated scores (P(label=1 | x) = score), a region input whose one
value carries 12% of the traffic, a store input of 50 values, and a gender input. Windows break one group (its
labels turn), or one gender's scores (its positive rate falls), or nothing at all.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analyzers.core.baseline import Baseline
from analyzers.core.groups import GroupProfile, merge_groups, rate_gap
from analyzers.core.profile import WindowProfile
from conftest import write_jsonl
from logging_adapter import contract as c

MODEL = "loan-risk"
T0 = datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)
REGIONS = ["north", "south", "east", "west", "centre", "coast", "hills", "islands"]
REGION_SHARES = [0.12] + [0.88 / 7] * 7  # north: 12% of the traffic


def draw(n: int, seed: int, *, turned: float = 0.0, region: str = "north", lower: float = 0.0,
         stores: int = 50, missed: float = 0.0) -> pd.DataFrame:
    """``n`` predictions with their outcomes. ``turned``: the share of ``region``'s labels that turn around
    (its accuracy falls by ``turned * (2 accuracy - 1)``); ``lower``: how far gender F's inputs, hence its
    scores and positive rate, move down (the model stays calibrated); ``missed``: the share of gender F's
    negatives that turn out positive (cases the model misses: F's true-positive rate falls, its positive rate
    does not)."""
    rng = np.random.default_rng(seed)
    gender = rng.choice(["F", "M"], n)
    x = rng.normal(0, 1, n) - np.where(gender == "F", lower, 0.0)
    regions = rng.choice(REGIONS, n, p=REGION_SHARES)
    score = 1 / (1 + np.exp(-2.5 * x))
    label = (rng.random(n) < score).astype(int)
    flip = (regions == region) & (rng.random(n) < turned)
    label = np.where(flip, 1 - label, label)
    label = np.where((gender == "F") & (label == 0) & (rng.random(n) < missed), 1, label)
    store = rng.integers(0, stores, n)
    return pd.DataFrame({"x": x.round(4), "region": regions, "store": [f"s{k:02d}" for k in store],
                         "gender": gender, "score": score.round(4), "label": label})


def write_window(frame: pd.DataFrame, tmp: Path, tag: str, around=None) -> list[str]:
    """Prediction records over one hour and their outcomes, in two files. ``around(i, row)``: the fields of
    record ``i`` around its prediction (``service``, ``host``, ``labels``)."""
    preds, outs = window_records(frame, tag, around)
    return [str(write_jsonl(tmp / f"{tag}-predictions.jsonl", preds)),
            str(write_jsonl(tmp / f"{tag}-outcomes.jsonl", outs))]


def window_records(frame: pd.DataFrame, tag: str, around=None) -> tuple[list[dict], list[dict]]:
    """The prediction records of :func:`write_window` and their outcome records."""
    preds, outs = [], []
    for i, row in enumerate(frame.itertuples()):
        at = T0 + timedelta(seconds=3600 * i / len(frame))
        pid = f"{tag}-{i}"
        preds.append({"@timestamp": c.utc_iso(at), "event": {"kind": "event", "dataset": c.DATASET},
                      **(around(i, row) if around else {}),
                      "predwatch": {"model": {"name": MODEL, "version": "1"}, "prediction_id": pid,
                                    "features": {"x": row.x, "region": row.region, "store": row.store,
                                                 "gender": row.gender}, "prediction": row.score}})
        outs.append(c.outcome_record(pid, int(row.label), model=MODEL, version="1",
                                     timestamp=c.utc_iso(at + timedelta(hours=5))))
    return preds, outs


def run(capsys, *argv: str) -> tuple[int, dict | None]:
    from predwatch.cli import main

    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith("{") else None


@pytest.fixture(scope="module")
def baseline_path(tmp_path_factory) -> str:
    from predwatch.cli import main

    tmp = tmp_path_factory.mktemp("groups")
    train = tmp / "held_out.csv"
    draw(20_000, 1).to_csv(train, index=False)
    out = tmp / "baseline.json"
    assert main(["baseline", "--data", str(train), "--model", MODEL, "--version", "1", "--prediction", "score",
                 "--actual", "label", "--sensitive", "gender", "--out", str(out)]) == 0
    return str(out)


def check(capsys, baseline: str, logs: list[str]) -> dict:
    code, doc = run(capsys, "check", "--baseline", baseline, "--logs", *logs, "--format", "json")
    assert code in (0, 1) and doc is not None
    return doc


def quality_findings(doc: dict) -> list[dict]:
    return [f for f in doc["findings"] if f["check"] == "quality_drop"]


def test_the_baseline_keeps_each_groups_quality_and_the_sensitive_rates(baseline_path):
    groups = Baseline.load(baseline_path).groups
    assert groups.fields == ["region", "store", "gender"] and groups.sensitive == ["gender"]
    assert (groups.column, groups.threshold) == ("prediction", 0.5)
    north = groups.quality["region"]["north"]
    assert 2_200 < north["rows"] < 2_600 and 0.75 < north["metrics"]["accuracy"] < 0.85
    assert len(groups.quality["store"]) == 50  # 400 held-out rows each
    rates = groups.rates["gender"]
    assert set(rates) == {"F", "M"} and all(r["labelled_positives"] > 4_000 for r in rates.values())


def test_a_group_of_12_percent_losing_15_points_is_named_while_overall_stays_quiet(baseline_path, tmp_path, capsys):
    # a quarter of north's labels turn: its accuracy falls by 0.25 * (2 * 0.8 - 1) = 15 points, the overall by 1.8
    doc = check(capsys, baseline_path, write_window(draw(5_000, 7, turned=0.25), tmp_path, "w"))
    found = quality_findings(doc)
    assert found, doc["findings"]
    assert {json.dumps(f.get("segment"), sort_keys=True) for f in found} == {
        json.dumps({"feature": "region", "value": "north"}, sort_keys=True)}
    accuracy = next(f for f in found if f["metric"] == "accuracy")
    assert 0.12 < accuracy["expected"] - accuracy["observed"] < 0.19, accuracy
    assert accuracy["severity"] == "critical" and 450 < accuracy["n_window"] < 750
    assert accuracy["segments"] == [{"feature": "region", "value": "north"}]
    assert "region=north" in accuracy["message"]
    # the overall quality moved within its levels: no quality_drop without a segment
    overall = doc["quality"]["metrics"]["accuracy"]
    assert 0.0 < overall["reference"] - overall["value"] < 0.03
    table = {(g["feature"], g["value"]): g for g in doc["quality_by_group"]}
    assert table[("region", "north")]["reference"] == "group" and {("gender", "F"), ("gender", "M")} <= set(table)
    assert sum(f == "region" for f, _ in table) == 8
    # the same window without the turn: nothing
    quiet = check(capsys, baseline_path, write_window(draw(5_000, 7), tmp_path, "q"))
    assert not quality_findings(quiet)


@pytest.mark.parametrize("size, seed", [(1_000, 11), (1_000, 12), (1_000, 13), (100_000, 21), (100_000, 22),
                                        (100_000, 23)])
def test_fifty_groups_drawn_from_the_reference_raise_nothing(baseline_path, tmp_path, capsys, size, seed):
    doc = check(capsys, baseline_path, write_window(draw(size, seed), tmp_path, f"s{seed}"))
    judged = [g for g in doc["quality_by_group"] if g["feature"] == "store"]
    assert len(judged) == (50 if size == 100_000 else 0)
    assert not quality_findings(doc), quality_findings(doc)
    assert not [f for f in doc["findings"] if f["check"] == "fairness_gap"]


def test_one_genders_positive_rate_falling_is_a_fairness_gap(baseline_path, tmp_path, capsys):
    # F's inputs move down by 0.4: its positive rate falls from 50% to about 37%
    doc = check(capsys, baseline_path, write_window(draw(5_000, 8, lower=0.4), tmp_path, "f"))
    gaps = {f["metric"]: f for f in doc["findings"] if f["check"] == "fairness_gap"}
    assert "demographic_parity" in gaps, doc["findings"]
    parity = gaps["demographic_parity"]
    assert parity["feature"] == "gender" and parity["severity"] == "critical"
    assert 0.08 < parity["observed"] < 0.2 and parity["expected"] < 0.03
    section = {g["metric"]: g for g in doc["fairness"]}
    lo, hi = section["demographic_parity"]["interval"]
    assert lo < section["demographic_parity"]["value"] < hi
    assert section["demographic_parity"]["rates"]["F"] < section["demographic_parity"]["rates"]["M"]


def test_a_positive_rate_gap_that_doubles_is_caught(tmp_path, capsys):
    from predwatch.cli import main

    train = tmp_path / "held_out.csv"
    draw(20_000, 2, lower=0.3).to_csv(train, index=False)  # a gap of about 0.11 already in the reference
    baseline = tmp_path / "b.json"
    assert main(["baseline", "--data", str(train), "--model", MODEL, "--prediction", "score", "--actual", "label",
                 "--sensitive", "gender", "--out", str(baseline)]) == 0
    capsys.readouterr()
    same = check(capsys, str(baseline), write_window(draw(5_000, 9, lower=0.3), tmp_path, "same"))
    assert not [f for f in same["findings"] if f["check"] == "fairness_gap"]
    doubled = check(capsys, str(baseline), write_window(draw(5_000, 9, lower=0.65), tmp_path, "doubled"))
    section = {g["metric"]: g for g in doubled["fairness"]}["demographic_parity"]
    assert section["value"] > 1.7 * section["reference"], section
    assert "demographic_parity" in {f["metric"] for f in doubled["findings"] if f["check"] == "fairness_gap"}


def test_the_fairness_figures_are_fairlearns(baseline_path, tmp_path, capsys):
    fairlearn = pytest.importorskip("fairlearn.metrics")
    frame = draw(6_000, 10, lower=0.3)
    doc = check(capsys, baseline_path, write_window(frame, tmp_path, "fl"))
    ours = {g["metric"]: g for g in doc["fairness"]}
    predicted = (frame.score >= 0.5).astype(int)
    parity = fairlearn.demographic_parity_difference(frame.label, predicted, sensitive_features=frame.gender)
    opportunity = fairlearn.equal_opportunity_difference(frame.label, predicted, sensitive_features=frame.gender)
    assert ours["demographic_parity"]["value"] == pytest.approx(parity, abs=1e-6)
    assert ours["equal_opportunity"]["value"] == pytest.approx(opportunity, abs=1e-6)
    # and the reference's, from the held-out data the baseline was built on
    held_out = draw(20_000, 1)
    reference = (held_out.score >= 0.5).astype(int)
    assert ours["demographic_parity"]["reference"] == pytest.approx(
        fairlearn.demographic_parity_difference(held_out.label, reference, sensitive_features=held_out.gender), abs=1e-6)
    assert ours["equal_opportunity"]["reference"] == pytest.approx(
        fairlearn.equal_opportunity_difference(held_out.label, reference, sensitive_features=held_out.gender), abs=1e-6)


def test_group_counts_merge_bounded_and_round_trip():
    a = WindowProfile(records=3, groups={"region": {"north": GroupProfile(2, 1), "south": GroupProfile(1, 0)}})
    b = WindowProfile(records=2, groups={"region": {"north": GroupProfile(1, 1), "west": GroupProfile(1, 1)}})
    merged = a.merge(b)
    assert {v: (g.predictions, g.positive) for v, g in merged.groups["region"].items()} == {
        "north": (3, 2), "south": (1, 0), "west": (1, 1)}
    assert WindowProfile.from_dict(merged.to_dict()).groups == merged.groups
    bounded = merge_groups(a.groups, b.groups, keep=1)["region"]
    assert set(bounded) == {"north", "(other)"} and bounded["(other)"].predictions == 2
    assert "groups" not in WindowProfile(records=1).to_dict()  # profiles without groups are as they were
    assert rate_gap({"F": (10, 99), "M": (50, 100)}, minimum=100) is None


def test_the_report_shows_quality_by_group_and_fairness(baseline_path, tmp_path, capsys):
    logs = write_window(draw(5_000, 7, turned=0.25, lower=0.4), tmp_path, "r")
    out = tmp_path / "report.html"
    code, _ = run(capsys, "report", "--baseline", baseline_path, "--logs", *logs, "--out", str(out))
    assert code in (0, 1)
    page = out.read_text()
    assert "Model quality by group" in page and "region=north" in page
    assert "<b>prediction</b> for region=north" in page  # the finding names its group
    assert "<h2>Fairness</h2>" in page and "demographic_parity" in page and "equal_opportunity" in page


HOSTS = ["web-1", "web-2", "web-3", "web-4", "web-5"]


def test_an_input_problem_from_one_host_is_named_by_host_name(baseline_path, tmp_path, capsys):
    frame = draw(5_000, 14)
    frame["x"] = frame["x"].astype(object)
    host = [HOSTS[i % 5] for i in range(len(frame))]
    broken = [h == "web-3" and i % 4 != 0 for i, h in enumerate(host)]  # web-3 loses x on 3 records of 4
    frame.loc[broken, "x"] = None
    logs = write_window(frame, tmp_path, "h", around=lambda i, row: {
        "service": {"name": "loans", "version": "7"}, "host": {"name": host[i]}, "labels": {"zone": f"z{i % 2}"}})
    doc = check(capsys, baseline_path, logs)
    missing = next(f for f in doc["findings"] if f["check"] == "missing_feature" and f["feature"] == "x")
    assert missing["segments"][0]["feature"] == "host.name" and missing["segments"][0]["value"] == "web-3", missing
    assert missing["segments"][0]["share_of_window"] == pytest.approx(0.2)
    assert "host.name=web-3" in missing["message"]
    assert not any(s["feature"] in ("service.version", "labels.zone") for s in missing["segments"])


def test_quality_per_service_version_without_a_reference_of_its_own(tmp_path, capsys):
    from predwatch.cli import main

    train = tmp_path / "held_out.csv"
    draw(20_000, 3).to_csv(train, index=False)
    baseline = tmp_path / "b.json"
    assert main(["baseline", "--data", str(train), "--model", MODEL, "--prediction", "score", "--actual", "label",
                 "--segment", "service.version", "--out", str(baseline)]) == 0
    capsys.readouterr()
    assert Baseline.load(baseline).groups.segments == ["service.version"]
    frame = draw(5_000, 15)
    deployed = np.random.default_rng(15).random(len(frame)) < 0.15  # version 8 serves 15% of the traffic ...
    turned = deployed & (np.random.default_rng(16).random(len(frame)) < 0.25)  # ... and a quarter of it is wrong
    frame.loc[turned, "label"] = 1 - frame.loc[turned, "label"]
    logs = write_window(frame, tmp_path, "v", around=lambda i, row: {
        "service": {"name": "loans", "version": "8" if deployed[i] else "7"}})
    doc = check(capsys, str(baseline), logs)
    found = quality_findings(doc)
    # the broken version is named, critical; its wrong answers also reach every region (a warning at most)
    critical = {(f["segment"]["feature"], f["segment"]["value"]) for f in found if f["severity"] == "critical"}
    assert critical == {("service.version", "8")}, [f["message"] for f in found]
    assert not [f for f in found if "segment" not in f]
    table = {(g["feature"], g["value"]): g for g in doc["quality_by_group"]}
    assert table[("service.version", "8")]["reference"] == "overall"


def test_a_group_finding_is_its_own_result_document(baseline_path, tmp_path):
    import orjson

    from analyzers.files import analyze_local
    from analyzers.store.results import result_docs

    window = analyze_local(write_window(draw(5_000, 7, turned=0.25), tmp_path, "d"), Baseline.load(baseline_path)
                           ).windows[0]
    docs = result_docs(window.results, prefix="p", model=MODEL, version="1", start="a", end="b", records=5_000)
    metrics = [orjson.loads(d.source)["predwatch"] for d in docs if d.index == "p-metrics"]
    assert len({d.id for d in docs if d.index == "p-metrics"}) == len(metrics)  # one per group, none overwritten
    grouped = [m for m in metrics if m["check"] == "quality_drop" and "segment" in m]
    assert {m["segment_text"] for m in grouped} >= {"region=north", "region=south", "gender=F", "gender=M"}
    north = next(m for m in grouped if m["segment_text"] == "region=north" and m["metric"] == "accuracy")
    assert north["status"] == "critical" and north["segments_text"] == ["region=north"]
    overall = [m for m in metrics if m["check"] == "quality_drop" and "segment" not in m]
    assert {m["metric"] for m in overall} == {"roc_auc", "accuracy"}


def test_a_watch_names_the_group_of_a_group_finding():
    import watcher_mustache

    from alerting.watches import FINDING_LINE

    finding = {"predwatch": {"severity": "critical", "model": {"name": "loans", "version": "1"}, "feature": "prediction",
                             "check": "quality_drop", "metric": "accuracy", "value": 0.19, "threshold": 0.15,
                             "segment": {"feature": "region", "value": "north"}, "segment_text": "region=north"},
               "message": "prediction: accuracy 0.65 on 600 labelled predictions of region=north"}
    line = watcher_mustache.render(FINDING_LINE, {"_source": finding})
    assert line.startswith("critical: loans v1 prediction for region=north quality_drop accuracy value 0.19"), line
    del finding["predwatch"]["segment_text"]
    assert "v1 prediction quality_drop accuracy" in watcher_mustache.render(FINDING_LINE, {"_source": finding})


def test_the_text_output_says_the_fairness_gaps(baseline_path, tmp_path, capsys):
    from predwatch.cli import main

    main(["check", "--baseline", baseline_path, "--logs", *write_window(draw(2_000, 17, lower=0.4), tmp_path, "t")])
    text = capsys.readouterr().out
    assert "fairness: gender demographic_parity" in text and "gender equal_opportunity" in text, text
    assert "fairness_gap" in text and "reference 0.0" in text


def test_one_genders_true_positive_rate_falling_is_an_equal_opportunity_gap(baseline_path, tmp_path, capsys):
    # a third of F's negatives turn out positive: the model, scoring them low, misses them
    doc = check(capsys, baseline_path, write_window(draw(5_000, 18, missed=0.35), tmp_path, "eo"))
    gaps = {f["metric"]: f for f in doc["findings"] if f["check"] == "fairness_gap"}
    assert set(gaps) == {"equal_opportunity"}, doc["findings"]
    section = {g["metric"]: g for g in doc["fairness"]}
    assert section["equal_opportunity"]["rates"]["F"] < section["equal_opportunity"]["rates"]["M"] - 0.1
    assert section["demographic_parity"]["value"] < 0.05


def test_a_service_that_profiles_in_process_counts_every_group_bounded(baseline_path, tmp_path):
    """``PredictionLogger(profile=, sample=)``: the profile records count each group's predictions and positives
    for every prediction, not only the sampled ones, and the counts equal those of the full records."""
    import logging

    from analyzers.core.baseline import Baseline
    from analyzers.files import analyze_local
    from logging_adapter import PredictionLogger, configure

    baseline = Baseline.load(baseline_path)
    frame = draw(6000, 71)
    preds, _ = window_records(frame, "prof")
    full = write_jsonl(tmp_path / "full.jsonl", preds)
    path = tmp_path / "service.jsonl"
    configure(path=str(path), logger="predwatch.test.groups-profiled")
    logger = logging.getLogger("predwatch.test.groups-profiled")
    plog = PredictionLogger(MODEL, "1", logger=logger, profile=baseline, sample=0.05)
    for rec in preds:
        p = rec["predwatch"]
        plog.log(p["features"], p["prediction"], prediction_id=p["prediction_id"],
                 timestamp=c.parse_time(rec["@timestamp"]).timestamp())
    plog.close()
    for handler in logger.handlers:
        handler.flush()
    counted = analyze_local([path], baseline).windows[0].profile
    every = analyze_local([full], baseline).windows[0].profile
    assert counted.records == every.records == 6000
    shape = {name: {v: (g.predictions, g.positive) for v, g in values.items()}
             for name, values in every.groups.items()}
    assert {name: {v: (g.predictions, g.positive) for v, g in values.items()}
            for name, values in counted.groups.items()} == shape
    assert set(shape) == {"region", "store", "gender"} and sum(n for n, _ in shape["region"].values()) == 6000
    assert all(len(values) <= 101 for values in shape.values()), "bounded: the most frequent values and (other)"
