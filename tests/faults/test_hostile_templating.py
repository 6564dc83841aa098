"""Hostile text never becomes code: what a host answers, what it reports as versions, what a
config or a secret holds reaches Ansible as text and the hosts as written. Each case plants
an expression that would leave a marker file behind if anything templated it, and checks
the marker is absent and the text arrived literally. Also: extra vars far past the 128 KiB
an argv string may hold still deploy (they travel in a file).
"""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import FaultProject

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.hostile]


def _marker(tag: str) -> Path:
    """A short absolute path on the controller (health output is quoted 80 characters long)."""
    return Path("/tmp") / f"dpw{tag}{secrets.token_hex(3)}"


def _touch(path: object) -> str:
    """An expression that creates `path` wherever it is templated. (`query`, not `lookup`:
    the example's health check looks for the body "ok".)"""
    return "{{ query('pipe','touch " + str(path) + "') }}"


def test_a_health_answer_with_a_template_is_quoted_not_run(project: FaultProject) -> None:
    marker = _marker("h")
    evil = _touch(marker)
    project.fast(service={"env": {"HEALTH_BODY_FILE": "health.txt"}})
    app = project.variant()
    project.deploy("lab", "--version", "v1", "--artifact", app)
    shutil.copytree(project.root / app, project.root / "evil")
    (project.root / "evil" / "health.txt").write_text(evil)
    project.fast(health={"retries": 2, "interval": 0.2})

    result = project.deploy("lab", "--version", "v2", "--artifact", "evil", expect=1)

    assert result["status"] == "ROLLED_BACK"
    assert evil in result["reason"]  # quoted as the host said it, through the rollback run
    assert not marker.exists()
    assert set(project.current().values()) == {"v1"}
    meta = json.loads(project.on("lab1", f"cat /srv/{project.app}/releases/v2/.deployer/meta.json"))
    assert meta["state"] == "bad"
    assert evil in meta["reason"]  # recorded on the host as text too


def test_config_values_secrets_and_the_command_reach_the_hosts_as_written(
    project: FaultProject,
) -> None:
    marker, secret_marker = _marker("c"), _marker("s")
    evil = _touch(marker)
    secret = "{# " + secrets.token_hex(4) + " " + _touch(secret_marker)
    project.fast(
        service={
            "env": {"TEMPLATED": "{{ 7*7 }}", "EVIL": evil},
            "command": "/usr/bin/env TAG={{7*7}}%h /usr/bin/python3 app.py",
        },
        secrets={"env": {"SECRET_VALUE": {"from_env": "HOSTILE_SECRET"}}},
    )

    project.deploy("lab", "--version", "v1", env={"HOSTILE_SECRET": secret})

    assert not marker.exists()
    assert not secret_marker.exists()
    env_file = project.on("lab1", f"sudo cat /srv/{project.app}/current/.deployer/env")
    assert 'TEMPLATED="{{ 7*7 }}"\n' in env_file
    assert f'EVIL="{evil}"\n' in env_file
    assert f'SECRET_VALUE="{secret}"\n' in env_file
    unit = project.on("lab1", f"cat /etc/systemd/system/{project.app}.service")
    assert "ExecStart=/usr/bin/env TAG={{7*7}}%%h /usr/bin/python3 app.py\n" in unit
    pid = project.on("lab1", f"systemctl show -p MainPID --value {project.app}.service").strip()
    environ = project.on("lab1", f"sudo cat /proc/{pid}/environ").split("\0")
    assert "TAG={{7*7}}%h" in environ  # systemd got the specifier escaped: no expansion
    # features.debug and features.logging reach the running service beside the hostile text
    assert {"DEPLOYER_DEBUG=0", "DEPLOYER_LOGGING=1"} <= set(environ)


def test_versions_a_host_reports_are_checked_before_anything_uses_them(
    project: FaultProject,
) -> None:
    # A directory name may hold anything but '/': `cd` makes the payload need none.
    tag = "dpwv" + secrets.token_hex(3)
    evil = _touch("x;cd;touch " + tag)
    project.fast()
    project.deploy("lab", "--version", "v1")
    root = f"/srv/{project.app}"
    meta = {
        "version": evil,
        "state": "good",
        "sha256": None,
        "reason": None,
        "staged_at": "2999-01-01T00:00:00.000000Z",
        "switched_at": "2999-01-01T00:00:00Z",
    }
    planted = project.docker(
        "lab1", "sh", "-c",
        f"cd {root}/releases && mkdir -p \"$1/.deployer\" && printf %s \"$2\" > "
        f"\"$1/.deployer/meta.json\" && ln -sfn \"{root}/releases/$1\" {root}/current",
        "sh", evil, json.dumps(meta),
    )  # fmt: skip
    assert planted.returncode == 0, planted.stderr

    status, _ = project.run("status", "lab", "--json")
    rollback, _ = project.run("rollback", "lab", "--json")

    home = project.docker("lab1", "true")  # the lab host stays up; the controller is checked
    assert home.returncode == 0
    assert not (Path.home() / tag).exists()
    assert not list(Path("/").glob(f"*/{tag}"))
    shown = json.loads(status.stdout)
    lab1 = next(h for h in shown["hosts"] if h["host"] == "lab1")
    assert lab1["current"] is None
    assert "refused what the host reported as versions" in lab1["message"]
    assert "Traceback" not in rollback.stderr
    assert rollback.returncode != 0  # no version every host stores: nothing to go back to


def test_extra_vars_far_past_the_argv_limit_still_deploy(project: FaultProject) -> None:
    # 300 KB of extra vars; one argv string may hold 128 KiB. (Each variable stays well
    # below that limit, which also applies to the environment the service is started with.)
    env = {f"BIG_{n}": f"{n}" * 30_000 for n in range(10)}
    project.fast(service={"env": env})

    project.deploy("lab", "--version", "v1")

    env_file = f"/srv/{project.app}/current/.deployer/env"
    lengths = project.on("lab1", f"sudo grep '^BIG_' {env_file} | awk '{{print length($0)}}'")
    assert sorted(int(n) for n in lengths.split()) == [len('BIG_0=""') + 30_000] * 10


def test_a_planted_ssh_control_directory_is_refused_before_any_host(
    bare_project: FaultProject, tmp_path: Path
) -> None:
    import os

    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir(mode=0o777)
    planted = runtime / f"deployer-cp-{os.getuid()}"
    planted.symlink_to(elsewhere)

    proc, _ = bare_project.run(
        "deploy", "lab", "--version", "v1", env={"XDG_RUNTIME_DIR": str(runtime)}
    )

    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert str(planted) in proc.stderr
    assert "symlink" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(elsewhere.iterdir()) == []
    assert not bare_project.rows()  # refused before the ledger row opened
