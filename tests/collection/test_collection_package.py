"""deployer.core as a user gets it: `ansible-galaxy collection build` makes a tarball that
`ansible-galaxy collection install` installs offline, and a user's own playbook calls the
installed roles and modules by FQCN (ansible-doc, syntax check, and a real run against a
1-host lab named `pkg`, override with DEPLOYER_PKG_LAB).

Only the installed copy is visible to Ansible here: ANSIBLE_COLLECTIONS_PATH names the
temporary install directory alone and sys.path scanning is off, so the repository's
collections/ directory cannot stand in for a broken tarball.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "collections/ansible_collections/deployer/core"
CALLBACKS = Path(__file__).parent / "callback_plugins"
VENV_BIN = REPO / ".venv/bin"
GALAXY = yaml.safe_load((SOURCE / "galaxy.yml").read_text())
# a session with a lab of its own (DEPLOYER_TEST_LAB) gets this one of its own too
LAB_NAME = os.environ.get(
    "DEPLOYER_PKG_LAB",
    f"{os.environ['DEPLOYER_TEST_LAB']}-pkg" if "DEPLOYER_TEST_LAB" in os.environ else "pkg",
)


def tool(name: str) -> str:
    candidate = VENV_BIN / name
    return str(candidate) if candidate.exists() else name


@dataclass(frozen=True)
class Installed:
    tarball: Path
    path: Path  # the collections directory holding ansible_collections/deployer/core

    @property
    def root(self) -> Path:
        return self.path / "ansible_collections/deployer/core"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(self.path),
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            **extra,
        }

    def run(self, *argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool(argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=cwd,
            env=self.env(**env),
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """deployer.core built from the repository and installed from the tarball, offline."""
    work = tmp_path_factory.mktemp("collection")
    build = subprocess.run(
        [tool("ansible-galaxy"), "collection", "build", str(SOURCE), "--output-path", str(work)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = work / f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
    assert tarball.is_file(), build.stdout
    collections = work / "collections"
    install = subprocess.run(
        [
            tool("ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "-p",
            str(collections),
            str(tarball),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections)},
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return Installed(tarball=tarball, path=collections)


# --- the tarball and the installed tree ---------------------------------------------------


def test_tarball_has_every_role_and_plugin_and_no_bytecode(installed: Installed) -> None:
    with tarfile.open(installed.tarball) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("MANIFEST.json").read())  # type: ignore[union-attr]
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == (
        GALAXY["namespace"],
        GALAXY["name"],
        GALAXY["version"],
    )
    expected = {
        str(p.relative_to(SOURCE))
        for p in SOURCE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    } - {"galaxy.yml"}
    assert expected <= names, f"missing from the tarball: {sorted(expected - names)}"
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".tar.gz"))]
    for role in (
        "lock",
        "preflight",
        "service",
        "release",
        "switch",
        "rollback",
        "healthcheck",
        "monitoring",
        "proxy",
    ):
        assert f"roles/{role}/meta/argument_specs.yml" in names


def test_installed_collection_is_the_one_ansible_finds(
    installed: Installed, tmp_path: Path
) -> None:
    listed = installed.run("ansible-galaxy", "collection", "list", "deployer.core", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert str(installed.path / "ansible_collections") in listed.stdout
    assert GALAXY["version"] in listed.stdout

    doc = installed.run("ansible-doc", "deployer.core.deployer_switch", cwd=tmp_path)
    assert doc.returncode == 0, doc.stderr
    assert f"({installed.root}/plugins/modules/deployer_switch.py)" in doc.stdout
    assert "mark_bad" in doc.stdout

    role_doc = installed.run("ansible-doc", "-t", "role", "deployer.core.lock", cwd=tmp_path)
    assert role_doc.returncode == 0, role_doc.stderr
    assert "lock_path" in role_doc.stdout
    assert "choices: [acquire, release, status, break]" in role_doc.stdout


# --- a user's own playbook ----------------------------------------------------------------


def users_playbook(directory: Path, app: str) -> Path:
    """A playbook of the kind a user writes: roles and a module by FQCN, nothing else."""
    lock = f"/var/lib/deployer/locks/{app}.lock"
    plays = [
        {
            "name": "Use the installed deployer.core",
            "hosts": "all",
            "gather_facts": False,
            "become": True,
            "roles": [
                {
                    "role": "deployer.core.lock",
                    "vars": {
                        "lock_path": lock,
                        "lock_action": "acquire",
                        "lock_token": "pkg-token",
                        "lock_holder": {"user": "pytest", "deployment": "pkg"},
                    },
                },
                {
                    "role": "deployer.core.preflight",
                    "vars": {"preflight_deploy_to": f"/srv/{app}", "preflight_app": app},
                },
            ],
            "tasks": [
                {
                    "name": "Read the lock with the module itself",
                    "deployer.core.deployer_lock": {"path": lock, "action": "status"},
                    "register": "status",
                },
                {
                    "name": "Check what the roles and the module saw",
                    "ansible.builtin.assert": {
                        "that": [
                            "lock_result.deployer.acquired",
                            "status.deployer.held and status.deployer.holder.user == 'pytest'",
                            "preflight_result.deployer.releases == []",
                            "preflight_result.deployer.current is none",
                        ]
                    },
                },
                {
                    "name": "Release the lock",
                    "ansible.builtin.include_role": {"name": "deployer.core.lock"},
                    "vars": {
                        "lock_path": lock,
                        "lock_action": "release",
                        "lock_token": "pkg-token",
                    },
                },
            ],
        }
    ]
    path = directory / "site.yml"
    path.write_text(yaml.safe_dump(plays, sort_keys=False))
    return path


def test_users_playbook_passes_the_syntax_check(installed: Installed, tmp_path: Path) -> None:
    playbook = users_playbook(tmp_path, "pkgsyntax")
    run = installed.run(
        "ansible-playbook", "-i", "localhost,", "--syntax-check", str(playbook), cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.fixture(scope="module")
def pkg_lab() -> Iterator[Any]:
    """The `pkg` lab with 1 host; left running for the next session (up is idempotent)."""
    from deployer.lab import up

    try:  # create the lab network first, as the `coll` lab fixture does
        from deployer.lab import containers, engine

        containers.ensure_network(engine.client(), LAB_NAME)
    except Exception:  # best effort: up() reports real problems
        pass
    state = up(1, name=LAB_NAME)
    yield state
    if os.environ.get("DEPLOYER_PKG_LAB_DOWN") == "1":
        from deployer.lab import down

        down(LAB_NAME)


@pytest.mark.integration
def test_users_playbook_runs_the_installed_roles_on_a_lab_host(
    installed: Installed, pkg_lab: Any, tmp_path: Path
) -> None:
    host = pkg_lab.hosts[0]
    app = "pkg" + secrets.token_hex(3)
    inventory = tmp_path / "inventory.yml"
    ssh_args = (
        f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={pkg_lab.known_hosts} "
        "-o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o ConnectTimeout=5"
    )
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        host.name: {
                            "ansible_host": host.address,
                            "ansible_port": host.port,
                            "ansible_user": host.user,
                        }
                    },
                    "vars": {
                        "ansible_ssh_private_key_file": str(pkg_lab.private_key),
                        "ansible_ssh_common_args": ssh_args,
                        "ansible_python_interpreter": "/usr/bin/python3",
                    },
                }
            }
        )
    )
    events = tmp_path / "events.jsonl"
    run = installed.run(
        "ansible-playbook",
        "-i",
        str(inventory),
        str(users_playbook(tmp_path, app)),
        cwd=tmp_path,
        ANSIBLE_HOST_KEY_CHECKING="True",
        ANSIBLE_PIPELINING="True",
        ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
        ANSIBLE_CALLBACKS_ENABLED="jsonl_events",
        DEPLOYER_TEST_EVENTS=str(events),
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    records = [json.loads(line) for line in events.read_text().splitlines()]
    results = [r for r in records if r["status"] != "start"]
    ran = {r["action"] for r in results if r["status"] == "ok"}
    assert {"deployer.core.deployer_lock", "deployer.core.deployer_preflight"} <= ran
    released = [
        r["result"]["deployer"]
        for r in results
        if r["status"] == "ok" and r["action"] == "deployer.core.deployer_lock"
    ][-1]
    assert released["released"] is True
    left = subprocess.run(
        ["docker", "exec", host.container, "ls", "/var/lib/deployer/locks"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"{app}.lock" not in left.stdout.split()
