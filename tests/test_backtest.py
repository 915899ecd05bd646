"""predwatch backtest: the incidents other thresholds would have opened, per check and model-week (issue 25)."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

import incidents as injected
import synth
from analyzers.core.backtest import backtest, changed_config, reference_family, week_of
from analyzers.core.incidents import incidents_of
from analyzers.daemon.analyzer import Analyzer
from analyzers.files import analyze_local
from analyzers.store.baselines import store_baseline
from conftest import write_jsonl
from predwatch.cli.backtest import stored_windows
from test_es_analyzers import config_for, frame_records, seed

DAYS = 14  # Monday 2026-11-02 to Sunday 2026-11-15: ISO weeks 45 and 46
PLAN = {3: injected.unit_changes,  # Thursday of week 45: amount in cents (PSI ~15, out of range)
        9: injected.mean_shifts, 10: injected.mean_shifts}  # Wednesday and Thursday of week 46: age + 6 (PSI ~0.27)
W45, W46 = "2026-W45", "2026-W46"


def day(i: int) -> datetime:
    return datetime(2026, 11, 2, tzinfo=timezone.utc) + timedelta(days=i)


def day_frame(i: int, rows: int = 800):
    return PLAN[i](rows, 60 + i)[0] if i in PLAN else synth.table(rows, seed=60 + i)


def predwatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "predwatch", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def daily_logs(tmp_path_factory) -> list[str]:
    where = tmp_path_factory.mktemp("days")
    return [str(write_jsonl(where / f"d{i:02d}.jsonl", synth.records(day_frame(i), start=day(i).strftime(
        "%Y-%m-%dT%H:%M:%S")))) for i in range(DAYS)]


def counts(stdout: str) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(check, reference, week) -> (current, changed), from the json lines of the model checkout-risk."""
    rows = [json.loads(line)["backtest"] for line in stdout.splitlines()]
    assert {r["model"] for r in rows} == {"checkout-risk"}
    return {(r["check"], r["reference"], r["week"]): (r["current"], r["changed"]) for r in rows}


def check_counts(stdout: str) -> Counter:
    """(check, reference, week) -> incidents, from ``predwatch check --format json``'s incident lines."""
    told = [json.loads(line)["incident"] for line in stdout.splitlines() if '"incident"' in line[:12]]
    return Counter((i["check"], reference_family(i["reference"]), week_of(i["start"])) for i in told)


def test_a_threshold_above_an_episodes_effect_removes_its_incident_and_the_others_stay(daily_logs, baseline_file):
    bt = predwatch("backtest", "--baseline", str(baseline_file), "--logs", *daily_logs, "--format", "json",
                   "--set", "checks.distribution_shift.warning=0.3",
                   "--set", "features.amount.out_of_range.enabled=false")
    assert bt.returncode == 0, bt.stderr
    said = counts(bt.stdout)
    # the age shift (PSI ~0.27, week 46) is under a warning of 0.3: gone against training and against recent days
    assert said[("distribution_shift", "training", W46)] == (1, 0)
    assert said[("distribution_shift", "recent", W46)] == (1, 0)
    # the unit change (PSI ~15, week 45) is far above it: still one incident
    assert said[("distribution_shift", "training", W45)] == (1, 1)
    assert said[("out_of_range", "training", W45)] == (1, 0), "out_of_range disabled for amount"
    assert said[("out_of_range", "training", W46)] == (0, 0), "a quiet week is a row too"
    assert said[("*", "training", W45)] == (2, 1) and said[("*", "training", W46)] == (1, 0)
    # under the current thresholds the replay tells what `predwatch check` tells, incident for incident
    check = predwatch("check", "--baseline", str(baseline_file), "--logs", *daily_logs, "--format", "json")
    assert check.returncode == 1, check.stderr
    told = check_counts(check.stdout)
    assert told and {k: v[0] for k, v in said.items() if k[0] != "*" and v[0]} == dict(told)


def test_the_text_table_says_each_check_before_and_after(daily_logs, baseline_file):
    bt = predwatch("backtest", "--baseline", str(baseline_file), "--logs", *daily_logs,
                   "--set", "checks.distribution_shift.warning=0.3")
    assert bt.returncode == 0, bt.stderr
    assert ("distribution_shift (against training): 2 -> 1, at most 1 -> 1 a week, weeks with more than one "
            "0 -> 0 of 2") in bt.stdout
    assert "  checkout-risk  2026-W46        1        0" in bt.stdout


