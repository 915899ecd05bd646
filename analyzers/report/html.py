"""The HTML report: one self-contained page (no network, no CDN), charts as inline SVG.

Values from the logs are untrusted; the template autoescapes everything, so a
category named ``<script>`` renders as text.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jinja2

from logging_adapter import contract as c

from ..core.baseline import ColumnBaseline
from ..core.checks import CheckResult, example_text
from ..core.incidents import DEFAULT_GAP
from ..core.joint import ALL_INPUTS
from ..core.profile import ColumnProfile
from ..core.window import WindowResult

TOP_CATEGORIES = 10

environment = jinja2.Environment(  # public: the report from Elasticsearch uses it too
    loader=jinja2.PackageLoader("analyzers.report", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class Bar:
    label: str
    training: float
    window: float


@dataclass
class FeatureView:
    name: str
    kind: str
    role: str
    status: str
    results: list[CheckResult]
    bars: list[Bar]
    note: str


def feature_views(window: WindowResult) -> list[FeatureView]:
    """Per column: its check results and the bars comparing training (the reference the window was judged
    against: the same hours of day when the baseline has them) with the window."""
    by_feature: dict[str, list[CheckResult]] = {}
    for r in window.results:
        by_feature.setdefault(r.feature, []).append(r)
    views = []
    for name, col in window.judged_against.columns.items():
        prof = window.profile.columns.get(name) or ColumnProfile(kind=col.kind)
        results = by_feature.get(name, [])
        status = "critical" if any(r.status == "critical" for r in results) else (
            "warning" if any(r.status == "warning" for r in results) else "ok")
        bars, note = _embedding_bars(prof, results) if col.kind == "embedding" else _bars(col, prof)
        views.append(FeatureView(name, col.kind, col.role, status, results, bars, note))
    joint = by_feature.get(ALL_INPUTS)
    if joint:
        views.append(_joint_view(joint))
    order = {"critical": 0, "warning": 1, "ok": 2}
    views.sort(key=lambda v: (order[v.status], v.role != "prediction", v.name))
    return views


def _bars(col: ColumnBaseline, prof: ColumnProfile) -> tuple[list[Bar], str]:
    if col.kind == "numeric":
        return _numeric_bars(col, prof)
    if col.kind == "text":
        expected = col.expected_oov_rate or 0.0
        rate = prof.oov_tokens / prof.tokens if prof.tokens else 0.0
        return [Bar("out of vocabulary", expected, rate), Bar("in vocabulary", 1 - expected, 1 - rate if prof.tokens else 0)], (
            f"{len(col.vocabulary or ()):,} words in the model's vocabulary; "
            f"{prof.tokens:,} words in {prof.texts:,} texts in this window")
    return _category_bars(col, prof)


def _status(results: Sequence[CheckResult]) -> str:
    return "critical" if any(r.status == "critical" for r in results) else (
        "warning" if any(r.status == "warning" for r in results) else "ok")


def _joint_view(results: list[CheckResult]) -> FeatureView:
    """The inputs together (``multivariate_shift``): each input's share of the change in how the inputs move
    together, and the pair that moved most in words."""
    r = results[0]
    bars = [Bar(str(e["value"]), 0.0, float(e["share"])) for e in r.examples if isinstance(e, dict) and "share" in e]
    note = f"each input's share of the change in how the inputs move together; {r.message}"
    return FeatureView("(the inputs together)", "joint", "input", _status(results), results, bars, note)


def _embedding_bars(prof: ColumnProfile, results: list[CheckResult]) -> tuple[list[Bar], str]:
    """An embedding: the share of its vectors where training's vectors rarely are (training's own share is the
    tail it was measured on), and the values that were no vector of its length."""
    shift = next((r for r in results if r.check == "embedding_shift"), None)
    bars = []
    if shift is not None and shift.observed is not None and shift.expected is not None:
        bars = [Bar("where training rarely is", shift.expected, shift.observed),
                Bar("where training is", 1 - shift.expected, 1 - shift.observed)]
    values = prof.present - prof.nulls
    if values:
        bars.append(Bar("not a vector of its length", 0.0, prof.mismatched / values))
    note = shift.message if shift is not None else f"{values:,} vectors; too few in the sample to judge"
    return bars, note


def _share(counts: Sequence[float]) -> list[float]:
    total = sum(counts)
    return [x / total if total else 0.0 for x in counts]


def _numeric_bars(col: ColumnBaseline, prof: ColumnProfile) -> tuple[list[Bar], str]:
    edges = col.edges or []
    base = _share(col.bin_counts or [])
    win = _share(prof.bins or [0] * len(base))
    labels = [f"< {_fmt(edges[0])}" if edges else "below"]
    labels += [f"{_fmt(lo)} to {_fmt(hi)}" for lo, hi in zip(edges, edges[1:])]
    labels.append(f"> {_fmt(col.max)}")
    bars = [Bar(label, b, w) for label, b, w in zip(labels, base, win)]
    # Out-of-range tails are shown only when something falls there.
    if bars and bars[0].training == 0 and bars[0].window == 0:
        bars = bars[1:]
    if bars and bars[-1].training == 0 and bars[-1].window == 0:
        bars = bars[:-1]
    ms = prof.mean_std()
    note = f"training mean {_fmt(col.mean)}, sd {_fmt(col.std)}, range {_fmt(col.min)} to {_fmt(col.max)}"
    if ms:
        note += f"; window mean {_fmt(ms[0])}, sd {_fmt(ms[1])}, range {_fmt(prof.min)} to {_fmt(prof.max)}"
    return bars, note


def _category_bars(col: ColumnBaseline, prof: ColumnProfile) -> tuple[list[Bar], str]:
    cats = col.categories or {}
    base_total = sum(cats.values()) + col.other_count
    win_total = sum(prof.categories.values()) + prof.unseen
    top = sorted(cats, key=lambda k: -cats[k])[:TOP_CATEGORIES]
    for cat in sorted(prof.categories, key=lambda k: -prof.categories[k]):
        if len(top) >= TOP_CATEGORIES + 3:
            break
        if cat not in top:
            top.append(cat)

    def share(n: float, total: float) -> float:
        return n / total if total else 0.0

    bars = [Bar(cat, share(cats.get(cat, 0), base_total), share(prof.categories.get(cat, 0), win_total)) for cat in top]
    rest_base = base_total - sum(cats.get(cat, 0) for cat in top)
    rest_win = sum(prof.categories.values()) - sum(prof.categories.get(cat, 0) for cat in top)
    if rest_base or rest_win:
        bars.append(Bar("(other known)", share(rest_base, base_total), share(rest_win, win_total)))
    bars.append(Bar("(never seen in training)", col.expected_unseen_rate, share(prof.unseen, win_total)))
    unseen = sorted(prof.unseen_values.items(), key=lambda kv: -kv[1])[:5]
    note = f"{len(cats):,} categories in training"
    if unseen:
        note += "; new in this window: " + ", ".join(f"{v} ({n:,})" for v, n in unseen)
    return bars, note


environment.filters["example"] = example_text
environment.filters["window_label"] = lambda w: window_label(w)
environment.filters["number"] = lambda x: number(x)


def number(x: float | None) -> str:
    """Three decimals, never "-0.000"; large values with thousands separators."""
    if x is None:
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    text = f"{x:.3f}"
    return "0.000" if text == "-0.000" else text


def _fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def render(windows: Sequence[WindowResult], *, title: str | None = None,
           notes: Sequence[str | None] | None = None, gap: int = DEFAULT_GAP) -> str:
    """The report page for one window, or for a series of windows with a timeline.

    ``notes``: one per window (None for most), e.g. the incident a demo injected that day: marked on the
    timeline and on the window's row, which is always shown."""
    if not windows:
        raise ValueError("no window to report")
    notes = list(notes) if notes is not None else [None] * len(windows)
    if len(notes) != len(windows):
        raise ValueError(f"{len(notes)} notes for {len(windows)} windows")
    latest = windows[-1]
    model = latest.profile.model or latest.baseline.model
    timeline = _timeline(windows, notes, gap) if len(windows) > 1 else None
    note_of = {id(w): n for w, n in zip(windows, notes)}
    severe, detail = _detail_windows(windows, notes)
    return environment.get_template("report.html.j2").render(
        incidents=incident_rows(windows, notes, detail, gap) if len(windows) > 1 else [],
        title=title or f"predwatch report: {model}",
        model=model,
        baseline=latest.baseline,
        windows=windows,
        detail=[(w, feature_views(w), note_of[id(w)], worst_finding(w)) for w in detail],
        severe=severe,
        latest_extra=id(windows[-1]) not in {id(w) for w in severe} and not notes[-1],
        noted=sum(1 for w, n in zip(windows, notes) if n and id(w) not in {id(s) for s in severe}),
        timeline=timeline,
        generated=c.utc_iso(datetime.now(timezone.utc)),
    )


