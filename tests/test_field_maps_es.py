"""The user's own indices analysed in place (real engines): a service's own layout in an index typed by dynamic
mapping, and Elastic's OpenTelemetry layout, give ``predwatch analyze`` the findings ``predwatch check --fields``
gives on the same records as files; nothing is written into those indices; their mapping is read and said."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import pytest

import incidents
import synth
from analyzers.core.baseline import build_baseline
from analyzers.daemon.config import DaemonConfig, iso
from analyzers.sources.elastic import EsWindowProfiler
from analyzers.sources.jsonl import read_predictions
from analyzers.sources.layout import Layout, LayoutError
from analyzers.sources.local import LocalProfiler
from analyzers.store.baselines import store_baseline
from conftest import delete_indices, write_jsonl
from logging_adapter.fieldmap import FieldMap
from test_es_analyzers import T0, frame_records
from test_field_maps import ISSUE_MAP, custom, elastic

# predwatch's own checks of a window; the cluster adds checks of its own history (volume against earlier days)
HISTORY_CHECKS = {"volume", "no_data", "volume_drop"}
# the issue's map as an inline table, and a prediction_id path the service never logs (said once)
INLINE_MAP = ("{ " + ", ".join(line.replace("prediction_id = \"req_id\"", "prediction_id = \"request.id\"")
                               for line in ISSUE_MAP.strip().splitlines()) + " }")


def predwatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "predwatch", *args], capture_output=True, text=True, timeout=300)


def records() -> list[dict]:
    """A quiet hour, then an hour whose amounts are in cents: predwatch's own layout, with a latency."""
    quiet = frame_records(synth.table(400, seed=301), T0, 3000)
    drifted = frame_records(incidents.unit_changes(400, 302)[0], T0 + timedelta(hours=1), 3000)
    out = quiet + drifted
    for i, record in enumerate(out):
        record["predwatch"]["latency_ms"] = 2.0 + (i % 7) * 0.1
    return out


def services_layout(own: list[dict]) -> list[dict]:
    """The issue's layout; ``visits`` as whole numbers (as a service writes counts), which dynamic mapping types
    ``long`` by the first one."""
    out = []
    for i, record in enumerate(own):
        doc = custom(record, i)
        for holder in (doc.get("x", {}), doc):
            for key in ("visits", "x.visits"):
                if isinstance(holder.get(key), float):
                    holder[key] = int(holder[key])
        out.append(doc)
    return out


def ordinary_logs(n: int) -> list[dict]:
    """Log records of the same service that carry no prediction, in the same data stream."""
    return [{"@timestamp": iso(T0 + timedelta(seconds=60 * i)), "body": {"text": "GET /health 200"},
             "severity_text": "INFO", "attributes": {"http.route": "/health", "http.response.status_code": 200},
             "resource": {"attributes": {"service.name": "checkout-api"}}} for i in range(n)]


def index_as_the_service_does(client, index: str, docs: list[dict]) -> None:
    """Bulk ``create`` into an index no predwatch template matches: typed by dynamic mapping (a data stream
    where the engine has one for ``logs-*``)."""
    for lo in range(0, len(docs), 500):
        ops = []
        for doc in docs[lo:lo + 500]:
            ops += [{"create": {"_index": index}}, doc]
        resp = client.bulk(operations=ops, refresh=False)
        assert not resp["errors"], [i for i in resp["items"] if i["create"].get("error")][:1]
    client.indices.refresh(index=index)


def untouched(client, index: str) -> tuple:
    """What a write would change: document count, each shard's highest sequence number, the mapping."""
    stats = client.indices.stats(index=index, level="shards")["indices"]
    seq = sorted((name, n, copy["seq_no"]["max_seq_no"]) for name, spec in stats.items()
                 for n, copies in spec["shards"].items() for copy in copies if copy["routing"]["primary"])
    count = client.count(index=index)["count"]
    return count, seq, json.dumps(client.indices.get_mapping(index=index).body, sort_keys=True)


def config(es, tmp_path, name: str, model_lines: str):
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[elasticsearch]\nurl = "{es.url}"\ndistribution = "{es.settings.distribution}"\n'
                    f'prefix = "{es.prefix}"\n\n[[models]]\nname = "checkout-risk"\nwindow = "1h"\n{model_lines}')
    return path


def analyze(path) -> subprocess.CompletedProcess:
    return predwatch("analyze", "--config", str(path), "--model", "checkout-risk", "--start", iso(T0),
                     "--end", iso(T0 + timedelta(hours=2)))


