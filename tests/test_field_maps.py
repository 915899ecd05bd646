"""Records in other layouts on local files: a field map for a service's own layout, and OpenTelemetry log
records (OTLP JSON, Elastic's OpenTelemetry layout) without one, give the findings of predwatch's own layout;
a service logs through the OpenTelemetry SDK's logging bridge and ``check`` reads what it exported."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import orjson
import pytest

import incidents
import synth
from conftest import write_jsonl
from analyzers.core.baseline import Baseline, build_baseline
from analyzers.sources.jsonl import read_predictions, read_jsonl
from logging_adapter import PredictionFormatter, PredictionLogger
from logging_adapter import contract as c
from logging_adapter.fieldmap import FieldMap, contract_records, otlp_records
from logging_adapter.otel import OtelPredictionHandler, otel_attributes

ISSUE_MAP = """\
model = "app.model_name"
version = "app.model_rev"
prediction_id = "req_id"
timestamp = "time"
features = "x"
prediction = "y.proba"
latency_ms = "elapsed_ms"
"""


def predwatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "predwatch", *args], capture_output=True, text=True, timeout=300)


def own_records(frame, **kwargs) -> list[dict]:
    """predwatch's own layout, with a latency."""
    out = synth.records(frame, **kwargs)
    for i, record in enumerate(out):
        record["predwatch"]["latency_ms"] = 2.0 + (i % 7) * 0.1
    return out


def custom(record: dict, i: int) -> dict:
    """The issue's layout; every other record with flat dotted keys (``"app.model_rev"``, ``"x.age"``), a third
    with ``"y.proba"``."""
    ns = record["predwatch"]
    out = {"time": record["@timestamp"], "req_id": ns["prediction_id"], "elapsed_ms": ns["latency_ms"]}
    out.update({"y.proba": ns["prediction"]} if i % 3 == 1 else {"y": {"proba": ns["prediction"]}})
    if i % 2:
        out.update({"app.model_name": ns["model"]["name"], "app.model_rev": ns["model"]["version"]})
        names = list(ns["features"])
        out["x"] = {k: ns["features"][k] for k in names[::2]}
        out.update({f"x.{k}": ns["features"][k] for k in names[1::2]})
    else:
        out.update({"app": {"model_name": ns["model"]["name"], "model_rev": ns["model"]["version"]},
                    "x": ns["features"]})
    return out


def elastic(record: dict, i: int) -> dict:
    """Elastic's OpenTelemetry layout: flat ``predwatch.*`` attributes, or (every other record) one nested object."""
    ns = record["predwatch"]
    attributes = otel_attributes(ns) if i % 2 == 0 else {"predwatch": ns}
    return {"@timestamp": record["@timestamp"], "body": {"text": "prediction"}, "severity_text": "INFO",
            "attributes": attributes, "resource": {"attributes": {"service.name": "checkout-api"}}}


def any_value(value) -> dict:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": [{"key": k, "value": any_value(v)} for k, v in value.items()]}}
    return {"stringValue": value}


def otlp_lines(records: list[dict], per_line: int = 40) -> list[dict]:
    """OTLP JSON documents of ``per_line`` log records each, as a file exporter writes them."""
    docs = []
    for lo in range(0, len(records), per_line):
        logs = []
        for record in records[lo:lo + per_line]:
            nanos = int(c.parse_time(record["@timestamp"]).timestamp() * 1000) * 1_000_000
            logs.append({"timeUnixNano": str(nanos), "severityNumber": 9, "severityText": "INFO",
                         "body": {"stringValue": "prediction"},
                         "attributes": [{"key": k, "value": any_value(v)}
                                        for k, v in otel_attributes(record["predwatch"]).items()]})
        docs.append({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name",
                                                                    "value": {"stringValue": "checkout-api"}}]},
                                       "scopeLogs": [{"scope": {"name": "predwatch.predictions"}, "logRecords": logs}]}]})
    return docs


def check_json(baseline_file: Path, *logs: Path, extra: tuple[str, ...] = ()) -> tuple[int, list[dict], str]:
    proc = predwatch("check", "--baseline", str(baseline_file), "--logs", *map(str, logs), "--format", "json", *extra)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


@pytest.fixture(scope="module")
def drifted() -> list[dict]:
    frame, _ = incidents.unit_changes(1500, 4)
    return own_records(frame)