INCIDENTS_LEADING = 25  # incident rows shown before the rest are folded away (the open and labelled ones always)


def incident_rows(windows: Sequence[WindowResult], notes: Sequence[str | None],
                  detail: Sequence[WindowResult], gap: int = DEFAULT_GAP) -> list[dict[str, Any]]:
    """The incidents of the windows, open ones first, each named by its first and last window, with a link to its
    first window shown below and the note (the injected incident) of the windows it spans. ``lead``: shown
    before the rest (open, labelled, then the most recent up to ``INCIDENTS_LEADING``)."""
    from ..core.incidents import incidents_of, ordered_for_reading

    window_at = {(w.bounds or (w.profile.start, w.profile.end))[0]: w for w in windows}
    shown = {id(w): f"window-{i}" for i, w in enumerate(detail)}
    noted = {id(w): n for w, n in zip(windows, notes) if n}
    rows = []
    for incident in ordered_for_reading(incidents_of(windows, gap)):
        spanned = [window_at[s] for s in incident.window_starts]
        rows.append({"incident": incident, "note": "; ".join(sorted({noted[id(w)] for w in spanned if id(w) in noted})),
                     "anchor": next((shown[id(w)] for w in spanned if id(w) in shown), None),
                     "first": window_label(spanned[0]), "last": window_label(spanned[-1])})
    room = INCIDENTS_LEADING - sum(1 for r in rows if r["incident"].ongoing or r["note"])
    for r in rows:
        r["lead"] = bool(r["incident"].ongoing or r["note"]) or room > 0
        if not (r["incident"].ongoing or r["note"]) and room > 0:
            room -= 1
    return rows