def cluster_findings(es) -> dict[str, set[tuple]]:
    """(check, feature, severity) of the findings analyze indexed, per window start."""
    out: dict[str, set[tuple]] = {}
    for hit in es.docs("findings*"):
        ns = hit["_source"]["predwatch"]
        if ns["check"] in HISTORY_CHECKS:
            continue
        start = ns["window"]["start"]
        out.setdefault(start, set()).add((ns["check"], None if ns.get("feature") == "*" else ns.get("feature"),
                                          ns["status"]))
    return out


def file_findings(baseline_file, path, *extra: str) -> dict[str, set[tuple]]:
    proc = predwatch("check", "--baseline", str(baseline_file), "--logs", str(path), "--window", "1h",
                     "--format", "json", *extra)
    assert proc.returncode == 1, proc.stderr
    out = {}
    for line in proc.stdout.splitlines():
        doc = json.loads(line)
        if "window" in doc:  # (and the incidents the windows make)
            out[doc["window"]["start"]] = {(f["check"], f["feature"], f["severity"]) for f in doc["findings"]}
    return {start: found for start, found in out.items() if found}  # as the cluster keeps them: windows with some


def test_analyze_reads_the_services_own_index_and_opentelemetry_logs_in_place(each_engine, baseline, baseline_file,
                                                                              tmp_path):
    es = each_engine
    own = records()
    theirs, otel = services_layout(own), [elastic(r, i) for i, r in enumerate(own)]
    (tmp_path / "map.toml").write_text(ISSUE_MAP)
    expected = file_findings(baseline_file, write_jsonl(tmp_path / "theirs.jsonl", theirs),
                             "--fields", str(tmp_path / "map.toml"))
    assert iso(T0) not in expected, "the quiet hour has no finding"
    assert ("out_of_range", "amount", "critical") in expected[iso(T0 + timedelta(hours=1))]
    assert file_findings(baseline_file, write_jsonl(tmp_path / "otel.jsonl", otel)) == expected

    service_index, logs_index = f"svc{es.prefix}-churn", f"logs-{es.prefix}.otel-default"
    try:
        for lo in (0, 400):  # an hour a segment, as a service's steady flow makes them: each window's query
            # matches whole segments (what OpenSearch's range shortcut trips on; see elastic._range)
            index_as_the_service_does(es.client, service_index, theirs[lo:lo + 400])
            index_as_the_service_does(es.client, logs_index, otel[lo:lo + 400])
        index_as_the_service_does(es.client, logs_index, ordinary_logs(40))
        mapping = es.client.indices.get_mapping(index=service_index).body[service_index]["mappings"]["properties"]
        assert mapping["x"]["properties"]["country"]["type"] == "text", "dynamic mapping: text with .keyword"
        assert mapping["x"]["properties"]["visits"]["type"] == "long"
        store_baseline(es.client, baseline, es.prefix)
        before = untouched(es.client, f"{service_index},{logs_index}")

        proc = analyze(config(es, tmp_path, "service", f'index = "{service_index}"\nfields = {INLINE_MAP}\n'))
        assert proc.returncode == 1, proc.stderr
        assert "checkout-risk [" in proc.stdout and "400 records" in proc.stdout, proc.stdout
        warned = [line for line in proc.stderr.splitlines() if "warning" in line]
        assert [line for line in warned if "never occurs" in line] == [
            f'predwatch analyze: warning: checkout-risk: predwatch.toml [[models]] checkout-risk: path "request.id" '
            f'(prediction_id) never occurs in the mapping of {service_index}'], proc.stderr
        assert sum("visits" in line and "mapped as long" in line and "truncated" in line for line in warned) == 1
        assert "analysis_error" not in {f for w in cluster_findings(es).values() for f, _, _ in w}, \
            [h["_source"]["message"] for h in es.docs("findings*") if "analysis" in h["_source"]["predwatch"]["check"]]
        assert cluster_findings(es) == expected

        proc = analyze(config(es, tmp_path, "otel", f'index = "{logs_index}"\nfields = "otel"\n'))
        assert proc.returncode == 1, proc.stderr
        assert proc.stdout.count("400 records") == 2, proc.stdout  # the health checks' log lines left out
        assert "never occurs" not in proc.stderr, proc.stderr
        assert cluster_findings(es) == expected

        assert untouched(es.client, f"{service_index},{logs_index}") == before
    finally:
        delete_indices(es.client, service_index)
        try:  # a data stream where the engine has a template for logs-*-*
            es.client.indices.delete_data_stream(name=logs_index)
        except Exception:  # noqa: BLE001 - an ordinary index
            delete_indices(es.client, logs_index)


