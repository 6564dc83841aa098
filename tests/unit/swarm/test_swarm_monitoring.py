"""Monitoring on Swarm: what is refused before the manager is touched, the set-up scripts
each node is handed, and the watch window's verdict from the manager's Prometheus."""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from deployer.config.loader import load_project
from deployer.config.resolve import Target, resolve
from deployer.config.swarm import SwarmSettings
from deployer.errors import ConfigError
from deployer.session import Session
from deployer.targets.swarm import monitoring
from deployer.targets.swarm.build import specs_of
from deployer.targets.swarm.remote import Reply

CASE = Path(__file__).parents[2] / "golden" / "swarm" / "compose" / "secrets_monitoring"


def _target() -> Target:
    loaded = load_project(CASE / "deploy.yml")
    return resolve(loaded, "swarm")


def test_prometheus_must_run_on_the_manager() -> None:
    target = _target()
    assert target.monitoring is not None
    moved = replace(target, monitoring=target.monitoring.model_copy(update={"server": "n2"}))
    with pytest.raises(ConfigError) as caught:
        monitoring.check(moved, specs_of(target, SwarmSettings()))
    assert caught.value.problems[0].startswith("environments.swarm.monitoring.server: ")


def test_a_stack_without_a_metrics_endpoint_is_refused() -> None:
    target = _target()
    specs = specs_of(target, SwarmSettings())
    monitoring.check(target, specs)  # web publishes 8000
    no_port = tuple(replace(s, publish=None) for s in specs)
    with pytest.raises(ConfigError) as caught:
        monitoring.check(target, no_port)
    assert caught.value.problems[0].startswith("environments.swarm.features.monitoring: ")
    frontends = tuple(s for s in specs if s.stack == "static")
    with pytest.raises(ConfigError):
        monitoring.check(target, frontends)


def test_each_node_gets_node_exporter_and_the_manager_prometheus_too() -> None:
    target = _target()
    work = monitoring.scripts(target, "swarm-hello", specs_of(target, SwarmSettings()))
    assert set(work) == {"n1", "n2", "n3"}
    for node in ("n2", "n3"):
        script, stdin = work[node]
        assert stdin is None
        assert "prometheus-node-exporter" in script
        assert "promtool" not in script
        subprocess.run(["bash", "-n"], input=script.encode(), check=True)
    script, stdin = work["n1"]
    assert target.primary == "n1"
    assert "promtool check config" in script
    assert "SupplementaryGroups=docker" in script
    subprocess.run(["bash", "-n"], input=script.encode(), check=True)
    assert stdin is not None
    config = yaml.safe_load(stdin)
    (sd,) = config["scrape_configs"][0]["dockerswarm_sd_configs"]
    assert sd["role"] == "tasks"


class _Manager:
    """The manager's Prometheus as the judge reaches it: each query's answer, in order."""

    def __init__(self, values: list[float | None]) -> None:
        self.manager = "n1"
        self.values = values
        self.queries: list[str] = []

    def run(self, node: str, command: str, *, stdin: bytes | None = None, timeout: float) -> Reply:
        argv = shlex.split(command)
        assert argv[:2] == ["python3", "-c"]
        assert stdin is not None
        self.queries.append(stdin.decode())
        value = self.values.pop(0) if self.values else 0.0
        result = [] if value is None else [{"metric": {}, "value": [0, str(value)]}]
        answer = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return Reply(node, 0, json.dumps(answer), "")


def _watching(target: Target, seconds: int) -> Target:
    rollback = target.rollback.model_copy(update={"watch": seconds})
    checks = rollback.health_checks.model_copy(update={"period": 1, "threshold": 1})
    return replace(target, rollback=rollback.model_copy(update={"health_checks": checks}))


def test_the_judge_reports_a_breach_of_the_error_rate() -> None:
    target = _watching(_target(), 1)
    # error ratio 60 % with 100 requests, then latency 10 ms with 100 requests
    nodes = _Manager([60.0, 100.0, 10.0, 100.0])
    judge = monitoring.Judge.start(Session(target), nodes, since=0.0)  # type: ignore[arg-type]
    assert judge is not None
    verdict = judge.result()
    assert verdict.breach
    assert not verdict.reply.ok
    assert verdict.reply.message.startswith("error_rate 60 % > ")
    first = nodes.queries[0]  # the SSH target's own rule, its window filled in
    assert 'job="swarm-hello", environment="swarm"' in first
    assert "$window" not in first


def test_the_judge_finds_nothing_wrong_with_a_quiet_release() -> None:
    target = _watching(_target(), 1)
    nodes = _Manager([None, 0.0, None, 0.0])  # no requests: nothing to judge
    judge = monitoring.Judge.start(Session(target), nodes, since=0.0)  # type: ignore[arg-type]
    assert judge is not None
    verdict = judge.result()
    assert not verdict.breach
    assert verdict.reply.ok


def test_no_judge_without_monitoring() -> None:
    target = replace(_target(), monitoring=None)
    assert monitoring.Judge.start(Session(target), _Manager([]), since=0.0) is None  # type: ignore[arg-type]


def test_a_deploy_refuses_a_stack_without_metrics_before_it_builds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from deployer.targets.swarm import target as swarm_target

    target = _target()
    driver = swarm_target.SwarmTarget(Session(target))
    driver._specs = tuple(replace(s, publish=None) for s in specs_of(target, SwarmSettings()))

    def built(*args: object, **kwargs: object) -> None:
        raise AssertionError("built images (or reached a node) despite the refusal")

    monkeypatch.setattr(swarm_target, "build_images", built)
    monkeypatch.setattr(swarm_target.Nodes, "run", built)
    with pytest.raises(ConfigError) as caught:
        driver.prepare("v1", None)
    assert caught.value.problems[0].startswith("environments.swarm.features.monitoring: ")
