"""Dashboards as code, Kibana import, Watcher watches, the built-in notifier, and the report from Elasticsearch."""
from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import orjson
import pytest

import incidents
import synth
from alerting.notifier import Notifier, Target, slack_escape
import watcher_mustache
from alerting.watches import AlertConfig, render_watch
from analyzers.store import results as res
from analyzers.store.state import get_state
from analyzers.store.baselines import store_baseline
from analyzers.core.checks import CheckResult
from analyzers.daemon.analyzer import Analyzer
from analyzers.daemon.config import DaemonConfig, iso
from conftest import LoopbackServer, free_port, page_metrics, screenshot
from kibana import dashboards
from logging_adapter.bulk import Doc
from logging_adapter.templates import prediction_mappings

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "predwatch", *args], capture_output=True, text=True, timeout=120)


# -- a local HTTP receiver ---------------------------------------------------------------------------

class Receiver(LoopbackServer):
    """A real HTTP server on loopback recording requests; ``fail_first`` answers 503 that many times."""

    def __init__(self, status: int = 200, body: dict | None = None, fail_first: int = 0) -> None:
        self.requests: list[dict] = []
        self.status, self.body, self.fail_first = status, body or {}, fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"path": self.path, "body": data,
                                       "headers": {k.lower(): v for k, v in self.headers.items()}})
                status = 503 if outer.fail_first > 0 else outer.status
                outer.fail_first -= 1
                payload = json.dumps(outer.body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.serve(Handler)


@pytest.fixture
def receiver():
    made = []

    def make(**kwargs) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


# -- dashboards ----------------------------------------------------------------------------------------

def template_fields() -> tuple[set[str], list[str]]:
    """Static field paths of our templates, and the dynamic templates' path patterns."""
    static: set[str] = set()

    def walk(props: dict, prefix: str = "") -> None:
        for name, spec in props.items():
            path = f"{prefix}{name}"
            if "properties" in spec:
                walk(spec["properties"], path + ".")
            else:
                static.add(path)

    walk(prediction_mappings()["properties"])
    walk(res.result_mappings()["properties"])
    walk(res.state_mappings()["properties"])
    walk(res.incident_mappings()["properties"])
    patterns = [next(iter(t.values()))["path_match"] for t in prediction_mappings()["dynamic_templates"]
                if "path_match" in next(iter(t.values()))]
    return static, patterns


def referenced_fields(objects: list[dict]) -> set[str]:
    out = set()
    for obj in objects:
        attrs = obj["attributes"]
        if obj["type"] == "index-pattern":
            out.add(attrs["timeFieldName"])
        if obj["type"] == "lens":
            state = attrs["state"]
            for layer in state["datasourceStates"]["formBased"]["layers"].values():
                for col in layer["columns"].values():
                    if col.get("sourceField") and col["sourceField"] != dashboards.RECORDS:
                        out.add(col["sourceField"])
                    params = col.get("params", {})
                    out.update(params.get("secondaryFields", []))
                    if params.get("sortField"):
                        out.add(params["sortField"])
                    if col.get("filter"):
                        out |= kql_fields(col["filter"]["query"])
            out |= kql_fields(state["query"]["query"])
    return out


def kql_fields(kql: str) -> set[str]:
    """The fields of a KQL query made of ``field : "value"`` clauses (or ``not field:*``) joined by and / or (with
    parentheses)."""
    return {clause.split(":")[0].strip(" ()").removeprefix("not ").strip(" ()")
            for clause in re.split(r" or | and ", kql) if clause.strip()}


def test_ndjson_is_generated_from_the_definition_and_committed():
    assert (ROOT / "kibana" / "predwatch.ndjson").read_text() == dashboards.ndjson(), \
        "regenerate with: python -m kibana.dashboards"
    objects = [json.loads(line) for line in dashboards.ndjson().splitlines()]
    types = [o["type"] for o in objects]
    assert types.count("index-pattern") == 5 and types.count("dashboard") == 1 and types.count("lens") >= 8
    ids = {o["id"] for o in objects}
    assert all(o["typeMigrationVersion"].startswith("8.") and o["coreMigrationVersion"] for o in objects)
    for obj in objects:  # every reference resolves within the file
        for ref in obj["references"]:
            assert ref["id"] in ids, ref
    dash = next(o for o in objects if o["type"] == "dashboard")
    panels = json.loads(dash["attributes"]["panelsJSON"])
    names = {r["name"] for r in dash["references"]}
    assert all(f"{p['panelIndex']}:{p['panelRefName']}" in names for p in panels)
    for lens in (o for o in objects if o["type"] == "lens"):
        layer = next(iter(lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].values()))
        order = layer["columnOrder"]
        assert sorted(order) == sorted(layer["columns"])
        bucketed = [layer["columns"][cid]["isBucketed"] for cid in order]
        assert bucketed == sorted(bucketed, reverse=True), "bucket columns first"
        assert lens["references"][0]["name"] == "indexpattern-datasource-layer-layer1"