def test_profiles_of_the_services_index_are_the_profiles_of_its_records(es, baseline):
    """Column by column, what the aggregations on the dynamically mapped index count is what the local reader
    counts of the same records (amounts typed ``float`` by dynamic mapping: their sums to float precision)."""
    own = records()
    theirs = services_layout(own)
    index = f"svc{es.prefix}-profiles"
    fields = FieldMap.from_dict(dict(line.split(" = ") for line in ISSUE_MAP.strip().replace('"', "").splitlines()))
    try:
        index_as_the_service_does(es.client, index, theirs)
        for start in (T0, T0 + timedelta(hours=1)):
            profiler = EsWindowProfiler(es.client, baseline, prefix=es.prefix, layout=Layout(index=index, fields=fields))
            remote = profiler.profile(iso(start), iso(start + timedelta(hours=1)), "7")
            window = [r for r in own if iso(start) <= r["@timestamp"] < iso(start + timedelta(hours=1))]
            local = LocalProfiler(baseline).profile(read_predictions(window))
            assert remote.records == local.records == 400 and remote.latency == local.latency
            assert profiler.layout.column("country") == "x.country.keyword"
            assert set(profiler.conflicts) == set(), profiler.conflicts
            for name, lc in local.columns.items():
                rc = remote.columns[name]
                assert (rc.present - rc.nulls, rc.mismatched, rc.bins, rc.categories, rc.unseen) == \
                       (lc.present - lc.nulls, lc.mismatched, lc.bins, lc.categories, lc.unseen), name
                if lc.kind == "numeric" and lc.sum:
                    assert rc.sum == pytest.approx(lc.sum, rel=1e-6), name
    finally:
        delete_indices(es.client, index)


def test_a_timestamp_that_is_not_a_date_is_exit_2_with_one_clear_line(es, baseline, tmp_path):
    index = f"svc{es.prefix}-nodates"
    es.client.indices.create(index=index, mappings={"date_detection": False})  # the time is a string there
    try:
        index_as_the_service_does(es.client, index, services_layout(records()[:50]))
        store_baseline(es.client, baseline, es.prefix)
        proc = analyze(config(es, tmp_path, "nodates", f'index = "{index}"\nfields = {INLINE_MAP}\n'))
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert f'the timestamp "time" is mapped as text in {index}, not as a date' in proc.stderr, proc.stderr
        with pytest.raises(LayoutError, match="not as a date"):
            Layout(index=index, fields=FieldMap.from_dict({"timestamp": "time", "features": "x"})).inspect(es.client)
    finally:
        delete_indices(es.client, index)


def test_a_keyword_where_a_number_was_expected_is_said_and_judged_by_presence(es, baseline, tmp_path):
    """An index the service typed itself: amounts as keyword, countries as text without a .keyword."""
    index = f"svc{es.prefix}-typed"
    es.client.indices.create(index=index, mappings={"properties": {"x": {"properties": {
        "amount": {"type": "keyword"}, "country": {"type": "text"}}}}})
    try:
        index_as_the_service_does(es.client, index, services_layout(records()[:400]))
        store_baseline(es.client, baseline, es.prefix)
        proc = analyze(config(es, tmp_path, "typed", f'index = "{index}"\nfields = {INLINE_MAP}\n'))
        assert proc.returncode == 1 and proc.stdout.count("400 records") == 1, \
            (proc.stdout, proc.stderr, [h["_source"]["message"] for h in es.docs("findings*")])
        conflicts = {h["_source"]["predwatch"]["feature"]: h["_source"]["message"] for h in es.docs("findings*")
                     if h["_source"]["predwatch"]["check"] == "mapping_conflict"}
        assert set(conflicts) == {"amount", "country"}, conflicts
        assert "mapped as keyword (a keyword where a number was expected)" in conflicts["amount"]
        assert "mapped as text without a .keyword sub-field" in conflicts["country"]
        assert "index template of the service's indices" in conflicts["amount"]
        said = [line for line in proc.stderr.splitlines() if "without a .keyword sub-field" in line]
        assert len(said) == 1 and "country" in said[0], proc.stderr
        others = {h["_source"]["predwatch"]["check"] for h in es.docs("findings*")} - {"mapping_conflict"}
        assert not others & {"analysis_error", "missing_rate", "type_mismatch"}, others  # present, not judged
    finally:
        delete_indices(es.client, index)


