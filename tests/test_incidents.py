"""Incidents, not findings: one episode of one problem told once, and a recent reference an incident cannot
poison. Daily windows of the synthetic model with incidents of known days (tests/incidents.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import pytest

import incidents as injected
import synth
from conftest import write_jsonl

from analyzers.core.incidents import incidents_of
from analyzers.files import analyze_local

DAYS = 17
EPISODES = {  # (check, feature): the days (indices) of each injected episode
    ("distribution_shift", "amount"): [3],  # one day of cents instead of euros
    ("out_of_range", "amount"): [3],
    ("unseen_category", "country"): [7, 8, 9],  # three days
    ("distribution_shift", "age"): [13, 14, 15, 16],  # persists to the end
}
PLAN = {3: injected.unit_changes, 7: injected.new_category_takes_a_tenth, 8: injected.new_category_takes_a_tenth,
        9: injected.new_category_takes_a_tenth, 13: injected.mean_shifts, 14: injected.mean_shifts,
        15: injected.mean_shifts, 16: injected.mean_shifts}


def day(i: int) -> str:
    return f"2026-11-{i + 1:02d}T00:00:00.000Z"


def daily_logs(tmp_path, plan: dict, days: int = DAYS, rows: int = 800) -> list:
    """One file per day; the day's records drawn from training, or from the incident planned for it."""
    paths = []
    for i in range(days):
        frame = plan[i](rows, 60 + i)[0] if i in plan else synth.table(rows, seed=60 + i)
        paths.append(write_jsonl(tmp_path / f"d{i:02d}.jsonl", synth.records(frame, start=day(i)[:19])))
    return paths


@pytest.fixture(scope="module")
def timeline(baseline, tmp_path_factory):
    paths = daily_logs(tmp_path_factory.mktemp("days"), PLAN)
    return paths, analyze_local(paths, baseline, window=timedelta(days=1), recent_days=7)


def test_each_episode_is_one_incident_with_its_days_and_quiet_days_make_none(timeline):
    _, analysis = timeline
    assert len(analysis.windows) == DAYS
    against_training = [i for i in incidents_of(analysis.windows) if i.reference == "training"]
    told = {(i.check, i.feature): i for i in against_training}
    assert len(told) == len(against_training) == len(EPISODES), [i.to_json() for i in against_training]
    for key, days in EPISODES.items():
        incident = told[key]
        assert incident.start == day(days[0]) and incident.windows == len(days), incident.to_json()
        if days[-1] == DAYS - 1:
            assert incident.end is None and incident.ongoing, "persists to the last window: still open"
            assert incident.last_seen == day(DAYS)
        else:
            assert incident.end == day(days[-1] + 1), incident.to_json()
        assert incident.peak_severity == "critical" and incident.model == "checkout-risk" and incident.version == "7"
    assert told[("unseen_category", "country")].window_starts == [day(7), day(8), day(9)]


def test_a_gap_of_one_quiet_window_does_not_split_an_episode_and_more_do(baseline, tmp_path):
    plan = {2: injected.unit_changes, 4: injected.unit_changes, 7: injected.unit_changes}
    analysis = analyze_local(daily_logs(tmp_path, plan, days=10), baseline, window=timedelta(days=1), recent_days=0)
    spans = [(i.start, i.end, i.windows) for i in incidents_of(analysis.windows)
             if (i.check, i.feature) == ("out_of_range", "amount")]
    assert spans == [(day(2), day(5), 2), (day(7), day(8), 1)], "days 2 and 4 are one episode; day 7 another"
    split = [(i.start, i.end) for i in incidents_of(analysis.windows, gap=0)
             if (i.check, i.feature) == ("out_of_range", "amount")]
    assert split == [(day(2), day(3)), (day(4), day(5)), (day(7), day(8))]
    ids = {i.id for i in incidents_of(analysis.windows)}
    assert ids == {i.id for i in incidents_of(analysis.windows)} and len(ids) == len(incidents_of(analysis.windows))


def test_a_one_day_unit_change_raises_nothing_against_the_recent_days_in_the_following_week(timeline):
    _, analysis = timeline
    recent = [sorted((f.check, f.feature) for f in w.recent_findings) for w in analysis.windows]
    assert recent[3] == [("distribution_shift", "amount")], "the day itself is news against the previous days"
    assert recent[4:7] == [[], [], []], recent
    assert all(("distribution_shift", "amount") not in r for r in recent[4:11]), "a week later still nothing"


def test_a_change_that_persists_is_news_against_the_recent_days_once(timeline):
    _, analysis = timeline
    recent = [{(f.check, f.feature) for f in w.recent_findings} for w in analysis.windows]
    assert ("unseen_category", "country") in recent[7] and ("distribution_shift", "age") in recent[13]
    assert not any(("unseen_category", "country") in r for r in recent[8:10]), "the second and third day: known"
    assert not any(("distribution_shift", "age") in r for r in recent[14:]), "ongoing is not news"
    against_recent = [(i.check, i.feature, i.start, i.windows) for i in incidents_of(analysis.windows)
                      if i.reference == "recent"]
    assert sorted(against_recent) == sorted([("distribution_shift", "amount", day(3), 1),
                                             ("unseen_category", "country", day(7), 1),
                                             ("distribution_shift", "age", day(13), 1)])