@pytest.mark.parametrize("flag, named", [
    (["--set", "checks.distribution_shift.warnin=0.2"], "--set checks.distribution_shift.warnin=0.2: "),
    (["--set", "checks.drift.warning=0.2"], "--set checks.drift.warning=0.2: unknown check 'drift'"),
    (["--set", "features.amout.out_of_range.enabled=false"], "--set features.amout.out_of_range.enabled=false: "
                                                              "no feature 'amout'"),
    (["--set", "checks.distribution_shift.warning=high"], "--set checks.distribution_shift.warning=high: "),
    (["--set", "models.window=1h"], "--set models.window=1h: only checks.* and features.* can be changed"),
])
def test_a_bad_set_exits_2_naming_it(daily_logs, baseline_file, flag, named):
    bt = predwatch("backtest", "--baseline", str(baseline_file), "--logs", *daily_logs[:2], *flag)
    assert bt.returncode == 2, (bt.stdout, bt.stderr)
    assert bt.stderr.startswith(f"predwatch backtest: {named}") and bt.stderr.count("\n") == 1, bt.stderr
    assert "Traceback" not in bt.stderr and not bt.stdout


def test_an_overrides_file_means_what_the_same_tables_in_predwatch_toml_mean(daily_logs, baseline_file, tmp_path):
    overrides = tmp_path / "raise.toml"
    overrides.write_text("[checks.distribution_shift]\nwarning = 0.3\n")
    via_file = predwatch("backtest", "--baseline", str(baseline_file), "--logs", *daily_logs, "--format", "json",
                         "--overrides", str(overrides))
    via_set = predwatch("backtest", "--baseline", str(baseline_file), "--logs", *daily_logs, "--format", "json",
                        "--set", "checks.distribution_shift.warning=0.3")
    assert via_file.returncode == via_set.returncode == 0, via_file.stderr + via_set.stderr
    assert via_file.stdout == via_set.stdout
    assert changed_config({}, {"checks": {"distribution_shift": {"warning": 0.3}}}).level(
        "distribution_shift", "age").critical == 0.3, "critical follows a warning raised above it, as in the file"


def test_the_stored_profiles_replay_the_incidents_of_a_fresh_analysis(es, baseline, baseline_file, tmp_path):
    """The daemon analyses the days and stores their profiles; the backtest from the cluster tells the same
    incidents as `predwatch check` and `analyze_local` over the same records in a file."""
    records = [rec for i in range(DAYS) for rec in frame_records(day_frame(i, 400), day(i), 80_000)]
    seed(es, records)
    store_baseline(es.client, baseline, es.prefix)
    config = config_for(es, window="1d", backfill=f"{DAYS}d")
    job = config.models[0]
    assert Analyzer(es.client, config).run_model(job, now=day(DAYS)) == DAYS
    es.refresh()
    logs = write_jsonl(tmp_path / "days.jsonl", records)
    fresh = incidents_of(analyze_local([logs], baseline, window=timedelta(days=1), recent_days=job.recent_days).windows)
    stored = stored_windows(es.client, es.prefix, job.name, job.version, day(0), day(DAYS))
    assert list(stored) == ["7"] and len(stored["7"]) == DAYS
    _, replayed, _ = backtest(stored["7"], baseline, changed_config({}), changed_config({}),
                              recent_days=job.recent_days)
    assert [i.to_json() for i in replayed] == [i.to_json() for i in fresh]
    assert {h["_source"]["predwatch"]["incident"]["id"] for h in es.docs("incidents")} == {i.id for i in fresh}, \
        "and the daemon's own incident documents"
    assert {(i.check, i.feature, i.reference) for i in fresh} >= {("distribution_shift", "amount", "training"),
                                                                   ("distribution_shift", "age", "training")}
    toml = tmp_path / "predwatch.toml"
    toml.write_text(f'[elasticsearch]\nurl = "{es.url}"\ndistribution = "{es.settings.distribution}"\n'
                    f'prefix = "{es.prefix}"\n\n[[models]]\nname = "checkout-risk"\nversion = "7"\nwindow = "1d"\n')
    bt = predwatch("backtest", "--config", str(toml), "--model", "checkout-risk", "--start", day(0).isoformat(),
                   "--end", day(DAYS).isoformat(), "--format", "json", "--set", "checks.distribution_shift.warning=0.3")
    assert bt.returncode == 0, bt.stderr
    check = predwatch("check", "--baseline", str(baseline_file), "--logs", str(logs), "--window", "1d",
                      "--format", "json")
    said = counts(bt.stdout)
    assert {k: v[0] for k, v in said.items() if k[0] != "*" and v[0]} == dict(check_counts(check.stdout))
    assert said[("distribution_shift", "training", W46)] == (1, 0)


def test_a_model_not_in_the_configuration_exits_2_naming_it(tmp_path):
    toml = tmp_path / "predwatch.toml"
    toml.write_text('[elasticsearch]\nurl = "http://127.0.0.1:9"\ndistribution = "elasticsearch"\n\n'
                    '[[models]]\nname = "checkout-risk"\n')
    bt = predwatch("backtest", "--config", str(toml), "--model", "fraud")
    assert bt.returncode == 2 and bt.stderr.startswith("predwatch backtest: --model fraud: model 'fraud' is not in"), \
        bt.stderr
    bt = predwatch("backtest", "--model", "checkout-risk")
    assert bt.returncode == 2 and "give --config predwatch.toml" in bt.stderr, bt.stderr
