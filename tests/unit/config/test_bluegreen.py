"""`strategy.kind: blue_green`: every requirement refused with its path before any host is
touched; what is not built (several services, ACME) refused as such, never accepted and
ignored."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.config.bluegreen import NOT_BUILT, keep_warm, slot_ports
from deployer.config.loader import load_project
from deployer.config.resolve import Target, resolve
from deployer.errors import ConfigError

BASE: dict[str, Any] = {
    "app": {"name": "shop"},
    "service": {"command": "/usr/bin/python3 app.py", "port": 8000},
    "health": {"http": {"path": "/healthz"}},
    "strategy": {"kind": "blue_green", "keep_warm": 120},
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
        }
    },
}


def _resolve(tmp_path: Path, data: dict[str, Any]) -> Target:
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump(data))
    return resolve(load_project(tmp_path / "deploy.yml"), "production")


def _problems(tmp_path: Path, data: dict[str, Any]) -> tuple[str, ...]:
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as error:
        resolve(load_project(tmp_path / "deploy.yml"), "production")
    return error.value.problems


def _with(**changes: Any) -> dict[str, Any]:
    """BASE with top-level sections replaced, and `env` merged into the environment."""
    data = copy.deepcopy(BASE)
    env = changes.pop("env", {})
    data.update(changes)
    data["environments"]["production"].update(env)
    return data


def test_slots_listen_on_the_service_port_and_the_next() -> None:
    assert slot_ports(8000) == {"blue": 8000, "green": 8001}


def test_a_config_that_meets_every_requirement_resolves(tmp_path: Path) -> None:
    target = _resolve(tmp_path, BASE)
    assert target.strategy.kind == "blue_green"
    assert keep_warm(target.strategy) == 120


def test_the_refusal_names_the_environment_that_asks_for_it(tmp_path: Path) -> None:
    data = _with(strategy={}, env={"strategy": {"kind": "blue_green"}})
    del data["environments"]["production"]["domain"]
    (problem,) = _problems(tmp_path, data)
    assert problem.startswith("environments.production.strategy.kind: blue_green flips")


def test_no_port(tmp_path: Path) -> None:
    data = _with(service={"command": "/usr/bin/python3 app.py"}, health={"command": {"run": "x"}})
    problems = _problems(tmp_path, data)
    assert any(p.startswith("service.port: required by blue_green") for p in problems), problems
    assert not any(NOT_BUILT in p for p in problems)


def test_keep_warm_shorter_than_the_watch_window(tmp_path: Path) -> None:
    data = _with(strategy={"kind": "blue_green", "keep_warm": 30})
    (problem,) = _problems(tmp_path, data)
    assert problem.startswith("strategy.keep_warm: 30 s is shorter than rollback.watch (60 s)")


def test_keep_warm_as_long_as_the_watch_window_is_enough(tmp_path: Path) -> None:
    target = _resolve(tmp_path, _with(strategy={"kind": "blue_green", "keep_warm": 60}))
    assert keep_warm(target.strategy) == 60


def test_the_default_keep_warm_covers_the_longest_default_watch(tmp_path: Path) -> None:
    target = _resolve(tmp_path, _with(strategy={"kind": "blue_green"}, rollback={"watch": 300}))
    assert keep_warm(target.strategy) == 300
    problems = _problems(tmp_path, _with(strategy={"kind": "blue_green"}, rollback={"watch": 301}))
    assert problems[0].startswith("strategy.keep_warm: 300 s is shorter")


def test_without_the_edge_proxy(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    del data["environments"]["production"]["domain"]
    (problem,) = _problems(tmp_path, data)
    assert problem.startswith("strategy.kind: blue_green flips the edge proxy")
    assert "environments.production.domain" in problem


@pytest.mark.parametrize(
    ("strategy", "path"),
    [
        ({"failure_budget": 1}, "strategy.failure_budget: blue_green flips every host"),
        ({"batch_size": 1}, "strategy.batch_size: blue_green starts the new slot"),
        ({"batch_size": "50%"}, "strategy.batch_size: blue_green starts the new slot"),
    ],
)
def test_rollout_keys_it_would_not_act_on(
    tmp_path: Path, strategy: dict[str, Any], path: str
) -> None:
    data = _with(strategy={"kind": "blue_green", "keep_warm": 120, **strategy})
    (problem,) = _problems(tmp_path, data)
    assert problem.startswith(path)


def test_without_the_automatic_rollback(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, _with(rollback={"watch": 60, "automatic": False}))
    assert problem.startswith("rollback.automatic: blue_green needs the automatic rollback")


def test_socket_activation(tmp_path: Path) -> None:
    service = {"command": "/usr/bin/python3 app.py", "port": 8000, "listen": "socket"}
    (problem,) = _problems(tmp_path, _with(service=service))
    assert problem.startswith("service.listen: blue_green runs both slots side by side")


def test_port_in_the_service_env(tmp_path: Path) -> None:
    service = {"command": "/usr/bin/python3 app.py", "port": 8000, "env": {"PORT": "8000"}}
    (problem,) = _problems(tmp_path, _with(service=service))
    assert problem.startswith("service.env.PORT: each slot gets its own port")


def test_a_health_check_on_a_fixed_other_port(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, _with(health={"http": {"path": "/h", "port": 9000}}))
    assert problem.startswith("health.http.port: blue_green checks each slot on its own port")


def test_several_instances_per_host(tmp_path: Path) -> None:
    problems = _problems(tmp_path, _with(env={"replicas": {"web": 4}}))
    assert any(p.startswith("environments.production.replicas: blue_green") for p in problems)


def test_monitoring(tmp_path: Path) -> None:
    problems = _problems(tmp_path, _with(env={"features": {"monitoring": True}}))
    assert any(
        p.startswith("environments.production.features.monitoring: Prometheus would scrape")
        for p in problems
    ), problems


def test_the_green_port_past_65535(tmp_path: Path) -> None:
    service = {"command": "/usr/bin/python3 app.py", "port": 65535}
    (problem,) = _problems(tmp_path, _with(service=service))
    assert problem == "service.port: 65535 leaves no port for the green slot (65536)"


def test_the_green_port_taken_by_the_proxy(tmp_path: Path) -> None:
    data = _with(env={"proxy": {"http_port": 8001}})
    (problem,) = _problems(tmp_path, data)
    assert problem.startswith("service.port: the green slot listens on 8001")
    assert "environments.production.proxy.http_port" in problem


def test_the_green_port_taken_by_the_cache(tmp_path: Path) -> None:
    data = _with(env={"cache": {"type": "redis", "component": "web", "port": 8001}})
    problems = _problems(tmp_path, data)
    assert any(
        p.startswith("service.port: the green slot listens on 8001")
        and "environments.production.cache.port" in p
        for p in problems
    ), problems


def test_a_worker_service(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    del data["service"]
    del data["health"]
    data["services"] = {
        "api": {"kind": "web", "component": "web", "command": "/bin/api", "port": 8100},
        "jobs": {"kind": "worker", "component": "web", "command": "/bin/jobs"},
    }
    problems = _problems(tmp_path, data)
    assert any(p.startswith("services.jobs.kind: a worker has no port") for p in problems)
    assert f"strategy.kind: {NOT_BUILT}" in problems


def test_several_web_services_are_not_built(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    del data["service"]
    del data["health"]
    data["services"] = {
        "api": {
            "kind": "web",
            "component": "web",
            "command": "/bin/api",
            "port": 8100,
            "health": {"http": {"path": "/"}},
        },
    }
    assert _problems(tmp_path, data) == (f"strategy.kind: {NOT_BUILT}",)


def test_acme_is_not_built(tmp_path: Path) -> None:
    data = _with(env={"features": {"ssl": True}, "tls": {"acme": {}}})
    data["environments"]["production"]["hosts"]["web"] = BASE["environments"]["production"][
        "hosts"
    ]["web"][:1]
    problems = _problems(tmp_path, data)
    assert any(p.startswith("environments.production.tls.acme: blue_green") for p in problems)


def test_another_target(tmp_path: Path) -> None:
    problems = _problems(tmp_path, _with(env={"target": "nomad"}))
    assert any(
        p.startswith("strategy.kind: blue_green flips the edge proxy, which runs on target ssh")
        for p in problems
    ), problems


def test_keep_warm_with_another_strategy(tmp_path: Path) -> None:
    data = _with(strategy={"kind": "rolling"}, env={"strategy": {"keep_warm": 60}})
    (problem,) = _problems(tmp_path, data)
    assert problem.startswith("environments.production.strategy.keep_warm: used only with")


def test_other_strategies_are_untouched(tmp_path: Path) -> None:
    data = _with(strategy={"kind": "rolling"})
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump(data))
    target = resolve(load_project(tmp_path / "deploy.yml"), "production")
    assert target.strategy.kind == "rolling"
