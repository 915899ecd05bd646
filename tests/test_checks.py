"""The checks: quiet on windows from the training distribution, loud on real incidents."""
from __future__ import annotations

import pytest

import incidents
import synth
from analyzers.core import stats
from analyzers.core.checks import evaluate, findings
from analyzers.core.config import CheckConfig
from analyzers.sources.jsonl import read_predictions
from analyzers.sources.local import LocalProfiler


def check(baseline, frame, config=None):
    profile = LocalProfiler(baseline).profile(read_predictions(synth.records(frame)))
    return evaluate(profile, baseline, config)


@pytest.mark.parametrize("rows,seed", [(500, 11), (500, 12), (1000, 13), (1000, 14), (10_000, 15), (100_000, 16)])
def test_windows_from_the_training_distribution_raise_nothing(baseline, rows, seed):
    results = check(baseline, synth.table(rows, seed=seed))
    assert findings(results) == [], [r.message for r in findings(results)]
    # every check ran on every applicable column, and it is not quiet for lack of measuring
    ran = {(r.check, r.feature) for r in results}
    assert {("unseen_category", "merchant"), ("oov_rate", "query"), ("out_of_range", "amount"),
            ("prediction_shift", "prediction"), ("missing_feature", "age"), ("type_mismatch", "visits")} <= ran


def test_negligible_shifts_in_a_100k_window_raise_nothing(baseline):
    """At 100k rows tiny shifts are 'significant'; the effect-size threshold keeps them quiet."""
    frame = synth.table(100_000, seed=21)
    frame["age"] = frame["age"] + 1.2  # a tenth of a standard deviation
    frame["amount"] = frame["amount"] * 1.03
    results = check(baseline, frame)
    tiny = {r.feature for r in results if r.p_value is not None and r.p_value < 1e-6}
    assert {"age", "amount"} <= tiny, "these shifts are statistically detectable at this size"
    assert findings(results) == [], [r.message for r in findings(results)]


