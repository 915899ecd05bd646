"""Several daemons on one cluster: leases, spread, failover after SIGKILL (real server, real processes)."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone

import synth
from analyzers.daemon.config import DaemonConfig, ModelJob, align, iso
from analyzers.daemon.leases import Leases, live_instances
from analyzers.daemon.status import format_status, read_status
from analyzers.store.baselines import store_baseline
from conftest import state_of, terminate, wait_until
from test_es_analyzers import frame_records, seed

MODELS = [f"model-{i}" for i in range(6)]
WINDOW = timedelta(seconds=10)
LINE = re.compile(r"(model-\d) \[(\S+), (\S+)\): ")


def test_two_instances_racing_for_an_expired_lease_have_one_winner(es):
    period = timedelta(seconds=30)
    dead = Leases(es.client, es.prefix, "dead", period, clock=lambda: 1_000.0)
    assert dead.acquire("m:7")
    later = 1_000.0 + 31  # the dead instance's lease has expired
    a = Leases(es.client, es.prefix, "a", period, clock=lambda: later)
    b = Leases(es.client, es.prefix, "b", period, clock=lambda: later)
    seen_a, seen_b = a.read("m:7"), b.read("m:7")  # both see the same expired lease
    wins = [a.acquire("m:7", seen_a), b.acquire("m:7", seen_b)]
    assert wins.count(True) == 1
    winner, loser = (a, b) if wins[0] else (b, a)
    assert winner.holds("m:7") and not loser.holds("m:7")
    assert not loser.acquire("m:7"), "a live lease is not taken"
    assert winner.read("m:7").holder == winner.instance


def test_leases_spread_evenly_and_a_newcomer_gets_its_share(es):
    keys = [f"m{i}:*" for i in range(7)]
    first = Leases(es.client, es.prefix, "first", timedelta(seconds=30))
    assert len(first.balance(keys, 1)) == 7
    second = Leases(es.client, es.prefix, "second", timedelta(seconds=30))
    assert second.balance(keys, 2) == set(), "all held and live: nothing to take yet"
    assert len(first.balance(keys, 2)) == 4, "the first sheds down to its share, ceil(7/2)"
    assert len(second.balance(keys, 2)) == 3
    assert first.held.keys().isdisjoint(second.held.keys())


def config_text(es, instance: str | None = None) -> str:
    text = (f'[elasticsearch]\nurl = "{es.url}"\ndistribution = "{es.settings.distribution}"\nprefix = "{es.prefix}"\n\n'
            f'[daemon]\nheartbeat = "1s"\nlease = "3s"\n' + (f'instance = "{instance}"\n' if instance else "") + "\n")
    for name in MODELS:
        text += f'[[models]]\nname = "{name}"\nversion = "7"\nwindow = "10s"\nlag = "0s"\nbackfill = "90s"\nevery = "1s"\n\n'
    return text


def held_by(es, instance: str) -> list[str]:
    """The models an instance's heartbeat says it holds."""
    beat = state_of(es, f"heartbeat:{instance}")
    return beat["models"] if beat else []


def seed_models(es, baseline, first: datetime, *, windows: int, per_window: int, seeds_from: int) -> None:
    """Each of the six models: its baseline, and ``per_window`` records in each of ``windows`` windows from ``first``."""
    records = []
    for m, name in enumerate(MODELS):
        store_baseline(es.client, dataclasses.replace(baseline, model=name), es.prefix)
        for w in range(windows):
            for rec in frame_records(synth.table(per_window, seed=seeds_from + 10 * m + w), first + w * WINDOW, 8):
                rec["predwatch"]["model"]["name"] = name
                rec["predwatch"]["prediction_id"] += f"-{name}"
                records.append(rec)
    seed(es, records)


