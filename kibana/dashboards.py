"""The "Model monitoring" dashboard as Kibana 8.x saved objects, generated from one definition.

Field names come from the record contract and the result fields, never retyped.
``python -m kibana.dashboards`` regenerates ``kibana/predwatch.ndjson`` (committed,
for importing by hand); ``predwatch kibana install`` imports the same objects.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analyzers.store import results as r
from logging_adapter import contract as c

NDJSON = Path(__file__).with_name("predwatch.ndjson")
# The Kibana versions these objects are written for: import into 8.9 or newer, which migrates them up.
MIGRATION = {"coreMigrationVersion": "8.8.0"}
TYPE_VERSION = {"index-pattern": "8.0.0", "lens": "8.9.0", "search": "8.0.0", "dashboard": "8.9.0"}
RECORDS = "___records___"  # Lens' pseudo-field for count


def object_prefix(prefix: str, space: str | None = None) -> str:
    """The start of every saved object id. Dashboards, Lens and data views are ``multiple-isolated``: an id
    taken in one space is given a new id on import into another, and links built from ours would point
    nowhere. With the space in the id, the ids are valid in every space."""
    return f"{prefix}-{space}" if space else prefix


def data_views(prefix: str, space: str | None = None) -> dict[str, dict[str, Any]]:
    """id -> data view saved object."""
    op = object_prefix(prefix, space)
    views = {
        f"{op}-predictions": (f"{prefix}-predictions-*", "predwatch prediction records"),
        f"{op}-metrics": (f"{r.metrics_index(prefix)}*", "predwatch metrics (every check, every window)"),
        f"{op}-findings": (f"{r.findings_index(prefix)}*", "predwatch findings"),
        f"{op}-state": (r.state_index(prefix), "predwatch daemons (instances, leases, lag)"),
        f"{op}-incidents": (r.incidents_index(prefix), "predwatch incidents (one per episode; time: its start)"),
    }
    return {vid: {"type": "index-pattern", "id": vid,
                  "attributes": {"title": title, "name": name, "timeFieldName": c.TIMESTAMP},
                  "references": []}
            for vid, (title, name) in views.items()}


# -- Lens columns -------------------------------------------------------------------------------------

def date_histogram() -> dict[str, Any]:
    return {"label": c.TIMESTAMP, "dataType": "date", "operationType": "date_histogram", "sourceField": c.TIMESTAMP,
            "isBucketed": True, "scale": "interval", "params": {"interval": "auto", "includeEmptyRows": True}}


def count(label: str = "Records") -> dict[str, Any]:
    return {"label": label, "customLabel": True, "dataType": "number", "operationType": "count",
            "sourceField": RECORDS, "isBucketed": False, "scale": "ratio"}


def metric(op: str, fieldname: str, label: str, kql: str = "", **params: Any) -> dict[str, Any]:
    """A metric column; ``kql`` filters the documents this column alone reads (Lens' "filter by")."""
    col = {"label": label, "customLabel": True, "dataType": "number", "operationType": op, "sourceField": fieldname,
           "isBucketed": False, "scale": "ratio"}
    if params:
        col["params"] = params
    if kql:
        col["filter"] = {"query": kql, "language": "kuery"}
    return col


def terms(fieldname: str, label: str, order_by: str, size: int = 10, secondary: list[str] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"size": size, "orderBy": {"type": "column", "columnId": order_by},
                              "orderDirection": "desc", "otherBucket": True, "missingBucket": False}
    if secondary:
        params["secondaryFields"] = secondary
    return {"label": label, "customLabel": True, "dataType": "string", "operationType": "terms",
            "sourceField": fieldname, "isBucketed": True, "scale": "ordinal", "params": params}


def last_value(fieldname: str, label: str, data_type: str = "string") -> dict[str, Any]:
    return {"label": label, "customLabel": True, "dataType": data_type, "operationType": "last_value",
            "sourceField": fieldname, "isBucketed": False, "scale": "ordinal",
            "params": {"sortField": c.TIMESTAMP, "showArrayValues": True}}


@dataclass
class Panel:
    """One Lens visualization: its columns, how they are drawn, and where it sits."""

    id: str
    title: str
    view: str  # data view id suffix: predictions, metrics, findings, state or incidents
    kind: str  # lnsXY or lnsDatatable
    columns: dict[str, dict[str, Any]]
    grid: tuple[int, int, int, int]  # x, y, w, h on Kibana's 48-column grid
    x: str | None = None
    y: list[str] = field(default_factory=list)
    split: str | None = None
    series: str = "line"
    kql: str = ""
    # A second layer drawn once, without the split: e.g. the threshold under per-feature lines.
    reference: dict[str, dict[str, Any]] | None = None
    drilldowns: list[dict[str, Any]] = field(default_factory=list)  # the dashboard panel's dynamic actions
    type: str = "lens"

    def column_order(self) -> list[str]:
        """Bucket columns first, then metrics, as Lens builds its aggregation tree."""
        return sorted(self.columns, key=lambda cid: not self.columns[cid]["isBucketed"])

    def saved_object(self, prefix: str) -> dict[str, Any]:
        """The Lens object; ``prefix`` is the object-id prefix (see :func:`object_prefix`)."""
        layer = "layer1"
        layers = {layer: {"columns": self.columns, "columnOrder": self.column_order(), "incompleteColumns": {}}}
        if self.kind == "lnsXY":
            layer_vis: dict[str, Any] = {"layerId": layer, "layerType": "data", "seriesType": self.series,
                                         "xAccessor": self.x, "accessors": self.y}
            if self.split:
                layer_vis["splitAccessor"] = self.split
            vis_layers = [layer_vis]
            if self.reference:
                x_ref = next(cid for cid, col in self.reference.items() if col["isBucketed"])
                layers["reference"] = {"columns": self.reference, "incompleteColumns": {},
                                       "columnOrder": [x_ref, *(cid for cid in self.reference if cid != x_ref)]}
                vis_layers.append({"layerId": "reference", "layerType": "data", "seriesType": "line",
                                   "xAccessor": x_ref, "accessors": [cid for cid in self.reference if cid != x_ref]})
            visualization: dict[str, Any] = {"layers": vis_layers, "preferredSeriesType": self.series,
                                             "legend": {"isVisible": True, "position": "right"},
                                             "valueLabels": "hide", "fittingFunction": "None"}
        else:
            visualization = {"layerId": layer, "layerType": "data",
                             "columns": [{"columnId": cid} for cid in self.columns]}
        return {
            "type": "lens", "id": f"{prefix}-{self.id}",
            "attributes": {
                "title": self.title, "description": "", "visualizationType": self.kind,
                "state": {
                    "datasourceStates": {"formBased": {"layers": layers}},
                    "visualization": visualization,
                    "query": {"query": self.kql, "language": "kuery"},
                    "filters": [],
                    "adHocDataViews": {}, "internalReferences": [],
                },
            },
            "references": [{"type": "index-pattern", "id": f"{prefix}-{self.view}",
                            "name": f"indexpattern-datasource-layer-{lid}"} for lid in layers],
        }


@dataclass
class SavedSearch:
    """A Discover table of documents: for fields Lens cannot aggregate (text, such as the messages)."""

    id: str
    title: str
    view: str
    columns: list[str]
    grid: tuple[int, int, int, int]
    drilldowns: list[dict[str, Any]] = field(default_factory=list)
    type: str = "search"

    def saved_object(self, prefix: str) -> dict[str, Any]:
        ref = "kibanaSavedObjectMeta.searchSourceJSON.index"
        source = {"query": {"query": "", "language": "kuery"}, "filter": [], "indexRefName": ref}
        return {"type": "search", "id": f"{prefix}-{self.id}",
                "attributes": {"title": self.title, "description": "", "columns": self.columns,
                               "sort": [[c.TIMESTAMP, "desc"]], "grid": {}, "hideChart": True,
                               "isTextBasedQuery": False,
                               "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source)}},
                "references": [{"type": "index-pattern", "id": f"{prefix}-{self.view}", "name": ref}]}


def _kql(fieldname: str, value: str) -> str:
    return f'{fieldname} : "{value}"'


INCIDENTS_HEIGHT = 26  # the incidents' rows at the top of the dashboard


def incident_table() -> Panel:
    """One row per incident (bucketed by its id, newest start first), with a row-click link to its windows."""
    columns = {
        "incident": terms(r.INCIDENT_ID, "Incident", "start", size=500),
        "model": last_value(c.MODEL_NAME, "Model"), "version": last_value(c.MODEL_VERSION, "Version"),
        "feature": last_value(r.FEATURE, "Feature"), "check": last_value(r.CHECK, "Check"),
        "reference": last_value(r.REFERENCE, "Reference"), "status": last_value(r.INCIDENT_STATUS, "Status"),
        "start": {**metric("max", r.INCIDENT_START, "Start"), "dataType": "date"},
        "last_seen": {**metric("max", r.INCIDENT_LAST_SEEN, "Last seen"), "dataType": "date"},
        "end": {**metric("max", r.INCIDENT_END, "End (empty while open)"), "dataType": "date"},
        "windows": metric("max", r.INCIDENT_WINDOWS, "Windows"),
        "peak_severity": last_value(r.INCIDENT_PEAK_SEVERITY, "Peak severity"),
        "peak_value": metric("max", r.INCIDENT_PEAK_VALUE, "Peak value"),
    }
    return Panel("incident-table", "Incidents (one row per episode; the row's actions open its windows' findings)",
                 "incidents", "lnsDatatable", columns, grid=(0, 12, 48, 14))


def windows_link(columns: list[str], dashboard: str) -> str:
    """A URL drilldown template (Handlebars, run by Kibana on a row click): the dashboard over the incident's span,
    its query the incident's model, feature and check, so that the findings panels show its windows.
    ``columns``: the table's column ids in order (``event.values`` holds the clicked row's cells in that order)."""
    def cell(name: str) -> str:
        return f"event.values.[{columns.index(name)}]"

    query = " and ".join(f"{fieldname} : {{{{json {cell(col)}}}}}"
                         for fieldname, col in ((c.MODEL_NAME, "model"), (r.FEATURE, "feature"), (r.CHECK, "check")))
    return (f"{{{{kibanaUrl}}}}/app/dashboards#/view/{dashboard}"
            f"?_g=(time:(from:'{{{{date {cell('start')}}}}}',to:'{{{{date {cell('last_seen')}}}}}'))"
            f"&_a=(query:(language:kuery,query:'{query}'))")


def with_windows_link(table: Panel, dashboard: str) -> Panel:
    """The incidents table with its row-click drilldown (a URL drilldown: Gold licence, like Watcher; on Basic,
    "Filter for" a cell of model, feature or check filters the findings panels, which share those fields)."""
    event = {"eventId": "predwatch-incident-windows", "triggers": ["ROW_CLICK_TRIGGER"],
             "action": {"factoryId": "URL_DRILLDOWN", "name": "The incident's windows (findings)",
                        "config": {"url": {"template": windows_link(list(table.columns), dashboard)},
                                   "openInNewTab": False, "encodeUrl": True}}}
    table.drilldowns = [event]
    return table


def incident_messages() -> SavedSearch:
    """The incidents' first and latest messages (text: a Lens table cannot show them), newest start first."""
    return SavedSearch("incident-messages", "Incidents: first and latest message (newest start first)", "incidents",
                       [c.MODEL_NAME, r.FEATURE, r.CHECK, r.INCIDENT_STATUS, r.INCIDENT_PEAK_SEVERITY, r.MESSAGE,
                        r.INCIDENT_LATEST_MESSAGE], grid=(24, 0, 24, 12))


def incident_panels() -> list[Panel | SavedSearch]:
    """The incidents lead: when they opened (by check and peak severity) and what they say, then the table."""
    timeline = Panel("incidents-timeline", "Incidents by start, check and peak severity", "incidents", "lnsXY",
                     {"x": date_histogram(), "y": count("Incidents"),
                      "b": terms(r.CHECK, "Check / peak severity", "y", secondary=[r.INCIDENT_PEAK_SEVERITY])},
                     grid=(0, 0, 24, 12), x="x", y=["y"], split="b", series="bar_stacked")
    return [timeline, incident_messages(), incident_table()]


def panels(dashboard: str = "predwatch-model-monitoring") -> list[Panel | SavedSearch]:
    """The dashboard, top to bottom: the incidents, then the windows. ``dashboard``: its id (the table's link)."""
    rest = window_panels()
    for p in rest:
        x, y, w, h = p.grid
        p.grid = (x, y + INCIDENTS_HEIGHT, w, h)
    timeline, messages, table = incident_panels()
    return [timeline, messages, with_windows_link(table, dashboard), *rest]


def window_panels() -> list[Panel]:
    """The panels of the analysed windows (metrics and findings), top to bottom."""
    check_rate = [  # per-feature rates against what training expects, over time
        ("null-rate", "Missing share by feature (observed vs training)", "missing_feature"),
        ("unseen-share", "Unseen category share by feature", "unseen_category"),
        ("oov-rate", "Out-of-vocabulary rate by feature", "oov_rate"),
    ]
    out = [
        Panel("predictions-per-minute", "Predictions per minute by model and version", "predictions", "lnsXY",
              {"x": date_histogram(), "y": count("Predictions"),
               "b": terms(c.MODEL_NAME, "Model / version", "y", secondary=[c.MODEL_VERSION])},
              grid=(0, 0, 24, 12), x="x", y=["y"], split="b", series="bar_stacked"),
        Panel("findings-over-time", "Findings over time by check and severity", "findings", "lnsXY",
              {"x": date_histogram(), "y": count("Findings"),
               "b": terms(r.CHECK, "Check / severity", "y", secondary=[r.SEVERITY])},
              grid=(24, 0, 24, 12), x="x", y=["y"], split="b", series="bar_stacked"),
        Panel("open-findings", "Findings (newest window in range)", "findings", "lnsDatatable",
              {"model": terms(c.MODEL_NAME, "Model", "n", size=20),
               "feature": terms(r.FEATURE, "Feature", "n", size=50),
               "check": terms(r.CHECK, "Check", "n", size=20),
               "severity": last_value(r.SEVERITY, "Severity"),
               "value": metric("max", r.VALUE, "Value (max)"),
               "threshold": metric("max", r.THRESHOLD, "Threshold"),
               "examples": last_value(r.EXAMPLES_TEXT, "Examples"),
               "segments": last_value(r.SEGMENTS_TEXT, "Concentrated in"),
               "n": count("Windows")},
              grid=(0, 12, 48, 14)),
        Panel("drift-by-feature", "Distribution shift (PSI) by feature, against its threshold", "metrics", "lnsXY",
              {"x": date_histogram(), "y": metric("max", r.VALUE, "PSI"),
               "b": terms(r.FEATURE, "Feature", "y", size=20)},
              grid=(0, 26, 24, 14), x="x", y=["y"], split="b",
              reference={"tx": date_histogram(), "t": metric("max", r.THRESHOLD, "Threshold")},
              kql=f'{_kql(r.CHECK, "distribution_shift")} or {_kql(r.CHECK, "prediction_shift")}'),
    ]
    for i, (pid, title, check) in enumerate(check_rate):
        out.append(Panel(pid, title, "metrics", "lnsXY",
                         {"x": date_histogram(), "y": metric("max", r.OBSERVED, "Observed"),
                          "e": metric("max", r.EXPECTED, "Expected from training"),
                          "b": terms(r.FEATURE, "Feature", "y", size=20)},
                         grid=((24, 26, 24, 14), (0, 40, 24, 14), (24, 40, 24, 14))[i], x="x", y=["y", "e"], split="b",
                         kql=_kql(r.CHECK, check)))
    out.append(Panel("prediction-distribution", "Prediction distribution over time (10th, 50th, 90th percentile)",
                     "predictions", "lnsXY",
                     {"x": date_histogram(),
                      "p10": metric("percentile", c.PREDICTION, "p10", percentile=10),
                      "p50": metric("percentile", c.PREDICTION, "median", percentile=50),
                      "p90": metric("percentile", c.PREDICTION, "p90", percentile=90)},
                     grid=(0, 54, 48, 12), x="x", y=["p10", "p50", "p90"]))
    overall = f"not {r.SEGMENT_TEXT}:*"  # the model's quality over all records, not a group's
    realised = f'{_kql(r.CHECK, "quality_drop")} and {_kql(r.METRIC, "accuracy")} and {overall}'
    out += [
        Panel("quality-per-version", "Model quality per version (accuracy; MAE for regression), against the reference",
              "metrics", "lnsXY",
              {"x": date_histogram(), "y": metric("max", r.OBSERVED, "Realised"),
               "b": terms(c.MODEL_VERSION, "Version", "y", size=10)},
              grid=(0, 66, 24, 14), x="x", y=["y"], split="b",
              reference={"tx": date_histogram(), "t": metric("max", r.EXPECTED, "Reference (evaluation data)")},
              kql=f'{_kql(r.CHECK, "quality_drop")} and ({_kql(r.METRIC, "accuracy")} or {_kql(r.METRIC, "mae")}) '
                  f'and {overall}'),
        Panel("estimated-vs-realised", "Estimated (CBPE, before the labels) and realised accuracy", "metrics", "lnsXY",
              {"x": date_histogram(),
               "real": metric("max", r.OBSERVED, "Realised accuracy", kql=realised),
               "est": metric("max", r.OBSERVED, "Estimated accuracy", kql=_kql(r.CHECK, "estimated_quality_drop")),
               "ref": metric("max", r.EXPECTED, "Reference", kql=realised)},
              grid=(24, 66, 24, 14), x="x", y=["real", "est", "ref"], kql=_kql(r.METRIC, "accuracy")),
        Panel("label-coverage", "Label coverage: share of predictions whose outcome is known", "metrics", "lnsXY",
              {"x": date_histogram(), "y": metric("max", r.VALUE, "Coverage"),
               "b": terms(c.MODEL_NAME, "Model", "y", size=20)},
              grid=(0, 80, 16, 12), x="x", y=["y"], split="b", kql=_kql(r.CHECK, "label_coverage")),
        Panel("label-delay", "Median label delay (seconds)", "metrics", "lnsXY",
              {"x": date_histogram(), "y": metric("max", r.VALUE, "Median delay (s)"),
               "b": terms(c.MODEL_NAME, "Model", "y", size=20)},
              grid=(16, 80, 16, 12), x="x", y=["y"], split="b", kql=_kql(r.CHECK, "label_delay")),
        Panel("latency", "Latency percentiles (ms)", "metrics", "lnsXY",
              {"x": date_histogram(), "y": metric("max", r.VALUE, "Latency (ms)"),
               "b": terms(r.METRIC, "Percentile", "y", size=3)},
              grid=(32, 80, 16, 12), x="x", y=["y"], split="b", kql=_kql(r.CHECK, "latency")),
    ]
    out.append(Panel("monitor", "Monitoring of the monitor: which daemon analyses each model, how far behind",
                     "state", "lnsDatatable",
                     {"model": terms(r.STATE_MODEL, "Model", "n", size=200),
                      "instance": last_value(r.STATE_INSTANCE, "Daemon instance"),
                      "last": last_value(r.STATE_LAST_WINDOW_END, "Last analysed window ends", "date"),
                      "lag": last_value(r.STATE_LAG, "Lag (s)", "number"),
                      "n": count("Updates")},
                     grid=(0, 92, 48, 10), kql=_kql("kind", r.MODEL_STATUS)))
    gap = _kql(r.CHECK, "version_quality_gap")
    out += [  # two versions side by side ([[models]] compare): the candidate against the champion, same windows
        Panel("version-quality", "Versions side by side: the candidate's realised quality and the champion's line",
              "metrics", "lnsXY",
              {"x": date_histogram(), "cand": metric("max", r.OBSERVED, "Candidate", kql=gap),
               "champ": metric("max", r.EXPECTED, "Champion (on the candidate's traffic)", kql=gap),
               "b": terms(r.METRIC, "Metric", "cand", size=5)},
              grid=(0, 102, 24, 14), x="x", y=["cand", "champ"], split="b", kql=gap),
        Panel("version-checks", "Versions side by side: candidate against champion (value against threshold)",
              "metrics", "lnsXY",
              {"x": date_histogram(), "y": metric("max", r.VALUE, "Value"),
               "b": terms(r.CHECK, "Check", "y", size=5, secondary=[r.FEATURE])},
              grid=(24, 102, 24, 14), x="x", y=["y"], split="b",
              reference={"tx": date_histogram(), "t": metric("max", r.THRESHOLD, "Threshold")},
              kql=" or ".join(_kql(r.CHECK, name) for name in ("version_shift", "version_traffic_shift",
                                                                 "version_disagreement"))),
    ]
    out += [  # who is affected: quality by group and fairness
        Panel("quality-by-group", "Model quality by group (newest window in range), against each group's reference",
              "metrics", "lnsDatatable",
              {"group": terms(r.SEGMENT_TEXT, "Group", "n", size=100),
               "metric": terms(r.METRIC, "Metric", "n", size=10),
               "observed": last_value(r.OBSERVED, "This window", "number"),
               "expected": last_value(r.EXPECTED, "Reference", "number"),
               "status": last_value(r.STATUS, "Status"),
               "n": count("Windows")},
              grid=(0, 116, 24, 14), kql=f'{_kql(r.CHECK, "quality_drop")} and {r.SEGMENT_TEXT}:*'),
        Panel("fairness", "Fairness gaps by sensitive attribute (demographic parity, equal opportunity), "
                          "against the reference's",
              "metrics", "lnsXY",
              {"x": date_histogram(), "y": metric("max", r.OBSERVED, "Gap"),
               "e": metric("max", r.EXPECTED, "Reference gap"),
               "b": terms(r.FEATURE, "Attribute / metric", "y", size=20, secondary=[r.METRIC])},
              grid=(24, 116, 24, 14), x="x", y=["y", "e"], split="b", kql=_kql(r.CHECK, "fairness_gap")),
    ]
    return out


def dashboard(prefix: str, items: list[Panel | SavedSearch]) -> dict[str, Any]:
    """The dashboard object; ``prefix`` is the object-id prefix."""
    panels_json = []
    references = []
    for i, p in enumerate(items, 1):
        idx = f"p{i}"
        x, y, w, h = p.grid
        enhancements = {"dynamicActions": {"events": p.drilldowns}} if p.drilldowns else {}
        panels_json.append({"type": p.type, "panelIndex": idx, "gridData": {"x": x, "y": y, "w": w, "h": h, "i": idx},
                            "embeddableConfig": {"enhancements": enhancements}, "panelRefName": f"panel_{idx}"})
        references.append({"type": p.type, "id": f"{prefix}-{p.id}", "name": f"{idx}:panel_{idx}"})
    return {
        "type": "dashboard", "id": f"{prefix}-model-monitoring",
        "attributes": {
            "title": "Model monitoring", "description": "predwatch: what changed in each model's predictions, and since when",
            "panelsJSON": json.dumps(panels_json), "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
            "timeRestore": True, "timeFrom": "now-7d", "timeTo": "now",
            "refreshInterval": {"pause": False, "value": 60_000},
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"},
                                                                      "filter": []})},
        },
        "references": references,
    }


