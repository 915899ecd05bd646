"""Edges a real deployment meets in its first week: poison pills, refused credentials, bad ids,
model names that prefix each other, stale findings, orphaned spools, mapping traps (real server)."""
from __future__ import annotations

import http.client
import logging
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest

import synth
from analyzers.daemon.analyzer import Analyzer
from analyzers.daemon.config import iso
from analyzers.sources.elastic import EsWindowProfiler
from analyzers.store import results as res
from analyzers.store.baselines import store_baseline
from conftest import LoopbackServer, osmem_settings, stood_in, wait_until, write_jsonl
from logging_adapter import contract as c
from logging_adapter.bulk import Doc, send_bulk
from logging_adapter.elastic import make_client
from logging_adapter.handler import ElasticsearchHandler
from logging_adapter.ship import Shipper
from logging_adapter.spool import Spool
from test_es_analyzers import T0, config_for, frame_records, seed
from test_shipping import features, ids_in, plog_to, predwatch


def deep_line(levels: int = 990) -> bytes:
    """A record whose features nest ``levels`` deep: valid JSON (orjson reads up to 1024 levels)."""
    return (b'{"@timestamp":"2026-11-22T07:00:00.000Z","predwatch":{"model":{"name":"checkout-risk"},'
            b'"features":' + b'{"a":' * levels + b"1" + b"}" * levels + b"}}")


def write_lines(path: Path, records: list, poison: dict[int, bytes]) -> Path:
    lines = [orjson.dumps(r) for r in records]
    for at, line in sorted(poison.items()):
        lines.insert(at, line)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def good_records(n: int, model: str = "checkout-risk", start: int = 0) -> list[dict]:
    recs = synth.records(synth.table(n, seed=11))
    for i, rec in enumerate(recs):
        rec["predwatch"]["model"]["name"] = model
        rec["predwatch"]["prediction_id"] = f"{model}-{start + i}"
    return recs


