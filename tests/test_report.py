"""The HTML report: self-contained, escaped, and rendered by a real browser."""
from __future__ import annotations

import re

import pytest

import incidents
import synth
from conftest import screenshot, write_jsonl
from analyzers.report.html import render, write_report
from analyzers.sources.local import analyze_files

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
