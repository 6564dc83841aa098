"""Golden systemd units, rendered on the controller from the service role's templates.

Each tests/golden/units/<case>/ holds a deploy.yml with one environment and, per host, the
expected unit files under <host>/. After an intended change, regenerate and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/plan/test_units.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deployer.config.loader import load_project
from deployer.config.resolve import Target, resolve
from deployer.plan.units import units_by_host

GOLDEN = Path(__file__).parents[2] / "golden" / "units"
CASES = sorted(p.parent for p in GOLDEN.glob("*/deploy.yml"))


def _target(case: Path) -> Target:
    loaded = load_project(case / "deploy.yml")
    (env,) = loaded.project.environments
    return resolve(loaded, env)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_units(case: Path) -> None:
    target = _target(case)
    rendered = units_by_host(target, target.host_names)
    assert set(rendered) == set(target.host_names)
    for host, units in rendered.items():
        for name, content in units.items():
            expected = case / host / name
            if os.environ.get("UPDATE_GOLDEN") == "1":
                expected.parent.mkdir(exist_ok=True)
                expected.write_text(content)
            assert content == expected.read_text(), (host, name)
        on_disk = {p.name for p in (case / host).iterdir()}
        assert on_disk == set(units), host  # no stale golden file for a unit no longer made


def test_percent_reaches_systemd_escaped_and_variables_stay() -> None:
    target = _target(GOLDEN / "limits_and_specifiers")
    service = units_by_host(target, ["web1"])["web1"]["api.service"]
    assert "ExecStart=/usr/bin/env printf '%%h %%n 100%%' --port $PORT\n" in service


def test_limits_follow_each_host_component() -> None:
    target = _target(GOLDEN / "limits_and_specifiers")
    units = units_by_host(target, target.host_names)
    assert "CPUQuota=50%\n" in units["web1"]["api.service"]
    assert "CPUQuota=200%\n" in units["worker1"]["api.service"]
    assert "MemoryMax=1G\n" in units["worker1"]["api.service"]


def test_only_the_hosts_of_the_run_are_rendered() -> None:
    target = _target(GOLDEN / "limits_and_specifiers")
    assert set(units_by_host(target, ["worker1"])) == {"worker1"}


def test_extra_env_files_follow_the_release_env_file_in_order() -> None:
    from deployer.plan.units import _defaults, _templates

    values = {
        **_defaults(),
        "service_app": "shop",
        "service_deploy_to": "/srv/shop",
        "service_user": "shop",
        "service_command": "run",
        "service_env_files": ["database", "redis"],
    }
    lines = _templates().get_template("app.service.j2").render(values).splitlines()
    files = [line for line in lines if line.startswith("EnvironmentFile=")]
    assert files == [
        "EnvironmentFile=-/srv/shop/current/.deployer/env",
        "EnvironmentFile=-/srv/shop/current/.deployer/env.database",
        "EnvironmentFile=-/srv/shop/current/.deployer/env.redis",
    ]
    assert _defaults()["service_env_files"] == []  # and the golden units render as before
