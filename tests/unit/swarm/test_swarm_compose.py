"""Golden stack files, and the health probe run for real by bash against a real server.

Each tests/golden/swarm/compose/<case>/ holds a deploy.yml with one swarm environment,
component folders (so stack detection runs as in a build), an optional swarm.yml with
SwarmSettings, an optional mounts.yml with the Docker secrets of the release's record, and
expected.yml: `compose.render(...)` for version v7, as `compose.to_yaml` writes it. With
monitoring on, prometheus.yml holds the manager's scrape configuration too. After an intended
change, regenerate and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/swarm/test_swarm_compose.py
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.config.loader import load_project
from deployer.config.models import Health, HttpCheck, TcpCheck
from deployer.config.resolve import Target, resolve
from deployer.config.swarm import SwarmSettings
from deployer.targets.swarm import compose
from deployer.targets.swarm.build import specs_of

GOLDEN = Path(__file__).parents[2] / "golden" / "swarm" / "compose"
CASES = sorted(p.parent for p in GOLDEN.glob("*/deploy.yml"))


def _case(case: Path) -> tuple[Target, SwarmSettings]:
    loaded = load_project(case / "deploy.yml")
    (env,) = loaded.project.environments
    extra = case / "swarm.yml"
    settings = SwarmSettings.model_validate(
        yaml.safe_load(extra.read_text()) if extra.exists() else {}
    )
    return resolve(loaded, env), settings


def _render(case: Path) -> dict[str, Any]:
    target, settings = _case(case)
    mounts = case / "mounts.yml"
    found = yaml.safe_load(mounts.read_text()) if mounts.exists() else None
    return compose.render(target, settings, specs_of(target, settings), "v7", found)


def _check(expected: Path, text: str) -> None:
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected.write_text(text)
    assert text == expected.read_text()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_compose(case: Path) -> None:
    _check(case / "expected.yml", compose.to_yaml(_render(case)))


@pytest.mark.parametrize(
    "case", [c for c in CASES if (c / "mounts.yml").exists()], ids=lambda c: c.name
)
def test_golden_prometheus_config_of_a_monitored_stack(case: Path) -> None:
    from deployer.targets.swarm.monitoring import scripts
    from deployer.targets.swarm.spec import stack_name

    target, settings = _case(case)
    work = scripts(target, stack_name(target, settings), specs_of(target, settings))
    _script, config = work[target.primary]
    assert config is not None
    _check(case / "prometheus.yml", config.decode())


def test_golden_cases_exist() -> None:
    assert {c.name for c in CASES} >= {"hello", "options", "secrets_monitoring"}


def test_hello_takes_replicas_resources_and_policy_from_the_config() -> None:
    web = _render(GOLDEN / "hello")["services"]["web"]
    assert web["deploy"]["replicas"] == 2
    assert web["deploy"]["resources"]["limits"] == {"cpus": "0.2", "memory": "48M"}
    assert web["deploy"]["resources"]["reservations"] == {"cpus": "0.2", "memory": "48M"}
    update = web["deploy"]["update_config"]
    assert update["order"] == "start-first"
    assert update["failure_action"] == "rollback"
    assert web["ports"] == [{"target": 8000, "published": 8000, "protocol": "tcp", "mode": "host"}]
    assert web["healthcheck"]["retries"] == 5
    site = _render(GOLDEN / "hello")["services"]["site"]
    assert site["ports"][0]["target"] == 80  # nginx-served: its own port, its own check
    assert "127.0.0.1/80 " in site["healthcheck"]["test"][3]


def test_options_turn_into_swarm_settings() -> None:
    services = _render(GOLDEN / "options")["services"]
    web, worker = services["web"], services["worker"]
    assert web["deploy"]["update_config"]["failure_action"] == "pause"  # automatic: false
    assert web["deploy"]["update_config"]["max_failure_ratio"] == 0.5  # budget 1 of 2
    assert web["deploy"]["update_config"]["order"] == "stop-first"  # 2 replicas, 2 nodes
    assert web["environment"]["PRICE_FORMAT"] == "$$0.00"  # not interpolated by docker
    assert "ports" not in worker
    assert worker["deploy"]["update_config"]["order"] == "start-first"  # nothing published
    assert worker["deploy"]["resources"]["reservations"] == {"cpus": "0.1", "memory": "64M"}


@pytest.mark.parametrize(
    ("value", "text"), [(0.5, "500ms"), (1, "1s"), (10.0, "10s"), (1.25, "1250ms"), (0, "0s")]
)
def test_seconds_are_go_durations(value: float, text: str) -> None:
    assert compose.seconds(value) == text


@pytest.fixture
def server() -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = (200, b"all ok\n") if self.path == "/healthz" else (404, b"nope\n")
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def _probe(health: Health, port: int) -> int:
    script = compose.probe_script(health, port)
    assert script is not None
    return subprocess.run(["bash", "-c", script], timeout=10).returncode


def test_http_probe_passes_on_status_and_body(server: int) -> None:
    assert _probe(Health(http=HttpCheck(path="/healthz", body="ok")), server) == 0


def test_http_probe_fails_on_wrong_status_body_or_port(server: int) -> None:
    assert _probe(Health(http=HttpCheck(path="/other")), server) == 1
    assert _probe(Health(http=HttpCheck(path="/healthz", body="missing")), server) == 1
    assert _probe(Health(http=HttpCheck(path="/healthz", status=204)), server) == 1
    assert _probe(Health(http=HttpCheck(path="/healthz", port=1)), server) == 1


def test_tcp_probe(server: int) -> None:
    assert _probe(Health(tcp=TcpCheck()), server) == 0
    assert _probe(Health(tcp=TcpCheck(port=1)), server) == 1


def test_no_check_disables_the_image_healthcheck() -> None:
    assert compose.probe_script(Health(), 80) is None


def test_all_at_once_replaces_every_task_of_a_service_at_once() -> None:
    from dataclasses import replace

    target, settings = _case(GOLDEN / "hello")
    specs = specs_of(target, settings)
    rolling = compose.render(target, settings, specs, "v7")
    assert rolling["services"]["web"]["deploy"]["update_config"]["parallelism"] == 1
    at_once = replace(target, strategy=target.strategy.model_copy(update={"kind": "all_at_once"}))
    stack = compose.render(at_once, settings, specs, "v7")
    for name in ("web", "site"):
        assert stack["services"][name]["deploy"]["update_config"]["parallelism"] == 0
        assert stack["services"][name]["deploy"]["rollback_config"]["parallelism"] == 0
