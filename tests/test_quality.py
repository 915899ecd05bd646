"""Model quality from delayed outcomes on local files: the outcome contract, quality_drop on realised
labels, estimated_quality_drop before they arrive, and latency_regression."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from analyzers.core.baseline import Baseline, build_baseline
from analyzers.core.quality import build_quality, metrics, reference_profile
from analyzers.files import analyze_local
from conftest import write_jsonl
from logging_adapter import contract as c

MODEL = "checkout-risk"
T0 = datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)


def draw(n: int, seed: int, *, spread: float = 1.0, flipped: float = 0.0, noise: float = 0.0) -> pd.DataFrame:
    """A binary model whose scores are calibrated: P(label=1 | x) = score. ``flipped``: the share of rows
    whose truth has turned around (concept drift: same inputs, same scores); ``noise``: labels flipped at random;
    ``spread``: how far the inputs (hence the scores) reach from the decision boundary."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, spread, n)
    device = rng.choice(["ios", "android", "web"], n, p=[0.5, 0.3, 0.2])
    score = 1 / (1 + np.exp(-2.5 * x))
    truth = np.where(rng.random(n) < flipped, 1 - score, score)
    label = (rng.random(n) < truth).astype(int)
    label = np.where(rng.random(n) < noise, 1 - label, label)
    return pd.DataFrame({"x": x.round(4), "device": device, "score": score.round(4), "label": label})


@pytest.fixture(scope="module")
def quality_baseline() -> Baseline:
    return build_baseline(draw(20_000, 1), model=MODEL, version="7", predictions=["score"], actual="label")


def records(frame: pd.DataFrame, start: datetime = T0, span: float = 3600.0, tag: str = "p"):
    """Prediction records spread over ``span`` seconds, and their outcome records known 3 to 30 hours later."""
    preds, outs = [], []
    for i, row in enumerate(frame.itertuples()):
        at = start + timedelta(seconds=span * i / len(frame))
        pid = f"{tag}-{i}"
        preds.append({"@timestamp": c.utc_iso(at), "event": {"kind": "event", "dataset": c.DATASET},
                      "predwatch": {"model": {"name": MODEL, "version": "7"}, "prediction_id": pid,
                                    "features": {"x": row.x, "device": row.device}, "prediction": row.score,
                                    "latency_ms": 2.0 + (i % 7) * 0.1}})
        known = at + timedelta(hours=3 + (i % 28))
        outs.append(c.outcome_record(pid, int(row.label), model=MODEL, version="7", timestamp=c.utc_iso(known)))
    return preds, outs


def check(baseline: Baseline, tmp: Path, *files: list[dict], window=None):
    paths = [write_jsonl(tmp / f"f{i}.jsonl", recs) for i, recs in enumerate(files)]
    return analyze_local(paths, baseline, window=window).windows


def quality_findings(result) -> set[tuple[str, str]]:
    return {(f.check, f.metric) for f in result.findings if f.check in ("quality_drop", "estimated_quality_drop")}


def test_the_reference_quality_is_kept_with_its_spread_and_calibration(quality_baseline, tmp_path):
    q = quality_baseline.quality
    assert (q.task, q.positive, q.threshold, q.scored) == ("binary", "1", 0.5, True)
    assert set(q.metrics) == {"roc_auc", "accuracy", "precision", "recall", "f1", "brier"}
    assert 0.8 < q.metrics["roc_auc"] < 0.95 and 0 < q.spread["accuracy"] < 0.01
    assert q.can_estimate and q.calibration_error < 0.02
    path = tmp_path / "b.json"
    quality_baseline.save(path)
    assert Baseline.load(path).quality == q
    # the task is inferred: multiclass labels, numbers for a regression
    three = pd.Series(np.random.default_rng(0).choice(["a", "b", "c"], 500))
    assert build_quality(three, three).task == "multiclass"
    y = pd.Series(np.random.default_rng(1).normal(10, 3, 500))
    reg = build_quality(y + 1.0, y)
    assert reg.task == "regression" and reg.metrics["mean_error"] == pytest.approx(1.0)
    assert reg.metrics["mae"] == pytest.approx(1.0) and reg.metrics["rmse"] == pytest.approx(1.0)