def worst_finding(w: WindowResult) -> CheckResult | None:
    """The finding that ranks the window (its value against its critical threshold): named on its row."""
    return max(w.findings, key=lambda f: (f.value / f.critical_threshold if f.critical_threshold else 0.0,
                                          f.status == "critical"), default=None)


DETAIL_WINDOWS = 30


def severity(w: WindowResult) -> tuple[float, int, int]:
    """How bad a window is, over every check: its worst finding's value against that check's critical
    threshold (a PSI of 0.84 against 0.25 outranks three warnings), then how many criticals and warnings."""
    worst = max((f.value / f.critical_threshold for f in w.findings if f.critical_threshold), default=0.0)
    return (worst, sum(f.status == "critical" for f in w.findings), sum(f.status == "warning" for f in w.findings))


def _detail_windows(windows: Sequence[WindowResult], notes: Sequence[str | None]
                    ) -> tuple[list[WindowResult], list[WindowResult]]:
    """(the most severe windows, the windows shown in detail). Every window of a single-window report; of a
    series, up to DETAIL_WINDOWS of the most severe ones, the noted ones and the last one (the timeline shows
    them all), in time order."""
    if len(windows) == 1:
        return [], list(windows)
    worst = sorted((w for w in windows if w.findings), key=severity, reverse=True)[:DETAIL_WINDOWS]
    chosen = set(map(id, worst)) | {id(windows[-1])} | {id(w) for w, n in zip(windows, notes) if n}
    return [w for w in windows if id(w) in set(map(id, worst))], [w for w in windows if id(w) in chosen]


def window_span(w: WindowResult) -> tuple[datetime | None, datetime | None]:
    start, end = w.bounds or (w.profile.start, w.profile.end)
    return (c.parse_time(start) if start else None, c.parse_time(end) if end else None)


def window_label(w: WindowResult) -> str:
    """"Apr 9, 2013" for a day, "Apr 9, 2013, 09:00–10:00 UTC" for less, a range for more.

    A window cut from time (``bounds``) is named by its bounds. A window read from a file is named by
    its records: a file of about one day (in any time zone, e.g. a New York day) by the date it mostly
    covers, a shorter one by its hours."""
    start, end = window_span(w)
    if start is None or end is None:
        return "a window without timestamps"
    span = end - start
    if not w.bounds and timedelta(hours=12) < span <= timedelta(hours=25):
        start = start + span / 2
    day = f"{start:%b} {start.day}, {start.year}"
    if (w.bounds and span == timedelta(days=1) and start.hour == start.minute == 0) or \
            (not w.bounds and timedelta(hours=12) < span <= timedelta(hours=25)):
        return day
    if span <= timedelta(days=1):
        return f"{day}, {start:%H:%M}–{end:%H:%M} UTC"
    return f"{day} – {end:%b} {end.day}, {end.year}"


