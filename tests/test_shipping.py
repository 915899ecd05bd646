"""Shipping to Elasticsearch: templates, the in-process handler, and ``predwatch ship`` (real server)."""
from __future__ import annotations

import json
import logging
import logging.handlers
import os
import subprocess
import sys
import time
import uuid

import orjson
import pytest
from elasticsearch import ApiError

import synth
from conftest import EMULATED, free_port, osmem_settings, terminate, wait_until
from logging_adapter import PredictionLogger
from logging_adapter.bulk import Doc, doc_from_line
from logging_adapter.elastic import EsSettings, make_client
from logging_adapter.handler import ElasticsearchHandler


def predwatch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "predwatch", *args], capture_output=True, text=True,
                          timeout=timeout)


def plog_to(handler: logging.Handler, model: str = "checkout-risk") -> PredictionLogger:
    logger = logging.getLogger(f"test.ship.{uuid.uuid4().hex}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return PredictionLogger(model, "7", "checkout-api", logger=logger)


def features(i: int) -> dict:
    return {"amount": float(i), "country": ["DE", "FR", "US"][i % 3], "query": f"red shoes {i}"}


def ids_in(es, pattern: str = "predictions-*") -> list[str]:
    return [hit["_id"] for hit in es.docs(pattern)]


# -- client factory and templates -------------------------------------------------------------------

def test_settings_from_environment_flags_win_and_secrets_stay_hidden():
    env = {"PREDWATCH_ES_URL": "https://es:9200", "PREDWATCH_ES_API_KEY": "s3cret", "PREDWATCH_ES_VERIFY_CERTS": "false",
           "PREDWATCH_ES_DISTRIBUTION": "opensearch"}
    settings = EsSettings.from_env(env)
    assert settings.url == "https://es:9200" and settings.verify_certs is False
    assert settings.distribution == "opensearch"
    assert "s3cret" not in repr(settings) and "s3cret" not in settings.describe()
    assert EsSettings.from_env(env, url="http://other:9200").url == "http://other:9200"
    with pytest.raises(ValueError, match="distribution"):
        EsSettings.from_env({"PREDWATCH_ES_DISTRIBUTION": "solr"})


def test_plain_json_mode_is_what_opensearch_servers_need(opensearch):
    plain = make_client(osmem_settings(opensearch.url))
    assert plain.info()["version"]["distribution"] == "opensearch"
    index = f"{opensearch.prefix}-plain-json"
    plain.bulk(operations=[{"create": {"_index": index}}, {"a": 1}])  # NDJSON too
    with pytest.raises(ApiError) as err:  # the stock client sends compatibility media types
        make_client(EsSettings(url=opensearch.url)).search(index=index, size=0)
    assert err.value.meta.status == 406


def test_setup_installs_templates_idempotently(each_engine):
    es = each_engine  # the same test on each real engine
    for _ in range(2):
        proc = predwatch("setup", *es.es_args())
        assert proc.returncode == 0, proc.stderr
        assert f"index template {es.prefix}-predictions" in proc.stdout
    tmpl = es.client.indices.get_index_template(name=f"{es.prefix}-predictions")["index_templates"][0]
    assert tmpl["index_template"]["priority"] > 500
    assert tmpl["index_template"]["index_patterns"] == [f"{es.prefix}-predictions-*"]


def test_setup_reports_an_unreachable_cluster_clearly():
    proc = predwatch("setup", "--es-url", f"http://127.0.0.1:{free_port()}", "--es-distribution", "opensearch")
    assert proc.returncode == 2 and "cannot use Elasticsearch" in proc.stderr and "Traceback" not in proc.stderr


# -- the in-process handler -----------------------------------------------------------------------------

def test_handler_delivers_every_record_once_into_daily_indices(es, tmp_path):
    handler = ElasticsearchHandler(make_client(es.settings), prefix=es.prefix, spool_dir=tmp_path, flush_interval=0.05)
    plog = plog_to(handler)
    ids = [plog.log(features(i), i / 300) for i in range(300)]
    plog.log(features(0), 0.0, prediction_id=ids[0])  # a retry of the same prediction
    assert handler.flush(30)
    handler.close()
    got = ids_in(es)
    assert sorted(got) == sorted(ids), "every record exactly once, the retry a no-op"
    assert handler.stats["sent"] == 300 and handler.stats["duplicates"] == 1
    indices = es.client.indices.get(index=f"{es.prefix}-predictions-*")
    day = time.strftime("%Y.%m.%d", time.gmtime())
    assert any(name.endswith(f"checkout-risk.{day}") for name in indices)
    mapping = next(iter(es.client.indices.get_mapping(index=f"{es.prefix}-predictions-*").values()))["mappings"]
    feats = mapping["properties"]["predwatch"]["properties"]["features"]["properties"]
    assert feats["amount"]["type"] == "double" and feats["country"]["type"] == "keyword"


def test_handler_never_ships_its_own_or_the_clients_log_lines(es, tmp_path):
    handler = ElasticsearchHandler(make_client(es.settings), prefix=es.prefix, spool_dir=tmp_path, flush_interval=0.05)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("elastic_transport").setLevel(logging.DEBUG)
    try:
        logger = logging.getLogger(f"test.root.{uuid.uuid4().hex}")
        plog = PredictionLogger("checkout-risk", "7", logger=logger)
        for i in range(20):
            plog.log(features(i), 0.5)
        logging.getLogger("app").warning("an ordinary application log line")
        assert handler.flush(30)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        logging.getLogger("elastic_transport").setLevel(logging.NOTSET)
        handler.close()
    assert len(ids_in(es)) == 20
    assert handler.stats["ignored"] > 1, "client request logs and app logs reached the handler and were ignored"


def test_handler_spools_when_elasticsearch_is_away_and_replays_at_next_start(es, tmp_path):
    down = EsSettings(url=f"http://127.0.0.1:{free_port()}", distribution="opensearch")
    handler = ElasticsearchHandler(make_client(down), prefix=es.prefix, spool_dir=tmp_path, flush_interval=0.05,
                                   exit_timeout=1.0)
    plog = plog_to(handler)
    ids = [plog.log(features(i), 0.1) for i in range(50)]
    worst = 0.0
    for i in range(50, 100):
        start = time.perf_counter()
        ids.append(plog.log(features(i), 0.1))
        worst = max(worst, time.perf_counter() - start)
    time.sleep(1.0)
    handler.close()
    assert worst < 0.05, f"the caller waited {worst * 1000:.1f} ms"
    assert handler.stats["spooled"] == 100 and handler.stats["sent"] == 0
    assert list(tmp_path.glob("slot-0/spool-*.ndjson"))

    again = ElasticsearchHandler(make_client(es.settings), prefix=es.prefix, spool_dir=tmp_path, flush_interval=0.05)
    assert again.spool_dir == handler.spool_dir, "the next start claims the slot with the backlog"
    assert again.flush(30)
    again.close()
    assert sorted(ids_in(es)) == sorted(ids)
    assert again.stats["replayed"] == 100 and not list(tmp_path.glob("slot-0/spool-*.ndjson"))


def test_handler_indexes_records_the_mapping_refuses_with_the_refused_value_aside(es, tmp_path):
    """A value of another type than its field was mapped with is the very record that carries the problem: it is
    indexed with that value kept aside (unindexed), never dead-lettered (issue 24, item 6)."""
    handler = ElasticsearchHandler(make_client(es.settings), prefix=es.prefix, spool_dir=tmp_path, flush_interval=0.05)
    plog = plog_to(handler)
    plog.log({"country": "DE", "amount": 1.0, "vip": True}, 0.1)
    assert handler.flush(30)
    plog.log({"country": "FR", "amount": 2.0, "vip": "yes"}, 0.2)  # text into a boolean field: refused, refitted
    plog.log({"country": "FR", "amount": "two", "vip": False}, 0.3)  # string into a double: kept, flagged malformed
    assert handler.flush(30)
    handler.close()
    assert len(ids_in(es)) == 3
    assert handler.stats["rejected"] == 0 and handler.stats["refitted"] == 1, handler.stats
    assert not handler.dead_letters.path.exists() or not handler.dead_letters.path.read_text().strip()
    (refitted,) = [h["_source"]["predwatch"] for h in es.docs() if "refused_fields" in h["_source"]["predwatch"]]
    assert refitted["refused_fields"] == ["predwatch.features.vip"]
    assert refitted["unindexed"] == {"features": {"vip": "yes"}} and "vip" not in refitted["features"]


# -- predwatch ship -------------------------------------------------------------------------------------

def rotating_logger(path, max_bytes: int) -> tuple[PredictionLogger, logging.Handler]:
    from logging_adapter import PredictionFormatter
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=20)
    handler.setFormatter(PredictionFormatter(service="svc"))
    return plog_to(handler), handler


