"""`services:` that cannot be deployed as written are refused before any host is touched,
each problem naming its config path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.config.loader import load_project
from deployer.config.resolve import resolve
from deployer.errors import ConfigError

CASE = Path(__file__).parents[2] / "golden" / "services" / "full_stack" / "deploy.yml"
BASE: dict[str, Any] = yaml.safe_load(CASE.read_text())
PROD = "environments.production"


def _problems(tmp_path: Path, change: dict[str, Any]) -> tuple[str, ...]:
    data = copy.deepcopy(BASE)

    def merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value

    merge(data, change)
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        resolve(load_project(tmp_path / "deploy.yml"), "production")
    except ConfigError as error:
        return error.problems
    return ()


REFUSED = {
    "unknown-component": ({"services": {"api": {"component": "db"}}}, "services.api.component"),
    "static-with-command": (
        {"services": {"frontend": {"command": "/bin/true"}}},
        "services.frontend.command",
    ),
    "two-statics": (
        {"services": {"docs": {"kind": "static", "component": "edge"}}},
        "services.docs.kind",
    ),
    "route-twice": (
        {
            "services": {
                "admin": {"component": "backend", "command": "x", "port": 9000, "route": "/api"}
            }
        },
        "services.admin.route",
    ),
    "root-of-a-web-service": ({"services": {"api": {"root": "dist"}}}, "services.api.root"),
    "web-without-port": ({"services": {"api": {"port": None}}}, "services.api.port"),
    "worker-with-port": ({"services": {"worker": {"port": 9000}}}, "services.worker.port"),
    "unknown-dependency": (
        {"services": {"worker": {"depends_on": ["billing"]}}},
        "services.worker.depends_on",
    ),
    "cycle": ({"services": {"api": {"depends_on": ["worker"]}}}, "services.api.depends_on"),
    "one-port-twice": (
        {"services": {"admin": {"component": "backend", "command": "x", "port": 8001}}},
        "services.admin.port",
    ),
    "proxy-port": (
        {"services": {"frontend": {"component": "backend"}, "api": {"port": 79}}},
        "services.api.port",
    ),
    "single-service-keys": ({"service": {"command": "x"}}, "service.command"),
    "top-level-artifact": ({"artifact": {"path": "app"}}, "artifact"),
    "port-in-env": ({"services": {"api": {"env": {"PORT": "1"}}}}, "services.api.env.PORT"),
    "proxy-elsewhere": (
        {"environments": {"production": {"proxy": {"component": "backend"}}}},
        f"{PROD}.proxy.component",
    ),
    "too-few-replicas": (
        {"environments": {"production": {"replicas": {"backend": 1}}}},
        f"{PROD}.replicas.backend",
    ),
    "monitoring": (
        {"environments": {"production": {"features": {"monitoring": True}}}},
        f"{PROD}.features.monitoring",
    ),
    "swarm": (
        {"environments": {"production": {"target": "swarm"}}},
        f"{PROD}.target",
    ),
    "static-without-proxy": (
        {"environments": {"production": {"domain": None}}},
        "services.frontend",
    ),
}


@pytest.mark.parametrize(("change", "path"), REFUSED.values(), ids=REFUSED)
def test_refused_with_its_path(tmp_path: Path, change: dict[str, Any], path: str) -> None:
    problems = _problems(tmp_path, change)
    assert any(p.startswith(path) for p in problems), problems


def test_cdn_needs_a_static_service(tmp_path: Path) -> None:
    data_change = {"services": {"frontend": {"kind": "web", "command": "x", "port": 8080}}}
    problems = _problems(tmp_path, data_change)
    assert any(p.startswith(f"{PROD}.features.cdn") for p in problems), problems


def test_the_full_stack_example_resolves(tmp_path: Path) -> None:
    assert _problems(tmp_path, {}) == ()