def test_two_daemons_share_six_models_and_the_survivor_takes_over_after_a_kill(es, baseline, tmp_path):
    now = datetime.now(timezone.utc)
    first = align(now - timedelta(seconds=60), WINDOW)
    seed_models(es, baseline, first, windows=6, per_window=5, seeds_from=300)
    cfg_a, cfg_b = tmp_path / "a.toml", tmp_path / "b.toml"
    cfg_a.write_text(config_text(es, "daemon-a"))
    cfg_b.write_text(config_text(es, "daemon-b"))
    config = DaemonConfig.load(cfg_a)
    start = lambda cfg: subprocess.Popen([sys.executable, "-m", "predwatch", "daemon", "--config", str(cfg)],  # noqa: E731
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    a, b = start(cfg_a), start(cfg_b)

    def held(instance: str) -> list[str]:
        return held_by(es, instance)

    assert wait_until(lambda: len(held("daemon-a")) == 3 and len(held("daemon-b")) == 3, 60), \
        (held("daemon-a"), held("daemon-b"))
    assert set(held("daemon-a")).isdisjoint(held("daemon-b"))
    status = read_status(es.client, config)
    assert {m.instance for m in status.models} == {"daemon-a", "daemon-b"}
    assert "2 live instance(s)" in format_status(status)

    a.kill()  # SIGKILL: no release, no goodbye
    _, err_a = a.communicate()
    killed_at = datetime.now(timezone.utc)
    assert wait_until(lambda: len(held("daemon-b")) == 6, 3 + 10), "the survivor holds all six within a lease period"
    took = (datetime.now(timezone.utc) - killed_at).total_seconds()
    target = align(datetime.now(timezone.utc), WINDOW) + 2 * WINDOW  # windows that only the survivor can do
    keys = {name: ModelJob(name, "7").key for name in MODELS}

    def done() -> bool:
        marks = [state_of(es, keys[name]) for name in MODELS]
        return all(m and m["end"] >= iso(target) for m in marks)

    assert wait_until(done, 90), "every model's watermark reaches the end"
    # what the dashboard's monitoring panel and `predwatch status` read
    rows = es.client.search(index=f"{es.prefix}-state", size=0, query={"term": {"kind": "model_status"}},
                            aggs={"m": {"terms": {"field": "model", "size": 20}},
                                  "i": {"terms": {"field": "instance", "size": 20}}})["aggregations"]
    assert {b["key"] for b in rows["m"]["buckets"]} == set(MODELS)
    assert "daemon-b" in {b["key"] for b in rows["i"]["buckets"]}
    proc = subprocess.run([sys.executable, "-m", "predwatch", "status", "--config", str(cfg_b)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "1 live instance(s)" in proc.stdout, proc.stderr
    assert all(f"{name}:7" in proc.stdout for name in MODELS) and "daemon-b" in proc.stdout
    _, err_b = terminate(b)
    assert b.returncode == 0, err_b

    volume = [h["_source"]["predwatch"] for h in es.docs("metrics", size=5000)
              if h["_source"]["predwatch"]["check"] == "volume"]
    for name in MODELS:
        starts = sorted(v["window"]["start"] for v in volume if v["model"]["name"] == name)
        assert len(starts) == len(set(starts)), "one metric document set per window"
        begin = datetime.fromisoformat(starts[0].replace("Z", "+00:00"))
        assert begin <= first, "the backfill starts before the first records"
        expected = [iso(begin + i * WINDOW) for i in range(int((target - begin) / WINDOW))]
        assert starts[:len(expected)] == expected, (name, "every window, none missing")
        assert sum(v["value"] for v in volume if v["model"]["name"] == name) == 30
    runs = Counter(LINE.findall(err_a) + LINE.findall(err_b))
    twice = [k for k, n in runs.items() if n > 1]
    assert len(twice) <= len(MODELS) // 2, f"at most the windows in flight at the kill are redone: {twice}"
    assert took < 3 + 2 * 1 + 2, f"within a lease (3 s) and a tick or two (1 s each): {took:.1f} s"
    assert live_instances(es.client, es.prefix, timedelta(seconds=3)) == [], "both gone: one killed, one said goodbye"


def test_two_daemons_started_together_split_the_backlog_from_the_first_window(es, baseline, tmp_path):
    """Started at the same moment over six models with a backlog, neither takes every lease at its first
    coordination: each announces itself and waits a heartbeat before it claims its share."""
    now = datetime.now(timezone.utc)
    seed_models(es, baseline, align(now - timedelta(seconds=80), WINDOW), windows=8, per_window=3, seeds_from=500)
    procs = []
    for instance in ("together-a", "together-b"):
        cfg = tmp_path / f"{instance}.toml"
        cfg.write_text(config_text(es, instance))
        procs.append(subprocess.Popen([sys.executable, "-m", "predwatch", "daemon", "--config", str(cfg)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    keys = {name: ModelJob(name, "7").key for name in MODELS}
    target = align(now, WINDOW)

    def caught_up() -> bool:
        marks = [state_of(es, keys[name]) for name in MODELS]
        return all(m and m["end"] >= iso(target) for m in marks)

    try:
        assert wait_until(caught_up, 90), "every model's backlog analysed"
    finally:
        outputs = [terminate(p)[1] for p in procs]
    windows = [Counter(name for name, _, _ in LINE.findall(err)) for err in outputs]
    assert all(len(w) == 3 for w in windows), f"each instance analysed its own three models: {windows}"
    assert set(windows[0]).isdisjoint(windows[1])
