"""``predwatch baseline``, ``check`` and ``report`` as a user runs them: real files, real processes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import incidents
import synth
from conftest import write_jsonl
from analyzers.core.baseline import Baseline
from analyzers import files
from analyzers.sources import local


def predwatch(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "predwatch", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def train_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("train") / "train.csv"
    synth.table(20_000, seed=1).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def cli_baseline(train_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("b") / "baseline.json"
    proc = predwatch("baseline", "--data", str(train_csv), "--model", "checkout-risk", "--version", "7",
                     "--text", "query", "--prediction", "score", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_baseline_from_csv_infers_kinds_and_is_versioned(cli_baseline):
    doc = json.loads(cli_baseline.read_text())
    assert doc["kind"] == "predwatch.baseline" and doc["schema_version"] == 1
    assert doc["model"] == "checkout-risk" and doc["version"] == "7" and doc["rows"] == 20_000
    kinds = {name: col["kind"] for name, col in doc["columns"].items()}
    assert kinds == {"amount": "numeric", "age": "numeric", "visits": "numeric", "hour": "numeric",
                     "country": "categorical", "merchant": "categorical", "is_member": "boolean",
                     "query": "text", "prediction": "numeric"}
    assert doc["columns"]["prediction"]["role"] == "prediction"
    assert 0.02 < doc["columns"]["age"]["nulls"] / 20_000 < 0.04
    merchant = Baseline.from_dict(doc).columns["merchant"]
    assert 0.03 < merchant.expected_unseen_rate < 0.2, "a Zipf long tail expects unseen values"
    assert doc["columns"]["query"]["expected_oov_rate"] > 0


def test_baseline_from_parquet_and_from_prediction_records_agree(tmp_path, train_csv):
    frame = synth.table(3000, seed=2)
    frame.to_parquet(tmp_path / "t.parquet")
    write_jsonl(tmp_path / "t.jsonl", synth.records(frame))
    for data, extra in (("t.parquet", ["--prediction", "score"]), ("t.jsonl", [])):
        proc = predwatch("baseline", "--data", str(tmp_path / data), "--model", "m", "--text", "query", *extra,
                         "--out", str(tmp_path / f"{data}.json"))
        assert proc.returncode == 0, proc.stderr
    a = Baseline.load(tmp_path / "t.parquet.json").columns
    b = Baseline.load(tmp_path / "t.jsonl.json").columns
    assert set(a) == set(b)
    for name in a:
        assert (a[name].kind, a[name].nulls, a[name].edges, a[name].categories) == \
               (b[name].kind, b[name].nulls, b[name].edges, b[name].categories), name


def test_check_json_output_and_exit_codes(cli_baseline, tmp_path):
    quiet = write_jsonl(tmp_path / "quiet.jsonl", synth.records(synth.table(1000, seed=3)))
    proc = predwatch("check", "--baseline", str(cli_baseline), "--logs", str(quiet), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["findings"] == [] and doc["window"]["records"] == 1000 and doc["window"]["rejected"] == 0
    assert doc["model"] == "checkout-risk" and doc["window"]["start"] == "2026-11-22T07:00:00.000Z"

    frame, _ = incidents.unit_changes(1000, 4)
    bad = write_jsonl(tmp_path / "bad.jsonl", synth.records(frame))
    proc = predwatch("check", "--baseline", str(cli_baseline), "--logs", str(bad), "--format", "json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert proc.stdout.count("\n") == 1, "stdout is exactly one JSON object"
    found = {(f["check"], f["feature"]) for f in doc["findings"]}
    assert ("out_of_range", "amount") in found
    for f in doc["findings"]:
        assert set(f) >= {"check", "feature", "severity", "value", "threshold", "p_value", "message", "examples"}
        assert f["severity"] in ("warning", "critical")


def test_malformed_lines_are_counted_never_fatal(cli_baseline, tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", synth.records(synth.table(500, seed=5)))
    with path.open("ab") as fh:
        fh.write(b"not json at all\n")
        fh.write(b'{"message": "an ordinary log line"}\n')
        fh.write(b"[1, 2, 3]\n")
        fh.write(b'{"predwatch": {"features": "oops"}}\n')
        fh.write(b'{"predwatch": {"features": {"amount": "caf\xe9"}}}\n')  # not UTF-8
        fh.write(b'{"predwatch": {"features": {"amount": "' + b"x" * 200_000 + b'"}}}\n')  # huge, but valid
        fh.write(b'{"@timestamp": "2026-11-22T08:00:00Z", "predwatch": {"feat')  # truncated last line
    proc = predwatch("check", "--baseline", str(cli_baseline), "--logs", str(path), "--format", "json")
    doc = json.loads(proc.stdout)
    assert doc["window"]["records"] == 501 and doc["window"]["rejected"] == 6
    assert "not valid JSON" in proc.stderr and "not valid UTF-8" in proc.stderr
    assert "no 'predwatch' object" in proc.stderr and "truncated last line" in proc.stderr
    assert "6 lines rejected" in proc.stderr


def test_unusable_input_exits_2_with_a_clear_message(cli_baseline, tmp_path):
    proc = predwatch("check", "--baseline", str(cli_baseline), "--logs", str(tmp_path / "missing.jsonl"))
    assert proc.returncode == 2 and "log file not found" in proc.stderr
    junk = tmp_path / "junk.jsonl"
    junk.write_text("nothing useful\n")
    proc = predwatch("check", "--baseline", str(cli_baseline), "--logs", str(junk))
    assert proc.returncode == 2 and "no valid prediction record" in proc.stderr
    proc = predwatch("check", "--baseline", str(junk), "--logs", str(junk))
    assert proc.returncode == 2 and "unusable baseline" in proc.stderr
    proc = predwatch("check", "--baseline", str(cli_baseline))
    assert proc.returncode == 2 and "--logs" in proc.stderr
    proc = predwatch("baseline", "--data", str(tmp_path / "nope.csv"), "--model", "m", "--out", "x.json")
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_records_of_other_models_are_left_out(cli_baseline, tmp_path):
    mine = synth.records(synth.table(300, seed=12))
    theirs = synth.records(incidents.unit_changes(300, 13)[0], model="fraud-model")
    path = write_jsonl(tmp_path / "shared.jsonl", [r for pair in zip(mine, theirs) for r in pair])
    proc = predwatch("check", "--baseline", str(cli_baseline), "--logs", str(path), "--format", "json")
    assert proc.returncode == 0, proc.stdout
    doc = json.loads(proc.stdout)
    assert doc["window"]["records"] == 300 and doc["window"]["other_models"] == {"fraud-model": 300}
    assert "left out 300 records of model 'fraud-model'" in proc.stderr


def test_text_format_is_a_readable_table(cli_baseline, tmp_path):
    frame, _ = incidents.strings_in_numeric(1000, 6)
    path = write_jsonl(tmp_path / "w.jsonl", synth.records(frame))
    proc = predwatch("check", "--baseline", str(cli_baseline), "--logs", str(path))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("model checkout-risk") and "records 1,000" in lines[0]
    assert "severity" in lines[1] and "type_mismatch" in proc.stdout and "visits" in proc.stdout


def test_config_file_changes_thresholds(cli_baseline, tmp_path):
    frame, _ = incidents.strings_in_numeric(1000, 7)
    path = write_jsonl(tmp_path / "w.jsonl", synth.records(frame))
    cfg = tmp_path / "predwatch.toml"
    cfg.write_text("[features.visits.type_mismatch]\nwarning = 1.0\ncritical = 1.5\n")  # Cohen's h of 20%: 0.93
    proc = predwatch("check", "--baseline", str(cli_baseline), "--logs", str(path), "--config", str(cfg))
    assert proc.returncode == 0, proc.stdout
    cfg.write_text("[checks.nonsense]\nwarning = 1\n")
    proc = predwatch("check", "--baseline", str(cli_baseline), "--logs", str(path), "--config", str(cfg))
    assert proc.returncode == 2 and "unknown check" in proc.stderr


def test_parallel_byte_ranges_give_the_same_profile(baseline, tmp_path, monkeypatch):
    recs = synth.records(synth.table(3000, seed=8))
    path = write_jsonl(tmp_path / "w.jsonl", recs)
    with path.open("ab") as fh:
        fh.write(b"broken line\n")
    monkeypatch.setattr(local, "PARALLEL_MIN_BYTES", 1)
    single = local.LocalProfiler(baseline).profile_files([path], workers=1)
    for workers in (2, 3, 7):
        parallel = local.LocalProfiler(baseline).profile_files([path], workers=workers)
        assert parallel.records == 3000 and parallel.rejected == 1
        for name, col in single.columns.items():
            other = parallel.columns[name]
            assert (col.present, col.nulls, col.bins, col.categories, col.unseen, col.tokens, col.oov_tokens) == \
                   (other.present, other.nulls, other.bins, other.categories, other.unseen, other.tokens,
                    other.oov_tokens), name


def test_gzip_logs_are_read(cli_baseline, tmp_path):
    import gzip
    path = tmp_path / "w.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        for rec in synth.records(synth.table(200, seed=9)):
            fh.write(json.dumps(rec).encode() + b"\n")
    proc = predwatch("check", "--baseline", str(cli_baseline), "--logs", str(path), "--format", "json")
    assert json.loads(proc.stdout)["window"]["records"] == 200


# -- exit codes: each means one thing -------------------------------------------------------------------

def test_unusable_input_is_exit_2_with_one_line_naming_the_file(cli_baseline, train_csv, tmp_path):
    logs = write_jsonl(tmp_path / "w.jsonl", synth.records(synth.table(50, seed=3)))
    fake_gz = tmp_path / "w.jsonl.gz"
    fake_gz.write_bytes(logs.read_bytes())  # named .gz, not gzip
    cases = [
        (["check", "--baseline", str(tmp_path), "--logs", str(logs)], str(tmp_path)),
        (["check", "--baseline", str(cli_baseline), "--logs", str(fake_gz)], "not a gzip file"),
        (["check", "--baseline", str(cli_baseline), "--logs", str(tmp_path)], "a directory"),
        (["baseline", "--data", str(train_csv), "--model", "m", "--out", "/no/such/dir/b.json"], "/no/such/dir/b.json"),
    ]
    for args, named in cases:
        proc = predwatch(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def test_an_internal_error_is_exit_3_and_its_traceback_waits_for_debug(cli_baseline, tmp_path, monkeypatch, capsys):
    from predwatch.cli import main

    logs = write_jsonl(tmp_path / "w.jsonl", synth.records(synth.table(50, seed=3)))

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(files, "analyze_local", broken)
    monkeypatch.delenv("PREDWATCH_DEBUG", raising=False)
    assert main(["check", "--baseline", str(cli_baseline), "--logs", str(logs)]) == 3
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: a bug" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert main(["--debug", "check", "--baseline", str(cli_baseline), "--logs", str(logs)]) == 3
    assert "Traceback" in capsys.readouterr().err


def test_version_and_a_bom_on_line_one(cli_baseline, tmp_path):
    proc = predwatch("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("predwatch ")
    logs = write_jsonl(tmp_path / "w.jsonl", synth.records(synth.table(300, seed=3)))
    logs.write_bytes(b"\xef\xbb\xbf" + logs.read_bytes())
    proc = predwatch("check", "--baseline", str(cli_baseline), "--logs", str(logs), "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr
    assert json.loads(proc.stdout)["window"]["rejected"] == 0


def test_hourly_windows_of_one_file_equal_each_hour_checked_alone(cli_baseline, tmp_path):
    hours = [synth.records(synth.table(400, seed=40), start="2026-11-22T07:00:00"),
             synth.records(incidents.unit_changes(400, 41)[0], start="2026-11-22T08:00:00"),
             synth.records(synth.table(400, seed=42), start="2026-11-22T09:00:00")]
    for i, recs in enumerate(hours):  # keep each hour inside its hour
        for j, rec in enumerate(recs):
            rec["@timestamp"] = f"2026-11-22T{7 + i:02d}:{j * 3600 // 400 // 60:02d}:{j * 3600 // 400 % 60:02d}.000Z"
    both = write_jsonl(tmp_path / "all.jsonl", [r for recs in hours for r in recs])
    proc = predwatch("check", "--baseline", str(cli_baseline), "--logs", str(both), "--window", "1h", "--format", "json")
    assert proc.returncode == 1, proc.stderr
    windows = [doc for doc in map(json.loads, proc.stdout.splitlines()) if "incident" not in doc]
    assert [w["window"]["start"] for w in windows] == [f"2026-11-22T{h:02d}:00:00.000Z" for h in (7, 8, 9)]
    assert windows[0]["window"]["end"] == "2026-11-22T08:00:00.000Z"
    for window, recs in zip(windows, hours):
        alone = write_jsonl(tmp_path / f"h{window['window']['start'][11:13]}.jsonl", recs)
        one = json.loads(predwatch("check", "--baseline", str(cli_baseline), "--logs", str(alone), "--format", "json").stdout)
        assert window["window"]["records"] == one["window"]["records"] == 400
        assert window["findings"] == one["findings"]
    assert windows[1]["findings"] and not windows[0]["findings"]


def test_rejected_lines_are_located_as_file_and_line_also_in_parallel(cli_baseline, tmp_path):
    from analyzers.sources.local import PARALLEL_MIN_BYTES

    recs = synth.records(synth.table(400, seed=9))
    line = len(json.dumps(recs[0])) + 1
    n = max(2000, 2 * PARALLEL_MIN_BYTES // line + 10)
    logs = tmp_path / "big.jsonl"
    lines = [json.dumps(recs[i % 400]) for i in range(n)]
    bad = {n - 7: "{not json", n // 2 + 3: '{"predwatch": {"model": {"name": {"x": 1}}}}'}
    for number, text in bad.items():
        lines[number - 1] = text
    logs.write_text("\n".join(lines) + "\n")
    for workers in ("1", "2"):
        proc = predwatch("check", "--baseline", str(cli_baseline), "--logs", str(logs), "--workers", workers,
                         "--format", "json")
        assert proc.returncode in (0, 1), proc.stderr
        for number in bad:
            assert f"rejected big.jsonl:{number}: " in proc.stderr, (workers, proc.stderr)
        assert "@" not in proc.stderr and "(record" not in proc.stderr


# -- one CLI ----------------------------------------------------------------------------------------------

def all_parsers():
    import argparse

    from predwatch.cli import build_parser

    def walk(parser, name):
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    yield from walk(child, f"{name} {sub}".strip())

    yield from walk(build_parser(), "")


def test_every_option_has_a_help_line_and_elasticsearch_commands_share_the_connection_flags():
    shared = ("--es-url", "--es-api-key", "--es-username", "--es-password", "--es-ca-certs", "--es-distribution")
    talks_to_es = {"baseline", "report", "setup", "ship", "daemon", "analyze", "status", "alerts install"}
    seen = set()
    for name, parser in all_parsers():
        for action in parser._actions:
            if action.dest not in ("help", "command", "action"):
                assert action.help, f"predwatch {name} {action.option_strings or action.dest}: no help line"
        if name in talks_to_es:
            seen.add(name)
            text = parser.format_help()
            assert all(flag in text for flag in shared), (name, [f for f in shared if f not in text])
    assert seen == talks_to_es


def test_an_unknown_flag_is_reported_by_the_subcommand_with_its_usage(tmp_path):
    proc = predwatch("check", "--baseline", "b.json", "--logs", "l.jsonl", "--bogus")
    assert proc.returncode == 2 and "usage: predwatch check" in proc.stderr
    assert "predwatch check: error: unrecognized arguments: --bogus" in proc.stderr
    proc = predwatch("kibana", "install", "--kibana-url", "http://k", "--nope")
    assert proc.returncode == 2 and "usage: predwatch kibana install" in proc.stderr
    proc = predwatch("demo", "--days", "0")
    assert proc.returncode == 2 and "--days: must be 1 or more" in proc.stderr


def test_a_bad_configuration_value_names_the_file_and_the_key(cli_baseline, tmp_path):
    logs = write_jsonl(tmp_path / "w.jsonl", synth.records(synth.table(50, seed=3)))
    for text, said in (('[checks]\nfdr = "x"\n', "[checks] fdr: not a number ('x')"),
                       ("[features.age.out_of_range]\nwarning = true\n", "[age.out_of_range] warning: not a number")):
        cfg = tmp_path / "predwatch.toml"
        cfg.write_text(text)
        proc = predwatch("check", "--baseline", str(cli_baseline), "--logs", str(logs), "--config", str(cfg))
        assert proc.returncode == 2 and f"{cfg}: " in proc.stderr and said in proc.stderr, proc.stderr


def test_records_of_another_version_or_model_are_said_so(cli_baseline, tmp_path):
    recs = synth.records(synth.table(300, seed=5), version="8")
    logs = write_jsonl(tmp_path / "v8.jsonl", recs)
    proc = predwatch("check", "--baseline", str(cli_baseline), "--logs", str(logs))
    assert "300 records are of model version '8', the baseline is of version '7'" in proc.stderr, proc.stderr
    other = write_jsonl(tmp_path / "other.jsonl", synth.records(synth.table(300, seed=5), model="fraud"))
    proc = predwatch("baseline", "--data", str(other), "--model", "checkout-risk", "--out", str(tmp_path / "b.json"))
    assert proc.returncode == 0 and "other models than 'checkout-risk' (300 of 'fraud')" in proc.stderr, proc.stderr


def run_on_a_terminal(args: list[str], timeout: float = 120) -> tuple[int, str]:
    """Run predwatch with stderr on a pseudo-terminal (stdout a pipe); returns its exit code and what the
    terminal showed."""
    import os
    import pty
    import select

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "predwatch", *args], stdout=subprocess.DEVNULL,
                            stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    shown = b""
    while True:
        ready, _, _ = select.select([leader], [], [], timeout)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return proc.wait(timeout), shown.decode("utf-8", "replace")


def test_progress_is_shown_on_a_terminal_and_nowhere_else(cli_baseline, train_csv, tmp_path):
    recs = synth.records(synth.table(2000, seed=12))
    logs = tmp_path / "many.jsonl"
    with logs.open("w") as fh:  # long enough to be read for a second or more: progress shows every 0.2 s
        for i in range(300_000):
            fh.write(json.dumps(recs[i % 2000]) + "\n")
    code, shown = run_on_a_terminal(["check", "--baseline", str(cli_baseline), "--logs", str(logs), "--workers", "1"])
    assert code in (0, 1), shown
    assert "reading: " in shown and "lines/s" in shown and "s left" in shown, shown
    code, shown = run_on_a_terminal(["baseline", "--data", str(train_csv), "--model", "m", "--out",
                                     str(tmp_path / "b.json")])
    assert code == 0 and f"reading {train_csv} ..." in shown and "summarising" in shown, shown
    piped = predwatch("check", "--baseline", str(cli_baseline), "--logs", str(logs), "--workers", "1")
    assert "reading: " not in piped.stderr and "\r" not in piped.stderr, "silent when stderr is not a terminal"


def test_an_unreadable_file_among_parallel_work_with_progress_on_is_still_exit_2(cli_baseline, tmp_path):
    from analyzers.sources.local import PARALLEL_MIN_BYTES

    big = tmp_path / "big.jsonl"
    line = json.dumps(synth.records(synth.table(1, seed=1))[0]) + "\n"
    big.write_text(line * (PARALLEL_MIN_BYTES // len(line) + 100))
    fake = tmp_path / "w.jsonl.gz"
    fake.write_text(line)
    code, shown = run_on_a_terminal(["check", "--baseline", str(cli_baseline), "--logs", str(big), str(fake),
                                     "--workers", "2"])
    assert code == 2 and "not a gzip file" in shown, shown
