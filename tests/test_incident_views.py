"""Incidents in Kibana (a table and a timeline over ``<prefix>-incidents``, linked to the windows' findings) and in
the Watcher watches (told when an incident opens, escalates or closes, never per window).

Kibana and Watcher do not run here: the saved objects are checked by content against the incident mapping, the
table's link is rendered the way Kibana's URL drilldown does and its query is run on the real node, and the watch's
search is sent to the real node and its actions rendered with Watcher's mustache over the real answer.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

import orjson

import watcher_mustache
from alerting.watches import AlertConfig, INCIDENT_EVENTS, render_watch
from analyzers.core.checks import CheckResult
from analyzers.core.incidents import Incident, episodes
from analyzers.daemon.config import iso
from analyzers.store import results as res
from kibana import dashboards
from logging_adapter import contract as c
from logging_adapter.bulk import Doc
from test_kibana_alerting import kql_fields, referenced_fields, watch_search_body

DASHBOARD = "https://kibana.example:5601/app/dashboards#/view/predwatch-model-monitoring"


# -- incident documents, as the contract in analyzers/store/results.py says --------------------------------------

def _put(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
    doc[leaf] = value


def incident_document(inc: Incident, event: str, updated: datetime) -> dict[str, Any]:
    doc: dict[str, Any] = {"@timestamp": inc.start, "message": inc.message,
                           "event": {"kind": "alert", "dataset": res.INCIDENT_DATASET}}
    for name, value in ((c.MODEL_NAME, inc.model), (c.MODEL_VERSION, inc.version), (res.FEATURE, inc.feature),
                        (res.CHECK, inc.check), (res.REFERENCE, inc.reference), (res.INCIDENT_ID, inc.id),
                        (res.INCIDENT_STATUS, "open" if inc.ongoing else "closed"), (res.INCIDENT_START, inc.start),
                        (res.INCIDENT_LAST_SEEN, inc.last_seen), (res.INCIDENT_WINDOWS, inc.windows),
                        (res.INCIDENT_PEAK_SEVERITY, inc.peak_severity), (res.INCIDENT_PEAK_VALUE, inc.peak_value),
                        (res.INCIDENT_LATEST_MESSAGE, inc.latest_message), (res.INCIDENT_EVENT, event),
                        (res.INCIDENT_UPDATED, iso(updated))):
        _put(doc, name, value)
    if not inc.ongoing:
        _put(doc, res.INCIDENT_END, inc.end)
    return doc


def finding(feature: str, check: str, status: str, value: float) -> CheckResult:
    return CheckResult(check=check, feature=feature, role="input", status=status, value=value, threshold=0.1,
                       critical_threshold=0.25, p_value=1e-9, adjusted_p_value=1e-9, n_window=1000, n_baseline=5000,
                       observed=value, expected=0.0, message=f"{feature}: {check} {status} {value}", examples=[])


T0 = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)


def daily_incidents(model: str = "checkout-risk") -> list[Incident]:
    """Ten days: amount drifts days 1-3 (warning, then critical), country's unseen share from day 6 to the end."""
    days = [(iso(T0 + timedelta(days=i)), iso(T0 + timedelta(days=i + 1))) for i in range(10)]
    said: list[list] = [[] for _ in days]
    for i, status in ((1, "warning"), (2, "critical"), (3, "warning")):
        said[i].append((model, "7", finding("amount", "distribution_shift", status, 0.3 if status == "critical"
                                            else 0.15)))
    for i in range(6, 10):
        said[i].append((model, "7", finding("country", "unseen_category", "warning", 0.12)))
    return episodes(days, said, gap=1)


# -- Kibana ---------------------------------------------------------------------------------------------------

def mapped_fields(mappings: dict) -> set[str]:
    out: set[str] = set()

    def walk(props: dict, prefix: str = "") -> None:
        for name, spec in props.items():
            if "properties" in spec:
                walk(spec["properties"], f"{prefix}{name}.")
            else:
                out.add(f"{prefix}{name}")

    walk(mappings["properties"])
    return out


def by_id() -> dict[str, dict]:
    return {(o["type"], o["id"]): o for o in dashboards.saved_objects()}


