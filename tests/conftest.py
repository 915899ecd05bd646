"""Shared fixtures: the synthetic model's baseline, windows, and a headless browser."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import synth  # noqa: E402

from analyzers.core.baseline import Baseline, build_baseline  # noqa: E402


@pytest.fixture(scope="session")
def baseline() -> Baseline:
    return build_baseline(synth.table(50_000, seed=1), model="checkout-risk", version="7",
                          kinds=synth.KINDS, predictions=["score"])


@pytest.fixture(scope="session")
def baseline_file(baseline, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("baseline") / "baseline.json"
    baseline.save(path)
    return path


def write_jsonl(path: Path, records) -> Path:
    with path.open("wb") as fh:
        for rec in records:
            fh.write(orjson.dumps(rec) + b"\n")
    return path


def find_browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser() -> str:
    found = find_browser()
    if not found:
        if os.environ.get("PREDWATCH_REQUIRE_BROWSER"):
            pytest.fail("no headless browser found (install Debian's chromium) and PREDWATCH_REQUIRE_BROWSER is set")
        pytest.skip("no headless browser found: install Debian's chromium to run the report screenshot tests")
    return found


def screenshot(browser: str, page: Path, out: Path, tmp: Path, size: str = "1280,2000") -> tuple[Path, str]:
    """Headless Chromium: a PNG of the page and the DOM after scripts ran (``--dump-dom``)."""
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
             f"--window-size={size}"]
    subprocess.run(flags + [f"--screenshot={out}", page.as_uri()], check=True, capture_output=True, timeout=120)
    dom = subprocess.run(flags + ["--dump-dom", page.as_uri()], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    return out, dom


def page_metrics(browser: str, page, tmp_path, width: int) -> dict:
    """Load a copy of the page with a measuring script (the report itself runs none) and read what it measured."""
    import re

    probe = tmp_path / f"probe-{width}.html"
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page.read_text())
    script = ("<script>window.onload=()=>{const w=document.querySelector('details[open] td.what')||document.querySelector('main > table.findings td.what');document.title=JSON.stringify("
              "{scroll:document.documentElement.scrollWidth,view:innerWidth,"
              "what:w?w.getBoundingClientRect().width:null}).replaceAll('\"',\"'\")}</script>")
    probe.write_text(html.replace("</body>", script + "</body>"))
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             f"--user-data-dir={tmp_path / 'probe-profile'}", f"--window-size={width},1200", "--dump-dom",
             probe.as_uri()]
    dom = subprocess.run(flags, check=True, capture_output=True, text=True, timeout=120).stdout
    return orjson.loads(re.search(r"<title>(.*?)</title>", dom).group(1).replace("'", '"'))


# -- Elasticsearch: osmem-server by default, a real cluster when PREDWATCH_TEST_ES_URL is set ---------

import socket  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from logging_adapter import templates  # noqa: E402
from logging_adapter.elastic import EsSettings, make_client  # noqa: E402

REAL_ES = os.environ.get("PREDWATCH_TEST_ES_URL")


@dataclass
class Cluster:
    """What a test needs to talk to its own Elasticsearch: settings, a client, an index prefix."""

    settings: EsSettings
    client: object
    prefix: str

    @property
    def url(self) -> str:
        return self.settings.url

    def refresh(self) -> None:
        self.client.indices.refresh(index=f"{self.prefix}-*", allow_no_indices=True)

    def docs(self, pattern: str = "predictions-*", size: int = 10_000) -> list[dict]:
        """Every document under ``<prefix>-<pattern>`` (tests keep their fixtures small)."""
        self.refresh()
        resp = self.client.search(index=f"{self.prefix}-{pattern}", size=size, query={"match_all": {}},
                                  ignore_unavailable=True, allow_no_indices=True)
        return resp["hits"]["hits"]

    def es_args(self) -> list[str]:
        return ["--es-url", self.url, "--es-distribution", self.settings.distribution, "--prefix", self.prefix]


def osmem_settings(url: str) -> EsSettings:
    return EsSettings(url=url, distribution="opensearch")


@pytest.fixture(scope="session")
def osmem_server():
    """The session's in-memory server: templates installed on the base, then frozen; tests get clones."""
    from osmem_server import OsmemServer

    if REAL_ES:
        yield None
        return
    server = OsmemServer.start(freeze=False)
    client = make_client(osmem_settings(server.url))
    templates.install(client, prefix="predwatch", extra=_setup_extras("predwatch"))
    server.freeze()
    yield server
    server.close()


def _setup_extras(prefix: str) -> list[dict]:
    from predwatch.cli.records import setup_extras
    return setup_extras(prefix)


@pytest.fixture
def es(request) -> Cluster:
    """A copy-on-write clone of the base per test, or a unique prefix on the real cluster."""
    if REAL_ES:
        settings = EsSettings.from_env(url=REAL_ES)
        client = make_client(settings)
        prefix = f"pwtest{uuid.uuid4().hex[:10]}"
        templates.install(client, prefix=prefix, extra=_setup_extras(prefix))
        yield Cluster(settings, client, prefix)
        client.indices.delete(index=f"{prefix}-*", ignore_unavailable=True, allow_no_indices=True)
        for name in client.indices.get_index_template(name=f"{prefix}-*").get("index_templates", []):
            client.indices.delete_index_template(name=name["name"])
        return
    clone = request.getfixturevalue("osmem_clone")
    settings = osmem_settings(clone.url)
    yield Cluster(settings, make_client(settings), "predwatch")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.2) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; returns its last value."""
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def terminate(proc, timeout: float = 60) -> tuple[str, str]:
    """SIGTERM a child process and collect its output (killed if it does not stop in time)."""
    import signal
    try:
        proc.send_signal(signal.SIGTERM)
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()


class LoopbackServer:
    """A real HTTP server on 127.0.0.1 in a thread, for a request handler class; ``close()`` stops it."""

    def serve(self, handler: type) -> None:
        from http.server import ThreadingHTTPServer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
