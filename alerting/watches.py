"""Watcher watches built from the configuration, and their installation where Watcher exists.

Watcher needs a Gold licence or a trial; on Basic (and on OpenSearch) ``predwatch
alerts install`` says so and points to the built-in notifier of ``predwatch daemon``,
which works on any licence.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import jinja2
from elasticsearch import Elasticsearch

from analyzers.store import results as r
from logging_adapter import contract as c
from logging_adapter.elastic import safe_url

SEVERITIES = ("warning", "critical")
WATCHER_LICENCES = ("gold", "platinum", "enterprise", "trial")

_env = jinja2.Environment(loader=jinja2.PackageLoader("alerting", "templates"), autoescape=False,
                          undefined=jinja2.StrictUndefined)

# What a finding line says, in Watcher's mustache: model, version, feature (and the group judged on its own), check
# (and the quality metric), value.
FINDING_LINE = ("{{_source.predwatch.severity}}: {{_source.predwatch.model.name}} "
                "v{{_source.predwatch.model.version}} {{_source.predwatch.feature}}"
                "{{#_source.predwatch.segment_text}} for {{_source.predwatch.segment_text}}"
                "{{/_source.predwatch.segment_text}} {{_source.predwatch.check}}"
                "{{#_source.predwatch.metric}} {{_source.predwatch.metric}}{{/_source.predwatch.metric}} "
                "value {{_source.predwatch.value}} (threshold {{_source.predwatch.threshold}}): {{_source.message}}")


@dataclass
class AlertConfig:
    """``[alerts]`` in predwatch.toml."""

    interval: str = "5m"
    severity: str = "warning"
    throttle: str = "1h"
    kibana_url: str = "http://localhost:5601"
    kibana_space: str | None = None  # the space `predwatch kibana install --space` imported into
    webhooks: list[str] = field(default_factory=list)
    slack: list[str] = field(default_factory=list)
    email: list[str] = field(default_factory=list)
    index: str | None = None
    size: int = 20

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> "AlertConfig":
        doc = dict(doc or {})
        unknown = set(doc) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"[alerts]: unknown keys {', '.join(sorted(unknown))}")
        cfg = cls(**doc)
        if cfg.severity not in SEVERITIES:
            raise ValueError(f"[alerts] severity must be one of {', '.join(SEVERITIES)}")
        return cfg


def severities_from(minimum: str) -> list[str]:
    return list(SEVERITIES[SEVERITIES.index(minimum):])


INCIDENT_EVENTS = ("opened", "escalated", "closed")  # what is told; "extended" (one more window) never is

# What an incident line says, in Watcher's mustache: what happened, model, version, feature, check, reference, span.
_I = "_source.predwatch.incident"
INCIDENT_LINE = ("{{" + _I + ".event}} {{" + _I + ".peak_severity}}: {{_source.predwatch.model.name}} "
                 "v{{_source.predwatch.model.version}} {{_source.predwatch.feature}} {{_source.predwatch.check}} "
                 "against {{_source.predwatch.reference}}, since {{" + _I + ".start}}"
                 "{{#" + _I + ".end}} until {{" + _I + ".end}}{{/" + _I + ".end}}, {{" + _I + ".windows}} window(s), "
                 "peak value {{" + _I + ".peak_value}}: {{_source.message}}"
                 "{{#" + _I + ".latest_message}} (latest: {{" + _I + ".latest_message}}){{/" + _I + ".latest_message}}")


def search_body(cfg: AlertConfig, model: str | None = None) -> dict[str, Any]:
    """Incidents that opened, escalated or closed during the last interval, at or above the severity (their peak),
    newest change first. One document per incident, overwritten as it goes on: a window that only extends an
    incident keeps its last told change and the time it was written, so an opening is seen even when later windows
    of the same interval extended it."""
    filters: list[dict[str, Any]] = [
        {"range": {r.INCIDENT_UPDATED: {"gte": f"now-{cfg.interval}"}}},
        {"terms": {r.INCIDENT_EVENT: list(INCIDENT_EVENTS)}},
        {"terms": {r.INCIDENT_PEAK_SEVERITY: severities_from(cfg.severity)}},
    ]
    if model:
        filters.append({"term": {c.MODEL_NAME: model}})
    return {"size": cfg.size, "track_total_hits": True, "sort": [{r.INCIDENT_UPDATED: "desc"}],
            "query": {"bool": {"filter": filters}}}


def error_search_body(cfg: AlertConfig, model: str | None = None) -> dict[str, Any]:
    """Analysis errors written during the last interval (newest first): the monitor could not judge a window."""
    filters: list[dict[str, Any]] = [{"range": {r.CREATED: {"gte": f"now-{cfg.interval}"}}},
                                     {"term": {r.CHECK: "analysis_error"}}]
    if model:
        filters.append({"term": {c.MODEL_NAME: model}})
    return {"size": cfg.size, "track_total_hits": True, "sort": [{r.CREATED: "desc"}],
            "query": {"bool": {"filter": filters}}}


def watch_id(prefix: str, model: str | None) -> str:
    """The incidents watch's id (the watch ``predwatch alerts install --print`` shows)."""
    return f"{prefix}-incidents" + (f"-{c.index_safe(model)}" if model else "")


def error_watch_id(prefix: str, model: str | None) -> str:
    return f"{prefix}-analysis-errors" + (f"-{c.index_safe(model)}" if model else "")