# Timeline geometry (px): one SVG per layout, so the bars, the check cells and the date axis share their x.
# Wide (desktop): the row labels in a column on the left, the windows across the rest of the card. Narrow
# (phones, shown instead below 720 px): each row's label above its cells, the windows across the whole width.
LABEL_WIDTH, TIMELINE_WIDTH, BARS_HEIGHT, ROW_HEIGHT = 330, 1100, 44, 16
NARROW_WIDTH, NARROW_LABEL = 440, 13
TICK_LABEL_PX = 70  # room one date label needs: the axis thins its ticks to fit


@dataclass(frozen=True)
class Layout:
    name: str
    width: float  # of the whole chart
    left: float  # where the first window's column starts
    label_above: bool  # each row's label on a line of its own above its cells


WIDE = Layout("wide", TIMELINE_WIDTH, LABEL_WIDTH, False)
NARROW = Layout("narrow", NARROW_WIDTH, 0, True)


def _timeline(windows: Sequence[WindowResult], notes: Sequence[str | None], gap: int = DEFAULT_GAP
              ) -> dict[str, Any]:
    """Rows (feature, check) x columns (windows): records per window above, the status of every check below,
    a date axis under them; column i sits at the same x in all three. Drawn for both layouts."""
    labels = [window_label(w) for w in windows]
    rows: dict[tuple[str, str], list[tuple[str, float | None]]] = {}
    n = len(windows)
    for i, w in enumerate(windows):
        for r in w.results:
            rows.setdefault((r.feature, _check_label(r)), [("none", None)] * n)[i] = (r.status, r.value)
        for r in w.recent:  # against the previous days: rows of their own
            rows.setdefault((r.feature, f"{_check_label(r)} · recent"), [("none", None)] * n)[i] = (r.status, r.value)
    interesting = sorted((k, v) for k, v in rows.items() if any(s in ("warning", "critical") for s, _ in v))
    incidents = [(i, note) for i, note in enumerate(notes) if note]
    spans = _incident_spans(windows, labels, gap)
    charts = [_timeline_chart(layout, windows, labels, interesting, incidents, spans) for layout in (WIDE, NARROW)]
    return {"charts": charts, "first": labels[0], "last": labels[-1], "has_recent": any(w.recent for w in windows),
            "incidents": [{"label": labels[i], "note": note} for i, note in incidents],
            # the wide chart's geometry, as before: what tests and the quality chart read
            **{k: charts[0][k] for k in ("bars", "rows", "ticks", "width", "cell", "row_height", "axis_y", "height",
                                         "label_width", "quality")}}


def _incident_spans(windows: Sequence[WindowResult], labels: list[str], gap: int = DEFAULT_GAP
                    ) -> dict[tuple[str, str, bool], list[tuple[int, int, str]]]:
    """Per (feature, check, against the recent days): each incident's first and last window, and its title."""
    from ..core.incidents import incidents_of
    from ..core.reference import RECENT

    index = {(w.bounds or (w.profile.start, w.profile.end))[0]: i for i, w in enumerate(windows)}
    spans: dict[tuple[str, str, bool], list[tuple[int, int, str]]] = {}
    for incident in incidents_of(windows, gap):
        first, last = index[incident.window_starts[0]], index[incident.window_starts[-1]]
        title = (f"incident: {incident.check} on {incident.feature} against {incident.reference}, {labels[first]}"
                 f" to {'now (ongoing)' if incident.ongoing else labels[last]}, {incident.windows} window"
                 f"{'s' if incident.windows != 1 else ''}, peak {incident.peak_severity} {_fmt(incident.peak_value)}")
        spans.setdefault((incident.feature, incident.check, incident.reference == RECENT), []).append(
            (first, last, title))
    return spans


