"""Replicas on servers: `replicas.<component>` counts the component's instances in total,
spread evenly over its hosts in order, each on its own port from service.port up."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deployer.config.loader import load_project
from deployer.config.resolve import Target, resolve
from deployer.errors import ConfigError


def _config(**environment: object) -> dict[str, object]:
    env: dict[str, object] = {
        "hosts": {
            "web": [
                {"address": "10.0.0.1", "name": "web1"},
                {"address": "10.0.0.2", "name": "web2"},
            ],
            "worker": [{"address": "10.0.0.3", "name": "worker1"}],
        },
        **environment,
    }
    return {
        "app": {"name": "shop"},
        "service": {"command": "/usr/bin/python3 app.py", "port": 8000},
        "health": {"http": {"path": "/healthz"}},
        "environments": {"production": env},
    }


def _resolve(tmp_path: Path, data: dict[str, object]) -> Target:
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump(data))
    return resolve(load_project(tmp_path / "deploy.yml"), "production")


def _problems(tmp_path: Path, data: dict[str, object]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as error:
        _resolve(tmp_path, data)
    return error.value.problems


def test_a_count_is_spread_evenly_the_first_hosts_taking_the_rest(tmp_path: Path) -> None:
    target = _resolve(tmp_path, _config(replicas={"web": 5}))
    assert dict(target.instances) == {"web1": 3, "web2": 2}
    assert target.ports("web1") == (8000, 8001, 8002)
    assert target.ports("web2") == (8000, 8001)
    assert target.ports("worker1") == (8000,)  # no replicas: one instance


def test_one_instance_per_host_is_the_plain_service(tmp_path: Path) -> None:
    target = _resolve(tmp_path, _config(replicas={"web": 2}))
    assert dict(target.instances) == {}


@pytest.mark.parametrize(
    ("changes", "path", "text"),
    [
        ({"replicas": {"web": 1}}, "environments.production.replicas.web", "cannot be spread"),
        (
            {
                "replicas": {"web": 4, "worker": 2},
                "hosts": {
                    "web": [{"address": "10.0.0.1", "name": "web1"}],
                    "worker": [{"address": "10.0.0.1", "name": "web1"}],
                },
            },
            "environments.production.replicas.worker",
            "is also in web",
        ),
        ({"replicas": {"web": 200}}, "environments.production.replicas.web", "at most 64"),
        (
            {"replicas": {"web": 4}, "proxy": {"http_port": 8001}},
            "environments.production.replicas",
            "take the proxy's port 8001",
        ),
    ],
)
def test_counts_that_cannot_be_placed_are_refused_with_their_path(
    tmp_path: Path, changes: dict[str, object], path: str, text: str
) -> None:
    data = _config(**changes)
    problems = _problems(tmp_path, data)
    assert any(p.startswith(path) and text in p for p in problems), problems


def test_a_fixed_port_that_instances_would_share_is_refused(tmp_path: Path) -> None:
    data = _config(replicas={"web": 4})
    data["health"] = {"http": {"path": "/healthz", "port": 9000}}
    data["service"] = {"command": "/bin/app", "port": 8000, "env": {"PORT": "8000"}}
    problems = _problems(tmp_path, data)
    assert any(p.startswith("health.http.port: 9000 is not service.port") for p in problems)
    assert any(p.startswith("service.env.PORT: each instance gets its own port") for p in problems)


def test_the_proxy_and_prometheus_reach_every_instance(tmp_path: Path) -> None:
    from deployer.plan import edge
    from deployer.plan.monitoring import scrape_config

    data = _config(replicas={"web": 3}, domain="shop.example.com", features={"monitoring": True})
    target = _resolve(tmp_path, data)
    site = edge.site(target)
    assert site is not None
    backends = [(b.host, b.port) for u in site.upstreams for b in u.backends]
    assert backends == [("web1", 8000), ("web1", 8001), ("web2", 8000), ("worker1", 8000)]
    app_job = scrape_config(target)["scrape_configs"][0]["static_configs"]
    assert app_job[0]["targets"] == ["10.0.0.1:8000", "10.0.0.1:8001"]
    assert app_job[1]["targets"] == ["10.0.0.2:8000"]


def test_instances_may_not_take_the_proxys_https_port(tmp_path: Path) -> None:
    data = _config(
        replicas={"web": 4},
        domain="shop.example.com",
        proxy={"https_port": 8001},
        features={"ssl": True},
        tls={"certificate": {"from_env": "C"}, "key": {"from_env": "K"}},
    )
    problems = _problems(tmp_path, data)
    assert any(
        p.startswith("environments.production.replicas") and "port 8001" in p for p in problems
    ), problems
