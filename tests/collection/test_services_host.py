"""Several services in one release, host side: the unit bases `<app>:<service>`, what
deployer_switch plans per service and removes, deployer_health's per-service watch and
deployer_preflight's per-service unit states. The switch itself runs against systemd in
molecule/services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.deployer.core.plugins.module_utils import health, units
from ansible_collections.deployer.core.plugins.modules import deployer_preflight, deployer_switch
from ansible_collections.deployer.core.plugins.plugin_utils import lean

API = {
    "shop:api@.service": b"[Service]\n",
    "shop:api@.socket": b"[Socket]\nListenStream=%i\n",
    "shop:api.target": b"[Unit]\nWants=shop:api@8001.socket shop:api@8000.socket\n",
}
WORKER = {"shop:worker.service": b"[Service]\n"}


def test_a_unit_base_names_every_unit_shape() -> None:
    for name in (
        "shop:api@8001.service",
        "shop:api@.socket",
        "shop:api.target",
        "shop:api.service",
    ):
        assert units.base_of(name) == "shop:api"
    assert units.base_of("shop.service") == units.base_of("shop@8000.socket") == "shop"
    release = {**API, **WORKER, "shop.service": b"", "shop:apiary.service": b""}
    assert units.of_base("shop:api", release) == API
    assert units.of_base("shop:docs", release) == {}
    names = [
        "shop:api@8000.service",
        "shop:api@8000.socket",
        "shop:api@.service",
        "shop:apiary@1.service",
        "shop@8000.service",
    ]
    assert units.instance_names(names, "shop:api") == names[:2]
    assert units.instance_names(names, "shop") == ["shop@8000.service"]


def test_the_instances_of_a_service_come_from_its_own_units() -> None:
    wanted = units.instances("shop:api", {**API, **WORKER})
    assert [(i.service, i.socket, i.port) for i in wanted] == [
        ("shop:api@8000.service", "shop:api@8000.socket", 8000),
        ("shop:api@8001.service", "shop:api@8001.socket", 8001),
    ]
    (worker,) = units.instances("shop:worker", {**API, **WORKER})
    assert (worker.service, worker.socket, worker.port) == ("shop:worker.service", None, None)


@pytest.mark.parametrize(
    ("services", "error"),
    [
        ([{"name": "api", "unit": "shop:api"}, {"name": "worker", "unit": "shop:worker"}], None),
        ([{"name": "api", "unit": "shop:api"}, {"name": "api", "unit": "shop:x"}], "unique"),
        ([{"name": "api", "unit": "shop:api"}, {"name": "b", "unit": "shop:api"}], "unique"),
        ([{"name": "api", "unit": "other:api"}], "shop:<service>"),
        ([{"name": "api", "unit": "shop"}], "shop:<service>"),
        ([{"name": "api", "unit": "shop:"}], "shop:<service>"),
        ([{"name": "api", "unit": "shop:api@"}], "shop:<service>"),
        ([{"name": "api", "unit": "shop:a/b"}], "shop:<service>"),
        ([{"name": "", "unit": "shop:api"}], "unique"),
    ],
)
def test_the_services_must_keep_to_the_contract(services: list[Any], error: str | None) -> None:
    message = deployer_switch.check_services("shop", services)
    assert (message is None) if error is None else (error in message)


def test_the_services_option_validates_with_the_defaults_of_health() -> None:
    _source, spec, _paths, rules, _check = lean.module_spec("deployer_switch")
    checked = ArgumentSpecValidator(spec, **rules).validate(
        {
            "deploy_to": "/srv/shop",
            "app": "shop",
            "version": "v1",
            "services": [
                {"name": "api", "unit": "shop:api", "health": {"tcp": {"port": 8000}}},
                {"name": "worker", "unit": "shop:worker"},
            ],
        }
    )
    assert not checked.error_messages
    api, worker = checked.validated_parameters["services"]
    assert api["health"]["tcp"] == {"port": 8000}
    assert (api["health"]["retries"], worker["health"]["interval"]) == (10, 1.0)
    missing = ArgumentSpecValidator(spec, **rules).validate(
        {"deploy_to": "/srv/shop", "app": "shop", "version": "v1", "services": [{"name": "api"}]}
    )
    assert "unit" in " ".join(missing.error_messages)


@pytest.fixture
def etc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty /etc/systemd/system for the switch's planning."""
    path = tmp_path / "etc"
    path.mkdir()
    monkeypatch.setattr(units, "UNITS_DIR", str(path))
    monkeypatch.setattr(deployer_switch, "UNITS_DIR", str(path))
    return path


def test_a_service_plans_its_own_units_and_stale_instances(etc: Path) -> None:
    (etc / "shop:api@.service").write_bytes(API["shop:api@.service"])  # unchanged
    (etc / "shop:api.service").write_bytes(b"")  # one service before: removed
    present = ["shop:api@8000.service", "shop:api@8002.service", "shop:api@8002.socket"]
    release = {**API, **WORKER}
    api = deployer_switch.Service(
        {"name": "api", "unit": "shop:api", "health": {"http": {"port": 8000}}}, release, present
    )
    assert api.to_write == ["shop:api.target", "shop:api@.socket"]
    assert api.to_remove == ["shop:api.service"]
    assert [i.port for i in api.wanted] == [8000, 8001]
    assert api.group == "shop:api.target"
    assert api.stale == ["shop:api@8002.service", "shop:api@8002.socket"]
    assert [spec["http"]["port"] for _i, spec in api.checks] == [8000, 8001]
    worker = deployer_switch.Service(
        {"name": "w", "unit": "shop:worker", "health": {}}, release, present
    )
    assert [i.service for i in worker.wanted] == ["shop:worker.service"]
    assert worker.stale == []
    assert worker.group is None
    docs = deployer_switch.Service(
        {"name": "docs", "unit": "shop:docs", "health": {}}, release, present
    )
    assert docs.wanted == []
    assert docs.unchanged()
    assert docs.check_once(None) == (True, 0, "no units: switched by current alone")
    checked = deployer_switch.Service(
        {"name": "docs", "unit": "shop:docs", "health": {"command": {"run": "false"}}},
        release,
        present,
    )
    ok, attempts, _message = checked.check_once(None)
    assert (ok, attempts) == (False, 1)