def findings_watch_id(prefix: str, model: str | None) -> str:
    """The per-window findings watch of earlier versions: removed by ``install``, the incidents watch replaces it."""
    return f"{prefix}-findings" + (f"-{c.index_safe(model)}" if model else "")


# Values that come from users (model names, URLs) never enter a template's text: they sit in the
# watch's metadata (or a search template's params) as data, and the templates refer to them.
MODEL = "{{ctx.metadata.model}}"
DASHBOARD = "{{ctx.metadata.dashboard}}"
JSON_BODY = "__json__::"  # Watcher JSON-escapes inserted values only in templates that start with this
# A missing index (no incident yet, no error yet) is an empty answer, not a failed watch run.
INDICES_OPTIONS = {"ignore_unavailable": True, "allow_no_indices": True, "expand_wildcards": "open"}


def search_request(body: dict[str, Any], indices: list[str], model: str | None) -> dict[str, Any]:
    """The watch's search: a plain body, or, for one model, a search template whose params hold the name."""
    request: dict[str, Any] = {"indices": indices, "indices_options": INDICES_OPTIONS}
    if model is None:
        request["body"] = body
    else:
        request["template"] = {"source": body, "params": {"model": model}}
    return request


def render_watch(cfg: AlertConfig, prefix: str = "predwatch", model: str | None = None,
                 dashboard: str | None = None) -> dict[str, Any]:
    """The incidents watch of ``model`` (all models when None): one message when an incident opens, escalates
    from warning to critical or closes, never per window. ``dashboard``: the link its messages carry
    (``kibana.dashboards.dashboard_url``), handed in so that alerting knows nothing of Kibana."""
    body = search_body(cfg, "{{model}}" if model else None)
    return _watch(cfg, search_request(body, [r.incidents_index(prefix)], model), model, dashboard,
                  what="incident", line=INCIDENT_LINE, key="incidents")


def render_error_watch(cfg: AlertConfig, prefix: str = "predwatch", model: str | None = None,
                       dashboard: str | None = None) -> dict[str, Any]:
    """The analysis-errors watch: windows the monitor could not judge (no baseline, a cluster that did not
    answer). They are not incidents of the data (``analyzers.store.incidents`` leaves them out), and without
    this watch a blind monitor would be silent; repeated at most once per ``throttle``."""
    body = error_search_body(cfg, "{{model}}" if model else None)
    return _watch(cfg, search_request(body, [f"{r.findings_index(prefix)}*"], model), model, dashboard,
                  what="analysis error", line=FINDING_LINE, key="findings")


def _watch(cfg: AlertConfig, request: dict[str, Any], model: str | None, dashboard: str | None, *, what: str,
           line: str, key: str) -> dict[str, Any]:
    lines = "{{#ctx.payload.hits.hits}}" + line + "\n{{/ctx.payload.hits.hits}}"
    head = f"predwatch: {{{{ctx.payload.hits.total}}}} {what}(s)" + (f" for {MODEL}" if model else "")
    text = f"{head}\n{lines}Dashboard: {DASHBOARD}"
    json_body = (JSON_BODY + '{"source": "predwatch", "total": {{ctx.payload.hits.total}}, "dashboard": "'
                 + DASHBOARD + f'", "{key}": ' + '{{#toJson}}ctx.payload.hits.hits{{/toJson}}}')
    slack_body = JSON_BODY + '{"text": ' + json.dumps(text) + '}'
    rendered = _env.get_template("watch.json.j2").render(
        metadata={"managed_by": "predwatch", "dashboard": safe_url(dashboard) if dashboard else None,
                  "min_severity": cfg.severity, "model": model},
        interval=cfg.interval, throttle=cfg.throttle, request=request, text=text,
        webhooks=cfg.webhooks, slack=cfg.slack, json_body=json_body, slack_body=slack_body, email=cfg.email,
        subject=f"predwatch {what}s" + (f" for {MODEL}" if model else ""), index=cfg.index)
    return json.loads(rendered)


def watcher_available(client: Elasticsearch) -> tuple[bool, str]:
    """Whether this cluster runs Watcher, and why not when it does not."""
    try:
        licence = client.license.get()["license"]
    except Exception as exc:  # noqa: BLE001 - OpenSearch and friends have no licence API
        return False, f"no licence API on this cluster ({type(exc).__name__}): not Elasticsearch with X-Pack"
    kind, status = licence.get("type", "?"), licence.get("status", "?")
    if kind not in WATCHER_LICENCES or status != "active":
        return False, f"Watcher needs a Gold licence or a trial; this cluster has {kind} ({status})"
    return True, f"{kind} licence"


def install(client: Elasticsearch, cfg: AlertConfig, prefix: str, models: list[str | None],
            dashboard: str | None = None) -> list[str]:
    """Put the incidents watch and the analysis-errors watch of each model; delete the per-window findings
    watch an earlier version installed (it told every window of a long drift again)."""
    done = []
    for model in models:
        for wid, render in ((watch_id(prefix, model), render_watch), (error_watch_id(prefix, model), render_error_watch)):
            client.watcher.put_watch(id=wid, body=render(cfg, prefix, model, dashboard))
            done.append(wid)
        client.options(ignore_status=404).watcher.delete_watch(id=findings_watch_id(prefix, model))
    return done