def test_ship_follows_rotation_and_restarts_from_its_offsets(es, tmp_path):
    log_path = tmp_path / "logs" / "predictions.jsonl"
    log_path.parent.mkdir()
    plog, handler = rotating_logger(log_path, max_bytes=20_000)
    state = tmp_path / "state"
    ids = [plog.log(features(i), 0.1) for i in range(60)]
    proc = predwatch("ship", str(log_path), "--once", "--state-dir", str(state), *es.es_args())
    assert proc.returncode == 0, proc.stderr
    ids += [plog.log(features(i), 0.1) for i in range(60, 200)]  # rotates several times
    handler.close()
    assert len(list(log_path.parent.iterdir())) > 2, "the test must actually rotate"
    proc = predwatch("ship", str(log_path), "--once", "--state-dir", str(state), *es.es_args())
    assert proc.returncode == 0, proc.stderr
    # a third run finds nothing new and re-sends nothing
    proc = predwatch("ship", str(log_path), "--once", "--state-dir", str(state), *es.es_args())
    assert "shipped 0 new, 0 already indexed" in proc.stdout
    got = ids_in(es)
    assert len(got) == len(set(got)) == 200 and set(got) == set(ids)


def test_ship_reads_a_truncated_file_from_the_start(es, tmp_path):
    path = tmp_path / "p.jsonl"
    recs = synth.records(synth.table(30, seed=1))
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    state = tmp_path / "state"
    assert predwatch("ship", str(path), "--once", "--state-dir", str(state), *es.es_args()).returncode == 0
    newer = synth.records(synth.table(5, seed=2), start="2026-11-23T00:00:00")
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in newer))  # truncated and rewritten
    proc = predwatch("ship", str(path), "--once", "--state-dir", str(state), *es.es_args())
    assert "shipped 5 new" in proc.stdout, proc.stdout + proc.stderr


