"""Bad input: injection attempts in config and flags, broken configs, and a rollback that
would split the fleet. All are refused with exit 2 and a message naming the config path (or
the hosts), before anything runs: no connection is opened, no command runs on the controller
or on a host, no ledger or run directory is created."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from conftest import FaultProject

pytestmark = [pytest.mark.faults, pytest.mark.integration]

TOKEN = secrets.token_hex(6)
MARK = f"/tmp/pwned-{TOKEN}"  # what an injected command would create (never expected)


def assert_nothing_ran(project: FaultProject) -> None:
    """No ledger, no Ansible run, no build command and no injected command, on the
    controller or on any lab host."""
    state = project.root / ".deployer"
    assert not (state / "ledger.sqlite3").exists()
    assert not (state / "runs").exists()
    assert not (project.root / "built").exists(), "the artifact build command ran"
    assert not list(Path("/tmp").glob(f"pwned-{TOKEN}*")), "an injected command ran locally"
    for host in project.lab.hosts:
        out = project.on(host.name, f"ls -d /tmp/pwned-{TOKEN}* 2>/dev/null || true")
        assert out.strip() == "", (host.name, out)


def on_lab1(project: FaultProject, **change: str) -> dict[str, Any]:
    """Environment `x` on lab1 (so whatever leaked through would reach a real host)."""
    entry = {**project.hosts_entries("lab1")[0], **change}
    return {"environments": {"x": {"hosts": {"web": [entry]}, "ssh": project.lab_ssh()}}}


# case -> (config change, CLI arguments, the config path or flag the error must name)
Case = tuple[Callable[["FaultProject"], dict[str, Any]], tuple[str, ...], str]
INJECTIONS: dict[str, Case] = {
    "host name": (
        lambda p: on_lab1(p, name=f"a;touch {MARK}"),
        ("deploy", "x"),
        "environments.x.hosts.web[0].name",
    ),
    "host address": (
        lambda p: on_lab1(p, address=f"127.0.0.1;touch {MARK}"),
        ("deploy", "x"),
        "environments.x.hosts.web[0].address",
    ),
    "app name $(id)": (lambda p: {"app": {"name": "$(id)"}}, ("deploy", "lab"), "app.name"),
    "app name $(touch)": (
        lambda p: {"app": {"name": f"$(touch {MARK})"}},
        ("deploy", "lab"),
        "app.name",
    ),
    "environment name": (
        lambda p: {"environments": {f"x;touch {MARK}": {"hosts": {"web": "lab"}}}},
        ("deploy", "lab"),
        f"environments.x;touch {MARK}: 'x;touch {MARK}' is not a safe name",
    ),
    "component name": (
        lambda p: {"environments": {"lab": {"hosts": {f"web;touch {MARK}": "lab"}}}},
        ("deploy", "lab"),
        "environments.lab.hosts.web;touch",
    ),
    "deploy_to ..": (
        lambda p: {"service": {"deploy_to": "/srv/../etc"}},
        ("deploy", "lab"),
        "service.deploy_to",
    ),
    "shared dir ..": (
        lambda p: {"service": {"shared": {"dirs": ["../../etc"]}}},
        ("deploy", "lab"),
        "service.shared.dirs[0]",
    ),
    "service user": (
        lambda p: {"service": {"user": f"x;touch {MARK}"}},
        ("deploy", "lab"),
        "service.user",
    ),
    "version quote": (
        lambda p: {},
        ("deploy", "lab", "--version", f"v1';touch {MARK};'"),
        "--version",
    ),
    "version rm -rf": (lambda p: {}, ("deploy", "lab", "--version", "v1';rm -rf /"), "--version"),
    "version ../../etc": (lambda p: {}, ("deploy", "lab", "--version", "../../etc"), "--version"),
    "plan --version": (lambda p: {}, ("plan", "lab", "--version", f"$(touch {MARK})"), "--version"),
    "rollback --to": (lambda p: {}, ("rollback", "lab", "--to", "../../etc"), "--to"),
}


@pytest.mark.parametrize("case", list(INJECTIONS))
def test_injection_attempts_are_rejected_before_anything_runs(
    bare_project: FaultProject, case: str
) -> None:
    """Case 12: shell metacharacters and path escapes in names, paths and flags."""
    project = bare_project
    # a build command that leaves a trace: proves that no local command ran either
    project.edit({"artifact": {"build": f"touch {project.root}/built"}})
    change, args, where = INJECTIONS[case]
    project.edit(change(project))
    proc = project.cli(*args)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert where in proc.stderr, proc.stderr
    assert_nothing_ran(project)


@dataclass
class Listener:
    """A TCP port on 127.0.0.1 that records every connection made to it."""

    port: int
    connections: list[tuple[str, int]] = field(default_factory=list)


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)
    found = Listener(server.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            found.connections.append(peer)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield found
    stop.set()
    thread.join(timeout=5)
    server.close()


def set_in(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change that sets one key of deploy.yml (dotted path), replacing what was there."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            data = data.setdefault(key, {})
        data[last] = value

    return change


DEPLOY = ("deploy", "{env}", "--version", "v1")
STATUS = ("status", "{env}")
# case -> (change to deploy.yml, environment, the config path the error must name, commands)
BAD_CONFIGS: dict[str, tuple[Callable[[dict[str, Any]], None], str, str, tuple[Any, ...]]] = {
    "typo in a key": (
        set_in("strategy.batchsize", 2),
        "probe",
        "strategy.batchsize",
        (DEPLOY, STATUS),
    ),
    "wrong type": (set_in("service.port", "eighty"), "probe", "service.port", (DEPLOY, STATUS)),
    "wrong nested type": (
        set_in("environments.probe.ssh.connect_timeout", "soon"),
        "probe",
        "environments.probe.ssh.connect_timeout",
        (DEPLOY, STATUS),
    ),
    "missing secret": (
        set_in("secrets.env", {"API_TOKEN": {"from_env": "FAULTS_UNSET_VARIABLE"}}),
        "probe",
        "secrets.env.API_TOKEN.from_env",
        (DEPLOY,),  # only commands that need secret values resolve them
    ),
    "unreadable vault": (
        set_in(
            "secrets",
            {
                "vault_file": "missing.vault.yml",
                "vault_password_env": "FAULTS_UNSET_PASSWORD",
                "env": {"DB_PASSWORD": {"vault": "db_password"}},
            },
        ),
        "probe",
        "secrets.vault_file",
        (DEPLOY,),
    ),
    "unknown environment": (
        set_in("lock_ttl", 3600),
        "nosuch",
        "environments.nosuch",
        (DEPLOY, STATUS),
    ),
    "empty hosts list": (
        set_in("environments.probe.hosts.web", []),
        "probe",
        "environments.probe.hosts.web",
        (DEPLOY, STATUS),
    ),
    "no hosts at all": (
        set_in("environments.probe.hosts", {}),
        "probe",
        "environments.probe.hosts",
        (DEPLOY, STATUS),
    ),
}


def probe_environment(project: FaultProject, listener: Listener) -> None:
    probe = [{"name": "probe1", "address": "127.0.0.1", "port": listener.port}]
    project.edit(
        {"environments": {"probe": {"hosts": {"web": probe}, "ssh": {"connect_timeout": 2}}}}
    )


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_names_its_path_and_opens_no_connection(
    bare_project: FaultProject, listener: Listener, case: str
) -> None:
    """Case 13: environment `probe` points at a listener that records connections; every
    bad config exits 2 naming its path, and the listener sees nothing."""
    project = bare_project
    probe_environment(project, listener)
    change, environment, where, commands = BAD_CONFIGS[case]
    path = project.root / "deploy.yml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for command in commands:
        args = [arg.format(env=environment) for arg in command]
        proc = project.cli(*args)
        assert proc.returncode == 2, (args, proc.returncode, proc.stdout, proc.stderr)
        assert where in proc.stderr, (args, proc.stderr)
    assert listener.connections == []
    assert not (project.root / ".deployer" / "ledger.sqlite3").exists()
    assert not (project.root / ".deployer" / "runs").exists()


def test_the_connection_listener_does_see_a_valid_config(
    bare_project: FaultProject, listener: Listener
) -> None:
    """The control for case 13: with a valid config the same deploy does connect (and
    fails in preflight with exit 4, the listener speaking no SSH)."""
    project = bare_project
    probe_environment(project, listener)
    proc = project.cli("deploy", "probe", "--version", "v1", timeout=120)
    assert proc.returncode == 4, (proc.stdout, proc.stderr)
    assert "probe1" in proc.stdout + proc.stderr
    assert listener.connections


def test_rollback_to_a_version_pruned_on_one_host_is_refused(project: FaultProject) -> None:
    """Case 10: v1 is deleted on lab2 only: `rollback --to v1` exits 2 naming lab2 (and
    only lab2), with or without --to nothing is switched, and the lock is released."""
    project.fast()
    project.deploy("lab", "--version", "v1")
    project.deploy("lab", "--version", "v2")
    project.on("lab2", f"sudo rm -rf /srv/{project.app}/releases/v1")
    runs = len(project.rows())

    refused, _ = project.run("rollback", "lab", "--to", "v1")
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert "not present on 1 host(s): lab2" in refused.stderr, refused.stderr
    for other in ("lab1", "lab3", "lab4"):
        assert other not in refused.stderr
    default, _ = project.run("rollback", "lab")
    assert default.returncode == 2, (default.stdout, default.stderr)
    assert "no previous good version is stored on every host" in default.stderr

    assert set(project.current().values()) == {"v2"}
    assert len(project.rows()) == runs  # refused before a rollback was recorded
    assert not project.lock_held()
    marks = {r["version"]: r for r in project.json("releases", "lab")["releases"]}
    assert "partial" in marks["v1"]["marks"]
    assert marks["v1"]["missing"] == ["lab2"]
