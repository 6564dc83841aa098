"""Apps deploy as they are: servers nobody here wrote (Python's http.server, Debian's
gunicorn and uvicorn) binding their own port (`listen: port`), and the two that can take a
systemd socket with `listen: socket`; each goes v1 -> v2 -> a broken v3 that is rolled back.
A service that does not come up is explained (a port another process holds, a crash on
start), and a failed first release leaves its host running nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Project

pytestmark = pytest.mark.integration

APPS = Path(__file__).parent / "apps"
PAGE = (APPS / "static" / "index.html").read_text().strip()

# case -> (app directory, command, listen, what / answers for version V)
SERVERS = {
    "http.server": ("static", "/usr/bin/python3 -m http.server $PORT", "port", "{page}"),
    "gunicorn-port": (
        "wsgi",
        "/usr/bin/gunicorn --bind 0.0.0.0:${PORT} --workers 2 app:application",
        "port",
        "wsgi {version}",
    ),
    "gunicorn-socket": (
        "wsgi",
        "/usr/bin/gunicorn --workers 2 app:application",  # it finds the systemd socket itself
        "socket",
        "wsgi {version}",
    ),
    "uvicorn-port": (
        "asgi",
        "/usr/bin/uvicorn --host 0.0.0.0 --port $PORT app:app",
        "port",
        "asgi {version}",
    ),
    "uvicorn-socket": ("asgi", "/usr/bin/uvicorn --fd 3 app:app", "socket", "asgi {version}"),
}


def _setup(project: Project, command: str, listen: str, **service: Any) -> None:
    project.edit(
        {
            "service": {"command": command, "listen": listen, "env": {}, "shared": {}, **service},
            "health": {"http": {"path": "/healthz", "body": "ok"}, "retries": 20, "interval": 0.5},
            "strategy": {"kind": "all_at_once", "failure_budget": 0},
        }
    )


def _answers(project: Project) -> set[str]:
    return {
        project.ssh(h, f"curl -s --max-time 3 http://127.0.0.1:{project.port}/").stdout.strip()
        for h in project.lab.hosts
    }


def _units(project: Project) -> set[str]:
    out = project.ssh(project.lab.hosts[0], f"ls /etc/systemd/system/ | grep '^{project.app}\\.'")
    return set(out.stdout.split())


@pytest.mark.parametrize("case", list(SERVERS))
def test_a_server_nobody_here_wrote_deploys_and_rolls_back(project: Project, case: str) -> None:
    app, command, listen, answer = SERVERS[case]
    _setup(project, command, listen)
    shutil.copytree(APPS / app, project.root / "v")
    broken = project.root / "v3"
    shutil.copytree(APPS / app, broken)
    if app == "static":
        (broken / "healthz").unlink()  # 404 where the health check looks
    else:
        (broken / "BROKEN").write_text("")

    for version in ("v1", "v2"):
        result = project.json("deploy", "lab", "--version", version, "--artifact", "v")
        assert result["status"] == "SUCCEEDED", result
        assert _answers(project) == {answer.format(version=version, page=PAGE)}
    socket_unit = f"{project.app}.socket"
    assert (socket_unit in _units(project)) == (listen == "socket")

    failed = project.json("deploy", "lab", "--version", "v3", "--artifact", "v3", expect=1)

    assert failed["status"] == "ROLLED_BACK"
    assert "v3 failed on this host" in failed["reason"]
    assert set(project.current().values()) == {"v2"}
    assert _answers(project) == {answer.format(version="v2", page=PAGE)}


def test_a_port_held_by_another_process_is_named_and_the_first_release_leaves_nothing(
    project: Project,
) -> None:
    _setup(project, "/usr/bin/python3 -m http.server $PORT", "port")
    shutil.copytree(APPS / "static", project.root / "v")
    squatter = project.lab.hosts[1]
    held = project.ssh(
        squatter,
        f"sudo systemd-run --unit squat-{project.app} --property=Type=exec "
        f"/usr/bin/python3 -m http.server {project.port}",
    )
    assert held.returncode == 0, held.stderr
    try:
        failed = project.json("deploy", "lab", "--version", "v1", "--artifact", "v", expect=1)
    finally:
        project.ssh(squatter, f"sudo systemctl stop squat-{project.app}")

    hosts = {h["host"]: h for h in failed["hosts"]}
    explained = hosts[squatter.name]["message"]
    assert f"could not bind port {project.port}: address already in use" in explained
    assert "held by python3 (pid " in explained
    assert "journal: " in explained
    assert "Address already in use" in explained
    assert (
        f"{squatter.name}: failed: v1 failed on this host: the app could not bind"
        in (failed["reason"])
    )
    # no host ran anything before: every host runs nothing again, and says so
    assert set(project.current().values()) == {""}
    for host in project.lab.hosts:
        state = project.ssh(host, f"systemctl is-active {project.app}.service").stdout.strip()
        assert state in {"inactive", "unknown"}, (host.name, state)
        assert project.ssh(host, f"test -e /etc/systemd/system/{project.app}.service").returncode
    assert all(h["after"] is None for h in failed["hosts"])
    assert "nothing runs on this host" in hosts[project.lab.hosts[0].name]["message"]
    status = project.cli("status", "lab", "--json")
    assert {h["current"] for h in json.loads(status.stdout)["hosts"]} == {None}


def test_a_crash_on_start_says_its_exit_code(project: Project) -> None:
    _setup(project, "/usr/bin/python3 -m http.server $PORT", "port")
    shutil.copytree(APPS / "static", project.root / "v")
    project.json("deploy", "lab", "--version", "v1", "--artifact", "v")
    _setup(project, "/usr/bin/python3 -c 'import sys; print(\"no config\"); sys.exit(3)'", "port")

    failed = project.json("deploy", "lab", "--version", "v2", "--artifact", "v", expect=1)

    message = failed["hosts"][0]["message"]
    assert "exited with code 3" in message
    assert "no config" in message  # the journal line the app printed
    assert set(project.current().values()) == {"v1"}
    assert _answers(project) == {PAGE}  # v1, with v1's own unit back