class Gate(LoopbackServer):
    """A proxy in front of the test server that can refuse: ``status`` for every request (401/403 phases),
    or 400 for a whole bulk request holding ``poison`` (as Elasticsearch refuses a request as a whole);
    ``tamper(path, body) -> body`` rewrites the server's answers (partial answers, time-outs)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.status: int | None = None
        self.poison: bytes | None = None
        self.refused = 0
        self.tamper = None
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                refuse = gate.status or (400 if gate.poison and gate.poison in body else None)
                if refuse:
                    gate.refused += 1
                    reply = orjson.dumps({"error": {"type": "security_exception" if refuse != 400 else
                                                    "action_request_validation_exception", "reason": "refused"},
                                          "status": refuse})
                    self.send_response(refuse)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("X-Elastic-Product", "Elasticsearch")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                    return
                conn = http.client.HTTPConnection(gate.upstream.hostname, gate.upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if gate.tamper is not None:
                    data = gate.tamper(self.path, data)
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        self.serve(Handler)


@pytest.fixture
def gate(es):
    g = Gate(es.url)
    yield g
    g.close()


def dead_letters(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


# -- 1. poison pills ----------------------------------------------------------------------------------------

def test_poison_pills_are_rejected_by_check_with_their_reason(tmp_path, baseline_file):
    bad_name = good_records(1)[0]
    bad_name["predwatch"]["model"]["name"] = {"x": 1}
    logs = write_lines(tmp_path / "p.jsonl", good_records(40), {10: deep_line(), 20: orjson.dumps(bad_name)})
    proc = predwatch("check", "--baseline", str(baseline_file), "--logs", str(logs), "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr
    out = orjson.loads(proc.stdout)
    assert out["window"]["records"] == 40 and out["window"]["rejected"] == 2
    assert "nests objects deeper than" in proc.stderr and "'predwatch.model.name' is a JSON object" in proc.stderr


def test_poison_pills_never_wedge_ship(es, tmp_path):
    name_obj = good_records(1, start=99)[0]
    name_obj["predwatch"]["model"]["name"] = {"x": 1}
    log = write_lines(tmp_path / "p.jsonl", good_records(30), {5: deep_line(), 15: orjson.dumps(name_obj)})
    shipper = Shipper(make_client(es.settings), [str(log)], state_dir=tmp_path / "state", prefix=es.prefix)
    stats = shipper.run(once=True)
    assert stats["sent"] == 30 and stats["rejected"] == 2
    es.refresh()
    assert len(ids_in(es)) == 30
    reasons = [d["reason"] for d in dead_letters(tmp_path / "state" / "dead-letter.jsonl")]
    assert any("deeper than" in r for r in reasons) and any("model.name" in r for r in reasons)
    assert next(iter(shipper.offsets.files.values())).offset == log.stat().st_size


def test_poison_pills_from_the_logger_are_dead_lettered_not_shipped(es, tmp_path):
    handler = ElasticsearchHandler(make_client(es.settings), prefix=es.prefix, spool_dir=tmp_path, flush_interval=0.05)
    plog = plog_to(handler)
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["a"] = {}
        node = node["a"]
    ids = [plog.log(features(i), 0.5) for i in range(20)]
    plog.log({"amount": 1.0, "nested": deep}, 0.5)
    assert handler.flush(30)
    handler.close()
    assert sorted(ids_in(es)) == sorted(ids)
    assert handler.stats["rejected"] == 1
    assert "deeper than" in dead_letters(handler.dead_letters.path)[0]["reason"]


# -- 2. refused credentials are an outage, not a verdict -------------------------------------------------

def test_ship_keeps_records_while_credentials_are_refused(es, gate, tmp_path, caplog):
    log = write_jsonl(tmp_path / "p.jsonl", good_records(50))
    gate.status = 401
    shipper = Shipper(make_client(osmem_settings(gate.url)), [str(log)], state_dir=tmp_path / "state",
                      prefix=es.prefix, poll_interval=0.05)
    shipper._backoff.base, shipper._backoff.cap = 0.05, 0.1
    with caplog.at_level(logging.WARNING, logger="predwatch.ship"):
        thread = threading.Thread(target=shipper.run, daemon=True)
        thread.start()
        assert wait_until(lambda: gate.refused >= 5, 20)
        assert shipper.stats["rejected"] == 0 and not (tmp_path / "state" / "dead-letter.jsonl").exists()
        assert all(st.offset == 0 for st in shipper.offsets.files.values()), "offsets wait for delivery"
        gate.status = 403
        assert wait_until(lambda: gate.refused >= 10, 20)
        gate.status = None
        assert wait_until(lambda: shipper.stats["sent"] == 50, 30)
        shipper.stop.set()
        thread.join(10)
    said = [r.getMessage() for r in caplog.records if "refuses the credentials" in r.getMessage()]
    assert len(said) == 1, "loud, and at most once a minute"
    es.refresh()
    assert len(ids_in(es)) == 50


def test_handler_spools_while_credentials_are_refused_and_delivers_after(es, gate, tmp_path):
    gate.status = 401
    handler = ElasticsearchHandler(make_client(osmem_settings(gate.url)), prefix=es.prefix, spool_dir=tmp_path,
                                   flush_interval=0.05)
    handler._backoff.base, handler._backoff.cap = 0.05, 0.2
    plog = plog_to(handler)
    ids = [plog.log(features(i), 0.1) for i in range(40)]
    assert wait_until(lambda: handler.stats["spooled"] >= 40, 20)
    assert handler.stats["rejected"] == 0
    gate.status = None
    assert handler.flush(30)
    handler.close()
    assert sorted(ids_in(es)) == sorted(ids) and handler.stats["rejected"] == 0


# -- 3. one bad document never sinks its batch ----------------------------------------------------------

def test_an_overlong_prediction_id_is_hashed_not_fatal_to_its_batch(es, tmp_path):
    recs = good_records(10)
    recs[4]["predwatch"]["prediction_id"] = "x" * 600
    log = write_jsonl(tmp_path / "p.jsonl", recs)
    stats = Shipper(make_client(es.settings), [str(log)], state_dir=tmp_path / "s", prefix=es.prefix).run(once=True)
    assert stats["sent"] == 10 and stats["rejected"] == 0
    es.refresh()
    got = ids_in(es)
    assert len(got) == 10 and all(len(i.encode()) <= 512 for i in got)


def test_a_refused_whole_request_is_split_until_only_the_offender_is_left(es, gate):
    docs = [Doc(f"{es.prefix}-predictions-m.2026.01.01", f"d{i}", orjson.dumps({"i": i, "tag": "ok"}))
            for i in range(9)]
    docs[6] = Doc(docs[6].index, "d6", orjson.dumps({"i": 6, "tag": "POISON"}))
    docs.append(Doc("x" * 300, "long-index", b"{}"))
    gate.poison = b"POISON"
    outcome = send_bulk(make_client(osmem_settings(gate.url)), docs)
    assert outcome.created == 8 and not outcome.retry
    assert sorted(d.id for d, _ in outcome.rejected) == ["d6", "long-index"]
    assert "index name" in dict((d.id, r) for d, r in outcome.rejected)["long-index"]


# -- 4. model names that prefix each other --------------------------------------------------------------

def test_models_whose_names_prefix_each_other_keep_apart(es, baseline):
    import dataclasses

    churn = dataclasses.replace(baseline, model="churn")
    churn_v2 = dataclasses.replace(baseline, model="churn-v2")
    store_baseline(es.client, churn, es.prefix)
    store_baseline(es.client, churn_v2, es.prefix)  # overlapping patterns at equal priority would be a 400
    patterns = [es.client.indices.get_index_template(name=f"{es.prefix}-predictions-{m}")["index_templates"][0]
                ["index_template"]["index_patterns"][0] for m in ("churn", "churn-v2")]
    import fnmatch
    assert not fnmatch.fnmatch(c.prediction_index("churn-v2", "2026-11-20", f"{es.prefix}-predictions"), patterns[0])
    seed(es, good_records(30, "churn") + good_records(20, "churn-v2"))
    for model, n in (("churn", 30), ("churn-v2", 20)):
        prof = EsWindowProfiler(es.client, dataclasses.replace(baseline, model=model), prefix=es.prefix)
        window = prof.profile("2026-11-22T00:00:00.000Z", "2026-11-23T00:00:00.000Z")
        assert window.records == n
    assert c.index_safe("Churn") != c.index_safe("churn") and "_" in c.index_safe("Churn")


# -- 5. findings that no longer hold are cleared ----------------------------------------------------------

def test_a_reanalysed_window_keeps_only_its_current_findings(es, baseline):
    store_baseline(es.client, baseline, es.prefix)
    config = config_for(es)
    job = config.models[0]
    analyzer = Analyzer(es.client, config)
    start, end = T0, T0 + timedelta(hours=1)
    first = analyzer.analyze_window(job, start, end, refresh=True)
    assert first["findings"] >= 1  # no_data

    def window_findings() -> list[str]:
        es.refresh()
        hits = es.client.search(index=res.findings_index(es.prefix), size=100,
                                query={"term": {res.WINDOW_START: iso(start)}})["hits"]["hits"]
        return [h["_source"]["predwatch"]["check"] for h in hits]

    assert "no_data" in window_findings()
    seed(es, frame_records(synth.table(300, seed=12), start, 3000))
    again = analyzer.analyze_window(job, start, end, refresh=True)
    assert again["records"] == 300 and again["findings"] == 0
    assert window_findings() == [], "the earlier no_data finding is gone"


# -- 6. orphaned spool slots are replayed ---------------------------------------------------------------

def test_spools_of_stopped_processes_are_adopted_and_delivered(es, tmp_path):
    orphan = Spool(tmp_path / "slot-1")
    docs = [Doc(c.prediction_index("checkout-risk", "2026-11-22", f"{es.prefix}-predictions"), f"orphan-{i}",
                orjson.dumps(good_records(1, start=i)[0])) for i in range(25)]
    orphan.append(docs)
    orphan.close()
    handler = ElasticsearchHandler(make_client(es.settings), prefix=es.prefix, spool_dir=tmp_path, flush_interval=0.05)
    assert handler.spool_dir.name == "slot-0"
    assert handler.flush(30)
    handler.close()
    assert sorted(ids_in(es)) == sorted(d.id for d in docs)
    assert not list((tmp_path / "slot-1").glob("spool-*.ndjson"))


# -- 7. mapping traps -----------------------------------------------------------------------------------

def test_date_like_categories_mixed_labels_and_ecs_message(each_engine):
    es = each_engine  # the same test on each real engine
    first = good_records(1)[0]
    first["predwatch"]["features"]["country"] = "2026-01-15"
    first["labels"] = {"tenant": 5}
    second = good_records(1, start=1)[0]
    second["predwatch"]["features"]["country"] = "DE"
    second["labels"] = {"tenant": "eu-1"}
    seed(es, [first])
    seed(es, [second])  # after the first one set the mapping
    mapping = next(iter(es.client.indices.get_mapping(index=f"{es.prefix}-predictions-*").values()))["mappings"]
    assert mapping["properties"]["predwatch"]["properties"]["features"]["properties"]["country"]["type"] == "keyword"
    assert mapping["properties"]["labels"]["properties"]["tenant"]["type"] == "keyword"
    assert mapping["properties"]["message"]["type"] == ("text" if stood_in(es) else "match_only_text")
    assert len(ids_in(es)) == 2


# -- 11. smaller edges ----------------------------------------------------------------------------------

def test_configure_twice_replaces_its_own_handler():
    import io

    from logging_adapter import PredictionLogger, configure

    first, second = io.StringIO(), io.StringIO()
    configure(stream=first, logger="test.configure.twice")
    configure(stream=second, logger="test.configure.twice")  # a re-run notebook cell
    PredictionLogger("m", "1", logger=logging.getLogger("test.configure.twice")).log({"a": 1}, 0.5)
    assert first.getvalue() == "" and len(second.getvalue().splitlines()) == 1


def test_ship_once_gives_up_on_an_unreachable_cluster_with_exit_4(tmp_path):
    from conftest import free_port

    log = write_jsonl(tmp_path / "p.jsonl", good_records(5))
    started = time.monotonic()
    proc = predwatch("ship", str(log), "--once", "--timeout", "2", "--state-dir", str(tmp_path / "s"),
                     "--es-url", f"http://127.0.0.1:{free_port()}", "--es-distribution", "opensearch", timeout=60)
    assert proc.returncode == 4, proc.stderr
    assert time.monotonic() - started < 30
    assert "did not take 5 record(s)" in proc.stderr and "run again" in proc.stderr


def test_ship_once_says_what_it_could_not_ship(es, tmp_path):
    log = write_jsonl(tmp_path / "p.jsonl", good_records(3))
    with log.open("ab") as fh:
        fh.write(orjson.dumps(good_records(1, start=50)[0]))  # no newline: its writer is not done
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + orjson.dumps(good_records(1, start=70)[0]) + b"\n")
    es_args = ["--es-url", es.url, "--es-distribution", "opensearch", "--prefix", es.prefix]
    proc = predwatch("ship", str(log), str(bom), "--once", "--state-dir", str(tmp_path / "s"), *es_args)
    assert proc.returncode == 0, proc.stderr
    assert "shipped 4 new" in proc.stdout and "0 dead-lettered" in proc.stdout, "the BOM line is accepted"
    assert "has no newline yet" in proc.stderr and str(log) in proc.stderr
    for args, said in (([str(tmp_path)], "a directory"), ([str(tmp_path / "nothing-*.jsonl")], "no file matches")):
        proc = predwatch("ship", *args, "--once", "--state-dir", str(tmp_path / "s"), *es_args)
        assert proc.returncode == 2 and said in proc.stderr, proc.stderr


def test_report_from_elasticsearch_before_any_analysis_says_so(es, tmp_path):
    proc = predwatch("report", "--es", "--model", "checkout-risk", "--out", str(tmp_path / "r.html"),
                     "--es-url", es.url, "--es-distribution", "opensearch", "--prefix", es.prefix)
    assert proc.returncode == 2 and "nothing analysed yet" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r.html").exists()
