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

# What a finding line says, in Watcher's mustache: model, version, feature, check (and the quality metric), value.
FINDING_LINE = ("{{_source.predwatch.severity}}: {{_source.predwatch.model.name}} "
                "v{{_source.predwatch.model.version}} {{_source.predwatch.feature}} {{_source.predwatch.check}}"
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


def search_body(cfg: AlertConfig, model: str | None = None) -> dict[str, Any]:
    """Findings written during the last interval, at or above the severity (newest first)."""
    filters: list[dict[str, Any]] = [
        {"range": {r.CREATED: {"gte": f"now-{cfg.interval}"}}},
        {"terms": {r.SEVERITY: severities_from(cfg.severity)}},
    ]
    if model:
        filters.append({"term": {c.MODEL_NAME: model}})
    return {"size": cfg.size, "track_total_hits": True, "sort": [{r.CREATED: "desc"}],
            "query": {"bool": {"filter": filters}}}


def watch_id(prefix: str, model: str | None) -> str:
    return f"{prefix}-findings" + (f"-{c.index_safe(model)}" if model else "")


# Values that come from users (model names, URLs) never enter a template's text: they sit in the
# watch's metadata (or a search template's params) as data, and the templates refer to them.
MODEL = "{{ctx.metadata.model}}"
DASHBOARD = "{{ctx.metadata.dashboard}}"
JSON_BODY = "__json__::"  # Watcher JSON-escapes inserted values only in templates that start with this


def search_request(cfg: AlertConfig, prefix: str, model: str | None) -> dict[str, Any]:
    """The watch's search: a plain body, or, for one model, a search template whose params hold the name."""
    request: dict[str, Any] = {"indices": [f"{r.findings_index(prefix)}*"]}
    if model is None:
        request["body"] = search_body(cfg)
    else:
        request["template"] = {"source": search_body(cfg, "{{model}}"), "params": {"model": model}}
    return request


def render_watch(cfg: AlertConfig, prefix: str = "predwatch", model: str | None = None,
                 dashboard: str | None = None) -> dict[str, Any]:
    """The watch of ``model`` (all models when None); ``dashboard``: the link its messages carry
    (``kibana.dashboards.dashboard_url``), handed in so that alerting knows nothing of Kibana."""
    lines = "{{#ctx.payload.hits.hits}}" + FINDING_LINE + "\n{{/ctx.payload.hits.hits}}"
    head = "predwatch: {{ctx.payload.hits.total}} finding(s)" + (f" for {MODEL}" if model else "")
    text = f"{head}\n{lines}Dashboard: {DASHBOARD}"
    json_body = (JSON_BODY + '{"source": "predwatch", "total": {{ctx.payload.hits.total}}, "dashboard": "'
                 + DASHBOARD + '", "findings": {{#toJson}}ctx.payload.hits.hits{{/toJson}}}')
    slack_body = JSON_BODY + '{"text": ' + json.dumps(text) + '}'
    rendered = _env.get_template("watch.json.j2").render(
        metadata={"managed_by": "predwatch", "dashboard": safe_url(dashboard) if dashboard else None,
                  "min_severity": cfg.severity, "model": model},
        interval=cfg.interval, throttle=cfg.throttle, request=search_request(cfg, prefix, model), text=text,
        webhooks=cfg.webhooks, slack=cfg.slack, json_body=json_body, slack_body=slack_body, email=cfg.email,
        subject="predwatch findings" + (f" for {MODEL}" if model else ""), index=cfg.index)
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
    done = []
    for model in models:
        wid = watch_id(prefix, model)
        client.watcher.put_watch(id=wid, body=render_watch(cfg, prefix, model, dashboard))
        done.append(wid)
    return done

