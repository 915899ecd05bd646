"""The report from Elasticsearch: the dashboard's series, read from the results indices.

For people without Kibana (or before it is set up): per (feature, check) the
value against its threshold over time, the findings, predictions per window and
the prediction percentiles, rendered into the same self-contained HTML.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from logging_adapter import contract as c

from ..core import registry
from ..core.checks import example_text
from ..sources.search import of_model, search
from ..store.series import NothingYet, fetch
from .html import environment

WIDTH, HEIGHT, LEFT = 520, 140, 34


@dataclass
class Chart:
    label: str
    lines: list[dict[str, str]] = field(default_factory=list)
    dots: list[tuple[float, float, str]] = field(default_factory=list)
    ymin: str = ""
    ymax: str = ""
    xmin: str = ""
    xmax: str = ""
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT


def _epoch(ts: str) -> float:
    return c.parse_time(ts).timestamp()


def line_chart(label: str, series: dict[str, list[tuple[str, float | None]]], classes: dict[str, str],
               bad: list[tuple[str, float, str]] = (), width: int = WIDTH) -> Chart:
    """Polylines for named series of (timestamp, value); ``bad`` points are marked."""
    points = [(t, v) for s in series.values() for t, v in s if v is not None]
    chart = Chart(label, width=width)
    if not points:
        return chart
    t0, t1 = min(_epoch(t) for t, _ in points), max(_epoch(t) for t, _ in points)
    lo, hi = min(0.0, min(v for _, v in points)), max(v for _, v in points)
    hi = hi if hi > lo else lo + 1.0
    span = (t1 - t0) or 1.0

    def xy(t: str, v: float) -> tuple[float, float]:
        return (LEFT + (width - LEFT - 4) * (_epoch(t) - t0) / span,
                4 + (HEIGHT - 28) * (1 - (v - lo) / (hi - lo)))

    for name, data in series.items():
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(t, v) for t, v in data if v is not None))
        if pts:
            chart.lines.append({"cls": classes[name], "points": pts, "label": name})
    chart.dots = [(*xy(t, v), text) for t, v, text in bad]
    chart.ymin, chart.ymax = f"{lo:.3g}", f"{hi:.3g}"
    chart.xmin, chart.xmax = min(t for t, _ in points)[:16].replace("T", " "), max(t for t, _ in points)[:16].replace("T", " ")
    return chart


def render(data: dict[str, Any], *, model: str, start: str, end: str, source: str) -> str:
    by_key: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for m in data["metrics"]:
        if m.get("check") == "volume":
            continue
        # against training and against the recent past are two questions: two charts
        against = "recent" if m.get("reference") == "recent" else ""
        check = f'{m["check"]} {m["metric"]}' if m.get("metric") else m["check"]
        by_key.setdefault((m["feature"], check, against), []).append(m)
    series = []
    for (feature, check, against), rows in sorted(by_key.items()):
        rows.sort(key=lambda m: m["window"]["start"])
        spec = registry.find(check.split()[0])
        use_observed = spec is not None and spec.draws_observed
        # a window is named by its start, as in the local report (a day-5 incident is on day 5)
        named = {"value": [(m["window"]["start"], m.get("observed") if use_observed else m.get("value")) for m in rows]}
        classes = {"value": "line-value", "expected": "line-expected", "threshold": "line-threshold"}
        if use_observed:
            named["expected"] = [(m["window"]["start"], m.get("expected")) for m in rows]
        else:
            named["threshold"] = [(m["window"]["start"], m.get("threshold")) for m in rows]
        bad = [(m["window"]["start"], (m.get("observed") if use_observed else m.get("value")) or 0.0, m["status"])
               for m in rows if m.get("status") in ("warning", "critical")]
        status = "critical" if any(m["status"] == "critical" for m in rows) else (
            "warning" if any(m["status"] == "warning" for m in rows) else "ok")
        label = f"{check} (against recent days)" if against else check
        series.append({"feature": feature, "check": label, "status": status,
                       "chart": line_chart(f"{feature} {label}", named, classes, bad)})
    order = {"critical": 0, "warning": 1, "ok": 2}
    series.sort(key=lambda s: (order[s["status"]], s["feature"], s["check"]))
    volume = [{"t": b["key_as_string"], "count": b["doc_count"]} for b in data["histogram"]]
    volume_chart = line_chart("predictions per interval", {"predictions": [(v["t"], v["count"]) for v in volume]},
                              {"predictions": "line-expected"}, width=2 * WIDTH)
    pct = {name: [(b["key_as_string"], (b.get("p", {}).get("values") or {}).get(key)) for b in data["histogram"]]
           for name, key in (("p10", "10.0"), ("p50", "50.0"), ("p90", "90.0"))}
    prediction_chart = line_chart("prediction percentiles", pct,
                                  {"p10": "line-expected", "p50": "line-value", "p90": "line-expected"},
                                  width=2 * WIDTH)
    findings = [finding_row(f) for f in data["findings"]]
    findings.sort(key=lambda f: (f["start"], f["recent"]), reverse=True)
    windows = len({m["window"]["start"] for m in data["metrics"]})
    training = [f for f in findings if not f["recent"]]
    return environment.get_template("series_report.html.j2").render(
        title=f"predwatch report: {model}", source=source, start=start, end=end,
        generated=c.utc_iso(datetime.now(timezone.utc)), windows=windows, volume=volume, volume_chart=volume_chart,
        prediction_chart=prediction_chart if prediction_chart.lines else None, findings=findings, series=series,
        training=training, recent=[f for f in findings if f["recent"]])


def finding_row(doc: dict[str, Any]) -> dict[str, Any]:
    """A finding document as a row of the report: dated by its window's start, and saying what it was judged
    against (training, or the recent days: two questions, counted apart)."""
    p = doc["predwatch"]
    reference = p.get("reference") or "training"
    return {"start": p["window"]["start"], "end": p["window"]["end"], "severity": p.get("severity"),
            "check": p["check"] + (f' · {p["metric"]}' if p.get("metric") else ""),
            "feature": p["feature"], "value": p.get("value"),
            "threshold": p.get("critical_threshold" if p.get("severity") == "critical" else "threshold"),
            "recent": reference == "recent", "against": "recent days" if reference == "recent" else reference,
            "message": doc.get("message", ""),
            "examples": [example_text(e) for e in (p.get("examples") or [])][:5]}


@dataclass
class Written:
    """Where the report went, and how many findings against training it shows (the exit code's rule, as for
    the local report: findings against the recent days are shown, not counted)."""

    path: Path
    findings: int


def write(client: Elasticsearch, prefix: str, model: str, start: str, end: str, out: str | Path, source: str
          ) -> Written:
    out = Path(out)
    try:
        data = fetch(client, prefix, model, start, end)
    except NothingYet as exc:
        raise NothingYet(what_is_missing(client, prefix, model, start, end, str(exc))) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data, model=model, start=start, end=end, source=source), encoding="utf-8")
    found = sum(1 for f in data["findings"] if (f["predwatch"].get("reference") or "training") != "recent")
    return Written(out, found)


def what_is_missing(client: Elasticsearch, prefix: str, model: str, start: str, end: str, nothing_yet: str) -> str:
    """Why no window of the model has results in the range, when the cluster can tell: the analysis ran and
    failed (its reason, instead of "nothing analysed yet"), or, besides ``nothing_yet``, the baseline was
    never stored or there are no records to analyse."""
    from logging_adapter.templates import predictions_pattern

    from ..store import results as res

    in_range = of_model(model, field=res.WINDOW_START, start=start, end=end)
    in_range["bool"]["filter"].append({"term": {res.CHECK: "analysis_error"}})
    failed = search(client, index=res.findings_index(prefix), size=1, query=in_range, sort=[{res.WINDOW_START: "desc"}],
                    ignore_unavailable=True, allow_no_indices=True)["hits"]
    total = failed["total"]["value"] if isinstance(failed["total"], dict) else failed["total"]
    if failed["hits"]:
        reason = failed["hits"][0]["_source"].get("message", "")
        return (f"{total:,} window(s) of model {model!r} in [{start}, {end}) were analysed but could not be judged: "
                f"{reason}")
    baselines = search(client, index=res.baselines_index(prefix), size=0, query={"term": {"model": model}},
                       ignore_unavailable=True, allow_no_indices=True)["hits"]["total"]
    if (baselines["value"] if isinstance(baselines, dict) else baselines) == 0:
        return (f"nothing analysed yet: no baseline of model {model!r} is in {res.baselines_index(prefix)} (store it "
                f"with `predwatch baseline --data TRAINING.csv --model {model} --version V --es ...`, then run "
                "`predwatch analyze`)")
    records = client.count(index=predictions_pattern(prefix, model), ignore_unavailable=True, allow_no_indices=True,
                           query=of_model(model, field=c.TIMESTAMP, start=start, end=end))["count"]
    if records == 0:
        return (f"{nothing_yet}; and there is no prediction record of model {model!r} in [{start}, {end}) in "
                f"{predictions_pattern(prefix, model)}: ship them first (`predwatch ship`), or give the range they "
                "are in (--start, --end)")
    return nothing_yet