def test_the_issues_map_gives_the_findings_of_predwatchs_own_layout(baseline_file, drifted, tmp_path):
    own = write_jsonl(tmp_path / "own.jsonl", drifted)
    theirs = write_jsonl(tmp_path / "theirs.jsonl", [custom(r, i) for i, r in enumerate(drifted)])
    fields = tmp_path / "map.toml"
    fields.write_text(ISSUE_MAP)
    code, expected, _ = check_json(baseline_file, own, extra=("--window", "15m"))
    assert code == 1 and any(("out_of_range", "amount") == (f["check"], f["feature"]) for w in expected
                             for f in w.get("findings", ()))
    got_code, got, stderr = check_json(baseline_file, theirs, extra=("--window", "15m", "--fields", str(fields)))
    assert (got_code, got) == (code, expected)
    assert "never occurs" not in stderr and "rejected" not in stderr
    # in parallel byte ranges too (workers fork with the map)
    assert check_json(baseline_file, theirs, extra=("--window", "15m", "--fields", str(fields), "--workers", "2"))[:2] \
        == (code, expected)
    # without the map the same lines are nothing predwatch can read
    proc = predwatch("check", "--baseline", str(baseline_file), "--logs", str(theirs))
    assert proc.returncode == 2 and "no valid prediction record" in proc.stderr


def test_a_baseline_from_mapped_records_is_the_baseline_of_the_own_layout(tmp_path):
    frame = synth.table(3000, seed=2)
    records = own_records(frame)
    own = write_jsonl(tmp_path / "own.jsonl", records)
    theirs = write_jsonl(tmp_path / "theirs.jsonl", [custom(r, i) for i, r in enumerate(records)])
    (tmp_path / "map.toml").write_text(ISSUE_MAP)
    for data, extra in ((own, ()), (theirs, ("--fields", str(tmp_path / "map.toml")))):
        proc = predwatch("baseline", "--data", str(data), "--model", "m", "--text", "query", *extra,
                         "--out", str(tmp_path / f"{data.stem}.json"))
        assert proc.returncode == 0, proc.stderr
    a, b = Baseline.load(tmp_path / "own.json").columns, Baseline.load(tmp_path / "theirs.json").columns
    assert set(a) == set(b) and "amount" in a and "prediction" in a
    for name in a:
        assert (a[name].kind, a[name].nulls, a[name].edges, a[name].categories) == \
               (b[name].kind, b[name].nulls, b[name].edges, b[name].categories), name


def test_outcomes_in_the_services_layout_join_their_predictions(tmp_path):
    import test_quality as q

    baseline = build_baseline(q.draw(20_000, 1), model=q.MODEL, version="7", predictions=["score"], actual="label")
    baseline.save(tmp_path / "b.json")
    preds, outs = q.records(q.draw(2000, 7, flipped=0.35))
    own = write_jsonl(tmp_path / "own.jsonl", preds + outs)
    theirs = [custom(r, i) for i, r in enumerate(preds)]
    theirs += [{"time": o["@timestamp"], "app": {"model_name": q.MODEL}, "outcome": {"of": o["predwatch"]["prediction_id"]},
                "label": o["predwatch"]["actual"]} for o in outs]
    mapped = write_jsonl(tmp_path / "theirs.jsonl", theirs)
    (tmp_path / "map.toml").write_text(ISSUE_MAP + 'actual = "label"\noutcome_id = "outcome.of"\n')
    code, expected, _ = check_json(tmp_path / "b.json", own)
    assert code == 1 and expected[0]["quality"]["labelled"] == 2000
    assert any(f["check"] == "quality_drop" for f in expected[0]["findings"])
    assert check_json(tmp_path / "b.json", mapped, extra=("--fields", str(tmp_path / "map.toml")))[:2] == (code, expected)


