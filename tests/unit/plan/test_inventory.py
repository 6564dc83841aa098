"""Golden inventories, and the unit conversions behind them.

Each tests/golden/inventory/<case>/ holds a deploy.yml with one environment and expected.yml:
`build_inventory(resolve(load_project(deploy.yml), env))` dumped with
`yaml.safe_dump(sort_keys=False)`, the project directory written as `{project}`.

After an intended change, regenerate them and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/plan/test_inventory.py
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from deployer.config.loader import load_project
from deployer.config.models import Resources
from deployer.config.resolve import resolve
from deployer.plan.inventory import (
    build_inventory,
    environment_group,
    host_vars,
    ssh_common_args,
    systemd_limits,
    systemd_memory,
)

GOLDEN = Path(__file__).parents[2] / "golden" / "inventory"
CASES = sorted(p.parent for p in GOLDEN.glob("*/deploy.yml"))


def _inventory(case: Path) -> dict[str, Any]:
    loaded = load_project(case / "deploy.yml")
    (env,) = loaded.project.environments
    return build_inventory(resolve(loaded, env))


def _render(case: Path) -> str:
    text = yaml.safe_dump(_inventory(case), sort_keys=False)
    return text.replace(str(case.resolve()), "{project}")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_inventory(case: Path) -> None:
    expected = case / "expected.yml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected.write_text(_render(case))
    assert _render(case) == expected.read_text()


def test_golden_cases_exist() -> None:
    names = {c.name for c in CASES}
    assert {
        "single",
        "three_components",
        "shared_host",
        "custom_ssh",
        "dashed_environment",
    } <= names


def _group(case: str) -> dict[str, Any]:
    (group,) = _inventory(GOLDEN / case)["all"]["children"].values()
    return group


def test_per_component_resources_become_systemd_limits() -> None:
    hosts = {
        name: vars_
        for group in _group("three_components")["children"].values()
        for name, vars_ in group["hosts"].items()
    }
    assert hosts["fe1"]["deployer_resources"] == {"cpu_quota": "50%", "memory_max": "512M"}
    assert hosts["be1"]["deployer_resources"] == {"cpu_quota": "200%", "memory_max": "1G"}
    assert hosts["db1"]["deployer_resources"] == {"cpu_quota": "25%", "memory_max": "1000000000"}


def test_a_host_in_two_components_gets_its_vars_once() -> None:
    children = _group("shared_host")["children"]
    assert list(children["web"]["hosts"]) == ["box1", "box2"]
    assert children["worker"]["hosts"] == {"box1": {}}
    assert children["web"]["hosts"]["box1"]["ansible_host"] == "10.0.0.1"


def test_dashed_environment_name_becomes_an_identifier_group() -> None:
    inventory = _inventory(GOLDEN / "dashed_environment")
    assert list(inventory["all"]["children"]) == ["env_prod_eu"]
    assert environment_group("a.b-c") == "env_a_b_c"


def test_custom_ssh_settings() -> None:
    group = _group("custom_ssh")
    hosts = group["children"]["web"]["hosts"]
    key = str((GOLDEN / "custom_ssh" / "keys" / "id_ed25519").resolve())
    assert hosts["web.example.com"] == {
        "ansible_host": "web.example.com",
        "ansible_port": 2222,
        "ansible_user": "admin",
        "ansible_ssh_private_key_file": key,
    }
    assert hosts["web6"]["ansible_user"] == "ops"
    args = group["vars"]["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=yes" in args
    assert "ConnectTimeout=5" in args
    assert (
        f'UserKnownHostsFile="{(GOLDEN / "custom_ssh" / "keys" / "known_hosts").resolve()}"' in args
    )


def test_known_hosts_path_with_a_space_stays_one_argument(tmp_path: Path) -> None:
    project = tmp_path / "my project"
    project.mkdir()
    (project / "deploy.yml").write_text((GOLDEN / "single" / "deploy.yml").read_text())
    target = resolve(load_project(project / "deploy.yml"), "staging")
    words = shlex.split(ssh_common_args(target))
    # one word to the shell-like split Ansible does, and one file to ssh, which splits the
    # option's value on spaces itself unless they are inside double quotes
    assert f'UserKnownHostsFile="{project.resolve()}/.deployer/known_hosts"' in words
    key = "ssh:\n      private_key: keys %d/id\n"
    text = (GOLDEN / "single" / "deploy.yml").read_text()
    assert "\n    hosts:" in text
    text = text.replace("\n    hosts:", "\n    " + key + "    hosts:", 1)
    (project / "deploy.yml").write_text(text)
    target = resolve(load_project(project / "deploy.yml"), "staging")
    host = host_vars(target.hosts[0])
    # Ansible hands it to ssh as IdentityFile="...", where ssh expands %-tokens
    assert host["ansible_ssh_private_key_file"] == f"{project.resolve()}/keys %%d/id"


@pytest.mark.parametrize(
    ("size", "systemd"),
    [
        ("512Mi", "512M"),
        ("1Gi", "1G"),
        ("2Ti", "2T"),
        ("64Ki", "64K"),
        ("1000", "1000"),
        ("1K", "1000"),
        ("3M", "3000000"),
        ("1G", "1000000000"),
    ],
)
def test_systemd_memory(size: str, systemd: str) -> None:
    assert systemd_memory(size) == systemd


@pytest.mark.parametrize(
    ("cpu", "quota"), [(0.5, "50%"), (2, "200%"), ("1.5", "150%"), ("500m", "50%"), ("10m", "1%")]
)
def test_systemd_cpu_quota(cpu: float | str, quota: str) -> None:
    assert systemd_limits(Resources(cpu=cpu)) == {"cpu_quota": quota}


def test_no_limits_without_resources() -> None:
    assert systemd_limits(Resources()) == {}


@pytest.mark.parametrize("cpu", ["1m", "4m", 0.001])
def test_tiny_cpu_limit_is_refused_not_rounded_to_zero_percent(cpu: float | str) -> None:
    with pytest.raises(ValidationError, match=r"at least 0\.01"):
        Resources(cpu=cpu)
    assert systemd_limits(Resources(cpu="10m"))["cpu_quota"] == "1%"
