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


def formatted_logger():
    """A fresh logger writing through ``PredictionFormatter`` into a buffer: (logger, buffer)."""
    import io
    import logging
    import uuid

    from logging_adapter import PredictionFormatter

    buf = io.StringIO()
    logger = logging.getLogger(f"test.{uuid.uuid4().hex}")
    handler = logging.StreamHandler(buf)
    handler.setFormatter(PredictionFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, buf


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


WIDTH_PROBE = ("<script>window.onload=()=>{const w=document.querySelector('details[open] td.what')||document.querySelector('main > table.findings td.what');document.title=JSON.stringify("
               "{scroll:document.documentElement.scrollWidth,view:innerWidth,"
               "what:w?w.getBoundingClientRect().width:null}).replaceAll('\"',\"'\")}</script>")


def page_metrics(browser: str, page, tmp_path, width: int, script: str = WIDTH_PROBE, name: str = "probe") -> dict:
    """Load a copy of the page with a measuring ``script`` (the report itself runs none; the script writes what it
    measured into the title as JSON) and read what it measured."""
    import re

    probe = tmp_path / f"{name}-{width}.html"
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page.read_text())
    probe.write_text(html.replace("</body>", script + "</body>"))
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             f"--user-data-dir={tmp_path / f'{name}-profile'}", f"--window-size={width},1200", "--dump-dom",
             probe.as_uri()]
    dom = subprocess.run(flags, check=True, capture_output=True, text=True, timeout=120).stdout
    return orjson.loads(re.search(r"<title>(.*?)</title>", dom).group(1).replace("'", '"'))


# -- Clusters: a real Elasticsearch node by default, started once per session ---------------------------
#
# PREDWATCH_TEST_ES_URL        any external cluster (unique index prefixes per test, removed afterwards)
# PREDWATCH_TEST_ENGINE        elasticsearch (default) | opensearch | osmem (the in-memory emulator, a fast extra)
# PREDWATCH_REQUIRE_ENGINES=1  a real engine that cannot start is a failure, not a skip (CI sets it)

import signal  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from logging_adapter import templates  # noqa: E402
from logging_adapter.elastic import EsSettings, make_client  # noqa: E402

REAL_ES = os.environ.get("PREDWATCH_TEST_ES_URL")
ENGINE = os.environ.get("PREDWATCH_TEST_ENGINE", "elasticsearch")
EMULATED = not REAL_ES and ENGINE == "osmem"  # the in-memory emulator: clones per test, no real engine
ENGINES = Path(__file__).parent / "engines"
ENGINE_START_TIMEOUT = 900.0  # a cold start fetches the engine's jars from Maven Central first


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


class Engine:
    """One real search engine node for the test session: ``tests/engines/run ENGINE`` in a process group."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.version = ""

    def start(self) -> None:
        missing = [tool for tool in ("java", "javac", "mvn") if not shutil.which(tool)]
        if missing:
            raise RuntimeError(f"cannot start {self.name}: {', '.join(missing)} not found (install a JDK 17 and Maven)")
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"predwatch-test-{self.name}-{os.getpid()}.log"
        self.proc = subprocess.Popen([str(ENGINES / "run"), self.name], stdout=subprocess.PIPE,
                                     stderr=log.open("wb"), text=True, start_new_session=True)
        deadline = time.time() + ENGINE_START_TIMEOUT
        line = ""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("ready "):
                break
            if not line and self.proc.poll() is not None:
                tail = log.read_text(errors="replace")[-1500:]
                raise RuntimeError(f"{self.name} did not start (exit {self.proc.returncode}); its log ends:\n{tail}")
        else:
            self.stop()
            raise RuntimeError(f"{self.name} gave no ready line in {ENGINE_START_TIMEOUT:.0f} s (log: {log})")
        self.url = line.split()[1].strip()
        info = make_client(self.settings()).info()
        self.version = f"{info['version'].get('distribution', 'elasticsearch')} {info['version']['number']}"

    def settings(self) -> EsSettings:
        return EsSettings(url=self.url, distribution="opensearch" if self.name == "opensearch" else "elasticsearch",
                          request_timeout=30.0)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


_engines: dict[str, Engine | Exception] = {}


def engine(name: str) -> Engine:
    """The session's node of ``name``, started on first use; skips (or fails, under PREDWATCH_REQUIRE_ENGINES)
    with one line when it cannot start."""
    if name not in _engines:
        node = Engine(name)
        try:
            node.start()
            _engines[name] = node
        except Exception as exc:  # noqa: BLE001 - said once, for every test that needs this engine
            _engines[name] = exc
    found = _engines[name]
    if isinstance(found, Exception):
        if os.environ.get("PREDWATCH_REQUIRE_ENGINES"):
            pytest.fail(f"real engine required (PREDWATCH_REQUIRE_ENGINES): {found}", pytrace=False)
        pytest.skip(f"no real {name} node: {str(found).splitlines()[0]}")
    return found


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001 - pytest hook
    for node in _engines.values():
        if isinstance(node, Engine):
            node.stop()


def pytest_report_header(config):  # noqa: ARG001 - pytest hook
    if REAL_ES:
        return f"cluster tests: external cluster {REAL_ES}"
    return f"cluster tests: {'osmem-server (emulator)' if EMULATED else 'a real ' + ENGINE + ' node (tests/engines/run)'}"


def pytest_terminal_summary(terminalreporter):
    started = [n for n in _engines.values() if isinstance(n, Engine)]
    if started:
        terminalreporter.write_line("engines: " + ", ".join(f"{n.version} at {n.url}" for n in started))


@pytest.fixture(scope="session")
def osmem_server():
    """The session's in-memory server: templates installed on the base, then frozen; tests get clones."""
    from osmem_server import OsmemServer

    server = OsmemServer.start(freeze=False)
    client = make_client(osmem_settings(server.url))
    templates.install(client, prefix="predwatch", extra=_setup_extras("predwatch"))
    server.freeze()
    yield server
    server.close()


