"""The joint checks end to end on local files: ``predwatch baseline`` keeps what they need, ``predwatch check``
judges a window's record sample, and an embedding of another length is a type mismatch."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import write_jsonl
from predwatch.cli import main
from test_joint import embeddings, table


def records(frame: pd.DataFrame, start: str = "2026-11-20T00:00:00") -> list[dict]:
    """Prediction records of a table's rows (one a second), NaN as null, a constant score."""
    base = pd.Timestamp(start, tz="UTC")
    out = []
    for i, row in enumerate(frame.to_dict("records")):
        features = {k: (None if isinstance(v, float) and v != v else v.tolist() if isinstance(v, np.ndarray) else v)
                    for k, v in row.items()}
        out.append({"@timestamp": (base + pd.Timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
                    "message": "prediction",
                    "predwatch": {"model": {"name": "joint", "version": "1"}, "prediction_id": f"{start}-{i}",
                                  "features": features, "prediction": 0.5}})
    return out


def with_embedding(frame: pd.DataFrame, vectors: np.ndarray) -> pd.DataFrame:
    frame = frame.copy()
    frame["emb"] = [v.round(5).tolist() for v in vectors]
    return frame


@pytest.fixture(scope="module")
def baseline_file(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("joint")
    train = with_embedding(table(20_000, seed=1), embeddings(20_000, 32, seed=1))
    data = write_jsonl(work / "train.jsonl", records(train))
    out = work / "baseline.json"
    assert main(["baseline", "--data", str(data), "--model", "joint", "--version", "1", "--out", str(out)]) == 0
    return out


def check(baseline: Path, frame: pd.DataFrame, tmp_path: Path, capsys) -> tuple[int, list[tuple]]:
    logs = write_jsonl(tmp_path / "window.jsonl", records(frame))
    code = main(["check", "--baseline", str(baseline), "--logs", str(logs), "--format", "json"])
    window = json.loads(capsys.readouterr().out.splitlines()[0])
    return code, [(f["check"], f["feature"], f["message"]) for f in window["findings"]]


def test_the_baseline_keeps_the_joint_reference_and_knows_the_embedding(baseline_file):
    doc = json.loads(baseline_file.read_text())
    assert doc["joint"]["kind"] == "predwatch.joint_reference" and "emb" not in doc["joint"]["inputs"]
    assert doc["columns"]["emb"]["kind"] == "embedding" and doc["columns"]["emb"]["dim"] == 32
    assert len(baseline_file.read_bytes()) < 2_000_000  # bounded whatever the training size


def test_inputs_that_stopped_moving_together_are_one_finding_about_all_inputs(baseline_file, tmp_path, capsys):
    window = with_embedding(table(2000, seed=11, independent=True), embeddings(2000, 32, seed=11))
    code, found = check(baseline_file, window, tmp_path, capsys)
    assert code == 1
    joint = [f for f in found if f[0] == "multivariate_shift"]
    assert len(joint) == 1 and joint[0][1] is None and "x1 ~ x2" in joint[0][2], found
    assert not [f for f in found if f[0] not in ("multivariate_shift",)], found  # the marginals did not move


def test_a_new_cluster_in_an_embedding_is_embedding_shift_and_another_length_a_type_mismatch(
        baseline_file, tmp_path, capsys):
    window = with_embedding(table(1000, seed=12), embeddings(1000, 32, seed=12, new_cluster=0.1))
    code, found = check(baseline_file, window, tmp_path, capsys)
    assert code == 1 and ("embedding_shift", "emb") in {f[:2] for f in found}, found
    assert not [f for f in found if f[0] in ("type_mismatch", "unseen_category", "multivariate_shift")], found

    window = with_embedding(table(1000, seed=13), embeddings(1000, 32, seed=13))
    window.loc[:199, "emb"] = pd.Series([[0.1] * 16] * 200)
    code, found = check(baseline_file, window, tmp_path, capsys)
    assert ("type_mismatch", "emb") in {f[:2] for f in found}, found
    assert "embedding_shift" not in {f[0] for f in found}, found


def test_windows_drawn_from_training_raise_neither_joint_check(baseline_file, tmp_path, capsys):
    for n, seed in ((500, 21), (5000, 22)):
        window = with_embedding(table(n, seed=seed), embeddings(n, 32, seed=seed))
        code, found = check(baseline_file, window, tmp_path, capsys)
        assert code == 0 and found == [], (n, found)


# -- on the real engines: the sample comes from a seeded random search, embeddings are not indexed ------------------

def test_the_cluster_judges_the_joint_checks_as_local_files_do_without_indexing_the_embedding(each_engine, tmp_path):
    from datetime import datetime, timedelta, timezone

    from analyzers.core.baseline import Baseline
    from analyzers.core.checks import findings
    from analyzers.core.window import analyze
    from analyzers.sources.elastic import EsWindowProfiler
    from analyzers.sources.jsonl import read_predictions
    from analyzers.sources.local import LocalProfiler
    from analyzers.store.baselines import store_baseline
    from test_es_analyzers import seed

    es = each_engine
    base = tmp_path / "baseline.json"
    train = with_embedding(table(20_000, seed=1), embeddings(20_000, 32, seed=1))
    assert main(["baseline", "--data", str(write_jsonl(tmp_path / "train.jsonl", records(train))), "--model", "joint",
                 "--version", "1", "--out", str(base)]) == 0
    baseline = Baseline.load(base)
    store_baseline(es.client, baseline, es.prefix)
    t0 = datetime(2026, 11, 20, tzinfo=timezone.utc)
    windows = {
        "joint": with_embedding(table(1500, seed=31, independent=True), embeddings(1500, 32, seed=31)),
        "cluster": with_embedding(table(1500, seed=32), embeddings(1500, 32, seed=32, new_cluster=0.1)),
    }
    recs = {name: records(frame, start=(t0 + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%S"))
            for i, (name, frame) in enumerate(windows.items())}
    seed(es, recs["joint"] + recs["cluster"])
    mapping = es.client.indices.get_mapping(index=f"{es.prefix}-predictions-*")
    for index in mapping.body.values():
        emb = index["mappings"]["properties"]["predwatch"]["properties"]["features"]["properties"]["emb"]
        assert emb["type"] == "float" and emb["index"] is False  # one field in doc values, no search index
    for i, name in enumerate(windows):
        start, end = t0 + timedelta(hours=i), t0 + timedelta(hours=i + 1)
        profiler = EsWindowProfiler(es.client, baseline, prefix=es.prefix)
        remote = profiler.profile(start.isoformat().replace("+00:00", "Z"), end.isoformat().replace("+00:00", "Z"))
        local = LocalProfiler(baseline).profile(read_predictions(recs[name]))
        assert remote.columns["emb"].present == local.columns["emb"].present == 1500
        assert sorted(remote.sample.keys) == sorted(local.sample.keys)  # the whole window fits in the sample
        found = {(f.check, f.feature) for f in findings(analyze(remote, baseline).results)}
        assert found == {(f.check, f.feature) for f in findings(analyze(local, baseline).results)}
        assert ("multivariate_shift", "*") in found if name == "joint" else ("embedding_shift", "emb") in found, found


def test_the_report_draws_what_moved(baseline_file, tmp_path, capsys):
    """The report has a section for the inputs together (each input's share of the change) and draws an
    embedding by the share of its vectors where training rarely is."""
    window = with_embedding(table(2000, seed=41, independent=True), embeddings(2000, 32, seed=41, new_cluster=0.1))
    logs = write_jsonl(tmp_path / "window.jsonl", records(window))
    out = tmp_path / "report.html"
    assert main(["report", "--baseline", str(baseline_file), "--logs", str(logs), "--out", str(out)]) == 1
    capsys.readouterr()
    html = out.read_text()
    joint = html[html.index("(the inputs together)"):]
    joint = joint[:joint.index("</section>")]
    assert "multivariate_shift" in joint and ">x1<" in joint and ">x2<" in joint, joint[:2000]
    emb = html[html.index("<h3>emb "):]
    emb = emb[:emb.index("</section>")]
    assert "where training rarely is" in emb and "embedding_shift" in emb


def test_a_service_that_profiles_in_process_and_logs_a_sample_is_judged_jointly(baseline_file, tmp_path):
    """``PredictionLogger(profile=, sample=)``: the profile records count every prediction, and the full records
    it still logs (a share chosen by the prediction id) are the sample the joint checks read."""
    import logging

    from analyzers.core.baseline import Baseline
    from analyzers.files import analyze_local
    from logging_adapter import PredictionLogger, configure

    path = tmp_path / "service.jsonl"
    configure(path=str(path), logger="predwatch.test.joint-profiled")
    logger = logging.getLogger("predwatch.test.joint-profiled")
    baseline = Baseline.load(baseline_file)
    plog = PredictionLogger("joint", "1", logger=logger, profile=baseline, sample=0.1)
    frame = with_embedding(table(20_000, seed=51, independent=True), embeddings(20_000, 32, seed=51))
    for i, rec in enumerate(records(frame)):
        plog.log(rec["predwatch"]["features"], 0.5, prediction_id=rec["predwatch"]["prediction_id"],
                 timestamp=1_795_000_000 + i * 0.1)
    plog.close()
    for handler in logger.handlers:
        handler.flush()
    full = sum('"prediction"' in line and '"profile"' not in line for line in path.read_text().splitlines())
    assert full < 3000, "only a sample of the records is logged in full"
    window = analyze_local([path], baseline).windows[0]
    assert window.profile.records == 20_000 and 1000 < len(window.profile.sample) <= 2000
    assert ("multivariate_shift", "*") in {(f.check, f.feature) for f in window.findings}


def test_the_daemon_judges_a_profiled_service_jointly_from_the_records_it_still_ships(es, baseline_file, tmp_path):
    """On the cluster: profile records count the traffic, and the joint checks read the shipped sample."""
    from datetime import datetime, timedelta, timezone

    from analyzers.core.baseline import Baseline
    from analyzers.daemon.analyzer import Analyzer
    from analyzers.daemon.config import DaemonConfig
    from analyzers.store.baselines import store_baseline
    from logging_adapter import PredictionLogger
    from logging_adapter.elastic import make_client
    from logging_adapter.handler import ElasticsearchHandler
    from test_profiling import logger_to

    baseline = Baseline.load(baseline_file)
    store_baseline(es.client, baseline, es.prefix)
    t0 = datetime(2026, 11, 20, tzinfo=timezone.utc)
    handler = ElasticsearchHandler(make_client(es.settings), prefix=es.prefix, spool_dir=tmp_path / "spool",
                                   flush_interval=0.05)
    plog = PredictionLogger("joint", "1", logger=logger_to(handler), profile=baseline, sample=0.2)
    frame = with_embedding(table(6000, seed=61, independent=True), embeddings(6000, 32, seed=61))
    for i, rec in enumerate(records(frame)):
        plog.log(rec["predwatch"]["features"], 0.5, prediction_id=rec["predwatch"]["prediction_id"],
                 timestamp=t0.timestamp() + i * 0.5)
    plog.close()
    assert handler.flush(60)
    handler.close()
    es.refresh()
    config = DaemonConfig.from_dict({"elasticsearch": {"url": es.url, "distribution": es.settings.distribution,
                                                       "prefix": es.prefix},
                                     "models": [{"name": "joint", "version": "1", "window": "1h", "lag": "0s",
                                                 "recent_days": 0}]})
    analyzer = Analyzer(es.client, config)
    analyzer.analyze_window(config.models[0], t0, t0 + timedelta(hours=1), refresh=True)
    found = {(h["_source"]["predwatch"]["check"], h["_source"]["predwatch"]["feature"]) for h in es.docs("findings")}
    assert ("multivariate_shift", "*") in found, found
    assert len(es.docs("predictions-*")) < 2000, "a sample of the records was shipped"


def test_offering_a_chunk_at_once_keeps_the_sample_one_record_at_a_time_keeps():
    from analyzers.core.joint import RowSample

    rows = [{"x": float(i % 97), "c": "abc"[i % 3], "v": [0.5, float(i)], "n": None} for i in range(9000)]
    keys = [f"p-{i % 7000}" for i in range(9000)]  # some keys twice, with another row
    one, many = RowSample(k=500), RowSample(k=500)
    for key, row in zip(keys, rows):
        one.add(key, {n: row[n] for n in ("x", "c", "v")})
    for at in range(0, 9000, 1000):
        many.add_all(keys[at:at + 1000], rows[at:at + 1000], ["x", "c", "v"])
    assert many == one and len(many) == 500