def _timeline_chart(layout: Layout, windows: Sequence[WindowResult], labels: list[str],
                    interesting: list[tuple[tuple[str, str], list[tuple[str, float | None]]]],
                    incidents: list[tuple[int, str]],
                    spans: dict[tuple[str, str, bool], list[tuple[int, int, str]]] | None = None) -> dict[str, Any]:
    n = len(windows)
    step = (layout.width - layout.left) / n  # the windows use the chart's whole width
    cell = max(1.0, step - 1) if step >= 3 else step  # a 1 px gap while it does not eat the cell
    xs = [layout.left + i * step for i in range(n)]
    top = max(w.profile.records for w in windows) or 1
    marks_y = 4 + (NARROW_LABEL + 2 if layout.label_above else 0)  # (narrow: "records per window" on a line above)
    bars_top = marks_y + (12 if incidents else 0)
    bars = [{"x": x, "y": bars_top + BARS_HEIGHT * (1 - w.profile.records / top),
             "h": BARS_HEIGHT * w.profile.records / top, "title": f"{label}: {w.profile.records:,} records"}
            for x, w, label in zip(xs, windows, labels)]
    marks = [{"x": xs[i] + cell / 2, "y": marks_y, "title": f"{labels[i]}: {note}"} for i, note in incidents]
    first_row = bars_top + BARS_HEIGHT + 10
    per_row = ROW_HEIGHT + (NARROW_LABEL if layout.label_above else 0)
    label_dy = 10 if layout.label_above else 11
    grid = [{"feature": feature, "check": check, "label_y": first_row + j * per_row + label_dy,
             "y": first_row + j * per_row + (NARROW_LABEL if layout.label_above else 0),
             "cells": [{"x": x, "status": status,
                        "title": f"{label}: {status}" + (f" ({_fmt(value)})" if value is not None else "")}
                       for x, (status, value), label in zip(xs, cells, labels)]}
            for j, ((feature, check), cells) in enumerate(interesting)]
    for row in grid:  # each incident of the row as one band around its windows
        recent = row["check"].endswith(" · recent")
        check = row["check"].removesuffix(" · recent").split(" ")[0]
        row["bands"] = [{"x": xs[first] - 0.5, "w": xs[last] + cell - xs[first] + 1, "title": title}
                        for first, last, title in (spans or {}).get((row["feature"], check, recent), [])
                        # (a check of several metrics has a row per metric: the band goes where it found)
                        if any(c["status"] in ("warning", "critical") for c in row["cells"][first:last + 1])]
    if layout.label_above:  # phones: one rect per run of equal status (a third of the page's size, no hover there)
        for row in grid:
            row["cells"] = _runs(row["cells"], step, cell)
    axis_y = first_row + len(grid) * per_row + 4
    ticks = _ticks(windows, xs, max_ticks=max(2, int((layout.width - layout.left) // TICK_LABEL_PX)))
    right = layout.left + n * step
    for t in ticks:  # a label near the right edge ends at its tick instead of running out of the chart
        t["anchor"] = "end" if t["x"] > right - 60 else "start"
    return {"layout": layout.name, "bars": bars, "marks": marks, "rows": grid, "ticks": ticks, "width": layout.width,
            "cell": cell, "row_height": ROW_HEIGHT - 2, "axis_y": axis_y, "height": axis_y + 22,
            "label_width": layout.left, "label_above": layout.label_above,
            "records_y": NARROW_LABEL if layout.label_above else bars_top + 26,
            "quality": _quality_chart(windows, xs, cell, labels, layout)}


def _runs(cells: list[dict[str, Any]], step: float, cell: float) -> list[dict[str, Any]]:
    """Neighbouring cells of one status as one rect, from the first one's x to the end of the last."""
    runs: list[dict[str, Any]] = []
    for one in cells:
        if runs and runs[-1]["status"] == one["status"]:
            runs[-1]["w"] = one["x"] + cell - runs[-1]["x"]
            runs[-1]["last"] = one["title"].split(": ")[0]
        else:
            runs.append({"x": one["x"], "w": cell, "status": one["status"], "first": one["title"].split(": ")[0],
                         "last": None})
    for r in runs:
        r["title"] = f"{r['first']}" + (f" to {r['last']}" if r["last"] else "") + f": {r['status']}"
    return runs


def _check_label(r: Any) -> str:
    return f"{r.check} {r.metric}" if r.metric else r.check


QUALITY_HEIGHT = 90


def _quality_chart(windows: Sequence[WindowResult], xs: list[float], cell: float, labels: list[str],
                   layout: Layout = WIDE) -> dict[str, Any] | None:
    """Realised and estimated quality per window against the reference, on the timeline's columns."""
    ref = windows[-1].baseline.quality
    if ref is None:
        return None
    metric = "mae" if ref.task == "regression" else "accuracy"
    realised, estimated = [], []
    for x, w, label in zip(xs, windows, labels):
        section = w.quality or {}
        value = (section.get("metrics", {}).get(metric) or {}).get("value") if section.get("labelled") else None
        est = (section.get("estimated") or {}).get("accuracy") if metric == "accuracy" else None
        realised.append((x + cell / 2, value, f"{label}: {metric} {number(value)} on {section.get('labelled', 0):,} "
                                              f"labelled ({(section.get('label_coverage') or 0):.0%})"))
        estimated.append((x + cell / 2, est, f"{label}: estimated {metric} {number(est)}"))
    values = [v for _, v, _ in realised + estimated if v is not None] + [ref.metrics.get(metric, 0.0)]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or 0.05
    lo, hi = lo - pad, hi + pad
    if metric == "accuracy":
        lo, hi = max(lo, 0.0), min(hi, 1.0)

    def y(v: float) -> float:
        return 6 + (QUALITY_HEIGHT - 12) * (1 - (v - lo) / (hi - lo))

    def line(points):
        return " ".join(f"{x:.1f},{y(v):.1f}" for x, v, _ in points if v is not None)

    def dots(points):
        return [{"x": x, "y": y(v), "title": t} for x, v, t in points if v is not None]

    return {"metric": metric, "height": QUALITY_HEIGHT, "reference_y": y(ref.metrics.get(metric, lo)),
            "reference": number(ref.metrics.get(metric)), "realised": line(realised), "estimated": line(estimated),
            "realised_dots": dots(realised), "estimated_dots": dots(estimated),
            "top": number(hi), "bottom": number(lo), "x0": xs[0] if xs else layout.left,
            "x1": (xs[-1] + cell) if xs else layout.left,
            # the scale's numbers: left of the chart, or (narrow) inside it at its left edge
            "scale_x": layout.left - 8 if layout.left else 2, "scale_anchor": "end" if layout.left else "start",
            "legend_y": 34 if layout.left else QUALITY_HEIGHT + 14, "legend_x": 0}


def _ticks(windows: Sequence[WindowResult], xs: list[float], max_ticks: int = 12) -> list[dict[str, Any]]:
    """Date axis: months for long ranges, days for a few weeks, hours within days; at most ``max_ticks``
    (what the chart's width has room for), so that no two labels overlap. The first tick says the year (or
    the day), the others only what changed."""
    starts = [window_span(w)[0] for w in windows]
    known = [t for t in starts if t is not None]
    if len(known) < 2:
        return []
    span = known[-1] - known[0]
    if span >= timedelta(days=60):
        units, key = span.days / 30.4 + 1, (lambda t: (t.year, t.month))
        first, text = (lambda t: f"{t:%b} {t.year}"), (lambda t: f"{t:%b}" + (f" {t.year}" if t.month == 1 else ""))
    elif span >= timedelta(days=2):
        units, key = span.days + 1, (lambda t: t.date())
        first, text = (lambda t: f"{t:%b} {t.day}, {t.year}"), (lambda t: f"{t:%b} {t.day}")
    else:
        units, key = span.total_seconds() / 3600 + 1, (lambda t: (t.date(), t.hour))
        first, text = (lambda t: f"{t:%b} {t.day}, {t:%H:%M}"), (lambda t: f"{t:%H:%M}")
    every = max(1, math.ceil(units / max(1, max_ticks)))
    # and never closer than a label's width: with few windows per unit, the columns themselves set the room
    step = (xs[-1] - xs[0]) / (len(xs) - 1) if len(xs) > 1 else TICK_LABEL_PX
    per_unit = max(1.0, len(xs) / units)
    every = max(every, math.ceil(TICK_LABEL_PX / (step * per_unit)))
    ticks, previous, seen = [], None, 0
    for x, t in zip(xs, starts):
        if t is None or key(t) == previous:
            continue
        if seen % every == 0:
            ticks.append({"x": x, "label": text(t) if ticks else first(t)})
        previous, seen = key(t), seen + 1
    return ticks


def write_report(windows: Sequence[WindowResult], out: str | Path, *, title: str | None = None,
                 notes: Sequence[str | None] | None = None, gap: int = DEFAULT_GAP) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(windows, title=title, notes=notes, gap=gap), encoding="utf-8")
    return out
