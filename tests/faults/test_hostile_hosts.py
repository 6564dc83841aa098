"""Hostile hosts: a service user who plants links, and directories deployer did not make.
Root on the hosts never follows a path the service user can plant, the release is root's
and read-only to the service, command checks run as the service user, and an existing
deploy_to that deployer did not create is refused and left as it was."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import FaultProject

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.hostile]


def assert_all_on(project: FaultProject, version: str) -> None:
    assert set(project.current().values()) == {version}, project.current()
    assert set(project.answers().values()) == {f"hello from {version}"}, project.answers()


def test_a_link_planted_in_a_shared_path_is_refused_and_never_followed(
    project: FaultProject,
) -> None:
    """The service user swaps shared/conf/sub for a link to a directory in /etc: staging
    the next version fails naming that path, nothing appears in /etc, hosts stay on v1."""
    project.fast()
    project.edit({"service": {"shared": {"files": ["conf/sub/app.ini"]}}})
    project.deploy("lab", "--version", "v1")
    target = f"/etc/deployer-planted-{secrets.token_hex(4)}"
    shared = f"/srv/{project.app}/shared/conf"
    project.on("lab2", f"sudo mkdir {target}")
    project.undo.append(lambda: project.on("lab2", f"sudo rm -rf {target}", check=False))
    project.on(
        "lab2", f"sudo -u {project.app} sh -c 'rm -r {shared}/sub && ln -s {target} {shared}/sub'"
    )

    result = project.deploy("lab", "--version", "v2", expect=1)
    assert result["status"] == "FAILED"
    assert result["stage"] == "stage"
    assert "lab2" in result["reason"]
    assert "shared/conf/sub is a symlink" in result["reason"]
    assert project.on("lab2", f"sudo ls -A {target}").strip() == ""
    assert project.releases_on("lab2") == ["v1"]
    assert_all_on(project, "v1")
    assert not project.lock_held()


def test_the_release_is_roots_and_read_only_to_the_service(project: FaultProject) -> None:
    """After a deploy the code and its .deployer/ are root's: the service user cannot write
    into its release; the env file is root's alone (0600); the app still answers."""
    project.fast()
    project.deploy("lab", "--version", "v1")
    app, current = project.app, f"/srv/{project.app}/current"
    for host in project.lab.hosts:
        owners = project.on(
            host.name,
            f"sudo stat -c '%U:%G %a' {current}/ {current}/app.py {current}/.deployer "
            f"{current}/.deployer/meta.json {current}/.deployer/env",
        ).split("\n")[:-1]
        assert owners == [
            f"root:{app} 755",
            f"root:{app} 644",
            "root:root 755",
            "root:root 644",
            "root:root 600",
        ], (host.name, owners)
        touch = project.on(
            host.name,
            f"sudo -u {app} touch {current}/x 2>&1; sudo -u {app} touch {current}/.deployer/x "
            "2>&1; true",
        )
        assert touch.count("Permission denied") == 2, (host.name, touch)
        assert "x" not in project.on(host.name, f"sudo ls -A {current}/").split()
    assert_all_on(project, "v1")


def test_command_checks_run_as_the_service_user_unless_the_config_says_root(
    project: FaultProject,
) -> None:
    """A command check that records `id -un` records the service user, in the switch's
    checks and in the watch window alike; with `user: root` it records root."""
    first, second = (f"/tmp/deployer-who-{secrets.token_hex(4)}" for _ in range(2))
    project.fast(
        health={"retries": 20, "interval": 0.5, "command": {"run": f"id -un >> {first}"}},
        rollback={"watch": 2, "health_checks": {"period": 1, "threshold": 1}},
    )
    project.undo.append(
        lambda: [project.on(h.name, f"sudo rm -f {first} {second}") for h in project.lab.hosts]
    )
    project.deploy("lab", "--version", "v1")
    for host in project.lab.hosts:
        seen = project.on(host.name, f"cat {first}").split()
        assert len(seen) >= 2, (host.name, seen)  # the switch's check and the watch's
        assert set(seen) == {project.app}, (host.name, seen)

    project.edit({"health": {"command": {"run": f"id -un >> {second}", "user": "root"}}})
    project.deploy("lab", "--version", "v2")
    for host in project.lab.hosts:
        assert set(project.on(host.name, f"cat {second}").split()) == {"root"}, host.name


def test_an_existing_directory_deployer_did_not_create_is_refused_untouched(
    project: FaultProject,
) -> None:
    """deploy_to names a directory someone else made (odd owner and mode, a file in it):
    staging refuses it on every host and its owner, mode and content stay as they were."""
    project.fast()
    foreign = f"/srv/{project.app}-theirs"
    setup = (
        f"sudo mkdir {foreign} && sudo touch {foreign}/keep && "
        f"sudo chown nobody:nogroup {foreign} && sudo chmod 1750 {foreign}"
    )
    for host in project.lab.hosts:
        project.on(host.name, setup)
    project.undo.append(
        lambda: [project.on(h.name, f"sudo rm -rf {foreign}") for h in project.lab.hosts]
    )
    project.edit({"service": {"deploy_to": foreign}})

    result = project.deploy("lab", "--version", "v1", expect=1)
    assert result["status"] == "FAILED"
    assert result["stage"] == "stage"
    for host in project.lab.hosts:
        assert (
            f"{host.name}: staging v1 failed: deploy_to {foreign} already exists and was "
            "not created by deployer" in result["reason"]
        ), result["reason"]
        seen = project.on(host.name, f"sudo stat -c '%U:%G %a' {foreign}; sudo ls -A {foreign}")
        assert seen.split("\n")[:-1] == ["nobody:nogroup 1750", "keep"], (host.name, seen)
    assert not project.lock_held()
