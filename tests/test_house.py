"""The house: which room imports which, and the paths that would go unnoticed if they were bypassed."""
from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

import synth
from alerting.watches import AlertConfig, render_watch
from analyzers.daemon.config import DaemonConfig
from analyzers import files
from analyzers.sources import local
from conftest import wait_until, write_jsonl
from kibana.dashboards import dashboard_id, dashboard_url
from logging_adapter.elastic import make_client
from predwatch.cli import main
from predwatch.cli.service import daemon_notifier
from test_kibana_alerting import Receiver

ROOT = Path(__file__).resolve().parent.parent


def imported_packages(folder: str) -> dict[str, set[str]]:
    """The top-level packages each module of ``folder`` imports (at any depth: lazy imports count too)."""
    out = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
        out[str(path.relative_to(ROOT))] = found
    return out


def test_the_analyzers_import_neither_alerting_nor_kibana_and_alerting_knows_no_kibana():
    reaching = {module: sorted(found & {"alerting", "kibana"})
                for module, found in imported_packages("analyzers").items()}
    assert {m: p for m, p in reaching.items() if p} == {}
    assert {m: "kibana" for m, found in imported_packages("alerting").items() if "kibana" in found} == {}


def imports_of_analyzers(folder: str) -> dict[str, list[tuple[str, bool]]]:
    """The ``analyzers`` modules each module of ``folder`` imports, each with whether it is imported at
    module level (rather than inside a function, when a caller asks for it)."""
    out = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        top = {id(node) for node in tree.body}
        found = [(node.module, id(node) in top) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and node.level == 0 and (node.module or "").startswith("analyzers")]
        found += [(alias.name, id(node) in top) for node in ast.walk(tree) if isinstance(node, ast.Import)
                  for alias in node.names if alias.name.startswith("analyzers")]
        if found:
            out[str(path.relative_to(ROOT))] = sorted(found)
    return out


def test_one_arrow_runs_back_up_from_the_logger_and_the_rest_of_the_stack_reads_only_the_field_names():
    """``PredictionLogger(profile=...)`` is the only import from ``logging_adapter`` into the analyzers, made
    when a profile is asked for; the dashboards and the watches read only the result fields' names."""
    back = imports_of_analyzers("logging_adapter")
    assert list(back) == ["logging_adapter/logger.py"], back
    assert not any(at_top for _, at_top in back["logging_adapter/logger.py"]), back
    for folder in ("alerting", "kibana"):
        assert {m for found in imports_of_analyzers(folder).values() for m, _ in found} == {"analyzers.store"}, folder


def daemon_config(tmp_path: Path, extra: str, url: str = "http://127.0.0.1:9", prefix: str = "predwatch"
                  ) -> DaemonConfig:
    path = tmp_path / "predwatch.toml"
    path.write_text(f'[elasticsearch]\nurl = "{url}"\nprefix = "{prefix}"\n\n[daemon]\nheartbeat = "1s"\n'
                    f'lease = "3s"\n\n[[models]]\nname = "nobaseline"\nwindow = "1h"\nbackfill = "1h"\n'
                    f'lag = "0s"\n\n{extra}')
    return DaemonConfig.load(path)


def test_the_daemons_notifier_is_built_by_the_command_line_with_the_dashboard_link_as_a_value(tmp_path):
    alerts = '[alerts]\nkibana_url = "https://ops:s3cret@kibana.example:5601/"\nkibana_space = "ml"\n'
    config = daemon_config(tmp_path, alerts + '\n[notify]\nwebhooks = ["http://127.0.0.1:9/hook"]\n')
    notifier = daemon_notifier(config, make_client(config.settings))
    try:
        link = f"https://kibana.example:5601/s/ml/app/dashboards#/view/{dashboard_id('predwatch', 'ml')}"
        assert notifier.dashboard_url == link
        # the watches get the same link, as a value, with the credentials removed the same way
        watch = render_watch(AlertConfig(), "predwatch", None,
                             dashboard_url("https://ops:s3cret@kibana.example:5601/", "predwatch", "ml"))
        assert watch["metadata"]["dashboard"] == link and "s3cret" not in json.dumps(watch)
    finally:
        notifier.close()
    no_link = daemon_notifier(daemon_config(tmp_path, '[notify]\nwebhooks = ["http://127.0.0.1:9/h"]\n'),
                              make_client(config.settings))
    assert no_link.dashboard_url is None
    no_link.close()
    assert daemon_notifier(daemon_config(tmp_path, alerts), make_client(config.settings)) is None


