"""`strategy.kind: canary`: every requirement refused with its path before any host is
touched; the canary's own keys refused with any other kind; what is not built refused as
such, never accepted and ignored."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.config.canary import analysis, auto_promote, decision_timeout, steps, weights
from deployer.config.loader import load_project
from deployer.config.resolve import Target, resolve
from deployer.errors import ConfigError

BASE: dict[str, Any] = {
    "app": {"name": "shop"},
    "service": {"command": "/usr/bin/python3 app.py", "port": 8000},
    "health": {"http": {"path": "/healthz"}},
    "strategy": {"kind": "canary", "steps": ["10%", 50, "100%"], "analysis": 20},
    "rollback": {"watch": 60},
    "environments": {
        "production": {
            "hosts": {
                "web": [
                    {"address": "10.0.0.1", "name": "web1"},
                    {"address": "10.0.0.2", "name": "web2"},
                ],
            },
            "domain": "shop.example.com",
            "features": {"monitoring": True},
        }
    },
}


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "deploy.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def _resolve(tmp_path: Path, data: dict[str, Any] = BASE) -> Target:
    return resolve(load_project(_write(tmp_path, data)), "production")


def _problems(tmp_path: Path, data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as error:
        _resolve(tmp_path, data)
    return error.value.problems


def _with(strategy: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["strategy"].update(strategy or {})
    env = changes.pop("env", {})
    data.update(changes)
    data["environments"]["production"].update(env)
    return data


def test_a_config_that_meets_every_requirement_resolves(tmp_path: Path) -> None:
    target = _resolve(tmp_path)
    assert target.strategy.kind == "canary"
    assert steps(target.strategy) == (10, 50, 100)  # "10%" and 10 are the same step
    assert analysis(target.strategy, target.rollback) == 20
    assert auto_promote(target.strategy) is True


def test_defaults_are_ten_fifty_hundred_and_the_watch_window(tmp_path: Path) -> None:
    data = _with()
    data["strategy"] = {"kind": "canary", "auto_promote": False}
    target = _resolve(tmp_path, data)
    assert steps(target.strategy) == (10, 50, 100)
    assert analysis(target.strategy, target.rollback) == 60
    assert auto_promote(target.strategy) is False


@pytest.mark.parametrize(
    ("shares", "expected"),
    [
        ([50, 10, 100], "strategy.steps[1]: 10 % does not follow 50 %"),
        ([10, 50, 50, 100], "strategy.steps[2]: 50 % does not follow 50 %"),
        ([10, 50], "strategy.steps: the last step is 50 %; it must be 100"),
        ([100, 100], "strategy.steps[1]: 100 % does not follow 100 %"),
    ],
)
def test_steps_must_strictly_increase_to_100(
    tmp_path: Path, shares: list[int], expected: str
) -> None:
    problems = _problems(tmp_path, _with({"steps": shares}))
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize("share", [0, 101, "0%", "150%", "10 %", True, 12.5])
def test_a_step_is_a_percentage(tmp_path: Path, share: object) -> None:
    problems = _problems(tmp_path, _with({"steps": [share, 100]}))
    assert any(p.startswith("strategy.steps[0]: ") for p in problems), problems


def test_a_single_step_of_100_is_a_flip_and_allowed(tmp_path: Path) -> None:
    assert steps(_resolve(tmp_path, _with({"steps": [100]})).strategy) == (100,)


def test_without_monitoring(tmp_path: Path) -> None:
    data = _with(env={"features": {"monitoring": False}})
    (problem,) = _problems(tmp_path, data)
    assert problem.startswith("environments.production.features.monitoring: canary judges")


def test_without_proxy(tmp_path: Path) -> None:
    data = _with()
    del data["environments"]["production"]["domain"]
    problems = _problems(tmp_path, data)
    assert any(
        p.startswith("strategy.kind: canary moves requests through the edge proxy")
        for p in problems
    ), problems


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"strategy": {"failure_budget": 1}}, "strategy.failure_budget: canary starts"),
        ({"strategy": {"batch_size": 1}}, "strategy.batch_size: canary starts"),
        ({"strategy": {"keep_warm": 30}}, "strategy.keep_warm: 30 s is shorter"),
        ({"strategy": {"analysis": 9}}, "strategy.analysis: 9 s is shorter than 2 scrape"),
        ({"rollback": {"watch": 60, "automatic": False}}, "rollback.automatic: canary needs"),
        ({"service": {"command": "x", "port": 8000, "listen": "socket"}}, "service.listen"),
        ({"env": {"replicas": {"web": 4}}}, "environments.production.replicas: canary"),
    ],
)
def test_what_a_canary_cannot_honour(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    change = copy.deepcopy(change)
    data = _with(change.pop("strategy", None), **change)
    problems = _problems(tmp_path, data)
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize("key", ["prometheus_port", "node_exporter_port"])
def test_the_green_slot_port_must_not_be_monitoring_s(tmp_path: Path, key: str) -> None:
    (problem,) = _problems(tmp_path, _with(monitoring={key: 8001}))
    assert problem == (
        f"service.port: the green slot listens on 8001 (the port after it), which "
        f"monitoring.{key} takes; move one of them"
    )


@pytest.mark.parametrize("key", ["steps", "analysis", "auto_promote", "decision_timeout"])
@pytest.mark.parametrize("kind", ["rolling", "all_at_once", "blue_green"])
def test_canary_keys_are_refused_with_another_kind(tmp_path: Path, kind: str, key: str) -> None:
    value = {"steps": [50, 100], "analysis": 30, "auto_promote": False, "decision_timeout": 60}[key]
    data = _with(env={"features": {"monitoring": False}})
    data["strategy"] = {"kind": kind, key: value}
    problems = _problems(tmp_path, data)
    assert f"strategy.{key}: used only with strategy.kind canary; this strategy is {kind}" in (
        " ".join(problems)
    ), problems


def test_the_environment_override_is_named(tmp_path: Path) -> None:
    data = _with()
    data["strategy"] = {}
    data["environments"]["production"]["strategy"] = {"kind": "canary", "steps": [10, 5, 100]}
    data["environments"]["production"]["rollback"] = {"watch": 30}
    problems = _problems(tmp_path, data)
    assert any(
        p.startswith("environments.production.strategy.steps[1]: 5 % does not follow 10 %")
        for p in problems
    ), problems


def test_weights_give_the_share_to_the_new_slots() -> None:
    assert weights(10) == (90, 10)
    assert weights(50) == (50, 50)
    assert weights(100) == (0, 100)
    with pytest.raises(ValueError):
        weights(101)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ({"decision_timeout": 60}, "strategy.decision_timeout: used only with strategy.auto_"),
        (
            {"auto_promote": False, "decision_timeout": 7200},
            "strategy.decision_timeout: 7200 s is longer than lock_ttl (3600 s)",
        ),
    ],
)
def test_a_decision_wait_is_bounded_within_the_lock_ttl(
    tmp_path: Path, strategy: dict[str, Any], expected: str
) -> None:
    problems = _problems(tmp_path, _with(strategy))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_decision_wait_within_the_lock_ttl_resolves(tmp_path: Path) -> None:
    target = _resolve(tmp_path, _with({"auto_promote": False, "decision_timeout": 600}))
    assert decision_timeout(target.strategy) == 600
    target = _resolve(tmp_path, _with({"auto_promote": False}))
    assert decision_timeout(target.strategy) == 3600


def test_the_canary_runs_in_two_slots_with_both_scraped_by_slot(tmp_path: Path) -> None:
    from deployer.plan.monitoring import scrape_config
    from deployer.plan.units import units_by_host

    target = _resolve(tmp_path)
    assert set(units_by_host(target, ["web1"])["web1"]) == {
        "shop:blue.service",
        "shop:green.service",
    }
    (job,) = [j for j in scrape_config(target)["scrape_configs"] if j["job_name"] == "shop"]
    seen = {(e["targets"][0], e["labels"]["slot"]) for e in job["static_configs"]}
    assert seen == {
        ("10.0.0.1:8000", "blue"),
        ("10.0.0.2:8000", "blue"),
        ("10.0.0.1:8001", "green"),
        ("10.0.0.2:8001", "green"),
    }
