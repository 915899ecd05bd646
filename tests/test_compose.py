"""docker-compose.yml, checked without a Docker engine: it validates, and every command it runs exists."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from alerting.watches import AlertConfig
from predwatch.cli import build_parser
from analyzers.daemon.config import DaemonConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict:
    yaml = pytest.importorskip("yaml")
    binary = os.environ.get("PREDWATCH_DOCKER_COMPOSE") or shutil.which("docker-compose")
    if not binary:
        if os.environ.get("PREDWATCH_REQUIRE_COMPOSE"):
            pytest.fail("docker-compose (PyPI 1.29.2) not found and PREDWATCH_REQUIRE_COMPOSE is set")
        pytest.skip("docker-compose not found: .ci/run installs PyPI docker-compose 1.29.2 in its own venv")
    proc = subprocess.run([binary, "--env-file", str(ROOT / ".env.example"), "-f", str(ROOT / "docker-compose.yml"),
                           "config"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def predwatch_commands(service: dict) -> list[list[str]]:
    """The argv of every command a service runs (``sh -c "a && b"`` is two)."""
    command = service.get("command") or []
    if isinstance(command, str):
        command = shlex.split(command)
    if command[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in command[2].split("&&")]
    return [command]


def test_compose_validates_and_comes_up_in_order(compose):
    services = compose["services"]
    assert {"setup", "es01", "kibana", "predwatch-setup", "model", "traffic", "shipper", "daemon"} <= set(services)
    for name in ("es01", "kibana", "model"):
        assert "healthcheck" in services[name], name
    assert services["es01"]["depends_on"]["setup"]["condition"] == "service_healthy"
    assert services["kibana"]["depends_on"]["es01"]["condition"] == "service_healthy"
    for name in ("shipper", "daemon", "model"):
        assert services[name]["depends_on"]["predwatch-setup"]["condition"] == "service_completed_successfully"
    assert services["daemon"]["deploy"]["replicas"] == 2, "two daemons share the models through leases"
    env = services["es01"]["environment"]
    assert env["discovery.type"] == "single-node" and env["xpack.security.enabled"] == "true"
    assert len(services["kibana"]["environment"]["XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY"]) >= 32
    setup = services["setup"]["command"]
    setup = setup if isinstance(setup, str) else " ".join(setup)
    assert "kibana_system/_password" in setup and "elasticsearch-certutil cert" in setup
    script = shlex.split(setup)[2]  # bash -c '<script>': every line a whole command (no broken continuations)
    for line in script.splitlines():
        assert not line.rstrip().endswith(("--ca-cert", "-H", "-u")), line
    check = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_every_command_the_stack_runs_exists_in_the_cli(compose):
    parser = build_parser()
    seen = set()
    for name, service in compose["services"].items():
        if not str(service.get("image", "")).startswith("predwatch"):
            continue
        for argv in predwatch_commands(service):
            assert argv[0] == "predwatch", (name, argv)
            try:
                args = parser.parse_args(argv[1:])
            except SystemExit:
                pytest.fail(f"{name}: `{' '.join(argv)}` is not a valid predwatch command")
            seen.add(args.command)
    assert {"setup", "kibana", "alerts", "demo-service", "demo-traffic", "ship", "daemon"} <= seen


def test_env_example_defines_every_variable_and_the_config_loads():
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{(\w+)\}", text))
    defined = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    assert used <= defined, used - defined
    import tomllib
    doc = tomllib.loads((ROOT / "deploy" / "predwatch.toml").read_text())
    config = DaemonConfig.from_dict(doc)
    assert config.models[0].name == "flight-delay" and config.retention_days == 30
    AlertConfig.from_dict(doc["alerts"])
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src