def test_predwatch_daemon_notifies_through_the_notifier_the_command_line_built(es, tmp_path):
    """The daemon as users start it: a model without records is said to [notify]'s webhook, with the
    dashboard link of [alerts]."""
    hook = Receiver()
    extra = (f'[alerts]\nkibana_url = "http://kibana.example:5601"\n\n'
             f'[notify]\nwebhooks = ["{hook.url}/hook"]\n')
    config = daemon_config(tmp_path, extra, url=es.url, prefix=es.prefix)
    cfg = tmp_path / "predwatch.toml"
    cfg.write_text(cfg.read_text().replace("[elasticsearch]\n", f'[elasticsearch]\ndistribution = '
                                           f'"{es.settings.distribution}"\n'))
    daemon = subprocess.Popen([sys.executable, "-m", "predwatch", "daemon", "--config", str(cfg)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        notified = wait_until(lambda: hook.requests, 90)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
        hook.close()
    assert notified, f"no notification from the daemon: {err[-2000:]}"
    event = orjson.loads(hook.requests[0]["body"])
    assert (event["status"], event["model"]) == ("firing", "nobaseline"), event
    assert event["dashboard"] == f"http://kibana.example:5601/app/dashboards#/view/{dashboard_id(config.prefix)}"
    assert daemon.returncode == 0, err


# -- the parallel reader: a path that would go unnoticed if it were bypassed -------------------------------------

_ranges_read: Path | None = None  # where the workers say which byte ranges they read (set before they fork)
_profile_range = local._profile_range_in_worker


def _profile_range_and_say_so(part: tuple[Path, int, int]):
    with _ranges_read.open("a") as fh:  # one short line per append: whole lines even from several processes
        fh.write(f"{os.getpid()} {part[1]} {part[2]}\n")
    time.sleep(0.2)  # no worker takes every range before the other has started
    return _profile_range(part)


def test_check_with_two_workers_reads_byte_ranges_in_two_processes_and_says_what_one_says(
        baseline_file, tmp_path, monkeypatch, capsys):
    """``--workers 2`` on a large file: two worker processes read its byte ranges (each range once), and the
    output and what is said on stderr are those of one process, a rejected line in the first range counted once."""
    global _ranges_read
    logs = tmp_path / "w.jsonl"
    lines = [orjson.dumps(r) for r in synth.records(synth.table(4000, seed=23))]
    logs.write_bytes(b"\n".join(lines[:10] + [b"{broken"] + lines[10:]) + b"\n")
    size = logs.stat().st_size
    monkeypatch.setattr(local, "PARALLEL_MIN_BYTES", size // 4)  # large enough: the real bound is 32 MB
    monkeypatch.setattr(local, "_profile_range_in_worker", _profile_range_and_say_so)
    _ranges_read = tmp_path / "ranges.txt"
    _ranges_read.touch()
    said = {}
    for workers in ("1", "2"):
        code = main(["check", "--baseline", str(baseline_file), "--logs", str(logs), "--workers", workers,
                     "--format", "json"])
        said[workers] = (code, *capsys.readouterr())
    assert said["2"] == said["1"]
    assert json.loads(said["1"][1])["window"]["records"] == 4000 and said["1"][2].count("rejected w.jsonl:11:") == 1
    read = [tuple(map(int, line.split())) for line in _ranges_read.read_text().splitlines()]
    pids = {pid for pid, _, _ in read}
    assert len(pids) == 2 and os.getpid() not in pids, read
    ranges = sorted((start, end) for _, start, end in read)
    assert len(ranges) > 2 and ranges[0][0] == 0 and ranges[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:])), ranges


def test_profile_records_read_by_two_workers_count_each_window_once(baseline, tmp_path, monkeypatch):
    """A service's file of profile records (and a 2% sample of its records) read in byte ranges by two workers:
    each range's profile records count once, however many ranges one worker reads."""
    import logging

    from logging_adapter import configure
    from test_profiling import serve, traffic

    path = tmp_path / "service.jsonl"
    configure(path=str(path), logger="predwatch.test.house-profiled")
    logger = logging.getLogger("predwatch.test.house-profiled")
    serve(traffic(3000, 9), logger, profile=baseline, sample=0.02)
    for handler in logger.handlers:
        handler.flush()
    monkeypatch.setattr(local, "PARALLEL_MIN_BYTES", path.stat().st_size // 6)
    one, two = (files.analyze_local([path], baseline, workers=w) for w in (1, 2))
    assert one.records == two.records == 3000
    key = lambda a: [(f.check, f.feature, f.status, f.value) for w in a.windows for f in w.findings]  # noqa: E731
    assert key(two) == key(one)


# -- one spec per check: a toy check registered from a test reaches every reader ---------------------------------

def _mean_shift(col, prof, window, against):
    """The toy: how far the window's mean moved, in training standard deviations (a two-sided z-test)."""
    from analyzers.core import stats
    from analyzers.core.registry import Measurement

    if col.kind != "numeric" or not col.std or prof.values < 2:
        return None
    mean, _ = prof.mean_std()
    z = abs(mean - col.mean) / (col.std / prof.values ** 0.5)
    return Measurement(abs(mean - col.mean) / col.std, 2 * stats.normal_sf(z), prof.values, col.values,
                       mean, col.mean, f"mean {mean:.4g} ({against} {col.mean:.4g})")


@pytest.fixture
def toy_check():
    from analyzers.core import registry

    registry.register(registry.CheckSpec("toy_mean_shift", (0.5, 1.0), "mean shift in training SDs",
                                         column=_mean_shift, roles=frozenset({"input"}), draws_observed=True))
    yield "toy_mean_shift"
    registry.unregister("toy_mean_shift")


def test_a_check_registered_from_a_test_is_judged_reported_stored_and_judged_against_recent_days(
        toy_check, baseline_file, baseline, tmp_path, capsys):
    """Registering a spec is all a new check takes: ``check``'s JSON, the recent-days judgement, the HTML report
    and the metric and finding documents show it, and ``[checks.NAME]`` configures it."""
    from analyzers.store import results as res

    days = []
    for day in range(4):
        frame = synth.table(3000, seed=40 + day)
        if day == 3:
            frame["age"] = frame["age"] + 18  # 1.5 training SDs: every mean-based reader sees it
        days.append(write_jsonl(tmp_path / f"day{day}.jsonl", synth.records(frame, start=f"2026-11-1{day}T00:00:00")))
    logs = [str(p) for p in days]
    code = main(["check", "--baseline", str(baseline_file), "--logs", *logs, "--window", "1d", "--format", "json"])
    windows = [w for w in map(json.loads, capsys.readouterr().out.splitlines()) if "findings" in w]
    assert code == 1
    found = [(f["check"], f["feature"], f["severity"]) for f in windows[-1]["findings"]]
    assert (toy_check, "age", "critical") in found, found
    assert (toy_check, "age") in {(f["check"], f["feature"]) for f in windows[-1]["recent_findings"]}
    assert not any(f["check"] == toy_check for w in windows[:-1] for f in w["findings"])

    config = tmp_path / "predwatch.toml"
    config.write_text(f"[checks.{toy_check}]\nwarning = 2.0\ncritical = 3.0\n")
    main(["check", "--baseline", str(baseline_file), "--logs", *logs, "--window", "1d", "--format", "json",
          "--config", str(config)])
    assert toy_check not in capsys.readouterr().out.split('"findings"')[-1].split('"recent_findings"')[0]

    report = tmp_path / "report.html"
    main(["report", "--baseline", str(baseline_file), "--logs", *logs, "--window", "1d", "--out", str(report)])
    capsys.readouterr()
    assert toy_check in report.read_text()

    analysis = files.analyze_local(days, baseline, window=timedelta(days=1))
    last = analysis.windows[-1]
    docs = res.result_docs(last.results + last.recent, prefix="p", model="checkout-risk", version="7",
                           start="2026-11-13T00:00:00Z", end="2026-11-14T00:00:00Z", records=3000)
    stored = {(d.index, orjson.loads(d.source)["predwatch"]["check"], orjson.loads(d.source)["predwatch"]["reference"])
              for d in docs}
    assert {(res.metrics_index("p"), toy_check, "training"), (res.findings_index("p"), toy_check, "training"),
            (res.findings_index("p"), toy_check, "recent")} <= stored, stored
