"""Incidents on the cluster: the daemon opens, extends and closes one document per episode, the same incidents as
the local path, and the notifier says each episode's opening, escalation and closing once (real node, no mocks).

An hourly timeline of the synthetic model with episodes of known windows (tests/incidents.py): one window of
cents instead of euros, three windows of a new country (a little the first hour, a tenth after: warning, then
critical), and a shifted age that persists to the last window."""
from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest

import incidents as injected
import synth
from analyzers.core.incidents import incidents_of
from analyzers.daemon.analyzer import Analyzer
from analyzers.daemon.config import iso
from analyzers.files import analyze_local
from analyzers.store import incidents as incident_store
from analyzers.store import results as res
from alerting.notifier import Notifier, Target
from conftest import write_jsonl
from test_es_analyzers import T0, config_for, frame_records, seed
from test_kibana_alerting import Receiver

HOURS = 14
ROWS = 400


def a_little_new_country(n: int, seed: int):
    frame = synth.table(n, seed=seed)
    frame.loc[np.random.default_rng(seed).random(n) < 0.03, "country"] = "XX"
    return frame, ("unseen_category", "country")


PLAN = {2: injected.unit_changes, 5: a_little_new_country, 6: injected.new_category_takes_a_tenth,
        7: injected.new_category_takes_a_tenth, 11: injected.mean_shifts, 12: injected.mean_shifts,
        13: injected.mean_shifts}
EPISODES = {  # (check, feature): the hours (indices) of each injected episode
    ("out_of_range", "amount"): [2],
    ("unseen_category", "country"): [5, 6, 7],
    ("distribution_shift", "age"): [11, 12, 13],  # persists to the end: still open
}


def hour(i: int) -> str:
    return iso(T0 + timedelta(hours=i))


def timeline_records(plan: dict = PLAN, hours: int = HOURS) -> list[dict]:
    out = []
    for i in range(hours):
        frame = plan[i](ROWS, 300 + i)[0] if i in plan else synth.table(ROWS, seed=300 + i)
        out += frame_records(frame, T0 + timedelta(hours=i), 3000)
    return out


@pytest.fixture
def hook():
    made = Receiver()
    yield made
    made.close()


def stored(es) -> dict[str, dict]:
    es.refresh()
    return {h["_id"]: h["_source"] for h in es.docs("incidents")}


def same_as_local(es, baseline, records: list[dict], tmp_path) -> None:
    """The stored incidents are the local path's over the same records: ids, bounds, windows, peaks, status."""
    path = write_jsonl(tmp_path / "timeline.jsonl", records)
    local = incidents_of(analyze_local([path], baseline, window=timedelta(hours=1)).windows)
    assert local, "the timeline has episodes"
    assert sorted(told(d) for d in stored(es).values()) == sorted(
        (i.id, i.check, i.feature, i.reference, i.start, i.end, i.windows, i.peak_severity,
         "open" if i.ongoing else "closed") for i in local)


def told(doc: dict) -> tuple:
    f = incident_store.field
    return (f(doc, res.INCIDENT_ID), f(doc, res.CHECK), f(doc, res.FEATURE), f(doc, res.REFERENCE),
            f(doc, res.INCIDENT_START), f(doc, res.INCIDENT_END), f(doc, res.INCIDENT_WINDOWS),
            f(doc, res.INCIDENT_PEAK_SEVERITY), f(doc, res.INCIDENT_STATUS))