def test_the_incident_panels_read_only_fields_of_the_incident_mapping():
    objects = by_id()
    view = objects[("index-pattern", "predwatch-incidents")]
    assert view["attributes"]["title"] == res.incidents_index("predwatch")
    assert view["attributes"]["timeFieldName"] == "@timestamp"  # the incident's start
    incident_fields = mapped_fields(res.incident_mappings())
    on_incidents = [o for o in objects.values() if o["type"] == "lens"
                    and o["references"][0]["id"] == "predwatch-incidents"]
    assert {o["id"] for o in on_incidents} == {"predwatch-incidents-timeline", "predwatch-incident-table"}
    for obj in on_incidents:
        fields = referenced_fields([obj])
        assert fields <= incident_fields, (obj["id"], fields - incident_fields)
    table = objects[("lens", "predwatch-incident-table")]
    columns = table["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]["layer1"]["columns"]
    shown = {col["sourceField"] for col in columns.values()}
    assert shown == {res.INCIDENT_ID, c.MODEL_NAME, c.MODEL_VERSION, res.FEATURE, res.CHECK, res.REFERENCE,
                     res.INCIDENT_STATUS, res.INCIDENT_START, res.INCIDENT_LAST_SEEN, res.INCIDENT_END,
                     res.INCIDENT_WINDOWS, res.INCIDENT_PEAK_SEVERITY, res.INCIDENT_PEAK_VALUE}
    bucketed = [cid for cid, col in columns.items() if col["isBucketed"]]
    assert bucketed == ["incident"] and columns["incident"]["sourceField"] == res.INCIDENT_ID, \
        "one row per incident: two episodes of one problem are two rows"
    timeline = objects[("lens", "predwatch-incidents-timeline")]["attributes"]["state"]
    (layer,) = timeline["visualization"]["layers"]
    cols = timeline["datasourceStates"]["formBased"]["layers"]["layer1"]["columns"]
    assert cols[layer["xAccessor"]]["sourceField"] == "@timestamp" and layer["accessors"] == ["y"]
    assert cols[layer["splitAccessor"]]["sourceField"] == res.CHECK
    dash = objects[("dashboard", "predwatch-model-monitoring")]
    panels = json.loads(dash["attributes"]["panelsJSON"])
    refs = {r["name"]: r["id"] for r in dash["references"]}
    top = sorted(panels, key=lambda p: (p["gridData"]["y"], p["gridData"]["x"]))[:3]
    assert [refs[f"{p['panelIndex']}:{p['panelRefName']}"] for p in top] == \
        ["predwatch-incidents-timeline", "predwatch-incident-messages", "predwatch-incident-table"], \
        "the incidents lead the dashboard"
    messages = objects[("search", "predwatch-incident-messages")]
    (ref,) = messages["references"]
    source = json.loads(messages["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert ref["id"] == "predwatch-incidents" and ref["name"] == source["indexRefName"]
    assert {"message", res.INCIDENT_LATEST_MESSAGE} <= set(messages["attributes"]["columns"]) <= incident_fields
    assert messages["attributes"]["sort"] == [["@timestamp", "desc"]]


HELPER = re.compile(r"\{\{(?:(json|date) )?([^}]+?)\}\}")


def render_url_drilldown(template: str, scope: dict[str, Any]) -> str:
    """Kibana's URL drilldown as far as the link uses it (x-pack url_drilldown, Handlebars with ``json`` =
    JSON.stringify and ``date`` = ISO time of a number or date string), then ``encodeURI`` and back."""
    def lookup(path: str) -> Any:
        value: Any = scope
        for part in re.findall(r"\[(\d+)\]|([^.\[\]]+)", path):
            index, name = part
            value = value[int(index)] if index else value[name]
        return value

    def one(m: re.Match) -> str:
        helper, path = m.group(1), m.group(2).strip()
        value = lookup(path)
        if helper == "json":
            return json.dumps(value)
        if helper == "date":
            when = datetime.fromtimestamp(value / 1000, timezone.utc) if isinstance(value, (int, float)) \
                else datetime.fromisoformat(value.replace("Z", "+00:00"))
            return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
        return str(value)

    return HELPER.sub(one, template)


def kql_to_query(kql: str) -> dict:
    """``field : "value" and ...``, the only KQL the link writes, as Kibana runs it (exact terms)."""
    clauses = [clause.split(" : ", 1) for clause in kql.split(" and ")]
    return {"bool": {"filter": [{"term": {name.strip(): json.loads(value)}} for name, value in clauses]}}


def test_a_click_on_an_incident_opens_the_findings_of_its_windows(es):
    """Render the table's row-click link for a real stored incident the way Kibana does, and run what it opens
    (the dashboard's time range and query) against the findings on the real node: exactly its windows'."""
    prefix = es.prefix
    amount, country = daily_incidents()
    now = datetime.now(timezone.utc)
    docs = [Doc(res.incidents_index(prefix), inc.id, orjson.dumps(incident_document(inc, "opened", now)))
            for inc in (amount, country)]
    findings = []  # the findings of every window of both incidents, and one of another check on day 2
    for inc in (amount, country):
        for start in inc.window_starts:
            end = iso(datetime.fromisoformat(start.replace("Z", "+00:00")) + timedelta(days=1))
            result = finding(inc.feature, inc.check, inc.peak_severity, inc.peak_value)
            findings.append(res.result_docs([result], prefix=prefix, model=inc.model, version=inc.version,
                                            start=start, end=end, records=1000)[1])
    other = finding("amount", "out_of_range", "warning", 0.2)
    findings.append(res.result_docs([other], prefix=prefix, model="checkout-risk", version="7",
                                    start=iso(T0 + timedelta(days=2)), end=iso(T0 + timedelta(days=3)),
                                    records=1000)[1])
    res.write(es.client, docs + findings, refresh=True)

    table = dashboards.panels()[2]
    assert table.id == "incident-table" and table.column_order() == list(table.columns), \
        "Lens gives the row's cells in the table's column order: the link counts on it"
    (event,) = table.drilldowns
    assert event["triggers"] == ["ROW_CLICK_TRIGGER"] and event["action"]["factoryId"] == "URL_DRILLDOWN"
    template = event["action"]["config"]["url"]["template"]
    stored = es.client.get(index=res.incidents_index(prefix), id=amount.id)["_source"]

    def cell(column: dict) -> Any:  # what Lens puts in the row: terms and last values as they are, max as a number
        value: Any = stored
        for part in column["sourceField"].split("."):
            value = (value or {}).get(part)
        if column["operationType"] == "max" and column["dataType"] == "date" and value is not None:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000
        return value

    row = [cell(table.columns[cid]) for cid in table.column_order()]
    url = unquote(render_url_drilldown(template, {"kibanaUrl": "https://kibana.example:5601",
                                                  "event": {"values": row}}))
    assert url.startswith("https://kibana.example:5601/app/dashboards#/view/predwatch-model-monitoring?")
    time_from, time_to = re.search(r"_g=\(time:\(from:'([^']+)',to:'([^']+)'\)\)", url).groups()
    kql = re.search(r"query:'(.*)'\)\)$", url).group(1)
    assert (time_from, time_to) == (amount.start, amount.last_seen)
    assert kql_fields(kql) <= mapped_fields(res.result_mappings()), "the findings view has the fields"
    # Kibana's time filter on the findings data view's time field (@timestamp: the window's end), both ends in
    hits = es.client.search(index=f"{res.findings_index(prefix)}*", size=100, query={"bool": {"filter": [
        kql_to_query(kql), {"range": {"@timestamp": {"gte": time_from, "lte": time_to}}}]}})["hits"]["hits"]
    assert sorted(h["_source"]["predwatch"]["window"]["start"] for h in hits) == amount.window_starts
    assert {h["_source"]["predwatch"]["check"] for h in hits} == {"distribution_shift"}


# -- Watcher --------------------------------------------------------------------------------------------------

def stored_changes(prefix: str, now: datetime) -> list[Doc]:
    """One document per incident, as the daemon leaves it after its last change."""
    amount, country = daily_incidents()
    (other,) = [i for i in daily_incidents("fraud") if i.feature == "country"]
    opened_warning = Incident(**{**country.__dict__, "start": iso(T0 + timedelta(days=8)),
                                 "window_starts": [iso(T0 + timedelta(days=8))], "windows": 1})
    changes = [
        (amount, "closed", now - timedelta(minutes=1)),  # peak critical, closed just now
        (country, "extended", now - timedelta(minutes=1)),  # one more window: never told
        (opened_warning, "opened", now - timedelta(minutes=2)),  # a warning that just opened
        (Incident(**{**amount.__dict__, "feature": "age", "end": None}), "escalated", now - timedelta(minutes=3)),
        (Incident(**{**amount.__dict__, "feature": "tenure"}), "opened", now - timedelta(hours=2)),  # too old
        (other, "opened", now - timedelta(minutes=1)),  # another model
    ]
    return [Doc(res.incidents_index(prefix), f"i{n}", orjson.dumps(incident_document(inc, event, when)))
            for n, (inc, event, when) in enumerate(changes)]


def test_the_incidents_watch_tells_openings_escalations_and_closings_never_a_window(es):
    """The watch's own search, sent to the real node, finds exactly the changes to tell; its actions, rendered
    as Watcher does over that real answer, name each incident's model, version, feature, check, reference, event
    and the dashboard."""
    now = datetime.now(timezone.utc)
    res.write(es.client, stored_changes(es.prefix, now), refresh=True)
    cases = [(AlertConfig(interval="5m"), None, {"i0", "i2", "i3", "i5"}),
             (AlertConfig(interval="5m", severity="critical"), None, {"i0", "i3"}),
             (AlertConfig(interval="3h", severity="critical"), None, {"i0", "i3", "i4"}),
             (AlertConfig(interval="5m"), "checkout-risk", {"i0", "i2", "i3"})]
    for cfg, model, expected in cases:
        watch = render_watch(cfg, es.prefix, model, DASHBOARD)
        request = watch["input"]["search"]["request"]
        assert request["indices"] == [res.incidents_index(es.prefix)]
        answer = es.client.search(index=request["indices"], rest_total_hits_as_int=True,
                                  **request["indices_options"], **watch_search_body(watch))
        assert {h["_id"] for h in answer["hits"]["hits"]} == expected, (cfg, model)
        assert watch["condition"] == {"compare": {"ctx.payload.hits.total": {"gt": 0}}}

    cfg = AlertConfig(interval="5m", webhooks=["http://hooks.example/w"], slack=["https://hooks.slack.test/x"],
                      email=["oncall@example.com"], index="predwatch-alerts")
    watch = render_watch(cfg, es.prefix, "checkout-risk", DASHBOARD)
    payload = es.client.search(index=res.incidents_index(es.prefix), rest_total_hits_as_int=True,
                               **watch_search_body(watch)).body  # Watcher's payload: total as an integer
    ctx = {"ctx": {"metadata": watch["metadata"], "payload": payload}}
    text = watcher_mustache.render(watch["actions"]["log"]["logging"]["text"], ctx)
    lines = text.splitlines()
    assert lines[0] == "predwatch: 3 incident(s) for checkout-risk" and lines[-1] == f"Dashboard: {DASHBOARD}"
    said = {line.split(":")[0] for line in lines[1:-1]}
    assert said == {"closed critical", "opened warning", "escalated critical"}, said
    for hit in payload["hits"]["hits"]:
        src = hit["_source"]["predwatch"]
        line = next(line for line in lines if src["feature"] in line and src["incident"]["event"] in line)
        assert f"checkout-risk v7 {src['feature']} {src['check']} against training, " \
               f"since {src['incident']['start']}" in line
        end = src["incident"].get("end")
        assert (" until " in line) == (end is not None) and (end is None or f" until {end}," in line)
    assert "extended" not in text and set(INCIDENT_EVENTS) == {"opened", "escalated", "closed"}
    hook = json.loads(watcher_mustache.render(watch["actions"]["webhook_1"]["webhook"]["body"], ctx))
    assert hook["incidents"] == payload["hits"]["hits"] and hook["total"] == 3 and hook["dashboard"] == DASHBOARD
    slack = json.loads(watcher_mustache.render(watch["actions"]["slack_1"]["webhook"]["body"], ctx))
    assert slack["text"] == text
    assert watcher_mustache.render(watch["actions"]["email"]["email"]["subject"], ctx) == \
        "predwatch incidents for checkout-risk"
    assert watch["actions"]["index"]["index"]["index"] == "predwatch-alerts"



def test_the_watch_reads_the_incident_documents_the_daemon_writes(es, baseline):
    """The daemon's own incident documents (a real analysis of 14 hours with three injected episodes) answer the
    watch's search on the real node: the fields, the event words and the write time agree with what it asks."""
    from analyzers.daemon.analyzer import Analyzer
    from analyzers.store.baselines import store_baseline
    from test_es_analyzers import T0 as START, config_for, seed
    from test_incidents_es import EPISODES, HOURS, timeline_records

    seed(es, timeline_records())
    store_baseline(es.client, baseline, es.prefix)
    analyzer = Analyzer(es.client, config_for(es, backfill=f"{HOURS}h"))
    assert analyzer.run_model(analyzer.config.models[0], now=START + timedelta(hours=HOURS)) == HOURS
    es.refresh()
    stored = {h["_id"]: h["_source"] for h in es.docs("incidents")}
    for severity in ("warning", "critical"):
        watch = render_watch(AlertConfig(interval="10m", severity=severity), es.prefix, "checkout-risk", DASHBOARD)
        request = watch["input"]["search"]["request"]
        answer = es.client.search(index=request["indices"], rest_total_hits_as_int=True,
                                  **request["indices_options"], **watch_search_body(watch))
        expected = {i for i, d in stored.items() if d["predwatch"]["incident"]["event"] in INCIDENT_EVENTS
                    and (severity == "warning" or d["predwatch"]["incident"]["peak_severity"] == "critical")}
        assert {h["_id"] for h in answer["hits"]["hits"]} == expected and answer["hits"]["total"] == len(expected)
        if severity == "warning":  # the episodes that closed are told, and the one still open as opened,
            told = {(d["predwatch"]["check"], d["predwatch"]["feature"]): d["predwatch"]["incident"]["event"]
                    for i, d in stored.items() if i in expected and d["predwatch"]["reference"] == "training"}
            assert {key for key, event in told.items() if event == "closed"} >= \
                {key for key, hours in EPISODES.items() if hours[-1] < HOURS - 1}, told  # though windows extended it
            assert {key for key, event in told.items() if event == "opened"} >= \
                {key for key, hours in EPISODES.items() if hours[-1] >= HOURS - 1}, told
