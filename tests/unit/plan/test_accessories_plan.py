"""Accessories and hooks, planned from deploy.yml: what the accessory hosts are asked to set
up, which env files each app host's release gets, where each hook runs and with what, and
the inventory that holds hosts running accessories only.

tests/golden/accessories/<case>/ holds a deploy.yml and what it plans to. After an intended
change, regenerate and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/plan/test_accessories_plan.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_services_plan import _target  # the one environment of a golden deploy.yml

from deployer.config.resolve import Target
from deployer.plan import extravars
from deployer.plan.accessories import accessory_vars, hook_vars
from deployer.plan.inventory import build_inventory
from deployer.plan.units import render_units

GOLDEN = Path(__file__).parents[2] / "golden" / "accessories"
CASES = sorted(p.parent for p in GOLDEN.glob("*/deploy.yml"))


def _json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_accessories_plan(case: Path) -> None:
    target = _target(case / "deploy.yml")
    files = {
        "accessories.json": _json(accessory_vars(target)),
        "hooks.json": _json(hook_vars(target, list(target.hooks))),
        # the known_hosts path is the case's own: written relative to it
        "inventory.json": _json(build_inventory(target)).replace(str(case), "<case>"),
    }
    for host in target.hosts:
        for name, text in render_units(target, host).items():
            files[f"units/{host.name}/{name}"] = text
    expected_dir = case / "expected"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        for name, text in files.items():
            (expected_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (expected_dir / name).write_text(text)
    kept = {str(p.relative_to(expected_dir)) for p in expected_dir.rglob("*") if p.is_file()}
    assert kept == set(files), "files planned and golden files differ"
    for name, text in files.items():
        assert text == (expected_dir / name).read_text(), name


SHOP = GOLDEN / "shop" / "deploy.yml"


def test_a_host_that_runs_only_accessories_gets_no_release() -> None:
    target = _target(SHOP)
    assert target.host_names == ("api1", "api2")
    assert [h.name for h in target.accessory_hosts] == ["db1", "db2"]
    prepare = extravars.prepare_vars(
        target, target.host_names, version="v1", artifact="a", sha256="0" * 64,
        required_bytes=1, lock={},
    )  # fmt: skip
    assert prepare["deployer_hosts"] == ["api1", "api2"]
    assert set(prepare["deployer_units"]) == {"api1", "api2"}
    assert prepare["deployer_accessories"]["database"]["host"] == "db1"


def test_each_accessory_admits_the_hosts_of_the_services_that_use_it() -> None:
    target = _target(SHOP)
    planned = accessory_vars(target)
    database = planned["deployer_accessories"]["database"]["args"]
    assert database["address"] == "10.0.0.20"  # the data host's private address
    assert database["clients"] == ["10.0.0.11", "10.0.0.12"]
    assert database["storage_bytes"] == 20 * 1024**3
    assert database["database"] == database["user"] == "shop"
    assert database["name"] == "shop-production"
    assert planned["deployer_accessories"]["cache"]["args"]["port"] == 6380
    # every backend host runs the API, which uses both
    assert planned["deployer_accessory_users"] == {
        "api1": ["database", "cache"],
        "api2": ["database", "cache"],
    }


def test_a_standby_follows_the_primary_at_its_private_address() -> None:
    target = _target(SHOP)
    planned = accessory_vars(target)
    primary = planned["deployer_accessories"]["database"]
    assert (primary["host"], primary["args"]["role"]) == ("db1", "primary")
    assert primary["args"]["standbys"] == ["10.0.0.21"]
    (standby,) = planned["deployer_standbys"]
    assert standby["host"] == "db2"
    assert standby["args"]["role"] == "standby"
    assert standby["args"]["address"] == "10.0.0.21"  # it binds its own address
    assert (standby["args"]["primary_address"], standby["args"]["primary_port"]) == (
        "10.0.0.20",
        5432,
    )
    # the cache is not replicated: the component's first host runs it
    assert planned["deployer_accessories"]["cache"]["host"] == "db1"


def test_a_service_gets_the_env_files_of_what_it_uses_only() -> None:
    target = _target(SHOP)
    units = render_units(target, next(h for h in target.hosts if h.name == "api1"))
    api, worker = units["shop:api.service"], units["shop:worker.service"]
    assert "/current/.deployer/env.database" in api
    assert "/current/.deployer/env.cache" in api
    assert "/current/.deployer/env.cache" in worker
    assert "env.database" not in worker


def test_hooks_run_on_the_first_host_of_their_service_with_its_env_files() -> None:
    target = _target(SHOP)
    hooks = hook_vars(target, ["before_switch", "after_rollback", "after_switch"])
    assert set(hooks["deployer_hooks"]) == {"before_switch", "after_rollback"}
    before = hooks["deployer_hooks"]["before_switch"]
    assert before["host"] == "api1"
    assert before["directory"] == "api"
    assert before["command"] == ["python3", "-m", "alembic", "upgrade", "head"]
    assert before["env_files"] == ["env", "env.database", "env.cache"]
    assert before["timeout"] == 120
    after = hooks["deployer_hooks"]["after_rollback"]
    assert after["command"] == ["python3", "notify.py", "rolled back"]  # split, never a shell
    assert after["env_files"] == ["env", "env.cache"]


def test_only_before_switch_rides_in_the_prepare_run() -> None:
    target = _target(SHOP)
    prepare = extravars.prepare_vars(
        target, target.host_names, version="v1", artifact="a", sha256="0" * 64,
        required_bytes=1, lock={},
    )  # fmt: skip
    assert list(prepare["deployer_hooks"]) == ["before_switch"]


MONITORED = """\
app: {name: blog}
service: {command: /usr/bin/python3 app.py, port: 8000, uses: [database, cache]}
health: {http: {path: /healthz}}
environments:
  production:
    hosts:
      web: [{address: 203.0.113.11, name: web1, private_address: 10.0.0.11}]
      data:
        - {address: 203.0.113.20, name: db1, private_address: 10.0.0.20}
        - {address: 203.0.113.21, name: db2, private_address: 10.0.0.21}
    database: {type: postgresql, component: data, replicas: 2}
    cache: {type: redis, component: data, port: 6380}
    features: {monitoring: true}
    monitoring: {server: web1, redis_exporter_port: 9122}
