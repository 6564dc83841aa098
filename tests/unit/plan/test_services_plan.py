"""An app of several services, planned from deploy.yml: where each runs, its units on each
host, the switch order, and the edge proxy's routes.

tests/golden/services/<case>/ holds a deploy.yml and what it plans to. After an intended
change, regenerate and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/plan/test_services_plan.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from deployer.config.loader import load_project
from deployer.config.resolve import Target, resolve
from deployer.plan import edge
from deployer.plan.units import render_units

GOLDEN = Path(__file__).parents[2] / "golden" / "services"
CASES = sorted(p.parent for p in GOLDEN.glob("*/deploy.yml"))


def _target(path: Path) -> Target:
    loaded = load_project(path)
    (env,) = loaded.project.environments
    return resolve(loaded, env)


def _placement(target: Target) -> str:
    return json.dumps(
        {
            "switch_order": [s.name for s in target.services],
            "services": {
                s.name: {
                    "kind": s.kind,
                    "unit": s.unit,
                    "route": s.route,
                    "hosts": {h: list(s.ports(h)) or s.count(h) for h in s.hosts},
                }
                for s in target.services
            },
            "proxy_hosts": list(target.proxy.hosts) if target.proxy else [],
        },
        indent=2,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_services_plan(case: Path) -> None:
    target = _target(case / "deploy.yml")
    files = {"placement.json": _placement(target) + "\n"}
    for host in target.hosts:
        for name, text in render_units(target, host).items():
            files[f"units/{host.name}/{name}"] = text
    for path, text in edge.setup_vars(target).get("deployer_proxy", {}).get("files", {}).items():
        files[f"proxy/{Path(path).name}"] = text
    expected_dir = case / "expected"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        for name, text in files.items():
            (expected_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (expected_dir / name).write_text(text)
    kept = {str(p.relative_to(expected_dir)) for p in expected_dir.rglob("*") if p.is_file()}
    assert kept == set(files), "files planned and golden files differ"
    for name, text in files.items():
        assert text == (expected_dir / name).read_text(), name


def test_each_service_runs_from_its_own_directory_of_the_release() -> None:
    target = _target(GOLDEN / "full_stack" / "deploy.yml")
    api1 = next(h for h in target.hosts if h.name == "api1")
    units = render_units(target, api1)
    assert "WorkingDirectory=/srv/shop/current/api\n" in units["shop:api@.service"]
    assert "WorkingDirectory=/srv/shop/current/worker\n" in units["shop:worker@.service"]
    # values reach systemd quoted, a % never read as a specifier
    assert 'Environment="GREETING=say \\"hi\\" at 100%%"\n' in units["shop:api@.service"]
    assert "PORT" not in units["shop:worker@.service"]  # a worker has no port
    edge1 = next(h for h in target.hosts if h.name == "edge1")
    assert render_units(target, edge1) == {}  # static files: no process


def test_the_proxy_serves_the_static_files_and_routes_the_api() -> None:
    target = _target(GOLDEN / "full_stack" / "deploy.yml")
    assert target.proxy is not None
    assert target.proxy.hosts == ("edge1",)  # the static service's hosts by default
    site = edge.site(target)
    assert site is not None
    assert site.static_root == "/srv/shop/current/frontend/dist"  # its build's output
    assert [(r.prefix, r.upstream) for r in site.routes] == [("/api", "api")]
    (api,) = site.upstreams
    assert {(b.address, b.port) for b in api.backends} == {
        ("10.0.0.11", 8000), ("10.0.0.11", 8001), ("10.0.0.12", 8000), ("10.0.0.12", 8001)
    }  # fmt: skip
    drained = edge.drain_vars(target, ["api1"])["deployer_proxy_drain"]["drained"]
    assert drained.count(" down;") == 2


def test_each_host_switches_its_own_services_in_dependency_order() -> None:
    from deployer.plan import extravars

    target = _target(GOLDEN / "full_stack" / "deploy.yml")
    hosts = ["edge1", "api1", "api2"]
    by_host = extravars.switch_vars(target, hosts, "v2")["deployer_services"]
    assert [s["name"] for s in by_host["edge1"]] == ["frontend"]
    assert [s["name"] for s in by_host["api1"]] == ["api", "worker"]  # worker depends on api
    api, worker = by_host["api1"]
    assert api["unit"] == "shop:api"
    assert api["health"]["http"]["port"] == 8000  # the project's check, on the api's port
    assert worker["health"] == {}  # healthy while its process runs
    assert (
        by_host
        == extravars.rollback_vars(target, dict.fromkeys(hosts, "v1"), "v2", "x")[
            "deployer_services"
        ]
    )