def test_ship_dead_letters_bad_input_and_carries_on(es, tmp_path):
    path = tmp_path / "p.jsonl"
    good = synth.records(synth.table(20, seed=3))
    conflict = dict(good[0], predwatch=dict(good[0]["predwatch"], prediction_id="conflict",
                                            features={"country": {"nested": "object"}}))
    lines = [orjson.dumps(r) for r in good[:10]]
    lines += [b"not json", b"[1, 2]", b'{"message": "an app log line"}', b'{"predwatch": {"features": {"a": "caf\xe9"}}}',
              b'{"predwatch": {"model": {"name": "m"}, "features": {"q": "' + b"x" * (17 * 1024 * 1024) + b'"}}}',
              orjson.dumps(conflict)]
    lines += [orjson.dumps(r) for r in good[10:]]
    path.write_bytes(b"\n".join(lines) + b"\n" + b'{"@timestamp": "2026-11-22T09:00:00Z", "predwatch": {"fea')
    state = tmp_path / "state"
    proc = predwatch("ship", str(path), "--once", "--state-dir", str(state), *es.es_args())
    assert proc.returncode == 0, proc.stderr
    assert "shipped 21 new" in proc.stdout, proc.stdout  # the mapping conflict too, its object kept aside
    assert len(ids_in(es)) == 21
    (conflicted,) = [h["_source"]["predwatch"] for h in es.docs() if h["_id"] == "conflict"]
    assert conflicted["unindexed"] == {"features": {"country": {"nested": "object"}}}
    dead = [json.loads(line) for line in (state / "dead-letter.jsonl").read_text().splitlines()]
    reasons = " | ".join(d["reason"] for d in dead)
    assert len(dead) == 5, reasons
    for expected in ("not valid JSON", "not an object", "no 'predwatch' object", "not valid UTF-8", "exceeds the"):
        assert expected in reasons, expected
    utf = next(d for d in dead if "UTF-8" in d["reason"])
    assert utf["encoding"].startswith("latin-1") and "café" in utf["line"]
    # the incomplete last line waits for its writer; once finished it is shipped
    with path.open("ab") as fh:
        fh.write(b'atures": {"amount": 1}, "model": {"name": "checkout-risk"}, "prediction_id": "late"}}\n')
    proc = predwatch("ship", str(path), "--once", "--state-dir", str(state), *es.es_args())
    assert "shipped 1 new" in proc.stdout, proc.stdout + proc.stderr
    assert "late" in ids_in(es)