def test_check_prints_one_json_line_per_incident_after_the_windows_and_the_text_ends_with_them(
        timeline, baseline_file):
    paths, _ = timeline
    run = [sys.executable, "-m", "predwatch", "check", "--baseline", str(baseline_file), "--logs", *map(str, paths)]
    proc = subprocess.run([*run, "--format", "json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    windows = [doc for doc in lines if "window" in doc]
    told = [doc["incident"] for doc in lines if "incident" in doc]
    assert len(windows) == DAYS and lines[:DAYS] == windows, "the window lines first"
    assert len(told) == len(lines) - DAYS and all(set(doc) == {"incident"} for doc in lines[DAYS:])
    contract = {"model", "version", "feature", "check", "reference", "start", "end", "windows", "peak_severity",
                "peak_value", "message", "id"}
    assert all(contract <= set(doc) for doc in told), told[0]
    by_key = {(doc["check"], doc["feature"], doc["reference"]): doc for doc in told}
    country = by_key[("unseen_category", "country", "training")]
    assert (country["start"], country["end"], country["windows"]) == (day(7), day(10), 3)
    assert country["peak_severity"] == "critical" and country["model"] == "checkout-risk" and country["version"] == "7"
    assert country["message"].startswith("country: ") and "training" in country["message"]
    assert by_key[("distribution_shift", "age", "training")]["end"] is None
    assert by_key[("distribution_shift", "age", "recent")]["windows"] == 1
    assert {doc["reference"] for doc in told} == {"training", "recent"}
    again = subprocess.run([*run, "--format", "json"], capture_output=True, text=True, timeout=300)
    assert [json.loads(line)["incident"]["id"] for line in again.stdout.splitlines()[DAYS:]] == [d["id"] for d in told]
    text = subprocess.run(run, capture_output=True, text=True, timeout=300).stdout
    tail = text[text.rindex("incidents: "):].splitlines()
    assert tail[0] == f"incidents: {len(told)} (1 open)", tail
    assert [line.split()[0] for line in tail[1:]] == ["open"] + ["closed"] * (len(told) - 1)
    assert "distribution_shift" in tail[1] and "age" in tail[1] and f"since {day(13)}" in tail[1]


def test_the_report_leads_with_the_incidents_each_linked_to_its_window_and_labelled(timeline, tmp_path):
    from analyzers.report.html import write_report

    _, analysis = timeline
    notes = [None] * DAYS
    notes[7] = "a new country"
    page = write_report(analysis.windows, tmp_path / "r.html", notes=notes).read_text()
    lead = page.index("<h2>Incidents</h2>")
    assert lead < page.index("<h2>Timeline</h2>") < page.index('<details id="window-')
    table = page[lead:page.index("<h2>Timeline</h2>")]
    told = incidents_of(analysis.windows)
    assert table.count("<tr>") == len(told) + 1 and f"({sum(i.ongoing for i in told)} open)" in table
    first = table[table.index("<tr>", table.index("</tr>")):]
    first = first[:first.index("</tr>")]
    assert "distribution_shift" in first and "<b>age</b>" in first and "ongoing" in first, "open ones first"
    (country,) = [row for row in table.split("<tr>") if "<b>country</b>" in row and ">training<" in row]
    assert day(7) in country and day(10) in country and '"num" data-label="windows">3<' in country
    assert "spans the injected day: a new country" in country
    anchor = country.split('href="#')[1].split('"')[0]
    assert f'<details id="{anchor}"' in page
    shown = page[page.index(f'<details id="{anchor}"'):]
    assert "Nov 8, 2026" in shown[:shown.index("</summary>")], "the link opens the incident's first window"


def test_the_timeline_draws_one_band_per_incident_around_its_windows(timeline):
    from analyzers.report.html import _timeline

    _, analysis = timeline
    drawn = _timeline(analysis.windows, [None] * DAYS)
    rows = {(row["feature"], row["check"]): row for row in drawn["rows"]}
    (band,) = rows[("country", "unseen_category")]["bands"]
    cells = rows[("country", "unseen_category")]["cells"]
    assert band["x"] < cells[7]["x"] and band["x"] + band["w"] > cells[9]["x"] + drawn["cell"]
    assert band["x"] + band["w"] < cells[10]["x"] + 1, "the band ends with the episode's last window"
    assert "2026" in band["title"] and "3 windows" in band["title"]
    assert len(rows[("country", "unseen_category · recent")]["bands"]) == 1
    assert sum(len(row["bands"]) for row in drawn["rows"]) == len(incidents_of(analysis.windows))


def test_a_long_list_of_incidents_leads_with_the_open_and_labelled_ones_and_folds_the_rest(timeline, monkeypatch):
    from analyzers.report import html

    _, analysis = timeline
    monkeypatch.setattr(html, "INCIDENTS_LEADING", 3)
    notes = [None] * DAYS
    notes[3] = "cents"
    rows = html.incident_rows(analysis.windows, notes, [])
    lead = [r["incident"] for r in rows if r["lead"]]
    assert lead[0].ongoing and {(i.check, i.feature) for i in lead if i.start == day(3)} == {
        ("distribution_shift", "amount"), ("out_of_range", "amount")}, "open and labelled ones lead"
    assert len(lead) == 4 and len(rows) == len(incidents_of(analysis.windows))
    page = html.render(analysis.windows, notes=notes)
    assert f"the {len(rows) - 4} other incidents</summary>" in page


def test_check_refuses_a_negative_incident_gap_naming_the_flag(timeline, baseline_file):
    paths, _ = timeline
    proc = subprocess.run([sys.executable, "-m", "predwatch", "check", "--baseline", str(baseline_file), "--logs",
                           *map(str, paths[:3]), "--incident-gap", "-1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.strip().splitlines() == ["predwatch check: --incident-gap -1: a number of windows, 0 or more"]
