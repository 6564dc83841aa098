"""Several instances per host on real lab hosts: `replicas` spreads the app over template
units (`<app>@<port>`), each socket-activated on its own port behind the edge proxy; fewer
replicas go back to the one service; a rollback brings back the instances its release was
deployed with, from the release's own units."""

from __future__ import annotations

import http.client
import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Project

pytestmark = pytest.mark.integration


def _active(project: Project, host: object, pattern: str) -> set[str]:
    out = project.ssh(
        host, f"systemctl list-units --state=active --plain --no-legend '{pattern}'"
    ).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _answer(project: Project, host: object, port: int) -> str:
    return project.ssh(host, f"curl -s --max-time 3 http://127.0.0.1:{port}/").stdout.strip()


def test_replicas_run_as_template_instances_and_come_back_with_a_rollback(
    project: Project,
) -> None:
    app, port = project.app, project.port
    domain = f"{app}.lab.test"
    hosts = project.lab.hosts
    replicas = {"web": 2 * len(hosts)}  # two on every host
    project.edit(
        {"environments": {"lab": {"hosts": {"web": "lab"}, "replicas": replicas, "domain": domain}}}
    )
    planned = project.cli("plan", "lab", "--version", "v1", "--json")
    assert planned.returncode == 0, planned.stderr[-2000:]
    placement = {h["host"]: h["ports"] for h in json.loads(planned.stdout)["hosts"]}
    assert placement == {h.name: [port, port + 1] for h in hosts}
    first = project.cli("deploy", "lab", "--version", "v1")
    assert first.returncode == 0, first.stderr[-3000:]
    for host in hosts:
        assert _active(project, host, f"{app}@*.service") == {
            f"{app}@{port}.service",
            f"{app}@{port + 1}.service",
        }, host.name
        assert _answer(project, host, port) == "hello from v1"
        assert _answer(project, host, port + 1) == "hello from v1"
    upstreams = project.ssh(hosts[0], f"cat /etc/nginx/deployer/{app}-lab/upstreams.conf").stdout
    assert upstreams.count(" max_fails=") == 2 * len(hosts)  # every instance of every host
    conn = http.client.HTTPConnection(hosts[0].ip, 80, timeout=5)
    conn.request("GET", "/", headers={"Host": domain})
    assert conn.getresponse().read().decode().strip() == "hello from v1"

    project.edit({"environments": {"lab": {"replicas": {"web": len(hosts)}}}})
    second = project.cli("deploy", "lab", "--version", "v2")
    assert second.returncode == 0, second.stderr[-3000:]
    for host in hosts:
        assert _active(project, host, f"{app}@*") == set(), host.name  # instances stopped
        assert f"{app}.service" in _active(project, host, f"{app}.*")
        assert _answer(project, host, port) == "hello from v2"

    back = project.cli("rollback", "lab")
    assert back.returncode == 0, back.stderr[-3000:]
    for host in hosts:
        assert f"{app}.service" not in _active(project, host, f"{app}.*"), host.name
        assert _answer(project, host, port + 1) == "hello from v1"
    assert set(project.current().values()) == {"v1"}