def test_ship_stops_cleanly_on_sigterm_without_losing_its_place(es, tmp_path):
    path = tmp_path / "p.jsonl"
    plog, handler = rotating_logger(path, max_bytes=10**9)
    first = [plog.log(features(i), 0.1) for i in range(40)]
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "predwatch", "ship", str(path), "--state-dir", str(state),
                             *es.es_args()], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: len(ids_in(es)) >= 40, 60)
    more = [plog.log(features(i), 0.1) for i in range(40, 60)]
    wait_until(lambda: len(ids_in(es)) >= 60, 60)
    out, err = terminate(proc, 30)
    assert proc.returncode == 0, err
    assert "shipped 60 new" in out
    offsets = json.loads((state / "offsets.json").read_text())
    assert list(offsets.values())[0]["offset"] == path.stat().st_size
    last = [plog.log(features(i), 0.1) for i in range(60, 70)]
    handler.close()
    proc2 = predwatch("ship", str(path), "--once", "--state-dir", str(state), *es.es_args())
    assert "shipped 10 new, 0 already indexed" in proc2.stdout
    assert sorted(ids_in(es)) == sorted(first + more + last)


# -- an outage: the server process dies while the service keeps logging -----------------------------------

@pytest.mark.skipif(not EMULATED, reason="kills and restarts an emulator process (PREDWATCH_TEST_ENGINE=osmem); "
                    "the real engines' outages are the loopback gate's, in test_nothing_lost.py")
def test_outage_nothing_lost_nothing_duplicated_caller_never_blocked(tmp_path):
    from osmem_server import OsmemServer
    from logging_adapter import templates

    port = free_port()
    settings = EsSettings(url=f"http://127.0.0.1:{port}", distribution="opensearch")

    def start_server():
        server = OsmemServer.start(addr=f"127.0.0.1:{port}")
        templates.install(make_client(settings), prefix="predwatch")
        return server

    def ids_on_server() -> list[str]:
        client = make_client(settings)
        client.indices.refresh(index="predwatch-predictions-*", allow_no_indices=True)
        hits = client.search(index="predwatch-predictions-*", size=10_000, ignore_unavailable=True,
                             allow_no_indices=True)["hits"]["hits"]
        return [h["_id"] for h in hits]

    first = start_server()
    handler = ElasticsearchHandler(make_client(settings), spool_dir=tmp_path, flush_interval=0.05,
                                   request_timeout=2.0)
    plog = plog_to(handler)
    latencies: list[float] = []

    def log_some(n: int) -> list[str]:
        out = []
        for i in range(n):
            start = time.perf_counter()
            out.append(plog.log(features(i), 0.5))
            latencies.append(time.perf_counter() - start)
            time.sleep(0.002)
        return out

    before = log_some(200)
    assert handler.flush(30)
    on_first = ids_on_server()
    assert sorted(on_first) == sorted(before)
    first.process.kill()  # the outage: the server process dies
    first.process.wait()
    during = log_some(300)  # the service keeps logging
    time.sleep(1.0)
    second = start_server()  # a new server comes up on the same address
    try:
        after = log_some(100)
        assert handler.flush(60), dict(handler.stats)
        handler.close()
        on_second = ids_on_server()
    finally:
        second.close()
    assert len(on_second) == len(set(on_second)), "no record indexed twice"
    assert sorted(on_second) == sorted(during + after), "every record after the crash reached the new server"
    assert set(on_first) | set(on_second) == set(before + during + after)
    assert handler.stats["spooled"] > 0 and handler.stats["replayed"] > 0
    latencies.sort()
    assert latencies[-1] < 0.05, f"worst caller wait {latencies[-1] * 1000:.1f} ms"
    print(f"caller wait p50 {latencies[len(latencies) // 2] * 1e6:.0f} us, max {latencies[-1] * 1e3:.2f} ms; "
          f"stats {dict(handler.stats)}")


