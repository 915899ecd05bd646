"""The HTML report: self-contained, escaped, and rendered by a real browser."""
from __future__ import annotations

import re

import pytest

import incidents
import synth
from conftest import page_metrics, screenshot, write_jsonl
from analyzers.report.html import render, window_label, write_report
from analyzers.files import analyze_files

PAYLOAD = "<script>document.title='pwned'</script>"


@pytest.fixture
def window(baseline, tmp_path):
    frame, _ = incidents.new_category_takes_a_tenth(1000, 3)
    recs = synth.records(frame)
    recs[5]["predwatch"]["features"]["country"] = PAYLOAD
    recs[6]["predwatch"]["features"][PAYLOAD] = 1  # an untrusted feature name too
    path = write_jsonl(tmp_path / "w.jsonl", recs)
    return analyze_files([path], baseline)


def test_report_is_self_contained_and_escapes_log_values(window):
    html = render([window])
    assert PAYLOAD not in html and "&lt;script&gt;document.title" in html
    assert not re.search(r"<script", html, re.I), "the report runs no script at all"
    assert not re.search(r"(src|href)=[\"']?https?:", html), "no network resources"
    assert "unseen_category" in html and "country" in html and "XX" in html


def test_report_of_several_windows_has_a_timeline(baseline, tmp_path):
    windows = []
    for day, incident in enumerate([None, None, incidents.mean_shifts]):
        frame = synth.table(600, seed=day) if incident is None else incident(600, day)[0]
        path = write_jsonl(tmp_path / f"d{day}.jsonl", synth.records(frame, start=f"2026-11-2{day}T00:00:00"))
        windows.append(analyze_files([path], baseline))
    html = render(windows)
    assert "Timeline" in html and "age &middot; distribution_shift" in html


def test_report_renders_in_headless_chromium(window, browser, tmp_path):
    page = write_report([window], tmp_path / "report.html")
    png, dom = screenshot(browser, page, tmp_path / "report.png", tmp_path)
    assert png.stat().st_size > 20_000, "a blank page would be a few kB"
    assert "<title>predwatch report: checkout-risk</title>" in dom, "the payload did not run (title unchanged)"
    assert "pwned" not in dom.split("</title>")[0]
    assert "&lt;script&gt;document.title" in dom, "the payload is shown as text"
    assert dom.count("<svg") >= 9, "one chart per feature"
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(head[16:20], "big") == 1280 and int.from_bytes(head[20:24], "big") == 2000