def test_a_record_the_map_cannot_read_is_a_counted_rejection_and_its_neighbours_are_checked(baseline_file, tmp_path):
    records = own_records(synth.table(400, seed=5))
    lines = [custom(r, i) for i, r in enumerate(records)]
    lines[10] = {"time": lines[10]["time"], "message": "an ordinary log line of the service"}
    lines[20]["app"] = {"model_name": 7}
    lines[30]["time"] = "22/11/2026 07:00"
    lines[40]["x"] = "not features"
    path = write_jsonl(tmp_path / "theirs.jsonl", lines)
    (tmp_path / "map.toml").write_text(ISSUE_MAP)
    _, (doc,), stderr = check_json(baseline_file, path, extra=("--fields", str(tmp_path / "map.toml")))
    assert doc["window"]["records"] == 396 and doc["window"]["rejected"] == 4
    said = {line.split(": ", 1)[0]: line for line in stderr.splitlines() if line.startswith("rejected")}
    assert set(said) == {f"rejected theirs.jsonl:{n}" for n in (11, 21, 31, 41)}, stderr
    assert 'neither "x" (features) nor "y.proba" (prediction) is in the record' in said["rejected theirs.jsonl:11"]
    assert '"app.model_name" (model) is a number, not a string' in said["rejected theirs.jsonl:21"]
    assert '"time" (timestamp)' in said["rejected theirs.jsonl:31"] and "map.toml" in said["rejected theirs.jsonl:31"]
    assert '"x" (features) is a string' in said["rejected theirs.jsonl:41"]
    assert "4 lines rejected in all" in stderr


def test_a_path_that_never_occurs_is_said_once_at_the_start(baseline_file, tmp_path):
    records = own_records(synth.table(6000, seed=6))
    path = write_jsonl(tmp_path / "theirs.jsonl", [custom(r, i) for i, r in enumerate(records)])
    (tmp_path / "map.toml").write_text(ISSUE_MAP.replace('"elapsed_ms"', '"elapsed.ms"'))
    _, (doc,), stderr = check_json(baseline_file, path, extra=("--fields", str(tmp_path / "map.toml"),
                                                                "--workers", "2"))
    assert doc["window"]["records"] == 6000 and "latency" not in doc
    warned = [line for line in stderr.splitlines() if "never occurs" in line]
    assert warned == [f'predwatch check: warning: fields {tmp_path / "map.toml"}: path "elapsed.ms" (latency_ms) '
                      f'never occurs in the first 5,000 records'], stderr
    assert stderr.index("never occurs") < (stderr.index("rejected") if "rejected" in stderr else len(stderr))


def test_opentelemetry_layouts_are_checked_without_a_map(baseline_file, drifted, tmp_path):
    own = write_jsonl(tmp_path / "own.jsonl", drifted)
    otlp = write_jsonl(tmp_path / "otlp.jsonl", otlp_lines(drifted))
    ecs_otel = write_jsonl(tmp_path / "elastic-otel.jsonl", [elastic(r, i) for i, r in enumerate(drifted)])
    code, expected, _ = check_json(baseline_file, own, extra=("--window", "15m"))
    for path in (otlp, ecs_otel):
        got_code, got, stderr = check_json(baseline_file, path, extra=("--window", "15m"))
        assert (got_code, got) == (code, expected), path.name
        assert "rejected" not in stderr, stderr


def test_a_bad_map_is_exit_2_with_one_line_naming_the_file_and_the_problem(baseline_file, tmp_path):
    log = write_jsonl(tmp_path / "theirs.jsonl", [custom(r, i) for i, r in enumerate(own_records(synth.table(50)))])
    cases = {"unknown.toml": (ISSUE_MAP + 'labell = "y.label"\n', "unknown key 'labell'"),
             "number.toml": (ISSUE_MAP.replace('"elapsed_ms"', "3"), "latency_ms = 3 is a int, not a dotted path"),
             "list.toml": (ISSUE_MAP.replace('"x"', '["x.age", 4]'), "features = 4 is a int, not a dotted path"),
             "broken.toml": ("model = app.model_name\n", "not valid TOML"),
             "empty.toml": ('model = "m"\n', "names neither features nor prediction"),
             "twice.toml": (ISSUE_MAP.replace('"x"', '["a.age", "b.age"]'), "same feature name 'age'")}
    for name, (text, problem) in cases.items():
        (tmp_path / name).write_text(text)
        for command in (["check", "--baseline", str(baseline_file), "--logs", str(log)],
                        ["report", "--baseline", str(baseline_file), "--logs", str(log), "--out", str(tmp_path / "r.html")],
                        ["baseline", "--data", str(log), "--model", "m", "--out", str(tmp_path / "b.json")]):
            proc = predwatch(*command, "--fields", str(tmp_path / name))
            assert proc.returncode == 2, (name, command[0], proc.stderr)
            assert proc.stderr.count("\n") == 1 and str(tmp_path / name) in proc.stderr and problem in proc.stderr, \
                (name, proc.stderr)
    proc = predwatch("check", "--baseline", str(baseline_file), "--logs", str(log), "--fields", str(tmp_path / "no.toml"))
    assert proc.returncode == 2 and proc.stderr == f"predwatch check: field map not found: {tmp_path / 'no.toml'}\n"