def test_doc_from_line_routes_by_the_records_own_day():
    line = orjson.dumps({"@timestamp": "2026-01-02T23:59:59.999Z", "predwatch.model.name": "Risk Model",
                         "predwatch.prediction_id": "abc", "predwatch.features.a": 1})
    doc = doc_from_line(line)
    assert doc == Doc("predwatch-predictions-risk-model_dd7b64ca.2026.01.02", "abc", line)
    no_id = orjson.dumps({"@timestamp": "2026-01-02T00:00:00Z", "predwatch": {"model": {"name": "m"}}})
    assert doc_from_line(no_id).id == doc_from_line(no_id).id, "deterministic without a prediction_id"


def test_spool_disk_limit_drops_loudly(tmp_path, caplog):
    down = EsSettings(url=f"http://127.0.0.1:{free_port()}", distribution="opensearch")
    handler = ElasticsearchHandler(make_client(down), spool_dir=tmp_path, flush_interval=0.05, queue_size=10,
                                   max_spool_bytes=20_000, exit_timeout=0.5)
    plog = plog_to(handler)
    with caplog.at_level(logging.ERROR, logger="predwatch.shipper"):
        for i in range(200):
            plog.log(features(i), 0.1)
        handler.close()
    assert handler.stats["dropped"] > 0
    assert handler.stats["spooled"] + handler.stats["dropped"] == 200
    assert any("DROPPED" in r.getMessage() for r in caplog.records)


EXIT_SCRIPT = """
import logging, sys
from logging_adapter import PredictionLogger, configure
from logging_adapter.elastic import EsSettings, make_client
from logging_adapter.handler import ElasticsearchHandler
handler = ElasticsearchHandler(make_client(EsSettings(url=sys.argv[1], distribution="opensearch")),
                               spool_dir=sys.argv[2], flush_interval=5.0, exit_timeout=3.0, prefix=sys.argv[4])
configure(handler=handler)
plog = PredictionLogger("exit-model", "1")
for i in range(int(sys.argv[3])):
    plog.log({"i": i}, 0.5, prediction_id=f"exit-{i}")
# no flush, no close: interpreter exit must deliver (or spool) what is queued
"""


def test_interpreter_exit_flushes_or_spools_for_the_next_start(es, tmp_path):
    script = tmp_path / "service.py"
    script.write_text(EXIT_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.run([sys.executable, str(script), es.url, str(tmp_path / "up"), "50", es.prefix], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len([i for i in ids_in(es, "predictions-exit-model.*")]) == 50, "delivered at exit"
    down = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.run([sys.executable, str(script), down, str(tmp_path / "down"), "30", es.prefix], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    spooled = b"".join(p.read_bytes() for p in (tmp_path / "down").glob("slot-0/spool-*.ndjson"))
    assert spooled.count(b'"create"') == 30, "persisted for the next start"


