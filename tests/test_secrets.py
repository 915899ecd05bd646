"""Secrets and privacy: credentials in URLs, types in predwatch.toml, plain http, redact= and hash= at depth."""
from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler

import orjson
import pytest

from conftest import LoopbackServer, formatted_logger, free_port, terminate
from logging_adapter.elastic import EsSettings, make_client, safe_url

SECRET = "s3cr3t-Pa55"


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "predwatch", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def answering(answer: dict, seen: list[str], headers: dict[str, str] | None = None) -> LoopbackServer:
    """A loopback server that notes each request's Authorization header and answers ``answer`` as JSON."""
    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.headers.get("Authorization", ""))
            body = orjson.dumps(answer)
            self.send_response(200)
            for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _any

        def log_message(self, *args) -> None:
            pass

    server = LoopbackServer()
    server.serve(Handler)
    return server


# -- 24.11: a URL's credentials are used, never printed ------------------------------------------------

def test_url_credentials_never_appear_in_errors_and_are_still_used(tmp_path):
    """A down cluster: the error names the URL without ``user:password@``; a live one gets them as basic auth."""
    url = f"http://elastic:{SECRET}@127.0.0.1:{free_port()}"
    for env in ({}, {"PREDWATCH_ES_URL": url}):
        proc = run_cli("setup", *([] if env else ["--es-url", url]), env=env)
        assert proc.returncode == 2, proc.stderr
        assert SECRET not in proc.stdout + proc.stderr and "elastic:" not in proc.stderr, proc.stderr
        assert "127.0.0.1" in proc.stderr

    seen: list[str] = []

    server = answering({"version": {"number": "8.15.0"}, "tagline": "You Know, for Search"}, seen,
                       {"X-Elastic-Product": "Elasticsearch"})
    try:
        settings = EsSettings.from_env(env={}, url=server.url.replace("http://", f"http://elastic:{SECRET}@"))
        assert SECRET not in settings.url and SECRET not in repr(settings) and SECRET not in settings.describe()
        make_client(settings).info()
        assert seen == ["Basic " + base64.b64encode(f"elastic:{SECRET}".encode()).decode()]
    finally:
        server.close()
    assert safe_url(f"https://u:{SECRET}@host:9200/x?y=1") == "https://host:9200/x?y=1"
    assert safe_url(f"u:{SECRET}@host:9200") == "host:9200"  # without a scheme too (a usage error elsewhere)
    assert safe_url(f"http://u:p@{SECRET}@host:9200/a@b") == "http://host:9200/a@b"  # an "@" in the password