def test_binned_metrics_match_scikit_learn_formulas(quality_baseline):
    frame = draw(5000, 2)
    prof = reference_profile(quality_baseline.quality, frame["score"], frame["label"])
    got = metrics(prof, quality_baseline.quality)
    y, s = frame["label"].to_numpy(), frame["score"].to_numpy()
    pred = s >= 0.5
    tp, fp, fn = np.sum(pred & (y == 1)), np.sum(pred & (y == 0)), np.sum(~pred & (y == 1))
    assert got["accuracy"] == pytest.approx(np.mean(pred == y))
    assert got["precision"] == pytest.approx(tp / (tp + fp)) and got["recall"] == pytest.approx(tp / (tp + fn))
    assert got["brier"] == pytest.approx(np.mean((s - y) ** 2))
    ranks = pd.Series(s).rank().to_numpy()  # exact AUC (Mann-Whitney)
    n1, n0 = y.sum(), len(y) - y.sum()
    exact_auc = (ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    assert got["roc_auc"] == pytest.approx(exact_auc, abs=0.005)


@pytest.mark.parametrize("rows", [1000, 100_000])
def test_quiet_labelled_windows_raise_nothing(quality_baseline, tmp_path, rows):
    preds, outs = records(draw(rows, 10 + rows))
    (window,) = check(quality_baseline, tmp_path, preds, outs)
    assert window.findings == [], [f.message for f in window.findings]
    quality = json.loads(orjson.dumps(window.to_json()))["quality"]  # plain JSON all through
    assert quality["labelled"] == rows and quality["label_coverage"] == 1.0 and quality["judged"]
    assert quality["metrics"]["accuracy"]["reference"] == pytest.approx(quality_baseline.quality.metrics["accuracy"],
                                                                        abs=1e-6)
    assert abs(quality["metrics"]["accuracy"]["value"] - quality["metrics"]["accuracy"]["reference"]) < 0.05
    assert quality["estimated"]["accuracy"] == pytest.approx(quality["metrics"]["accuracy"]["value"], abs=0.03)


@pytest.mark.parametrize("case", ["concept_drift", "label_noise", "partial_labels"])
def test_quality_problems_are_caught_at_2000_predictions(quality_baseline, tmp_path, case):
    frame = draw(2000, 20, flipped=0.4 if case != "label_noise" else 0.0, noise=0.25 if case == "label_noise" else 0.0)
    preds, outs = records(frame)
    if case == "partial_labels":
        outs = outs[::3]  # a third of the outcomes known so far
    (window,) = check(quality_baseline, tmp_path, preds, outs)
    found = quality_findings(window)
    assert ("quality_drop", "accuracy") in found, [f.message for f in window.findings]
    # the inputs and the scores did not change: only quality can see this
    assert {f.check for f in window.findings} <= {"quality_drop"}, [f.message for f in window.findings]
    doc = next(f for f in window.to_json()["findings"] if f.get("metric") == "accuracy")
    assert doc["feature"] == "prediction" and doc["check"] == "quality_drop" and doc["expected"] > doc["observed"]
    coverage = window.to_json()["quality"]["label_coverage"]
    assert coverage == pytest.approx(1 / 3, abs=0.01) if case == "partial_labels" else coverage == 1.0


def test_scores_drifting_to_the_boundary_raise_the_estimate_before_any_label(quality_baseline, tmp_path):
    preds, _ = records(draw(2000, 30, spread=0.25))
    (window,) = check(quality_baseline, tmp_path, preds)
    assert ("estimated_quality_drop", "accuracy") in quality_findings(window)
    quality = window.to_json()["quality"]
    assert quality["labelled"] == 0 and quality["label_coverage"] == 0.0 and not quality["judged"]
    assert quality["estimated"]["accuracy"] < quality["metrics"]["accuracy"]["reference"] - 0.1
    assert set(quality["estimated"]["confusion"]) == {"tp", "fp", "fn", "tn"}
    assert "CBPE" in quality["estimate_note"]


def test_outcomes_join_in_any_order_file_and_delay_once_each(quality_baseline, tmp_path):
    preds, outs = records(draw(1500, 40, flipped=0.4))
    shuffled = list(outs)
    random.Random(0).shuffle(shuffled)
    stale = [dict(o, **{"@timestamp": "2026-11-22T00:00:00.000Z"}) for o in outs[:200]]  # older repeats
    for o in stale:
        o["predwatch"] = dict(o["predwatch"], actual=1 - o["predwatch"]["actual"])
    strays = [c.outcome_record(f"elsewhere-{i}", 1, model=MODEL, version="7", timestamp="2026-11-23T05:00:00.000Z")
              for i in range(30)]
    mixed = preds[:700] + shuffled[:600] + stale + preds[700:] + strays
    (apart,) = check(quality_baseline, tmp_path, preds, outs)
    (together,) = check(quality_baseline, tmp_path / "..", mixed, shuffled[600:], window=None)
    a, b = apart.to_json(), together.to_json()
    assert a["quality"]["metrics"] == b["quality"]["metrics"], "the latest outcome of each prediction, once"
    assert b["quality"]["labelled"] == 1500 and b["quality"]["outcomes_without_prediction"] == 30
    assert b["window"]["records"] == 1500 and b["window"]["rejected"] == 0, "outcomes are never predictions"
    delay = b["quality"]["median_label_delay_s"]
    assert 8 * 3600 < delay < 40 * 3600  # delays of 3 to 30 hours: a median of about 16 h, within a factor of 2


def test_an_outcome_belongs_to_its_predictions_window_whatever_its_own_time(quality_baseline, tmp_path):
    good, good_outs = records(draw(1000, 50), start=T0, tag="a")
    bad, bad_outs = records(draw(1000, 51, flipped=0.5), start=T0 + timedelta(days=1), tag="b")
    windows = check(quality_baseline, tmp_path, good + bad, bad_outs + good_outs, window=timedelta(days=1))
    assert [w.to_json()["quality"]["labelled"] for w in windows] == [1000, 1000]
    assert not quality_findings(windows[0]) and ("quality_drop", "accuracy") in quality_findings(windows[1])


def test_latency_percentiles_and_a_regression_against_recent_days(quality_baseline, tmp_path):
    days = []
    for d in range(4):
        preds, _ = records(draw(400, 60 + d), start=T0 + timedelta(days=d), tag=f"d{d}")
        if d == 3:
            for i, p in enumerate(preds):
                p["predwatch"]["latency_ms"] = 9.0 + (i % 5)
        days += preds
    windows = check(quality_baseline, tmp_path, days, window=timedelta(days=1))
    lat = windows[0].to_json()["latency"]
    assert lat["p50"] == pytest.approx(2.3, rel=0.06) and lat["p99"] == pytest.approx(2.6, rel=0.06)
    assert not [f for w in windows[:3] for f in w.recent_findings if f.check == "latency_regression"]
    (slow,) = [f for f in windows[3].recent_findings if f.check == "latency_regression"]
    assert slow.metric == "p95" and slow.value > 3 and slow.status == "critical"
    assert slow.finding()["reference"] == "recent"


def test_cli_contract_baseline_with_actual_and_check_json(tmp_path):
    data = tmp_path / "ref.csv"
    draw(5000, 70).to_csv(data, index=False)
    out = tmp_path / "b.json"
    made = subprocess.run([sys.executable, "-m", "predwatch", "baseline", "--data", str(data), "--model", MODEL,
                           "--version", "7", "--prediction", "score", "--actual", "label", "--task", "binary",
                           "--threshold", "0.5", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert "quality (binary, 5,000 labelled rows)" in made.stdout
    assert "label" not in json.loads(out.read_text())["columns"], "the outcome is not a feature"
    preds, outs = records(draw(2000, 71, flipped=0.4))
    logs = [write_jsonl(tmp_path / "preds.jsonl", preds), write_jsonl(tmp_path / "outcomes.jsonl", outs)]
    run = subprocess.run([sys.executable, "-m", "predwatch", "check", "--baseline", str(out), "--logs",
                          *map(str, logs), "--format", "json"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    (line,) = run.stdout.splitlines()
    doc = json.loads(line)
    assert doc["quality"]["labelled"] == 2000
    assert any(f["check"] == "quality_drop" and f["metric"] == "accuracy" and f["feature"] == "prediction"
               for f in doc["findings"])
    bad = subprocess.run([sys.executable, "-m", "predwatch", "baseline", "--data", str(data), "--model", MODEL,
                          "--prediction", "score", "--actual", "nope", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "actual column 'nope' is not in the data" in bad.stderr


def three_classes(n: int, seed: int, *, spread: float = 1.0, swapped: float = 0.0) -> pd.DataFrame:
    """A calibrated three-class model: the actual class is drawn from the probabilities the model gives;
    ``spread`` small puts inputs where the classes overlap; ``swapped``: the share of rows whose truth moved
    to the next class (concept drift)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, spread, (n, 2))
    logits = np.stack([2.5 * x[:, 0], 2.5 * x[:, 1], -2.5 * (x[:, 0] + x[:, 1])], axis=1)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    classes = np.array(["a", "b", "c"])
    actual = np.array([rng.choice(3, p=row) for row in p])
    actual = np.where(rng.random(n) < swapped, (actual + 1) % 3, actual)
    return pd.DataFrame({"x0": x[:, 0].round(4), "x1": x[:, 1].round(4), "label": classes[p.argmax(axis=1)],
                         "proba": p.max(axis=1).round(4), "actual": classes[actual]})


def class_records(frame: pd.DataFrame):
    preds, outs = [], []
    for i, row in enumerate(frame.itertuples()):
        at = T0 + timedelta(seconds=3600 * i / len(frame))
        preds.append({"@timestamp": c.utc_iso(at), "predwatch": {
            "model": {"name": "router", "version": "1"}, "prediction_id": f"m{i}",
            "features": {"x0": row.x0, "x1": row.x1}, "prediction": {"label": row.label, "proba": row.proba}}})
        outs.append(c.outcome_record(f"m{i}", row.actual, model="router", version="1",
                                     timestamp=c.utc_iso(at + timedelta(hours=5))))
    return preds, outs


def test_multiclass_quality_and_its_estimate_from_the_predicted_class_probability(tmp_path):
    train = three_classes(20_000, 1)
    baseline = build_baseline(train, model="router", version="1", predictions=["label", "proba"], actual="actual")
    q = baseline.quality
    assert (q.task, q.column, q.confidence_column, q.binned) == ("multiclass", "prediction.label",
                                                                "prediction.proba", "prediction.proba")
    assert set(q.metrics) == {"accuracy", "macro_f1"} and q.can_estimate
    quiet_preds, quiet_outs = class_records(three_classes(2000, 2))
    (quiet,) = check(baseline, tmp_path, quiet_preds, quiet_outs)
    assert quiet.findings == [], [f.message for f in quiet.findings]
    section = quiet.to_json()["quality"]
    assert section["estimated"]["accuracy"] == pytest.approx(section["metrics"]["accuracy"]["value"], abs=0.03)
    assert "class probabilities" in section["estimate_note"]
    # inputs where the classes overlap, no label yet: the estimate falls
    (blurred,) = check(baseline, tmp_path, class_records(three_classes(2000, 3, spread=0.3))[0])
    assert ("estimated_quality_drop", "accuracy") in quality_findings(blurred)
    # the truth moved for a third of the rows: realised accuracy and macro F1 fall, the estimate cannot know
    drift_preds, drift_outs = class_records(three_classes(2000, 4, swapped=0.35))
    (drifted,) = check(baseline, tmp_path, drift_preds, drift_outs)
    found = quality_findings(drifted)
    assert {("quality_drop", "accuracy"), ("quality_drop", "macro_f1")} <= found
    assert ("estimated_quality_drop", "accuracy") not in found


def demand(n: int, seed: int, *, bias: float = 0.0, sd: float = 10.0, start: str = "2026-01-01", days: int = 30
           ) -> pd.DataFrame:
    """A regression (units sold): the prediction misses the truth by an error of mean ``bias`` and spread ``sd``."""
    rng = np.random.default_rng(seed)
    truth = rng.gamma(4.0, 25.0, n)
    stamps = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(rng.integers(0, days * 86400, n), unit="s")
    return pd.DataFrame({"ts": stamps, "price": rng.normal(20, 4, n).round(2),
                         "forecast": (truth + rng.normal(bias, sd, n)).round(3), "sold": truth.round(3)})


def demand_records(frame: pd.DataFrame, tag: str):
    preds, outs = [], []
    for i, row in enumerate(frame.sort_values("ts").itertuples()):
        pid = f"{tag}-{i}"
        preds.append({"@timestamp": c.utc_iso(row.ts.to_pydatetime()), "predwatch": {
            "model": {"name": "demand", "version": "1"}, "prediction_id": pid, "features": {"price": row.price},
            "prediction": row.forecast}})
        outs.append(c.outcome_record(pid, row.sold, model="demand", version="1",
                                     timestamp=c.utc_iso(row.ts.to_pydatetime() + timedelta(days=1))))
    return preds, outs


@pytest.fixture(scope="module")
def demand_baseline() -> Baseline:
    return build_baseline(demand(30_000, 10, days=90), model="demand", version="1", predictions=["forecast"],
                          actual="sold", time_column="ts")


@pytest.mark.parametrize("bias,sd,seed", [(1.6, 9.3, 1), (3.0, 9.0, 2)])  # 0.16 and 0.30 reference RMSEs
def test_a_bias_while_the_error_fell_is_no_quality_drop(tmp_path, demand_baseline, bias, sd, seed):
    """Errors that shift by a constant while their spread shrinks: MAE improves 4-6%. That is not a drop of
    quality; the bias is judged as itself (prediction_bias), and only when it is a real systematic error."""
    baseline = demand_baseline
    rmse = baseline.quality.metrics["rmse"]
    (result,) = check(baseline, tmp_path, *demand_records(demand(3000, 20 + seed, bias=bias, sd=sd, start="2026-05-01"),
                                                          "may"))
    mae = result.quality["metrics"]["mae"]
    assert 0.93 < mae["value"] / mae["reference"] < 0.97, "the error fell"
    assert bias / rmse == pytest.approx(round(bias / 10, 2), abs=0.03)
    assert not [f for f in result.findings if f.check == "quality_drop"], [f.message for f in result.findings]
    bias_found = [f for f in result.findings if f.check == "prediction_bias"]
    if bias < 2.5:
        assert bias_found == [], "a sixth of an RMSE is no systematic error worth a finding"
    else:
        (f,) = bias_found
        assert f.status == "warning" and f.metric == "mean_error" and "MAE" in f.message and "down" in f.message


def test_a_large_bias_that_raises_the_error_is_both_a_bias_and_a_quality_drop(tmp_path, demand_baseline):
    baseline = demand_baseline
    (result,) = check(baseline, tmp_path, *demand_records(demand(3000, 30, bias=8.0, start="2026-05-01"), "may"))
    found = {(f.check, f.metric): f for f in result.findings}
    assert found[("prediction_bias", "mean_error")].status == "critical"
    assert ("quality_drop", "mae") in found and ("quality_drop", "mean_error") not in found
    doc = result.to_json()
    assert any(f["check"] == "prediction_bias" and f["levels"] == {"warning": 0.25, "critical": 0.5}
               for f in doc["findings"])
