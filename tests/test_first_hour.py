"""Issue 27: the first hour of a new user, item by item: nothing lost, nothing silent, nothing misleading."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest


def predwatch(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "predwatch", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


# -- 11: durations read as durations ---------------------------------------------------------------

def test_status_writes_the_lag_as_a_duration_not_a_time_of_day():
    from analyzers.daemon.status import ModelStatus, Status, format_status

    lags = [15 * 3600 + 39 * 60 + 7, 42, 3 * 86400 + 5 * 3600 + 12, 7 * 60]
    text = format_status(Status([], [ModelStatus(f"m{i}", None, "2026-11-22T00:00:00.000Z", lag)
                                     for i, lag in enumerate(lags)]))
    assert "15:39:07" not in text
    for said in ("15 h 39 min", "42 s", "3 d 5 h", "7 min"):
        assert said in text, text


# -- 2 and 4: analyze says why nothing could be judged, and refuses a backwards range -------------------

def _config(es, tmp_path: Path, version: str = "7") -> Path:
    cfg = tmp_path / "predwatch.toml"
    cfg.write_text(f'[elasticsearch]\nurl = "{es.url}"\ndistribution = "{es.settings.distribution}"\n'
                   f'prefix = "{es.prefix}"\n\n[[models]]\nname = "checkout-risk"\nversion = "{version}"\n'
                   'window = "30m"\n')
    return cfg


def test_analyze_without_the_stored_baseline_says_why_once_and_exits_2(es, tmp_path):
    import synth
    from test_es_analyzers import T0, frame_records, seed

    from analyzers.daemon.config import iso

    seed(es, frame_records(synth.table(200, seed=5), T0, 3000))  # records, but no `baseline --es` yet
    cfg = _config(es, tmp_path)
    proc = predwatch("analyze", "--config", str(cfg), "--model", "checkout-risk", "--start", iso(T0),
                     "--end", iso(T0 + (T0 - T0).__class__(hours=2)))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.count("no baseline of model 'checkout-risk' version '7'") == 1, proc.stderr
    assert "predwatch baseline --data TRAINING.csv --model checkout-risk --version 7 --es --es-url" in proc.stderr
    assert "0 records" not in proc.stdout and "Traceback" not in proc.stderr
    report = predwatch("report", "--es", "--model", "checkout-risk", "--start", iso(T0), "--out",
                       str(tmp_path / "r.html"), *es.es_args())
    assert report.returncode == 2, report.stderr
    assert "no baseline of model 'checkout-risk'" in report.stderr and "predwatch baseline" in report.stderr
    assert "run `predwatch daemon` or `predwatch analyze` first" not in report.stderr, report.stderr


def test_report_from_es_after_a_failed_analysis_gives_its_reason(es, tmp_path):
    """The daemon wrote analysis_error findings (no baseline): the report says so, not "run analyze first"."""
    import synth
    from test_es_analyzers import T0, frame_records, seed

    from analyzers.daemon.analyzer import Analyzer
    from analyzers.daemon.config import DaemonConfig, iso

    seed(es, frame_records(synth.table(100, seed=6), T0, 1800))
    config = DaemonConfig.load(str(_config(es, tmp_path)))
    Analyzer(es.client, config).analyze_window(config.models[0], T0, T0 + (T0 - T0).__class__(minutes=30),
                                               refresh=True)
    report = predwatch("report", "--es", "--model", "checkout-risk", "--start", iso(T0), "--out",
                       str(tmp_path / "r.html"), *es.es_args())
    assert report.returncode == 2, report.stderr
    assert "analysed but could not be judged" in report.stderr and "no baseline" in report.stderr, report.stderr
    assert "first)" not in report.stderr


def test_analyze_refuses_a_start_after_the_end(es, tmp_path):
    cfg = _config(es, tmp_path)
    proc = predwatch("analyze", "--config", str(cfg), "--model", "checkout-risk", "--start", "2026-11-22T00:00:00Z",
                     "--end", "2026-11-21T00:00:00Z")
    assert proc.returncode == 2 and proc.stdout == "", (proc.stdout, proc.stderr)
    assert proc.stderr.strip().count("\n") == 0 and "--start 2026-11-22T00:00:00Z is not before --end" in proc.stderr


# -- 9 and 10: report --es says what each row was judged against, dates it by its start, exits as `report` ----

def test_report_from_es_marks_recent_rows_dates_by_window_start_and_exits_1_with_findings(es, baseline, tmp_path):
    import incidents
    from datetime import timedelta

    import orjson

    from analyzers.core.window import analyze
    from analyzers.daemon.config import iso
    from analyzers.files import analyze_files
    from analyzers.store import results as res
    from conftest import write_jsonl
    from test_es_analyzers import T0

    import synth

    frame, _ = incidents.mean_shifts(600, 7)
    window = analyze_files([write_jsonl(tmp_path / "w.jsonl", synth.records(frame))], baseline)
    assert window.findings
    recent = analyze(window.profile, baseline).results[0]
    recent.reference, recent.status, recent.check = "recent", "warning", "oov_rate"
    start, end = iso(T0), iso(T0 + timedelta(days=1))
    docs = res.window_docs(window, prefix=es.prefix, model="checkout-risk", version="7", start=start, end=end,
                           extra=[recent])
    res.write(es.client, docs, refresh=True)
    out = tmp_path / "r.html"
    proc = predwatch("report", "--es", "--model", "checkout-risk", "--start", iso(T0 - timedelta(days=1)),
                     "--end", iso(T0 + timedelta(days=2)), "--out", str(out), *es.es_args())
    assert proc.returncode == 1, proc.stderr  # as `predwatch report` on the same findings
    html = out.read_text()
    table = html[html.index('<table class="findings">'):html.index("</table>", html.index('<table class="findings">'))]
    rows = table.split("<tr")[2:]
    assert len(rows) == len(window.findings) + 1
    assert sum("recent days" in r for r in rows) == 1, "the row against the recent days is marked"
    assert all(start[:10] in r and end[:10] not in r for r in rows), "dated by the window's start"
    critical = sum(f.status == "critical" for f in window.findings)
    assert re.search(rf'critical findings</div><div class="n"[^>]*>{critical}<', html), "counts only training rows"


def test_check_text_shows_the_findings_against_the_recent_days_marked(baseline_file, tmp_path):
    import json

    import incidents
    import synth
    from conftest import write_jsonl

    logs = []
    for day in range(4):
        frame = incidents.unit_changes(800, day)[0] if day == 3 else synth.table(800, seed=40 + day)
        logs.append(write_jsonl(tmp_path / f"d{day}.jsonl", synth.records(frame, start=f"2026-11-2{day}T00:00:00")))
    args = ["check", "--baseline", str(baseline_file), "--logs", *map(str, logs), "--window", "1d",
            "--recent-days", "3"]
    as_json = [doc for doc in map(json.loads, predwatch(*args, "--format", "json").stdout.splitlines())
               if "incident" not in doc]
    recent = as_json[-1].get("recent_findings") or []
    assert recent, "the incident day is news against the previous days"
    text = predwatch(*args).stdout
    last = text[text.rindex("model checkout-risk"):text.rindex("\nincidents: ")]  # the incidents follow
    assert "-- against the recent days" in last, last
    marked = last[last.index("-- against the recent days"):].splitlines()[1:]
    assert len(marked) == len(recent), last
    assert {(f["check"], f["feature"]) for f in recent} == {tuple(line.split()[1:3]) for line in marked}


# -- 6: a URL without its scheme, and OpenSearch without --es-distribution ---------------------------------

def test_a_url_without_a_scheme_is_a_usage_error_naming_where_it_came_from(tmp_path):
    import os

    cfg = tmp_path / "predwatch.toml"
    cfg.write_text('[elasticsearch]\nurl = "localhost:9200"\n\n[[models]]\nname = "m"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDWATCH_ES_")}
    for args, where in ((["setup", "--es-url", "localhost:9200"], "--es-url"),
                        (["ship", str(tmp_path / "x.jsonl"), "--once", "--es-url", "localhost:9200"], "--es-url"),
                        (["status", "--config", str(cfg)], f"{cfg}: [elasticsearch] url"),
                        (["demo", "--es", "localhost:9200"], "--es")):
        proc = predwatch(*args, env=env)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith(f"predwatch {args[0]}: {where}: 'localhost:9200' is not a URL"), proc.stderr
        assert "http://localhost:9200" in proc.stderr and proc.stderr.count("\n") == 1
    proc = predwatch("setup", env={**env, "PREDWATCH_ES_URL": "localhost:9200"})
    assert proc.returncode == 2 and "PREDWATCH_ES_URL: 'localhost:9200'" in proc.stderr, proc.stderr


def test_the_distribution_is_asked_of_the_server_when_nobody_said_it(es, tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDWATCH_ES_")}
    proc = predwatch("setup", "--es-url", es.url, "--prefix", es.prefix, env=env)
    assert proc.returncode == 0, proc.stderr  # OpenSearch (the emulator) too: GET / says which it is


def test_a_406_from_a_server_that_hides_what_it_is_names_the_flag(tmp_path):
    import os
    from http.server import BaseHTTPRequestHandler

    from conftest import LoopbackServer

    class Refusing(BaseHTTPRequestHandler):
        def _refuse(self):
            body = b'{"error":"Content-Type header [application/vnd.elasticsearch+json; compatible-with=8] is not ' \
                   b'supported","status":406}'
            self.send_response(406)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_HEAD = _refuse

        def log_message(self, *args):
            pass

    server = LoopbackServer()
    server.serve(Refusing)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREDWATCH_ES_")}
        proc = predwatch("setup", "--es-url", server.url, env=env)
    finally:
        server.close()
    assert proc.returncode == 2, proc.stderr
    assert "--es-distribution opensearch" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_ship_of_a_file_without_one_record_exits_2_and_says_what_the_file_looks_like(es, tmp_path):
    import synth

    csv = tmp_path / "predictions.csv"
    synth.table(50, seed=8).to_csv(csv, index=False)
    plain = tmp_path / "app.log"
    plain.write_text("2026-11-22 07:00:01 INFO started\n2026-11-22 07:00:02 INFO ready\n")
    for path, looks in ((csv, "looks like CSV (first line: 'amount,"), (plain, "not JSON lines")):
        proc = predwatch("ship", str(path), "--once", "--state-dir", str(tmp_path / f"s-{path.name}"), *es.es_args())
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert f"{path}: {looks}" in proc.stderr and "no line is a prediction record" in proc.stderr, proc.stderr


# -- 3: a baseline from a log file takes its prediction records only ------------------------------------

def test_baseline_from_a_log_leaves_out_its_outcomes_and_refuses_a_table_of_mostly_missing_features(tmp_path):
    import json

    import synth
    from conftest import write_jsonl
    from logging_adapter import contract as c

    records = synth.records(synth.table(2000, seed=9))
    outcomes = [c.outcome_record(r["predwatch"]["prediction_id"], i % 2, model="checkout-risk", version="7",
                                 timestamp=r["@timestamp"]) for i, r in enumerate(records[:1400])]
    mixed = write_jsonl(tmp_path / "predictions.jsonl", records + outcomes)
    proc = predwatch("baseline", "--data", str(mixed), "--model", "checkout-risk", "--text", "query",
                     "--out", str(tmp_path / "b.json"))
    assert proc.returncode == 0, proc.stderr
    assert f"left out 1,400 outcome record(s) of {mixed}" in proc.stderr, proc.stderr
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["rows"] == 2000
    nulls = {name: col["nulls"] for name, col in doc["columns"].items()}
    assert max(nulls.values()) < 0.05 * 2000, f"outcome records read as rows of nulls: {nulls}"

    sparse = write_jsonl(tmp_path / "sparse.jsonl", [{f"f{i % 5}": i, "g": None} for i in range(1000)])
    proc = predwatch("baseline", "--data", str(sparse), "--model", "m", "--out", str(tmp_path / "s.json"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"predwatch baseline: {sparse}: 100% of its 1,000 rows lack most") and \
        proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "s.json").exists()