def _setup_extras(prefix: str) -> list[dict]:
    from predwatch.cli.records import setup_extras
    return setup_extras(prefix)


def delete_indices(client, pattern: str) -> None:
    """Delete the indices matching ``pattern`` by their names (Elasticsearch 8 refuses wildcard deletes:
    ``action.destructive_requires_name`` is true by default)."""
    names = sorted(client.indices.get(index=pattern, ignore_unavailable=True, allow_no_indices=True,
                                      expand_wildcards="open,closed"))
    for i in range(0, len(names), 50):
        client.indices.delete(index=",".join(names[i:i + 50]), ignore_unavailable=True)


def prefixed_cluster(settings: EsSettings):
    """A unique index prefix on a shared cluster, with predwatch's templates; removed afterwards."""
    client = make_client(settings)
    prefix = f"pwtest{uuid.uuid4().hex[:10]}"
    templates.install(client, prefix=prefix, extra=_setup_extras(prefix))
    yield Cluster(settings, client, prefix)
    delete_indices(client, f"{prefix}-*")
    for name in client.indices.get_index_template(name=f"{prefix}-*").get("index_templates", []):
        client.indices.delete_index_template(name=name["name"])
    if settings.distribution == "elasticsearch" and REAL_ES is None:
        try:
            client.ilm.delete_lifecycle(name=f"{prefix}-predictions")
        except Exception:  # noqa: BLE001 - an engine without ILM
            pass


def stood_in(cluster: Cluster) -> bool:
    """Whether the node is the test Elasticsearch 8 node, whose ``match_only_text`` is a stand-in indexed as ``text``
    (Elastic publishes no mapper-extras module on Maven Central: tests/engines/README.md)."""
    plugins = cluster.client.nodes.info(metric="plugins")["nodes"].values()
    return any(p["name"].endswith("StandIns") for node in plugins for p in node.get("plugins", []))


def state_of(cluster: Cluster, key: str) -> dict | None:
    """A daemon state document, or None while the state index is still being created (a real engine answers 503
    for a shard that is still recovering): for tests that poll what a daemon process writes."""
    from elasticsearch import ApiError

    from analyzers.store.state import get_state
    try:
        return get_state(cluster.client, cluster.prefix, key)
    except ApiError as exc:
        if exc.meta.status != 503:
            raise
        return None


@pytest.fixture
def es(request) -> Cluster:
    """The test's own cluster: a unique prefix on the session's real node (or ``PREDWATCH_TEST_ES_URL``), or a
    copy-on-write clone of the emulator under ``PREDWATCH_TEST_ENGINE=osmem``."""
    if EMULATED:
        clone = request.getfixturevalue("osmem_clone")
        settings = osmem_settings(clone.url)
        yield Cluster(settings, make_client(settings), "predwatch")
        return
    settings = EsSettings.from_env(url=REAL_ES) if REAL_ES else engine(ENGINE).settings()
    yield from prefixed_cluster(settings)


@pytest.fixture(params=["elasticsearch", "opensearch"])
def each_engine(request) -> Cluster:
    """The test once on the real Elasticsearch node and once on the real OpenSearch node (one cluster only under
    ``PREDWATCH_TEST_ES_URL`` or the emulator)."""
    if request.param == "elasticsearch":
        return request.getfixturevalue("es")
    if REAL_ES or EMULATED:
        pytest.skip("one cluster: PREDWATCH_TEST_ES_URL or the emulator")
    return request.getfixturevalue("opensearch")


@pytest.fixture
def opensearch() -> Cluster:
    """A unique prefix on the session's real OpenSearch node, for what concerns OpenSearch in particular."""
    yield from prefixed_cluster(engine("opensearch").settings())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.2) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; returns its last value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def terminate(proc, timeout: float = 60) -> tuple[str, str]:
    """SIGTERM a child process and collect its output (killed if it does not stop in time)."""
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