def saved_objects(prefix: str = "predwatch", space: str | None = None) -> list[dict[str, Any]]:
    """Data views first, then the visualizations, then the dashboard (import order)."""
    op = object_prefix(prefix, space)
    items = panels(dashboard_id(prefix, space))
    objects = [*data_views(prefix, space).values(), *(p.saved_object(op) for p in items), dashboard(op, items)]
    return [{**obj, **MIGRATION, "typeMigrationVersion": TYPE_VERSION[obj["type"]], "managed": False} for obj in objects]


def ndjson(prefix: str = "predwatch", space: str | None = None) -> str:
    return "".join(json.dumps(obj, sort_keys=True) + "\n" for obj in saved_objects(prefix, space))


def dashboard_id(prefix: str = "predwatch", space: str | None = None) -> str:
    return f"{object_prefix(prefix, space)}-model-monitoring"


def dashboard_path(prefix: str = "predwatch", space: str | None = None, dashboard: str | None = None) -> str:
    """The dashboard's path below the Kibana URL (in its space); ``dashboard``: the id Kibana gave it."""
    return (f"/s/{space}" if space else "") + f"/app/dashboards#/view/{dashboard or dashboard_id(prefix, space)}"


def dashboard_url(kibana_url: str, prefix: str = "predwatch", space: str | None = None) -> str:
    """The link alerts carry (the watches and the daemon's notifier get it as a value, they know no Kibana)."""
    return kibana_url.rstrip("/") + dashboard_path(prefix, space)


if __name__ == "__main__":
    NDJSON.write_text(ndjson())
    print(f"wrote {NDJSON}")