def test_dotted_paths_read_nested_objects_and_flat_keys_alike():
    fields = FieldMap.from_dict({"model": "app.model.name", "features": ["req.a", "req.geo.country"],
                                 "prediction": "out", "actual": "truth", "prediction_id": "id"})
    for record in ({"app": {"model": {"name": "m"}}, "req": {"a": 1, "geo": {"country": "DE"}}, "out": {"p": 0.1, "q": 0.9}},
                   {"app.model.name": "m", "req.a": 1, "req.geo.country": "DE", "out.p": 0.1, "out.q": 0.9},
                   {"app": {"model.name": "m"}, "req": {"a": 1, "geo.country": "DE"}, "out": {"p": 0.1}, "out.q": 0.9}):
        ns = fields.to_contract(record)["predwatch"]
        assert ns == {"model": {"name": "m"}, "features": {"a": 1, "country": "DE"},
                      "prediction": {"p": 0.1, "q": 0.9}}, record
        assert c.read_record(fields.to_contract(record)).columns() == {"a": 1, "country": "DE", "prediction.p": 0.1,
                                                                      "prediction.q": 0.9}
    outcome = fields.to_contract({"id": 17, "truth": True})
    assert c.read_record(outcome) == c.Outcome(None, None, None, "17", True)
    with pytest.raises(c.RecordError, match=r'an outcome \("truth" \(actual\)\) without "id" \(outcome_id\)'):
        fields.to_contract({"truth": 1})
    epoch = FieldMap.from_dict({"timestamp": "t", "prediction": "p"})
    assert epoch.to_contract({"t": 1795330800123, "p": 1})["@timestamp"] == "2026-11-22T07:00:00.123Z"


