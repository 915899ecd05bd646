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

from ..core.checks import example_text
from ..store.series import fetch
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
        use_observed = check.split()[0] in ("missing_feature", "unseen_category", "oov_rate", "type_mismatch",
                                            "out_of_range", "quality_drop", "estimated_quality_drop",
                                            "latency_regression")
        named = {"value": [(m["window"]["end"], m.get("observed") if use_observed else m.get("value")) for m in rows]}
        classes = {"value": "line-value", "expected": "line-expected", "threshold": "line-threshold"}
        if use_observed:
            named["expected"] = [(m["window"]["end"], m.get("expected")) for m in rows]
        else:
            named["threshold"] = [(m["window"]["end"], m.get("threshold")) for m in rows]
        bad = [(m["window"]["end"], (m.get("observed") if use_observed else m.get("value")) or 0.0, m["status"])
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
    findings = [{"end": f["predwatch"]["window"]["end"], "severity": f["predwatch"].get("severity"),
                 "check": f["predwatch"]["check"] + (f' · {f["predwatch"]["metric"]}' if f["predwatch"].get("metric")
                                                     else ""),
                 "feature": f["predwatch"]["feature"],
                 "value": f["predwatch"].get("value"),
                 "threshold": f["predwatch"].get("critical_threshold" if f["predwatch"].get("severity") == "critical"
                                                 else "threshold"),
                 "message": f.get("message", ""),
                 "examples": [example_text(e) for e in (f["predwatch"].get("examples") or [])][:5]}
                for f in data["findings"]]
    windows = len({m["window"]["start"] for m in data["metrics"]})
    return environment.get_template("series_report.html.j2").render(
        title=f"predwatch report: {model}", source=source, start=start, end=end,
        generated=c.utc_iso(datetime.now(timezone.utc)), windows=windows, volume=volume, volume_chart=volume_chart,
        prediction_chart=prediction_chart if prediction_chart.lines else None, findings=findings, series=series)


def write(client: Elasticsearch, prefix: str, model: str, start: str, end: str, out: str | Path, source: str) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(fetch(client, prefix, model, start, end), model=model, start=start, end=end, source=source),
                   encoding="utf-8")
    return out