@pytest.fixture(scope="module")
def timeline_page(baseline, tmp_path_factory):
    """A report of 275 daily windows (the demo's length) with incidents on a few days."""
    from datetime import datetime, timedelta, timezone

    from analyzers.files import analyze_local

    tmp = tmp_path_factory.mktemp("timeline")
    day0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    recs = []
    for d in range(275):
        frame = incidents.unit_changes(60, d)[0] if d in (40, 41, 200, 274) else synth.table(60, seed=d)
        day = synth.records(frame, start=(day0 + timedelta(days=d)).strftime("%Y-%m-%dT00:00:00"))
        for i, rec in enumerate(day):
            rec["@timestamp"] = (day0 + timedelta(days=d, minutes=20 * i)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        recs += day
    logs = write_jsonl(tmp / "logs.jsonl", recs)
    analysis = analyze_local([logs], baseline, window=timedelta(days=1))
    assert len(analysis.windows) == 275
    return write_report(analysis.windows, tmp / "timeline.html"), analysis.windows


def test_timeline_bars_check_columns_and_axis_share_their_x(timeline_page):
    page, windows = timeline_page
    html = page.read_text()
    svg = html[html.index('<svg class="timeline-chart"'):html.index("</svg>", html.index('<svg class="timeline-chart"'))]
    width = float(re.search(r'width="(\d+)"', svg).group(1))
    bars = [float(x) for x in re.findall(r'<rect class="bar" x="([\d.]+)"', svg)]
    assert len(bars) == 275 and bars == sorted(bars)
    step = bars[1] - bars[0]
    assert all(abs((b - a) - step) < 1e-9 for a, b in zip(bars, bars[1:])), "evenly spaced"
    cells = re.findall(r'<rect class="cell (\w+)" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)"', svg)
    rows: dict[str, list[float]] = {}
    for _, x, y, w in cells:
        rows.setdefault(y, []).append(float(x))
        assert float(x) + float(w) <= width
    assert rows and all(xs == bars for xs in rows.values()), "every check column sits under its bar"
    ticks = [float(x) for x in re.findall(r'<text class="tick" x="([\d.]+)"', svg)]
    assert 6 <= len(ticks) <= 14 and set(ticks) <= set(bars), "the date axis marks window columns"
    assert "Jan 2026" in svg and ">Sep<" in svg, "month ticks for a long range"
    assert width <= 1100, "fits the card at desktop width: no horizontal scrollbar"
    assert "Feb 10, 2026 &middot;" in html, "window headings are short dates"
    assert "T00:00:00.000Z to" not in html


def test_most_severe_windows_come_first_whatever_the_check():
    from analyzers.core.checks import CheckResult
    from analyzers.report.html import severity

    def window(*findings):
        class W:
            pass
        w = W()
        w.findings = [CheckResult(check=c, feature="f", role="input", status=s, value=v, threshold=0.1,
                                  critical_threshold=0.25, p_value=0.0, adjusted_p_value=0.0, n_window=1,
                                  n_baseline=1, observed=None, expected=None, message="", examples=[])
                      for c, s, v in findings]
        return w

    unit_change = window(("distribution_shift", "critical", 0.84))
    three_warnings = window(("missing_feature", "warning", 0.06), ("oov_rate", "warning", 0.12),
                            ("unseen_category", "warning", 0.07))
    assert severity(unit_change) > severity(three_warnings)


@pytest.mark.parametrize("width", [1400, 500])
def test_timeline_report_fits_desktop_and_phone_widths(timeline_page, browser, tmp_path, width):
    page, _ = timeline_page
    png, dom = screenshot(browser, page, tmp_path / f"timeline-{width}.png", tmp_path, size=f"{width},1600")
    assert png.stat().st_size > 30_000 and "Timeline" in dom
    seen = page_metrics(browser, page, tmp_path, width)
    assert seen["scroll"] <= seen["view"], f"the page scrolls sideways at {width} px: {seen}"
    if seen["what"] is not None:
        assert seen["what"] >= min(240, width * 0.45), f"'what happened' squeezed at {width} px: {seen}"


# -- issue 27: the report at a glance (items 12 to 15), measured in the browser ------------------------------

PROBE = """<script>window.onload=()=>{
const shown=[...document.querySelectorAll('.timeline svg.timeline-chart')].filter(s=>s.getBoundingClientRect().width>0);
const svg=shown[0], card=document.querySelector('.timeline');
const ticks=[...svg.querySelectorAll('text.tick')].filter(t=>/[A-Za-z0-9]/.test(t.textContent)&&t.getAttribute('x')!==null&&t.closest('svg')===svg&&t.getBoundingClientRect().top>svg.querySelector('line.axis').getBoundingClientRect().top).map(t=>t.getBoundingClientRect());
let overlaps=0;const xs=ticks.map(r=>[r.left,r.right]).sort((a,b)=>a[0]-b[0]);
for(let i=1;i<xs.length;i++){if(xs[i][0]<xs[i-1][1]+2)overlaps++;}
const bars=[...svg.querySelectorAll('rect.bar')].map(b=>b.getBoundingClientRect());
const cardBox=card.getBoundingClientRect();
const misaligned=[];
for(const table of document.querySelectorAll('details[open] table.quality, details[open] table.findings, main > table.findings')){
  const heads=[...table.rows[0].cells];
  if(getComputedStyle(table.rows[0]).display==='none')continue;
  for(const row of [...table.rows].slice(1)){[...row.cells].forEach((td,i)=>{const th=heads[i];
    if(th&&getComputedStyle(th).textAlign!==getComputedStyle(td).textAlign)misaligned.push(th.textContent+' '+getComputedStyle(th).textAlign+'/'+getComputedStyle(td).textAlign);});}}
const fontPx=parseFloat(getComputedStyle(svg.querySelector('text.row-label')||svg.querySelector('text')).fontSize)*svg.getBoundingClientRect().width/(svg.viewBox.baseVal&&svg.viewBox.baseVal.width||svg.getBoundingClientRect().width);
document.title=JSON.stringify({scroll:document.documentElement.scrollWidth,view:innerWidth,
 cardScroll:card.scrollWidth,cardClient:card.clientWidth,cardWidth:cardBox.width,
 barsSpan:bars.length?bars[bars.length-1].right-bars[0].left:0,ticks:ticks.length,overlaps:overlaps,
 misaligned:[...new Set(misaligned)],fontPx:fontPx}).replaceAll('"',"'")}</script>"""


def layout_probe(browser: str, page, tmp_path, width: int) -> dict:
    """Measure the laid-out page in headless Chromium: sideways scrolling (the page's and the timeline card's),
    how much of the card the windows use, overlapping date labels, columns aligned with their headers."""
    return page_metrics(browser, page, tmp_path, width, script=PROBE, name="layout")


@pytest.fixture(scope="module")
def ten_days_page(baseline, tmp_path_factory):
    """Ten daily windows with outcomes (the model-quality table), incidents on two days, one of them noted."""
    from datetime import datetime, timedelta, timezone

    from analyzers.files import analyze_local

    tmp = tmp_path_factory.mktemp("ten")
    day0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
    recs = []
    for d in range(10):
        frame = incidents.unit_changes(300, d)[0] if d in (3, 7) else synth.table(300, seed=70 + d)
        day = synth.records(frame, start=(day0 + timedelta(days=d)).strftime("%Y-%m-%dT00:00:00"))
        for i, rec in enumerate(day):
            rec["@timestamp"] = (day0 + timedelta(days=d, minutes=4 * i)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            rec["predwatch"]["latency_ms"] = 1.0 + (i % 50) / 5
        recs += day
    logs = write_jsonl(tmp / "logs.jsonl", recs)
    analysis = analyze_local([logs], baseline, window=timedelta(days=1))
    assert len(analysis.windows) == 10
    notes = [None] * 10
    notes[3] = "the amount arrives in cents"
    return write_report(analysis.windows, tmp / "ten.html", notes=notes), analysis.windows


@pytest.mark.parametrize("width", [1400, 500])
@pytest.mark.parametrize("which", ["ten", "275"])
def test_timeline_uses_the_card_with_readable_dates_and_no_sideways_scrolling(ten_days_page, timeline_page, browser,
                                                                              tmp_path, width, which):
    page, _ = ten_days_page if which == "ten" else timeline_page
    png, _ = screenshot(browser, page, tmp_path / f"{which}-{width}.png", tmp_path, size=f"{width},1600")
    seen = layout_probe(browser, page, tmp_path, width)
    assert seen["scroll"] <= seen["view"], f"the page scrolls sideways: {seen}"
    assert seen["cardScroll"] <= seen["cardClient"], f"the timeline scrolls sideways inside its card: {seen}"
    assert seen["overlaps"] == 0 and seen["ticks"] >= 4, f"date labels overlap (or are missing): {seen}"
    used = 0.6 if width >= 1000 else 0.9  # (desktop: the row labels take the left of the card)
    assert seen["barsSpan"] >= used * seen["cardWidth"], f"the windows use too little of the card: {seen}"
    assert seen["fontPx"] >= 10, f"labels too small to read: {seen}"


def test_every_column_sits_under_its_header(ten_days_page, browser, tmp_path):
    page, _ = ten_days_page
    seen = layout_probe(browser, page, tmp_path, 1400)
    assert seen["misaligned"] == [], seen


def test_the_detail_heading_counts_right_and_each_row_names_its_worst_finding(ten_days_page, timeline_page):
    from analyzers.report.html import worst_finding

    for page, windows in (ten_days_page, timeline_page):
        html = page.read_text()
        summaries = re.findall(r"<summary>(.*?)</summary>", html, re.S)
        said = re.search(r"Below: (.*?)</div>", html, re.S).group(1)
        assert re.search(rf": {len(summaries)} in all\.$", said), (said, len(summaries))
        severe = re.search(r"the (\d+) most severe", said)
        extra = ("and the latest one" in said) + sum(int(n) for n in re.findall(r"the (\d+) other marked", said))
        assert int(severe.group(1)) + extra == len(summaries), said
        by_label = {window_label(w): w for w in windows}
        for summary in summaries:
            label = summary.split(" &middot;")[0]
            worst = worst_finding(by_label[label])
            if worst is not None:
                assert f"{worst.check}" in summary and f"on {worst.feature}" in summary, summary


def test_noted_windows_are_marked_on_the_timeline_and_shown(ten_days_page):
    page, windows = ten_days_page
    html = page.read_text()
    wide = html[html.index('<div class="layout-wide">'):html.index('<div class="layout-narrow">')]
    assert wide.count('<path class="incident"') == 1 and "the amount arrives in cents" in wide
    (summary,) = [s for s in re.findall(r"<summary>(.*?)</summary>", html, re.S) if "injected:" in s]
    assert summary.startswith(window_label(windows[3])) and "the amount arrives in cents" in summary