def test_otlp_typed_values_are_read():
    doc = {"resourceLogs": [{"resource": {}, "scopeLogs": [{"logRecords": [
        {"observedTimeUnixNano": "1795330800000000000", "attributes": [
            {"key": "predwatch.features.n", "value": {"intValue": "9007199254740993"}},
            {"key": "predwatch.features.nan", "value": {"doubleValue": "NaN"}},
            {"key": "predwatch.features.tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}},
            {"key": "predwatch.features", "value": {"kvlistValue": {"values": [
                {"key": "ok", "value": {"boolValue": False}}, {"key": "empty", "value": {}}]}}},
            {"key": "predwatch.prediction.churn", "value": {"doubleValue": 0.25}}]}]}]}]}
    (record,) = otlp_records(doc)
    assert record["@timestamp"] == "2026-11-22T07:00:00.000Z"
    (mapped,) = contract_records(doc)
    features = mapped["predwatch"]["features"]
    assert features["n"] == 9007199254740993 and features["nan"] != features["nan"] and features["tags"] == ["a"]
    assert features["ok"] is False and features["empty"] is None and mapped["predwatch"]["prediction"] == {"churn": 0.25}
    (bad,) = contract_records({"resourceLogs": {"no": "list"}})
    assert isinstance(bad, c.RecordError) and "not OTLP JSON" in str(bad)


def test_predictions_logged_through_the_opentelemetry_sdk_bridge_are_checked_end_to_end(baseline_file, tmp_path):
    """A service whose logs go through the OpenTelemetry SDK (LoggingHandler -> a batch processor -> the OTLP
    JSON file exporter) logs its predictions through the same pipeline; ``check`` reads the exported file
    without a map and finds what the same calls logged in predwatch's own layout show."""
    from opentelemetry.exporter.otlp.json.file._log_exporter import FileLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    provider = LoggerProvider(resource=Resource.create({"service.name": "checkout-api"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(FileLogExporter(tmp_path / "otel.jsonl")))
    with pytest.warns(DeprecationWarning):  # the SDK's handler moves to opentelemetry-instrumentation-logging
        bridge = LoggingHandler(logger_provider=provider)
    own = logging.FileHandler(tmp_path / "own.jsonl")  # the same records in predwatch's own layout, beside
    own.setFormatter(PredictionFormatter(service="checkout-api"))
    log = logging.getLogger(f"test.otel.{uuid.uuid4().hex}")
    log.propagate, log.level = False, logging.INFO
    log.addHandler(OtelPredictionHandler(bridge))
    log.addHandler(own)
    app = logging.getLogger(f"{log.name}.app")  # the service's ordinary logs go down the same pipeline
    plog = PredictionLogger("checkout-risk", version="7", logger=log)

    frame, _ = incidents.unit_changes(1200, 8)
    for i, record in enumerate(synth.records(frame)):
        ns = record["predwatch"]
        at = datetime.fromisoformat(record["@timestamp"].replace("Z", "+00:00"))
        assert plog.log(ns["features"], ns["prediction"], prediction_id=ns["prediction_id"],
                        latency_ms=1.0 + i % 5, timestamp=at, tenant="eu") == ns["prediction_id"]
        if i % 100 == 0:
            app.info("served %d requests", i)
            assert plog.log_outcome(ns["prediction_id"], 1, timestamp=at)
    provider.shutdown()
    own.close()
    assert plog.failures == 0

    lines = (tmp_path / "otel.jsonl").read_text().splitlines()
    assert lines and all(line.startswith('{"resourceLogs":') for line in lines)
    attributes = {a["key"] for line in lines for rl in json.loads(line)["resourceLogs"] for sl in rl["scopeLogs"]
                  for lr in sl["logRecords"] for a in lr.get("attributes", ())}
    assert {"predwatch.model.name", "predwatch.features.amount", "predwatch.prediction", "predwatch.latency_ms",
            "predwatch.actual", "labels.tenant"} <= attributes, "flat attributes, the contract's names"
    assert "predwatch" not in attributes and "service_name" not in attributes
    read = [r for r in read_predictions(read_jsonl([tmp_path / "otel.jsonl"]))]
    predictions = [r for r in read if type(r) is c.Prediction]
    outcomes = [r for r in read if type(r) is c.Outcome]
    assert len(predictions) == 1200 and len(outcomes) == 12
    assert [r for r in read if type(r) not in (c.Prediction, c.Outcome)] and all(
        "without predwatch.* attributes" in r.reason for r in read if type(r) not in (c.Prediction, c.Outcome))
    first = predictions[0]
    assert (first.model, first.version, first.prediction_id) == ("checkout-risk", "7", "p-2026-11-22T07:00:00-0")
    assert first.timestamp == "2026-11-22T07:00:00.000Z" and first.latency_ms == 1.0
    assert outcomes[0].prediction_id == "p-2026-11-22T07:00:00-0" and outcomes[0].actual == 1

    code, expected, _ = check_json(baseline_file, tmp_path / "own.jsonl", extra=("--window", "15m"))
    got_code, got, stderr = check_json(baseline_file, tmp_path / "otel.jsonl", extra=("--window", "15m"))
    assert code == 1 and any(f["check"] == "out_of_range" for w in expected for f in w.get("findings", ()))
    for window in got:  # the ordinary logs are rejected lines; everything else is the same
        if "window" in window:
            window["window"]["rejected"] = 0
    for window in expected:
        if "window" in window:
            window["window"]["rejected"] = 0
    assert (got_code, got) == (code, expected)
    assert "without predwatch.* attributes" in stderr


def test_a_map_reads_opentelemetry_records_whose_attributes_have_the_services_own_names():
    """A service that logs through OpenTelemetry with attribute names of its own: the map's paths start at
    the log record in Elastic's layout (``attributes.*``, ``@timestamp``), in OTLP JSON files as in exports."""
    doc = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                             "scopeLogs": [{"logRecords": [{"timeUnixNano": "1795330800123000000", "attributes": [
                                 {"key": "app.model", "value": {"stringValue": "churn"}},
                                 {"key": "x.age", "value": {"intValue": "4"}},
                                 {"key": "score", "value": {"doubleValue": 0.3}}]}]}]}]}
    fields = FieldMap.from_dict({"model": "attributes.app.model", "features": "attributes.x",
                                 "prediction": "attributes.score", "timestamp": "@timestamp"})
    expected = {"model": {"name": "churn"}, "features": {"age": 4}, "prediction": 0.3}
    (mapped,) = contract_records(doc, fields)
    assert mapped["predwatch"] == expected and mapped["@timestamp"] == "2026-11-22T07:00:00.123Z"
    assert mapped["service"] == {"name": "svc"}
    (stored,) = otlp_records(doc)  # the same record as Elastic stores it, exported as a JSON line
    assert contract_records(stored, fields)[0]["predwatch"] == expected
    (unmapped,) = contract_records(doc)
    assert isinstance(unmapped, c.RecordError) and "without predwatch.* attributes" in str(unmapped)