def test_the_units_a_release_of_services_no_longer_has_are_removed(etc: Path) -> None:
    for name in (
        "shop.service",
        "shop.socket",
        "shop:api@.service",
        "shop:worker.service",
        "shop:old@.service",
        "shop:old.target",
        "shopping.service",
    ):
        (etc / name).write_bytes(b"")
    present = [
        "shop@8000.service",
        "shop:api@.service",
        "shop:api@8000.service",
        "shop:worker.service",
        "shop:old@.service",
        "shop:old@9000.service",
        "shop:old.target",
    ]
    dropped = deployer_switch.leftovers(present, "shop", ["shop:api", "shop:worker"])
    assert dropped == [
        "shop.service",
        "shop.socket",
        "shop:old.target",
        "shop:old@.service",
        "shop:old@9000.service",
        "shop@8000.service",
    ]
    # back to one service: only the units of services go
    assert deployer_switch.leftovers(present, "shop", ()) == [
        "shop:api@.service",
        "shop:api@8000.service",
        "shop:old.target",
        "shop:old@.service",
        "shop:old@9000.service",
        "shop:worker.service",
    ]


def test_a_watch_over_services_reports_each(monkeypatch: pytest.MonkeyPatch) -> None:
    ok = {"command": {"run": "true"}}
    bad = {"command": {"run": "false"}}
    result = health.watch_services([("api", [ok, ok]), ("worker", bad)], 0, 5, 3)
    assert result["healthy"] is False
    assert result["services"]["api"] == {"healthy": True, "message": "healthy: 1 check passed"}
    assert result["services"]["worker"]["healthy"] is False
    assert "worker: command 'false' exited 1" in result["message"]
    good = health.watch_services([("api", ok), ("docs", {})], 0, 5, 3)
    assert good["healthy"] is True
    assert good["services"]["docs"]["healthy"] is True


def test_deployer_health_checks_every_instance_of_every_service(tmp_path: Path) -> None:
    release = tmp_path / "releases" / "v1"
    (release / ".deployer" / "units").mkdir(parents=True)
    for name, data in {**API, **WORKER}.items():
        (release / ".deployer" / "units" / name).write_bytes(data)
    os.symlink("releases/v1", tmp_path / "current")
    _source, spec, _paths, rules, _check = lean.module_spec("deployer_health")
    checked = ArgumentSpecValidator(spec, **rules).validate(
        {
            "deploy_to": str(tmp_path),
            "fail_on_unhealthy": False,
            "services": [
                {
                    "name": "api",
                    "unit": "shop:api",
                    "health": {"tcp": {"port": 8000, "timeout": 0.5}},
                },
                {"name": "worker", "unit": "shop:worker", "health": {"command": {"run": "true"}}},
            ],
        }
    )
    assert not checked.error_messages
    source = lean.module_spec("deployer_health")[0]
    payload = json.dumps(
        {
            "module": "deployer_health",
            "source": source,
            "sources": lean.module_utils_sources(),
            "params": checked.validated_parameters,
            "paths": [],
            "check": False,
            "archive": False,
        }
    ).encode()
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", lean.LOADER],
        input=lean.frame(lean.host_runtime(), payload),
        capture_output=True,
        check=False,
    )
    result = json.loads(proc.stdout)["deployer"]
    assert result["services"]["worker"]["healthy"] is True
    api = result["services"]["api"]
    if api["healthy"] is False:  # nothing listens there (as a rule): both instances named
        assert "127.0.0.1:8000" in api["message"]
        assert "127.0.0.1:8001" in api["message"]
    assert set(result) >= {
        "healthy",
        "checks",
        "failures",
        "max_consecutive_failures",
        "message",
        "services",
    }


class _Module:
    """What units_states needs of AnsibleModule: systemctl show answered from a dict."""

    def __init__(self, states: dict[str, dict[str, str]]) -> None:
        self.states = states
        self.calls: list[list[str]] = []

    def get_bin_path(self, name: str) -> str:
        return "/bin/" + name

    def run_command(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls.append(argv)
        blocks = []
        for unit in argv[4:]:
            props = self.states.get(unit, {"LoadState": "not-found"})
            blocks.append("\n".join(f"{k}={v}" for k, v in props.items()))
        return 0, "\n\n".join(blocks) + "\n", ""


def test_preflight_reports_the_units_of_each_service_in_one_call() -> None:
    module = _Module(
        {
            "shop:api.socket": {
                "LoadState": "loaded",
                "ActiveState": "active",
                "UnitFileState": "enabled",
            },
            "shop:worker.service": {
                "LoadState": "loaded",
                "ActiveState": "active",
                "UnitFileState": "enabled",
            },
        }
    )
    states = deployer_preflight.units_states(module, ["shop", "shop:api", "shop:worker"])
    assert len(module.calls) == 1
    assert states["shop"] == {"socket": None, "service": None}
    assert states["shop:api"] == {
        "socket": {"active": "active", "enabled": "enabled"},
        "service": None,
    }
    assert states["shop:worker"]["service"] == {"active": "active", "enabled": "enabled"}
    assert deployer_preflight.unit_states(module, "shop") == {"socket": None, "service": None}