def test_the_daemon_writes_one_incident_per_episode_the_same_as_the_local_path_and_notifies_each_once(
        es, baseline, hook, tmp_path):
    from analyzers.store.baselines import store_baseline

    records = timeline_records()
    seed(es, records)
    store_baseline(es.client, baseline, es.prefix)
    notifier = Notifier([Target(hook.url)], backoff=0.01)
    analyzer = Analyzer(es.client, config_for(es, backfill=f"{HOURS}h"), notifier=notifier)
    job = analyzer.config.models[0]
    assert analyzer.run_model(job, now=T0 + timedelta(hours=HOURS)) == HOURS
    docs = stored(es)

    # one document per episode, with its bounds; nothing on quiet hours
    by_key = {}
    for doc in docs.values():
        key = (incident_store.field(doc, res.CHECK), incident_store.field(doc, res.FEATURE))
        if incident_store.field(doc, res.REFERENCE) == "training":
            by_key.setdefault(key, []).append(doc)
    for key, hours in EPISODES.items():
        (doc,) = by_key[key]
        assert incident_store.field(doc, res.INCIDENT_START) == hour(hours[0])
        assert incident_store.field(doc, res.INCIDENT_WINDOWS) == len(hours)
        assert incident_store.field(doc, res.INCIDENT_LAST_SEEN) == hour(hours[-1] + 1)
        if hours[-1] == HOURS - 1:
            assert incident_store.field(doc, res.INCIDENT_STATUS) == "open"
            assert incident_store.field(doc, res.INCIDENT_END) is None
        else:
            assert incident_store.field(doc, res.INCIDENT_STATUS) == "closed"
            assert incident_store.field(doc, res.INCIDENT_END) == hour(hours[-1] + 1)
    injected_hours = {hour(i) for i in PLAN}
    for doc_id, doc in docs.items():
        assert incident_store.field(doc, res.INCIDENT_START) in injected_hours, doc
        assert incident_store.field(doc, res.INCIDENT_ID) == doc_id, "the document's id is the incident's"
    assert incident_store.field(by_key[("unseen_category", "country")][0], res.INCIDENT_PEAK_SEVERITY) == "critical"

    # the same incidents as the local path over the same records
    same_as_local(es, baseline, records, tmp_path)

    # re-analysing a window, or a second run, changes nothing
    summary = analyzer.analyze_window(job, T0 + timedelta(hours=6), T0 + timedelta(hours=7), refresh=True)
    assert summary["incomplete"] == 0
    assert analyzer.run_model(job, now=T0 + timedelta(hours=HOURS)) == 0
    assert {i: told(d) for i, d in stored(es).items()} == {i: told(d) for i, d in docs.items()}
    assert {i: d["predwatch"]["incident"]["updated"] for i, d in stored(es).items()} == \
        {i: d["predwatch"]["incident"]["updated"] for i, d in docs.items()}, "not even written again"

    # one "opened" and one "closed" per episode (none for the open one), "escalated" for warning -> critical
    assert notifier.drain(10)
    notifier.close()
    events = [json.loads(r["body"]) for r in hook.requests]
    said = sorted((e["check"], e["feature"], e["event"]) for e in events if e.get("reference") == "training")
    expected = []
    for key, hours in EPISODES.items():
        expected.append((*key, "opened"))
        if key == ("unseen_category", "country"):
            expected.append((*key, "escalated"))
        if hours[-1] != HOURS - 1:
            expected.append((*key, "closed"))
    assert sorted(s for s in said if s[:2] in EPISODES) == sorted(expected), said
    assert all(e["event"] in ("opened", "escalated", "closed") for e in events)
    per_incident = {}
    for e in events:
        per_incident.setdefault(e["incident"]["id"], []).append(e["event"])
    for events_of_one in per_incident.values():  # whatever else the episodes raised: each said once, in order
        assert events_of_one in (["opened"], ["opened", "closed"], ["opened", "escalated"],
                                 ["opened", "escalated", "closed"]), per_incident
    assert len(events) == sum(len(v) for v in per_incident.values())


def test_windows_analysed_out_of_order_by_two_daemons_end_with_the_same_incidents_as_the_local_path(
        es, baseline, tmp_path):
    """A backfill in any order, and two analyzers taking turns (a lease changing hands): an episode first seen
    from its middle grows back to its true start, and the document of the shorter episode it seemed is gone."""
    from analyzers.store.baselines import store_baseline

    records = timeline_records()
    seed(es, records)
    store_baseline(es.client, baseline, es.prefix)
    one, other = (Analyzer(es.client, config_for(es)) for _ in range(2))
    job = one.config.models[0]
    order = [13, 12, 7, 0, 6, 11, 1, 5, 2, 9, 3, 4, 8, 10]
    for turn, i in enumerate(order):
        analyzer = one if turn % 2 else other
        start = T0 + timedelta(hours=i)
        assert analyzer.analyze_window(job, start, start + timedelta(hours=1), refresh=True)["incomplete"] == 0
    same_as_local(es, baseline, records, tmp_path)


def shift_and_cents(n: int, seed: int):
    frame, _ = injected.mean_shifts(n, seed)
    frame["amount"] = frame["amount"] * 100
    return frame, ("out_of_range", "amount")