def test_quality_is_not_judged_without_an_actual_path_and_said_once(es, tmp_path):
    import test_quality as q

    baseline = build_baseline(q.draw(20_000, 1), model="checkout-risk", version="7", predictions=["score"],
                              actual="label")
    assert baseline.quality is not None
    preds, _ = q.records(q.draw(800, 7))
    for i, record in enumerate(preds):
        record["@timestamp"] = iso(T0 + timedelta(seconds=9 * i))  # two hours
        record["predwatch"]["model"] = {"name": "checkout-risk", "version": "7"}
        record["predwatch"]["latency_ms"] = 1.5
    index = f"svc{es.prefix}-labelled"
    try:
        index_as_the_service_does(es.client, index, [custom(r, i) for i, r in enumerate(preds)])
        store_baseline(es.client, baseline, es.prefix)
        proc = analyze(config(es, tmp_path, "labelled", f'index = "{index}"\nfields = {INLINE_MAP}\n'))
        assert proc.returncode in (0, 1) and proc.stdout.count("400 records") == 2, (proc.stdout, proc.stderr)
        said = [line for line in proc.stderr.splitlines() if "quality is not judged" in line]
        assert len(said) == 1 and "names no actual path" in said[0], proc.stderr
        checks = {h["_source"]["predwatch"]["check"] for h in es.docs("metrics*") + es.docs("findings*")}
        assert "label_coverage" not in checks and "analysis_error" not in checks, checks
    finally:
        delete_indices(es.client, index)


def test_the_daemon_reads_the_services_index_and_says_what_its_mapping_lacks_once_in_its_log(es, baseline, caplog):
    import logging

    from analyzers.daemon.analyzer import Analyzer

    own = records()
    index = f"svc{es.prefix}-daemon"
    try:
        index_as_the_service_does(es.client, index, services_layout(own))
        store_baseline(es.client, baseline, es.prefix)
        cfg = DaemonConfig.from_dict({
            "elasticsearch": {"url": es.url, "distribution": es.settings.distribution, "prefix": es.prefix},
            "models": [{"name": "checkout-risk", "window": "1h", "lag": "0s", "backfill": "2h", "index": index,
                        "fields": {"model": "app.model_name", "version": "app.model_rev", "timestamp": "time",
                                   "features": "x", "prediction": "y.proba", "latency_ms": "elapsed.ms"}}]})
        job = cfg.models[0]
        before = untouched(es.client, index)
        with caplog.at_level(logging.WARNING, logger="predwatch.daemon"):
            done = Analyzer(es.client, cfg).run_model(job, now=T0 + timedelta(hours=2))
        assert done == 2
        said = [r.getMessage() for r in caplog.records if "never occurs" in r.getMessage()]
        assert said == [f'checkout-risk: predwatch.toml [[models]] checkout-risk: path "elapsed.ms" (latency_ms) '
                        f'never occurs in the mapping of {index}'], said
        found = {(h["_source"]["predwatch"]["window"]["start"], h["_source"]["predwatch"]["check"],
                  h["_source"]["predwatch"]["feature"]) for h in es.docs("findings*")}
        assert (iso(T0 + timedelta(hours=1)), "out_of_range", "amount") in found
        assert not {f for f in found if f[1] == "analysis_error"}
        assert untouched(es.client, index) == before
    finally:
        delete_indices(es.client, index)


def test_models_config_takes_an_index_and_a_field_map_or_otel():
    doc = {"elasticsearch": {"url": "http://localhost:9200"},
           "models": [{"name": "churn", "index": "svc-*", "fields": {"model": "app.model_name", "features": "x",
                                                                     "prediction": "y.proba", "timestamp": "time"}},
                      {"name": "risk", "fields": "otel"}, {"name": "own"}, {"name": "shipped", "index": "svc-*"}]}
    churn, risk, own, shipped = DaemonConfig.from_dict(doc).models
    assert (churn.layout.index, churn.layout.column("age"), churn.layout.timestamp) == ("svc-*", "x.age", "time")
    assert (risk.layout.index, risk.layout.model_field, risk.layout.filters) == (
        "logs-*", "attributes.predwatch.model.name", ({"exists": {"field": "attributes.predwatch.model.name"}},))
    assert own.layout.own and own.layout.column("age") == "predwatch.features.age"
    # records in predwatch's own layout, in an index of the service's: the contract's names, read in place
    assert not shipped.layout.own and shipped.layout.column("age") == "predwatch.features.age"
    assert shipped.layout.predictions("predwatch", "shipped") == "svc-*"
    for bad, said in (({"fields": {"model": "a"}}, "fields needs index"),
                      ({"index": "svc-*", "fields": {"modle": "a", "features": "x"}}, "unknown key 'modle'"),
                      ({"index": "svc-*", "fields": {"features": "x"}}, "fields needs timestamp"),
                      ({"index": "svc-*", "fields": "elastic"}, "an inline table")):
        with pytest.raises(ValueError, match=said):
            DaemonConfig.from_dict({**doc, "models": [{"name": "m", **bad}]})