def test_the_daemon_start_line_shows_no_credentials(es, tmp_path):
    cfg = tmp_path / "predwatch.toml"
    cfg.write_text(f'[elasticsearch]\nprefix = "{es.prefix}"\ndistribution = "{es.settings.distribution}"\n'
                   '[[models]]\nname = "m"\nwindow = "1h"\n')
    url = es.settings.url.replace("://", f"://elastic:{SECRET}@", 1)
    proc = subprocess.Popen([sys.executable, "-m", "predwatch", "daemon", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PREDWATCH_ES_URL": url})
    try:
        deadline = time.time() + 60
        lines = []
        while time.time() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "predwatch daemon:" in line or not line:
                break
    finally:
        _, rest = terminate(proc)
    text = "".join(lines) + rest
    assert "predwatch daemon:" in text, text
    assert SECRET not in text and "elastic:" not in text, text


def test_credentials_in_the_config_file_url_are_refused(tmp_path):
    cfg = tmp_path / "predwatch.toml"
    cfg.write_text(f'[elasticsearch]\nurl = "http://elastic:{SECRET}@127.0.0.1:9200"\n[[models]]\nname = "m"\n')
    proc = run_cli("status", "--config", str(cfg))
    assert proc.returncode == 2, proc.stderr
    assert "[elasticsearch] url" in proc.stderr and "PREDWATCH_ES_PASSWORD" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# -- 24.14: types in predwatch.toml, secrets over plain http ---------------------------------------

@pytest.mark.parametrize("line, key", [('verify_certs = "false"', "verify_certs"),
                                       ("verify_certs = 0", "verify_certs"),
                                       ('request_timeout = "30"', "request_timeout"),
                                       ("ca_certs = true", "ca_certs")])
def test_config_values_of_the_wrong_type_are_refused_with_their_key(tmp_path, line, key):
    cfg = tmp_path / "predwatch.toml"
    cfg.write_text(f'[elasticsearch]\nurl = "https://127.0.0.1:9200"\n{line}\n[[models]]\nname = "m"\n')
    proc = run_cli("status", "--config", str(cfg))
    assert proc.returncode == 2, proc.stderr
    assert f"[elasticsearch] {key} must be" in proc.stderr and "Traceback" not in proc.stderr


def test_a_boolean_verify_certs_is_taken(tmp_path):
    from analyzers.daemon.config import DaemonConfig

    cfg = tmp_path / "predwatch.toml"
    cfg.write_text('[elasticsearch]\nurl = "https://127.0.0.1:9200"\nverify_certs = false\n')
    assert DaemonConfig.load(cfg).settings.verify_certs is False


def test_secrets_over_plain_http_are_warned_about_once(caplog):
    with caplog.at_level(logging.WARNING, logger="predwatch"):
        for _ in range(3):
            make_client(EsSettings(url="http://127.0.0.1:19201", api_key="k3y"))
            make_client(EsSettings(url="http://127.0.0.1:19201", username="u", password=SECRET))
        make_client(EsSettings(url="https://127.0.0.1:19201", api_key="k3y"))
        make_client(EsSettings(url="http://127.0.0.1:19202"))  # no secret: nothing to say
    said = [r.getMessage() for r in caplog.records if "plain http" in r.getMessage()]
    assert len(said) == 1 and "127.0.0.1:19201" in said[0] and "k3y" not in said[0] and SECRET not in said[0]


# -- 24.13: redact= and hash= by path, at any depth ------------------------------------------------

KEY = "k" * 16


@pytest.fixture
def capture():
    """A fresh logger writing through PredictionFormatter into a buffer; yields (logger, raw text)."""
    yield formatted_logger()


def test_redact_and_hash_apply_by_path_at_any_depth(capture):
    from logging_adapter import PredictionLogger

    logger, buf = capture
    plog = PredictionLogger("m", logger=logger, hash_key=KEY,
                            redact=["customer.email", "orders.card", "ssn", "meta.deep.phone"],
                            hash=["customer.id", "orders.sku", "tags"])
    features = {"ssn": "078-05-1120", "amount": 12.5,
                "customer": {"email": "ann@example.com", "id": "cust-42", "age": 31},
                "orders": [{"card": "4111111111111111", "sku": "sku-1", "qty": 2}, {"card": "5500000000000004"}],
                "meta.deep.phone": "+1-555-0100", "meta": {"deep": {"phone": "+1-555-0199", "ok": 1}},
                "tags": ["vip", "eu"]}
    plog.log(features, 0.5)
    plog.log(features, 0.5)
    text = buf.getvalue()
    for secret in ("078-05-1120", "ann@example.com", "cust-42", "4111111111111111", "5500000000000004", "sku-1",
                   "+1-555-0100", "+1-555-0199", "vip"):
        assert secret not in text, secret
    a, b = (orjson.loads(line)["predwatch"]["features"] for line in text.splitlines())
    assert a["amount"] == 12.5 and a["customer"]["age"] == 31 and a["orders"][0]["qty"] == 2
    assert "email" not in a["customer"] and "card" not in a["orders"][0] and a["orders"][1] == {}
    assert a["meta"] == {"deep": {"ok": 1}} and "meta.deep.phone" not in a
    assert len(a["customer"]["id"]) == 64 and a["customer"]["id"] == b["customer"]["id"]  # joinable
    assert len(a["orders"][0]["sku"]) == 64 and len(a["tags"]) == 2 and a["tags"][0] != a["tags"][1]
    assert features["customer"]["email"] == "ann@example.com", "the caller's objects are not modified"


@pytest.mark.parametrize("key", ["k", b"x" * 15, "short-key"])
def test_a_hash_key_shorter_than_16_bytes_is_refused(key, monkeypatch):
    from logging_adapter import PredictionLogger

    with pytest.raises(ValueError, match="at least 16"):
        PredictionLogger("m", hash=["email"], hash_key=key)
    monkeypatch.setenv("PREDWATCH_HASH_KEY", "abc")
    with pytest.raises(ValueError, match="hash_key is 3 bytes"):
        PredictionLogger("m", hash=["email"])
    PredictionLogger("m", hash=["email"], hash_key=b"x" * 16)


def test_kibana_url_credentials_are_used_and_never_printed():
    seen: list[str] = []

    server = answering({"success": True, "successResults": [{"type": "dashboard", "id": "d"}]}, seen)
    env = {k: "" for k in os.environ if k.startswith(("PREDWATCH_KIBANA_", "PREDWATCH_ES_"))}
    try:
        proc = run_cli("kibana", "install", "--kibana-url", server.url.replace("://", f"://admin:{SECRET}@"), env=env)
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    assert seen == ["Basic " + base64.b64encode(f"admin:{SECRET}".encode()).decode()]
    assert "dashboard: http://127.0.0.1" in proc.stdout and SECRET not in proc.stdout + proc.stderr
    down = run_cli("kibana", "install", "--kibana-url", f"http://admin:{SECRET}@127.0.0.1:{free_port()}", env=env)
    assert down.returncode == 2 and "cannot reach Kibana at http://127.0.0.1" in down.stderr
    assert SECRET not in down.stdout + down.stderr


def test_an_unreadable_verify_certs_in_the_environment_is_refused_not_taken_as_true():
    assert EsSettings.from_env(env={"PREDWATCH_ES_VERIFY_CERTS": "Off"}).verify_certs is False
    assert EsSettings.from_env(env={"PREDWATCH_ES_VERIFY_CERTS": "yes"}).verify_certs is True
    with pytest.raises(ValueError, match="PREDWATCH_ES_VERIFY_CERTS"):
        EsSettings.from_env(env={"PREDWATCH_ES_VERIFY_CERTS": "flase"})
    proc = run_cli("setup", "--es-url", "https://127.0.0.1:1", env={"PREDWATCH_ES_VERIFY_CERTS": "nope"})
    assert proc.returncode == 2 and "PREDWATCH_ES_VERIFY_CERTS" in proc.stderr and "Traceback" not in proc.stderr