@pytest.mark.parametrize("incident", incidents.ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("seed", [31, 32])
def test_incidents_are_caught_at_1000_rows(baseline, incident, seed):
    frame, (check_name, feature) = incident(1000, seed)
    found = findings(check(baseline, frame))
    assert (check_name, feature) in {(f.check, f.feature) for f in found}, [f.message for f in found]
    # nothing else fires on features the incident did not touch
    touched = {feature}
    assert {f.feature for f in found} <= touched, [f.message for f in found]


def test_small_windows_need_evidence(baseline):
    """50 rows with a new category in 10%: the effect is there, the evidence is not (yet)."""
    frame, _ = incidents.new_category_takes_a_tenth(50, 41)
    results = check(baseline, frame)
    unseen = next(r for r in results if r.check == "unseen_category" and r.feature == "country")
    assert unseen.status == "ok" or unseen.p_value < 0.01


def test_findings_carry_their_evidence(baseline):
    frame, _ = incidents.new_category_takes_a_tenth(1000, 51)
    (f,) = [f for f in findings(check(baseline, frame)) if f.check == "unseen_category"]
    doc = f.finding()
    # Cohen's h of about 0.64 for 10%: the threshold is the level that was crossed, and both levels are given
    assert doc["severity"] == "critical" and doc["threshold"] == 0.5
    assert doc["levels"] == {"warning": 0.2, "critical": 0.5}
    assert 0.07 < doc["observed"] < 0.13 and 0.53 < doc["value"] < 0.74 and doc["p_value"] < 1e-10
    assert doc["examples"][0] == {"value": "XX", "count": pytest.approx(100, abs=30)}
    assert doc["n_window"] > 900 and doc["n_baseline"] > 40_000 and doc["expected"] == 0.0
    assert "never seen in training" in doc["message"]


def test_thresholds_are_configurable_per_feature_and_check(baseline):
    frame, _ = incidents.mean_shifts(1000, 61)
    loose = CheckConfig.from_dict({"features": {"age": {"distribution_shift": {"warning": 5.0}}}})
    assert not findings(check(baseline, frame, loose))
    off = CheckConfig.from_dict({"checks": {"distribution_shift": {"enabled": False}}})
    assert not any(r.check == "distribution_shift" for r in check(baseline, frame, off))
    strict = CheckConfig.from_dict({"checks": {"fdr": 0.05, "unseen_category": {"warning": 0.001, "critical": 0.5}}})
    assert strict.level("unseen_category", "x").warning == 0.001 and strict.fdr == 0.05
    with pytest.raises(ValueError, match="unknown check"):
        CheckConfig.from_dict({"checks": {"drift": {"warning": 1}}})
    with pytest.raises(ValueError, match="below warning"):
        CheckConfig.from_dict({"checks": {"oov_rate": {"warning": 0.5, "critical": 0.1}}})


def test_severity_escalates_with_the_effect(baseline):
    frame, _ = incidents.feature_vanishes(1000, 71)
    (f,) = [f for f in findings(check(baseline, frame)) if f.feature == "age"]
    assert f.status == "critical" and "absent in 100.0%" in f.message


def test_benjamini_hochberg_controls_many_tests():
    import random
    rng = random.Random(3)
    null_p = [rng.random() for _ in range(1000)]
    assert sum(q <= 0.01 for q in stats.benjamini_hochberg(null_p)) == 0
    assert stats.benjamini_hochberg([1e-6] + null_p[:99])[0] <= 1e-4


def test_psi_is_zero_for_identical_counts_and_grows_with_shift():
    assert stats.psi([10, 20, 30], [10, 20, 30]) == pytest.approx(0.0)
    assert stats.psi([100, 100], [150, 50]) < stats.psi([100, 100], [190, 10])
    assert stats.psi_p_value(0.0, 1000, 1000, 10) == pytest.approx(1.0)
    assert stats.psi_p_value(0.5, 1000, 1000, 10) < 1e-30


def test_small_rates_are_judged_on_their_own_scale(baseline):
    """1% -> 5.5% nulls and ~0% -> 6% unknown words: small in absolute terms (below the old 0.05 and
    0.10 differences), large on the arcsine scale (Cohen's h), and caught."""
    import numpy as np

    frame = synth.table(2000, seed=70)
    rng = np.random.default_rng(71)
    frame.loc[rng.random(len(frame)) < 0.046, "country"] = None
    frame["query"] = [" ".join("zz" + t if rng.random() < 0.06 else t for t in q.split()) for q in frame["query"]]
    found = {f.check: f for f in findings(check(baseline, frame)) if f.feature in ("country", "query")}
    nulls, oov = found["missing_feature"], found["oov_rate"]
    assert nulls.observed - nulls.expected < 0.05 and nulls.value >= 0.2 and nulls.status == "warning"
    assert oov.observed - oov.expected < 0.10 and oov.value >= 0.2
    assert stats.cohens_h(0.07, 0.015) > stats.cohens_h(0.60, 0.40) * 0.7, "1.5% -> 7% weighs like 40% -> 60%"


@pytest.mark.parametrize("incident", [incidents.feature_vanishes, incidents.null_rate_jumps, incidents.unit_changes,
                                      incidents.strings_in_numeric, incidents.scores_go_wrong])
def test_incidents_are_caught_in_300_prediction_windows(baseline, incident):
    for seed in range(5):
        frame, want = incident(300, 400 + seed)
        assert want in {(f.check, f.feature) for f in findings(check(baseline, frame))}, (incident.__name__, seed)


def test_a_quarter_of_nulls_and_a_new_category_at_15_percent_in_300_predictions(baseline):
    import numpy as np

    for seed in range(5):
        frame = synth.table(300, seed=500 + seed)
        rng = np.random.default_rng(seed)
        frame.loc[rng.random(300) < 0.25, "age"] = None
        frame.loc[rng.random(300) < 0.15, "country"] = "XX"
        found = {(f.check, f.feature) for f in findings(check(baseline, frame))}
        assert {("missing_feature", "age"), ("unseen_category", "country")} <= found, found
    quiet = [findings(check(baseline, synth.table(300, seed=600 + s))) for s in range(10)]
    assert not any(quiet), [[f.message for f in q] for q in quiet if q]


def test_a_check_with_too_few_values_says_so_instead_of_guessing(baseline):
    frame = synth.table(300, seed=80)
    frame.loc[frame.index[12:], "visits"] = None  # only 12 values left to judge the type and range of
    results = check(baseline, frame)
    unjudged = {(r.check, r.feature) for r in results if not r.judged}
    assert ("type_mismatch", "visits") in unjudged and ("distribution_shift", "visits") in unjudged
    assert all(r.status == "ok" and "not judged, only 12 values" in r.message
               for r in results if not r.judged)
    assert ("missing_feature", "visits") not in unjudged, "the nulls themselves are judged on all 300 records"
    from analyzers.core.window import WindowResult

    doc = WindowResult(baseline, LocalProfiler(baseline).profile(read_predictions(synth.records(frame))),
                       results).to_json()
    assert {"check": "type_mismatch", "feature": "visits", "n_window": 12} in doc["not_judged"]


def test_a_rare_category_rising_is_seen_on_its_own_not_in_the_other_bin(baseline):
    import numpy as np

    frame = synth.table(2000, seed=90)
    share = baseline.columns["merchant"].categories["m31"] / baseline.columns["merchant"].values
    assert share < 0.005, "a minor category: PSI bins it with the rest"
    frame.loc[np.random.default_rng(91).random(2000) < 0.05, "merchant"] = "m31"
    found = {(f.check, f.feature): f for f in findings(check(baseline, frame))}
    assert ("distribution_shift", "merchant") not in found, "diluted in the 'other' bin"
    rise = found[("category_share", "merchant")]
    assert rise.examples[0]["value"] == "m31" and rise.value >= 0.2 and "training 0.3%" in rise.message


def test_threshold_means_the_level_that_was_crossed_in_text_and_json(baseline):
    """A critical finding shows the critical level (as the report does), a warning the warning level; the JSON
    carries both levels."""
    from analyzers.core.window import analyze
    from predwatch.cli.checks import format_text

    frame, _ = incidents.new_category_takes_a_tenth(1000, 51)
    profile = LocalProfiler(baseline).profile(read_predictions(synth.records(frame)))
    result = analyze(profile, baseline)
    (critical,) = [f for f in result.findings if f.check == "unseen_category"]
    assert critical.status == "critical" and critical.threshold == 0.5
    (line,) = [line for line in format_text(result).splitlines() if line.startswith("critical") and "unseen" in line]
    assert line.split()[4] == "0.5", line
    (doc,) = [f for f in result.to_json()["findings"] if f["check"] == "unseen_category"]
    assert doc["threshold"] == 0.5 and doc["levels"] == {"warning": 0.2, "critical": 0.5}
    lenient = CheckConfig.from_dict({"checks": {"unseen_category": {"warning": 0.3, "critical": 3.0}}})
    (warning,) = [f for f in analyze(profile, baseline, lenient).findings if f.check == "unseen_category"]
    assert warning.status == "warning" and warning.threshold == 0.3
    assert warning.finding()["levels"] == {"warning": 0.3, "critical": 3.0}


def test_every_message_names_the_reference_its_numbers_come_from(baseline):
    """Judged against the recent days, a message quotes the recent days' rates and mean, and says so; against
    training it says training."""
    import numpy as np

    from analyzers.core.reference import recent_results

    def profile(frame):
        return LocalProfiler(baseline).profile(read_predictions(synth.records(frame)))

    earlier = []
    for s in range(3):
        past = synth.table(1000, seed=500 + s)
        past["age"] = past["age"] + 10  # the recent days are older than training
        earlier.append(profile(past))
    recent_mean = np.mean([p.columns["age"].sum / sum(p.columns["age"].bins) for p in earlier])
    frame = synth.table(1000, seed=510)
    frame["age"] = frame["age"] + 25
    frame.loc[np.random.default_rng(511).random(1000) < 0.4, "country"] = None
    frame.loc[np.random.default_rng(512).random(1000) < 0.3, "merchant"] = "m31"
    now = profile(frame)
    recent = {(r.check, r.feature): r for r in findings(recent_results(now, baseline, earlier))}
    shift = recent[("distribution_shift", "age")].message
    assert "against recent" in shift and f"vs recent mean {recent_mean:.4g}" in shift, shift
    assert "(recent: " in recent[("missing_feature", "country")].message
    assert "(recent " in recent[("category_share", "merchant")].message
    for r in recent.values():
        assert "vs training" not in r.message and "(training" not in r.message, r.message
    training = {(r.check, r.feature): r for r in findings(evaluate(now, baseline))}
    assert f"vs training mean {baseline.columns['age'].mean:.4g}" in training[("distribution_shift", "age")].message
    assert "(training: " in training[("missing_feature", "country")].message
