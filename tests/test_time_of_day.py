"""References that match production: windows compared with the training traffic of the same hours of day."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analyzers.core.baseline import build_baseline
from analyzers.core.checks import findings
from analyzers.core.window import analyze
from analyzers.sources.jsonl import read_predictions
from analyzers.sources.local import LocalProfiler

KINDS = {"channel": "categorical", "amount": "numeric", "items": "numeric"}


def traffic(n: int, seed: int, hours: list[int], day: str = "2026-11-02") -> pd.DataFrame:
    """Night (0-5 UTC) traffic is app and small amounts; day traffic web and larger ones."""
    rng = np.random.default_rng(seed)
    hour = rng.choice(hours, n)
    night = hour < 6
    channel = np.where(night, rng.choice(["app", "web", "partner"], n, p=[0.8, 0.15, 0.05]),
                       rng.choice(["app", "web", "partner"], n, p=[0.25, 0.65, 0.10]))
    amount = np.round(np.where(night, rng.lognormal(2.5, 0.5, n), rng.lognormal(3.6, 0.5, n)), 2)
    stamps = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(hour, unit="h") + pd.to_timedelta(
        rng.integers(0, 3600, n), unit="s")
    return pd.DataFrame({"ts": stamps, "channel": channel, "amount": amount, "items": rng.integers(1, 6, n),
                         "score": np.round(rng.random(n), 4)})


def records(frame: pd.DataFrame) -> list[dict]:
    return [{"@timestamp": row.ts.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
             "predwatch": {"model": {"name": "m", "version": "1"},
                           "features": {"channel": row.channel, "amount": row.amount, "items": int(row.items)},
                           "prediction": row.score}} for row in frame.itertuples()]


@pytest.fixture(scope="module")
def baselines():
    train = pd.concat([traffic(60_000, 1, list(range(24)), day=f"2026-10-{d:02d}") for d in (5, 6, 7)])
    kw = dict(model="m", version="1", kinds=KINDS, predictions=["score"])
    return (build_baseline(train, time_column="ts", **kw), build_baseline(train.drop(columns=["ts"]), **kw))


def found(baseline, frame) -> set[tuple[str, str]]:
    profile = LocalProfiler(baseline).profile(read_predictions(records(frame)))
    return {(f.check, f.feature) for f in findings(analyze(profile, baseline).results)}


@pytest.mark.parametrize("hour", [3, 9, 14, 22])
@pytest.mark.parametrize("rows", [300, 5000])
def test_hourly_windows_raise_nothing_against_the_same_hours(baselines, hour, rows):
    by_hour, _ = baselines
    assert found(by_hour, traffic(rows, 100 + hour + rows, [hour])) == set()


def test_without_a_time_column_the_night_looks_like_drift(baselines):
    by_hour, flat = baselines
    night = traffic(5000, 7, [3])
    assert found(by_hour, night) == set()
    assert {("distribution_shift", "channel"), ("distribution_shift", "amount")} <= found(flat, night)


def test_a_night_window_with_daytime_traffic_is_caught(baselines):
    by_hour, _ = baselines
    day = traffic(300, 8, [14])
    day["ts"] = day["ts"] - pd.Timedelta(hours=11)  # the day's traffic, stamped 03:00
    assert {("distribution_shift", "channel"), ("distribution_shift", "amount")} <= found(by_hour, day)


def test_the_output_names_the_reference_and_the_baseline_keeps_thin_hours_together(baselines):
    by_hour, flat = baselines
    profile = LocalProfiler(by_hour).profile(read_predictions(records(traffic(300, 9, [3]))))
    result = analyze(profile, by_hour)
    assert {r.reference for r in result.results} == {"training, same hours of day"}
    assert {r.reference for r in analyze(profile, flat).results} == {"training"}
    assert len(by_hour.time_slices["slices"]) == 24 and set(by_hour.time_slices["hours"]) == {str(h) for h in range(24)}
    thin = build_baseline(traffic(3000, 2, list(range(24))), model="m", kinds=KINDS, time_column="ts")
    assert len(thin.time_slices["slices"]) < 24, "hours with too few rows merge with their neighbours"
    assert all(s["rows"] >= 500 for s in thin.time_slices["slices"])
    from analyzers.core.baseline import Baseline

    assert Baseline.from_dict(by_hour.to_dict()).time_slices == by_hour.time_slices


def test_elasticsearch_windows_meet_the_same_hours_too(es, baselines):
    import orjson

    from analyzers.sources.elastic import EsWindowProfiler
    from analyzers.store.baselines import store_baseline
    from logging_adapter.bulk import doc_from_line, send_bulk

    by_hour, _ = baselines
    store_baseline(es.client, by_hour, es.prefix)
    night = traffic(300, 11, [3])
    recs = records(night)
    for i, rec in enumerate(recs):
        rec["predwatch"]["prediction_id"] = f"n{i}"
    outcome = send_bulk(es.client, [doc_from_line(orjson.dumps(r), es.prefix) for r in recs])
    assert outcome.created == 300
    es.refresh()
    profile = EsWindowProfiler(es.client, by_hour, prefix=es.prefix).profile("2026-11-02T03:00:00.000Z",
                                                                           "2026-11-02T04:00:00.000Z", "1")
    assert profile.hours == {str(pd.Timestamp("2026-11-02").day_of_week * 24 + 3): 300}  # hour of the week
    local = LocalProfiler(by_hour).profile(read_predictions(recs))
    assert local.hours == profile.hours
    result = analyze(profile, by_hour)
    assert findings(result.results) == [] and result.results[0].reference == "training, same hours of day"


def test_a_persistent_change_is_news_once_against_recent_days_and_stays_against_training(es, baselines):
    """Through the daemon's analyzer on the test server: the same hour on five days; from day 3 the amounts
    of the night double and stay so. Against yesterday it is news on day 3 only; against training, every day."""
    import orjson

    from analyzers.daemon.analyzer import Analyzer
    from analyzers.daemon.config import DaemonConfig
    from analyzers.store import results as res
    from analyzers.store.baselines import store_baseline
    from logging_adapter.bulk import doc_from_line, send_bulk

    by_hour, _ = baselines
    store_baseline(es.client, by_hour, es.prefix)
    config = DaemonConfig.from_dict({"elasticsearch": {"url": es.url, "distribution": es.settings.distribution,
                                                       "prefix": es.prefix},
                                     "models": [{"name": "m", "version": "1", "window": "1h", "lag": "0s",
                                                 "recent_days": 1, "alert_on": ["recent"]}]})
    job = config.models[0]

    class Told:  # what the notifier is given: only the references the model alerts on
        seen: list = []

        def observe(self, model, version, window, results):
            self.seen += [r for r in results if r.status != "ok"]

        def incident(self, event, incident):  # the findings are told as incidents
            from types import SimpleNamespace
            self.seen.append(SimpleNamespace(**incident))

    told = Told()
    analyzer = Analyzer(es.client, config, notifier=told)
    verdicts = {}
    for d in range(5):
        day = f"2026-11-{10 + d:02d}"
        night = traffic(400, 200 + d, [3], day=day)
        if d >= 2:
            night["amount"] = night["amount"] * 2
        recs = records(night)
        for i, rec in enumerate(recs):
            rec["predwatch"]["prediction_id"] = f"{day}-{i}"
        assert send_bulk(es.client, [doc_from_line(orjson.dumps(r), es.prefix) for r in recs]).created == 400
        es.refresh()
        start = pd.Timestamp(f"{day}T03:00:00Z").to_pydatetime()
        analyzer.analyze_window(job, start, start + pd.Timedelta(hours=1).to_pytimedelta(), refresh=True)
        es.refresh()
        hits = es.client.search(index=res.findings_index(es.prefix), size=100, ignore_unavailable=True, query={"bool": {"filter": [
            {"term": {res.WINDOW_START: f"{day}T03:00:00.000Z"}}, {"term": {res.FEATURE: "amount"}}]}})["hits"]["hits"]
        verdicts[day] = sorted(h["_source"]["predwatch"]["reference"] for h in hits)
    assert verdicts["2026-11-10"] == [] and verdicts["2026-11-11"] == []
    assert verdicts["2026-11-12"] == ["recent", "training, same hours of day"], verdicts
    for day in ("2026-11-13", "2026-11-14"):
        assert verdicts[day] == ["training, same hours of day"], ("no longer news", day, verdicts)
    assert told.seen and {r.reference for r in told.seen} == {"recent"}, "alert_on = ['recent']"


def test_two_weeks_of_training_tell_the_hours_of_the_week_apart():
    """Weekend nights differ from weekday nights: with two weeks of data the slices are hours of the week."""
    days = pd.date_range("2026-10-05", periods=15, freq="D")  # Monday 5 October onwards, over two weeks
    frames = []
    for i, day in enumerate(days):
        frame = traffic(6000, 300 + i, list(range(24)), day=day.strftime("%Y-%m-%d"))
        if day.day_of_week >= 5:  # weekends: the partner channel takes over
            frame["channel"] = np.where(frame["ts"].dt.hour < 6, "partner", frame["channel"])
        frames.append(frame)
    train = pd.concat(frames)
    weekly = build_baseline(train, model="m", version="1", kinds=KINDS, predictions=["score"], time_column="ts")
    assert weekly.time_slices["period"] == "week" and len(weekly.time_slices["hours"]) == 168
    saturday_night = traffic(400, 999, [3], day="2026-11-07")
    saturday_night["channel"] = "partner"
    assert found(weekly, saturday_night) == set(), "a Saturday night meets Saturday nights"
    profile = LocalProfiler(weekly).profile(read_predictions(records(saturday_night)))
    assert analyze(profile, weekly).results[0].reference == "training, same hours of the week"
    tuesday_night = traffic(400, 998, [3], day="2026-11-03")
    tuesday_night["channel"] = "partner"
    assert ("distribution_shift", "channel") in found(weekly, tuesday_night), "the same mix on a Tuesday is news"


def test_check_with_windows_judges_each_against_the_previous_days_too(baselines, tmp_path):
    import json
    import subprocess
    import sys

    import orjson

    by_hour, _ = baselines
    path = tmp_path / "b.json"
    by_hour.save(path)
    lines = []
    for d in range(4):
        night = traffic(400, 700 + d, [3], day=f"2026-11-{10 + d:02d}")
        if d >= 2:
            night["amount"] = night["amount"] * 2
        lines += [orjson.dumps(r) for r in records(night)]
    logs = tmp_path / "nights.jsonl"
    logs.write_bytes(b"\n".join(lines) + b"\n")
    proc = subprocess.run([sys.executable, "-m", "predwatch", "check", "--baseline", str(path), "--logs", str(logs),
                           "--window", "1h", "--recent-days", "1", "--format", "json"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stderr
    windows = [doc for doc in map(json.loads, proc.stdout.splitlines()) if "incident" not in doc]
    recent = [sorted({(f["check"], f["feature"]) for f in w.get("recent_findings", [])}) for w in windows]
    training = [{(f["check"], f["feature"]) for f in w["findings"]} for w in windows]
    assert recent[0] == recent[1] == [] and ("distribution_shift", "amount") in recent[2]
    assert ("distribution_shift", "amount") not in recent[3], "the second day of the change is no longer news"
    assert all(("distribution_shift", "amount") in t for t in training[2:]), "against training it stays"


def test_a_message_against_the_same_hours_quotes_their_mean_not_all_of_trainings(baselines):
    by_hour, _ = baselines
    day = traffic(2000, 81, [14])
    day["ts"] = day["ts"] - pd.Timedelta(hours=11)  # the day's amounts, stamped 03:00
    profile = LocalProfiler(by_hour).profile(read_predictions(records(day)))
    (shift,) = [f for f in analyze(profile, by_hour).findings
                if (f.check, f.feature) == ("distribution_shift", "amount")]
    said = shift.message.split("vs training, same hours of day mean ")[1]
    night_mean = float(said.split()[0])
    assert 12 < night_mean < 16, shift.message  # lognormal(2.5, 0.5): 13.8; all of training's is about 29
    assert "against training, same hours of day" in shift.message