def test_an_episode_that_began_before_an_open_one_is_not_told_again_from_its_middle(es, baseline, tmp_path):
    """Cents from hour 1 to 4, and a shifted age from hour 3 on, still open: each later window tells the incidents
    again from the open one's start (hour 3), where the cents are half way through. Their episode is the stored
    one that began at hour 1, not a second one from hour 3."""
    from analyzers.store.baselines import store_baseline

    plan = {1: injected.unit_changes, 2: injected.unit_changes, 3: shift_and_cents, 4: shift_and_cents,
            **{i: injected.mean_shifts for i in range(5, 10)}}
    records = timeline_records(plan, 10)
    seed(es, records)
    store_baseline(es.client, baseline, es.prefix)
    analyzer = Analyzer(es.client, config_for(es, backfill="10h"))
    assert analyzer.run_model(analyzer.config.models[0], now=T0 + timedelta(hours=10)) == 10
    same_as_local(es, baseline, records, tmp_path)


def test_the_notifier_says_what_an_incident_did_and_nothing_when_it_merely_goes_on(hook):
    slack = Receiver()
    notifier = Notifier([Target(hook.url + "/hook"), Target(slack.url + "/slack", "slack")], backoff=0.01,
                        dashboard_url="https://kibana/app/dashboards#/view/x")
    incident = {"id": "abc", "model": "m", "version": "7", "feature": "country", "check": "unseen_category",
                "reference": "training", "status": "open", "start": hour(0), "end": None, "last_seen": hour(1),
                "windows": 1, "peak_severity": "warning", "peak_value": 0.3, "message": "country: first",
                "latest_message": "country: latest"}
    try:
        notifier.incident("opened", incident)
        notifier.incident("extended", {**incident, "windows": 2})
        notifier.incident("escalated", {**incident, "peak_severity": "critical", "windows": 3})
        notifier.incident("closed", {**incident, "status": "closed", "end": hour(3), "windows": 3})
        with pytest.raises(ValueError):
            notifier.incident("resolved", incident)
        assert notifier.drain(10)
        events = [json.loads(r["body"]) for r in hook.requests]
        assert [(e["event"], e["status"], e["severity"]) for e in events] == [
            ("opened", "firing", "warning"), ("escalated", "firing", "critical"), ("closed", "resolved", "ok")]
        assert events[0]["message"] == "country: first" and "country: latest" in events[1]["message"]
        assert "closed after 3 window(s)" in events[2]["message"] and events[2]["incident"]["end"] == hour(3)
        assert {e["incident"]["id"] for e in events} == {"abc"}
        texts = [json.loads(r["body"])["text"] for r in slack.requests]
        assert ["incident opened" in texts[0], "incident escalated" in texts[1], "RESOLVED" in texts[2]] == [True] * 3
        assert "<https://kibana/app/dashboards#/view/x|" in texts[0]
    finally:
        notifier.close()
        slack.close()


def test_the_incident_gap_is_a_model_setting_of_whole_windows():
    from analyzers.core.incidents import DEFAULT_GAP
    from analyzers.daemon.config import DaemonConfig

    def job(**model):
        return DaemonConfig.from_dict({"models": [{"name": "m", **model}]}).models[0]

    assert job().incident_gap == DEFAULT_GAP and job(incident_gap=3).incident_gap == 3
    for wrong in (-1, 1.5, "2", True):
        with pytest.raises(ValueError, match="incident_gap"):
            job(incident_gap=wrong)


def test_an_incident_notification_a_receiver_missed_is_sent_to_it_after_a_restart(es):
    from analyzers.store.state import StateDocument, get_state

    down, up = Receiver(fail_first=10**6), Receiver()  # ``down`` answers 503 until told otherwise
    state = StateDocument(es.client, es.prefix, "notifier:active", "notifier")
    incident = {"id": "abc", "model": "m", "version": "7", "feature": "age", "check": "distribution_shift",
                "reference": "training", "peak_severity": "critical", "message": "age shifted", "windows": 1}
    try:
        first = Notifier([Target(down.url), Target(up.url)], attempts=1, backoff=0.01, state=state)
        first.incident("opened", incident)
        assert first.drain(10)
        first.close(timeout=1)  # the daemon stops with the message undelivered to ``down``
        assert len(up.requests) == 1 and get_state(es.client, es.prefix, "notifier:active")["undelivered"]
        down.fail_first, tried = 0, len(down.requests)
        again = Notifier([Target(down.url), Target(up.url)], attempts=1, backoff=0.01, state=state)
        assert again.drain(10) and again.stats["sent"] == 1
        again.close()
        said = [json.loads(r["body"]) for r in down.requests[tried:]]
        assert [(e["event"], e["incident"]["id"]) for e in said] == [("opened", "abc")]
        assert len(up.requests) == 1, "the receiver that had it does not get it twice"
        assert get_state(es.client, es.prefix, "notifier:active") == {"active": []}
    finally:
        down.close()
        up.close()