"""


def _monitored(tmp_path: Path) -> Target:
    (tmp_path / "deploy.yml").write_text(MONITORED)
    return _target(tmp_path / "deploy.yml")


def test_with_monitoring_every_database_host_and_the_cache_get_their_exporter(
    tmp_path: Path,
) -> None:
    from deployer.plan.monitoring import exporters, scrape_config

    target = _monitored(tmp_path)
    assert exporters(target) == {
        "db1": {"postgres": {"port": 9187}, "redis": {"port": 9122, "name": "blog-production",
                                                      "redis_port": 6380}},
        "db2": {"postgres": {"port": 9187}},
    }  # fmt: skip
    jobs = {j["job_name"]: j for j in scrape_config(target)["scrape_configs"]}
    targets = {
        name: [t for c in job["static_configs"] for t in c["targets"]] for name, job in jobs.items()
    }
    assert targets["postgres"] == ["10.0.0.20:9187", "10.0.0.21:9187"]
    assert targets["redis"] == ["10.0.0.20:9122"]
    # node exporter on the accessories' hosts too; the app only where it runs
    assert targets["node"] == ["10.0.0.11:9100", "10.0.0.20:9100", "10.0.0.21:9100"]
    assert targets["blog"] == ["10.0.0.11:8000"]
    vars_ = extravars.monitoring_vars(target)["deployer_monitoring"]
    assert vars_["exporters"] == exporters(target)


def test_the_dashboard_gains_database_connections_and_redis_memory(tmp_path: Path) -> None:
    from deployer.plan.monitoring import dashboard

    panels = {p["title"]: p for p in dashboard(_monitored(tmp_path))["panels"]}
    connections = panels["Database connections"]["targets"][0]["expr"]
    assert connections == (
        'sum by (host, state) (pg_stat_activity_count{job="postgres", '
        'environment="production", datname="blog"})'
    )
    memory = panels["Redis memory"]["targets"][0]["expr"]
    assert memory == 'redis_memory_used_bytes{job="redis", environment="production"}'