def test_every_field_a_panel_references_exists_in_our_templates():
    static, patterns = template_fields()
    objects = dashboards.saved_objects()
    fields = referenced_fields(objects)
    assert {"predwatch.model.name", "predwatch.feature", "predwatch.check", "predwatch.prediction"} <= fields
    missing = [f for f in fields if f not in static and not any(fnmatch.fnmatch(f, p) or f == p for p in patterns)]
    assert not missing, missing
    titles = {o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    assert titles == {"predwatch-predictions-*", "predwatch-metrics*", "predwatch-findings*", "predwatch-state",
                      "predwatch-incidents"}


def test_kibana_install_sends_a_wellformed_multipart_import(receiver, monkeypatch):
    kib = receiver(body={"success": True, "successCount": 12,
                         "successResults": [{"type": "dashboard", "id": "predwatch-ml-team-model-monitoring"}]})
    monkeypatch.setenv("PREDWATCH_KIBANA_API_KEY", "k3y")
    proc = run_cli("kibana", "install", "--kibana-url", kib.url, "--space", "ml-team")
    assert proc.returncode == 0, proc.stderr
    assert "imported dashboard predwatch-ml-team-model-monitoring" in proc.stdout
    assert f"{kib.url}/s/ml-team/app/dashboards#/view/predwatch-ml-team-model-monitoring" in proc.stdout
    (req,) = kib.requests
    assert req["path"] == "/s/ml-team/api/saved_objects/_import?overwrite=true"
    assert req["headers"]["kbn-xsrf"] == "true" and req["headers"]["authorization"] == "ApiKey k3y"
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {req['headers']['content-type']}\r\n\r\n".encode() + req["body"])
    (part,) = list(message.iter_parts())
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_filename().endswith(".ndjson")
    assert part.get_payload(decode=True).decode() == dashboards.ndjson(space="ml-team")


def test_objects_for_a_space_have_ids_of_their_own_and_consistent_references():
    default = {o["id"] for o in dashboards.saved_objects()}
    spaced = dashboards.saved_objects(space="ml-team")
    ids = {o["id"] for o in spaced}
    assert not ids & default, "no id shared with the default space: Kibana keeps every one as it is"
    for obj in spaced:
        for ref in obj["references"]:
            assert ref["id"] in ids, (obj["id"], ref)


def test_the_dashboard_link_follows_the_id_kibana_gave(receiver):
    kib = receiver(body={"success": True, "successCount": 12, "successResults": [
        {"type": "dashboard", "id": "predwatch-model-monitoring", "destinationId": "0b5e6a1c-new"}]})
    proc = run_cli("kibana", "install", "--kibana-url", kib.url)
    assert proc.returncode == 0, proc.stderr
    assert f"{kib.url}/app/dashboards#/view/0b5e6a1c-new" in proc.stdout


def test_every_lens_column_is_drawn():
    """Lens XY layers draw only what xAccessor, accessors and splitAccessor name: nothing computed is hidden."""
    for obj in dashboards.saved_objects():
        if obj["type"] != "lens" or obj["attributes"]["visualizationType"] != "lnsXY":
            continue
        state = obj["attributes"]["state"]
        layers = state["datasourceStates"]["formBased"]["layers"]
        drawn = {layer["layerId"]: {layer.get("xAccessor"), layer.get("splitAccessor"), *layer["accessors"]} - {None}
                 for layer in state["visualization"]["layers"]}
        assert set(drawn) == set(layers), obj["id"]
        for lid, layer in layers.items():
            assert set(layer["columns"]) == drawn[lid], (obj["id"], lid)
        refs = {r["name"] for r in obj["references"]}
        assert refs == {f"indexpattern-datasource-layer-{lid}" for lid in layers}


@pytest.mark.parametrize("status,body,expected", [
    (200, {"success": False, "successCount": 0, "errors": [
        {"type": "lens", "id": "x", "error": {"type": "missing_references", "message": "missing data view"}}]},
     "missing_references"),
    (401, {"statusCode": 401, "message": "Unauthorized"}, "HTTP 401: Unauthorized"),
    (500, {"message": "Internal Server Error"}, "HTTP 500"),
])
def test_kibana_install_reports_failures(receiver, status, body, expected):
    kib = receiver(status=status, body=body)
    proc = run_cli("kibana", "install", "--kibana-url", kib.url)
    assert proc.returncode == 2 and expected in proc.stderr


def test_kibana_install_reports_an_unreachable_kibana():
    proc = run_cli("kibana", "install", "--kibana-url", f"http://127.0.0.1:{free_port()}")
    assert proc.returncode == 2 and "cannot reach Kibana" in proc.stderr


# -- watches -----------------------------------------------------------------------------------------

def finding_doc(prefix: str, i: int, severity: str, created: datetime, model: str = "checkout-risk",
                check: str = "oov_rate") -> Doc:
    doc = {"@timestamp": iso(created - timedelta(hours=2)), "message": f"finding {i}",
           "event": {"kind": "alert", "dataset": res.FINDING_DATASET, "created": iso(created)},
           "predwatch": {"model": {"name": model, "version": "7"}, "feature": f"f{i}", "check": check,
                         "severity": severity, "status": severity, "value": 0.3, "threshold": 0.1,
                         "window": {"start": iso(created - timedelta(hours=3)), "end": iso(created - timedelta(hours=2))}}}
    return Doc(res.findings_index(prefix), f"f{i}", orjson.dumps(doc))


def test_the_analysis_errors_watch_searches_exactly_the_errors_to_alert_on(es):
    """Findings of the data are told by the incidents watch (tests/test_incident_views.py); this watch tells the
    windows the monitor could not judge, which are no incident."""
    from alerting.watches import render_error_watch

    now = datetime.now(timezone.utc)
    docs = [finding_doc(es.prefix, 1, "critical", now - timedelta(minutes=1), check="analysis_error"),
            finding_doc(es.prefix, 2, "critical", now - timedelta(minutes=2), check="analysis_error"),
            finding_doc(es.prefix, 3, "critical", now - timedelta(hours=2), check="analysis_error"),  # before
            finding_doc(es.prefix, 4, "critical", now - timedelta(minutes=1), model="other-model",
                        check="analysis_error"),
            finding_doc(es.prefix, 5, "critical", now - timedelta(minutes=1))]  # a finding of the data: no
    res.write(es.client, docs, refresh=True)
    cases = [(AlertConfig(interval="5m"), None, {"f1", "f2", "f4"}),
             (AlertConfig(interval="3h", severity="critical"), None, {"f1", "f2", "f3", "f4"}),
             (AlertConfig(interval="5m"), "checkout-risk", {"f1", "f2"})]
    for cfg, model, expected in cases:
        watch = render_error_watch(cfg, es.prefix, model)
        request = watch["input"]["search"]["request"]
        hits = es.client.search(index=request["indices"], **watch_search_body(watch))["hits"]["hits"]
        assert {h["_id"] for h in hits} == expected, (cfg, model)
        assert watch["trigger"]["schedule"]["interval"] == cfg.interval
        assert watch["condition"] == {"compare": {"ctx.payload.hits.total": {"gt": 0}}}


def watch_search_body(watch: dict) -> dict:
    """The search body Watcher sends: a search template is rendered (as JSON) with its params first."""
    request = watch["input"]["search"]["request"]
    if "template" not in request:
        return request["body"]
    template = request["template"]
    return json.loads(watcher_mustache.render("__json__::" + json.dumps(template["source"]), template["params"]))


def test_watch_actions_escape_config_values_and_name_what_happened():
    cfg = AlertConfig(webhooks=['http://hooks.example/"quoted"?a=1&b=<2>'], slack=["https://hooks.slack.test/T/B/X"],
                      email=["oncall@example.com"], index="predwatch-alerts", kibana_url="https://kibana:5601")
    watch = render_watch(cfg, "predwatch", 'model "with" quotes', dashboards.dashboard_url(cfg.kibana_url))
    actions = watch["actions"]
    assert set(actions) == {"log", "webhook_1", "slack_1", "email", "index"}
    assert actions["webhook_1"]["webhook"]["url"] == 'http://hooks.example/"quoted"?a=1&b=<2>'
    assert actions["webhook_1"]["webhook"]["body"].startswith("__json__::")
    text = actions["log"]["logging"]["text"]
    for part in ("model.name", "model.version", "feature", "check", "value", "ctx.metadata.dashboard"):
        assert part in text
    assert watch["metadata"]["dashboard"].startswith("https://kibana:5601/app/dashboards")
    assert watch["throttle_period"] == "1h"
    sneaky = render_watch(AlertConfig(webhooks=["http://x"]), "predwatch", "m{{#ctx}}x{{/ctx}}")
    assert "{{#ctx}}" not in json.dumps(sneaky["actions"]) + json.dumps(sneaky["input"]["search"]["request"]
                                                                          ["template"]["source"]), \
        "user values never enter template text"
    assert sneaky["metadata"]["model"] == "m{{#ctx}}x{{/ctx}}"


NASTY_MODEL = 'churn "v2" \\ {{#ctx}}x{{/ctx}}\nline'
NASTY_MESSAGE = "type_mismatch: 'amount' got {'a': \"b\\\\c\"}\n\tTraceback: ValueError(\"x\")"


def test_watches_render_valid_json_for_any_name_and_message():
    """Render every action as Watcher would, for a nasty model name and finding message: bodies parse as
    JSON and carry the values exactly; the search matches the model's name exactly."""
    cfg = AlertConfig(webhooks=["http://hooks.example/w"], slack=["https://hooks.slack.test/x"],
                      email=["oncall@example.com"], kibana_url='https://kibana:5601/"odd"')
    watch = render_watch(cfg, "predwatch", NASTY_MODEL, dashboards.dashboard_url(cfg.kibana_url))
    hit = {"_id": "i1", "_source": {"message": NASTY_MESSAGE, "predwatch": {
        "model": {"name": NASTY_MODEL, "version": '7"'}, "feature": 'a"b', "check": "type_mismatch",
        "reference": "training", "incident": {"event": "opened", "peak_severity": "critical", "peak_value": 0.5,
                                              "start": "2026-11-20T06:00:00.000Z", "windows": 1}}}}
    ctx = {"ctx": {"metadata": watch["metadata"], "payload": {"hits": {"total": 1, "hits": [hit]}}}}
    actions = watch["actions"]
    slack = json.loads(watcher_mustache.render(actions["slack_1"]["webhook"]["body"], ctx))
    assert NASTY_MESSAGE in slack["text"] and NASTY_MODEL in slack["text"]
    assert 'https://kibana:5601/"odd"/app/dashboards' in slack["text"]
    hook = json.loads(watcher_mustache.render(actions["webhook_1"]["webhook"]["body"], ctx))
    assert hook["incidents"] == [hit] and hook["total"] == 1 and hook["dashboard"] == watch["metadata"]["dashboard"]
    subject = watcher_mustache.render(actions["email"]["email"]["subject"], ctx)
    assert subject == f"predwatch incidents for {NASTY_MODEL}"
    body = watch_search_body(watch)
    assert {"term": {"predwatch.model.name": NASTY_MODEL}} in body["query"]["bool"]["filter"]


def test_alerts_install_without_watcher_points_to_the_notifier(es, tmp_path):
    cfg = tmp_path / "predwatch.toml"
    cfg.write_text(f'[elasticsearch]\nurl = "{es.url}"\ndistribution = "{es.settings.distribution}"\n'
                   '[alerts]\ninterval = "10m"\n')
    proc = run_cli("alerts", "install", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    assert "Watcher is not available" in proc.stdout and "[notify]" in proc.stdout
    assert "predwatch-incidents" in proc.stdout, "the Basic path names the index to watch"
    proc = run_cli("alerts", "install", "--config", str(cfg), "--print")
    printed = json.loads(proc.stdout)  # the watches install would put: incidents and analysis errors
    assert [w["id"] for w in printed] == ["predwatch-incidents", "predwatch-analysis-errors"]
    assert all(w["watch"]["trigger"]["schedule"]["interval"] == "10m" for w in printed)


# -- the built-in notifier --------------------------------------------------------------------------

def result(feature: str, check: str, status: str, value: float = 0.3, message: str = "") -> CheckResult:
    return CheckResult(check=check, feature=feature, role="input", status=status, value=value, threshold=0.1,
                       critical_threshold=0.25, p_value=1e-9, adjusted_p_value=1e-9, n_window=1000, n_baseline=5000,
                       observed=value, expected=0.0, message=message or f"{feature}: {check}", examples=[])


def test_notifier_delivers_deduplicates_and_says_when_a_check_recovers(receiver):
    hook, slack = receiver(), receiver()
    notifier = Notifier([Target(hook.url + "/hook"), Target(slack.url + "/slack", "slack")], backoff=0.01,
                        dashboard_url="https://kibana/app/dashboards#/view/x")
    window = {"start": "2026-11-22T07:00:00.000Z", "end": "2026-11-22T08:00:00.000Z"}
    notifier.observe("m", "7", window, [result("country", "unseen_category", "warning"), result("age", "oov_rate", "ok")])
    notifier.observe("m", "7", window, [result("country", "unseen_category", "warning")])  # the same: deduplicated
    notifier.observe("m", "7", window, [result("country", "unseen_category", "critical")])  # worse: said again
    notifier.observe("m", "7", window, [result("country", "unseen_category", "ok")])  # recovered
    assert notifier.drain(10)
    events = [json.loads(r["body"]) for r in hook.requests]
    assert [(e["status"], e["severity"]) for e in events] == [("firing", "warning"), ("firing", "critical"),
                                                              ("resolved", "ok")]
    assert events[0]["model"] == "m" and events[0]["feature"] == "country" and events[0]["window"] == window
    texts = [json.loads(r["body"])["text"] for r in slack.requests]
    assert len(texts) == 3 and "RESOLVED" in texts[-1] and "<https://kibana/app/dashboards#/view/x|" in texts[0]
    assert notifier.stats["deduplicated"] == 1
    notifier.close()


def test_open_incidents_survive_a_restart_of_the_notifier(es, receiver):
    from analyzers.store.state import StateDocument

    hook = receiver()
    state = StateDocument(es.client, es.prefix, "notifier:active", "notifier")
    first = Notifier([Target(hook.url)], backoff=0.01, state=state)
    first.observe("m", "7", {}, [result("country", "unseen_category", "warning")])
    assert first.drain(10)
    first.close()
    again = Notifier([Target(hook.url)], backoff=0.01, state=state)  # the daemon restarted
    again.observe("m", "7", {}, [result("country", "unseen_category", "warning")])  # still open: no repeat
    again.observe("m", "7", {}, [result("country", "unseen_category", "ok")])  # cleared: said once
    assert again.drain(10)
    again.close()
    assert [json.loads(r["body"])["status"] for r in hook.requests] == ["firing", "resolved"]
    assert get_state(es.client, es.prefix, "notifier:active") == {"active": []}


def test_notifier_retries_through_a_failing_receiver(receiver):
    hook = receiver(fail_first=2)
    notifier = Notifier([Target(hook.url)], backoff=0.01)
    notifier.observe("m", None, {}, [result("x", "type_mismatch", "critical")])
    assert notifier.drain(10)
    assert len(hook.requests) == 3 and notifier.stats["sent"] == 1 and notifier.stats["retried"] == 2
    notifier.close()


def test_notifier_never_blocks_analysis_on_a_dead_receiver():
    notifier = Notifier([Target(f"http://127.0.0.1:{free_port()}")], attempts=2, backoff=0.01, timeout=1)
    import time
    start = time.perf_counter()
    for i in range(50):
        notifier.observe("m", None, {}, [result(f"f{i}", "oov_rate", "warning")])
    assert time.perf_counter() - start < 0.5
    assert notifier.drain(30) and notifier.stats["failed"] == 50
    notifier.close()


def test_untrusted_values_are_escaped_for_slack():
    assert slack_escape("<!channel> *bold* & _it_") == "&lt;!channel&gt; \u200b*bold\u200b* &amp; \u200b_it\u200b_"
    t = Target("http://x", "slack")
    body = json.loads(t.payload({"status": "firing", "severity": "warning", "model": "<@U1>", "version": "1",
                                 "check": "unseen_category", "feature": 'f"1', "message": "<script>"}))
    assert "<@U1>" not in body["text"] and "&lt;script&gt;" in body["text"]


# -- the report from Elasticsearch -------------------------------------------------------------------

def test_report_from_elasticsearch_shows_the_dashboard_series(es, baseline, browser, tmp_path):
    from test_es_analyzers import frame_records, seed

    t0 = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)
    store_baseline(es.client, baseline, es.prefix)
    frames = [synth.table(200, seed=200), synth.table(200, seed=201), incidents.a_third_of_words_oov(200, 202)[0],
              incidents.mean_shifts(200, 203)[0]]
    seed(es, [r for i, f in enumerate(frames) for r in frame_records(f, t0 + timedelta(hours=i), 3000)])
    cfg = DaemonConfig.from_dict({"elasticsearch": {"url": es.url, "distribution": es.settings.distribution,
                                                    "prefix": es.prefix},
                                  "models": [{"name": "checkout-risk", "version": "7", "window": "1h", "lag": "0s",
                                              "backfill": "4h"}]})
    Analyzer(es.client, cfg).run_model(cfg.models[0], now=t0 + timedelta(hours=4))
    out = tmp_path / "es-report.html"
    proc = run_cli("report", "--es", "--model", "checkout-risk", "--start", iso(t0), "--end",
                   iso(t0 + timedelta(hours=4)), "--out", str(out), *es.es_args())
    assert proc.returncode == 1, proc.stderr  # findings: the local report's exit code rule (issue 27)
    html = out.read_text()
    assert "oov_rate" in html and "distribution_shift" in html and "<polyline" in html
    assert html.count('class="feature critical"') + html.count('class="feature warning"') >= 2
    png, dom = screenshot(browser, out, tmp_path / "es-report.png", tmp_path)
    assert png.stat().st_size > 20_000 and "Checks over time" in dom
    for width in (1400, 500):
        seen = page_metrics(browser, out, tmp_path, width)
        assert seen["scroll"] <= seen["view"], f"the page scrolls sideways at {width} px: {seen}"
        assert seen["what"] >= min(240, width * 0.45), seen


def test_a_watch_names_the_quality_metric_of_a_quality_finding():
    from alerting.watches import FINDING_LINE

    finding = {"predwatch": {"severity": "critical", "model": {"name": "churn", "version": "3"},
                             "feature": "prediction", "check": "quality_drop", "metric": "roc_auc", "value": 0.2,
                             "threshold": 0.05}, "message": "prediction: roc_auc 0.61 (reference 0.8)"}
    line = watcher_mustache.render(FINDING_LINE, {"_source": finding})
    assert line.startswith("critical: churn v3 prediction quality_drop roc_auc value 0.2")
    del finding["predwatch"]["metric"]
    assert "quality_drop value 0.2" in watcher_mustache.render(FINDING_LINE, {"_source": finding})
