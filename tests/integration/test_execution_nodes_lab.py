"""Two sites, each behind its own execution node (`ssh.nodes`), deployed in one run.

Six lab hosts: two nodes (west, east) and two app hosts at each site. Each app host accepts
SSH only from its own node (an iptables rule set through docker, the lab's admin channel):
the control host cannot reach any app host, so every Ansible run goes to the nodes as a
stream (ansible-runner transmit | ssh node worker | process). One module-scoped set-up runs
the cases in order, on one project, to keep the lab's wall time short.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_project import EXAMPLE, Project, remove_app

from deployer.lab import down, ssh_argv, up

pytestmark = pytest.mark.integration

LAB = os.environ.get("DEPLOYER_TEST_LAB", "pytest") + "-sites"
PASSWORD = secrets.token_hex(8)
ENV_CANARY = "envcanary" + secrets.token_hex(8)
VAULT_CANARY = "vaultcanary" + secrets.token_hex(8)
FAIL_FLAG = "/etc/deployer-test-site-fails"


def _docker(host: Any, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "exec", host.container, *argv], capture_output=True, text=True, timeout=60
    )


def _known_hosts(lab: Any) -> str:
    """The lab's entries plus each host's key at its own address, port 22 (how a node sees
    its site's hosts)."""
    lines = lab.known_hosts.read_text().splitlines()
    out = list(lines)
    for host in lab.hosts:
        mine = [line for line in lines if line.startswith(f"[127.0.0.1]:{host.port} ")]
        out += [host.ip + line[line.index(" ") :] for line in mine]
    return "\n".join(out) + "\n"


def _vault(root: Path) -> None:
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(PASSWORD.encode()))])
    (root / "secrets.vault.yml").write_bytes(vault.encrypt(f"db_password: {VAULT_CANARY}\n"))


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    lab = up(6, name=LAB)
    west, east, a1, a2, b1, b2 = lab.hosts
    root = tmp_path_factory.mktemp("nodes") / "project"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".deployer"))
    # v2 fails its health check only where FAIL_FLAG exists (the east site's hosts)
    failing = root / "sitefail"
    failing.mkdir()
    text = (EXAMPLE / "app" / "app.py").read_text()
    text = text.replace("BROKEN = False", f"BROKEN = os.path.exists({FAIL_FLAG!r})", 1)
    (failing / "app.py").write_text(text)
    _vault(root)
    (root / "site_known_hosts").write_text(_known_hosts(lab))
    project = Project(
        root=root, app="n" + secrets.token_hex(4), port=random.randint(20000, 45000), lab=lab
    )

    def app_hosts(*hosts: Any) -> list[dict[str, Any]]:
        return [{"address": h.ip, "port": 22, "name": h.name, "user": "deploy"} for h in hosts]

    def node(host: Any, group: str) -> dict[str, Any]:
        return {"address": "127.0.0.1", "port": host.port, "user": "deploy", "groups": [group]}

    project.edit(
        {
            "app": {"name": project.app},
            "service": {"port": project.port},
            "strategy": {"kind": "all_at_once"},
            "secrets": {
                "vault_file": "secrets.vault.yml",
                "vault_password_env": "HELLO_VAULT_PASSWORD",
                "env": {
                    "API_TOKEN": {"from_env": "HELLO_API_TOKEN"},
                    "DB_PASSWORD": {"vault": "db_password"},
                },
            },
            "environments": {
                "lab": {
                    "hosts": {"web": app_hosts(a1, a2), "eastweb": app_hosts(b1, b2)},
                    "ssh": {
                        "private_key": str(lab.private_key),
                        "known_hosts": "site_known_hosts",
                        "nodes": {"west": node(west, "web"), "east": node(east, "eastweb")},
                    },
                }
            },
        }
    )
    rules = []
    for app, gate in ((a1, west), (a2, west), (b1, east), (b2, east)):
        rule = ["-p", "tcp", "--dport", "22", "!", "-s", gate.ip, "-j", "REJECT"]
        assert _docker(app, "iptables", "-I", "INPUT", *rule).returncode == 0
        rules.append((app, rule))
    try:
        yield project
    finally:
        for app, rule in rules:
            _docker(app, "iptables", "-D", "INPUT", *rule)
            _docker(app, "rm", "-f", FAIL_FLAG)
        remove_app(project)
        if os.environ.get("DEPLOYER_KEEP_LAB") != "1":
            down(LAB)


ENV = {"HELLO_API_TOKEN": ENV_CANARY, "HELLO_VAULT_PASSWORD": PASSWORD}


def _run(project: Project, *args: str, expect: int = 0) -> Any:
    import json

    proc = project.cli(*args, "--json", env=ENV)
    assert proc.returncode == expect, (proc.returncode, proc.stdout[:4000], proc.stderr[-2000:])
    assert not any(c in proc.stdout + proc.stderr for c in (ENV_CANARY, VAULT_CANARY))
    return json.loads(proc.stdout)


def _current(project: Project) -> dict[str, str]:
    out = {}
    for host in project.lab.hosts[2:]:
        link = _docker(host, "readlink", f"/srv/{project.app}/current").stdout.strip()
        out[host.name] = link.rsplit("/", 1)[-1]
    return out


def _everywhere(project: Project, version: str) -> dict[str, str]:
    return {h.name: version for h in project.lab.hosts[2:]}


def test_two_sites_deploy_fail_at_one_site_roll_back_both_status_rollback_exec_logs(
    sites: Project,
) -> None:
    project = sites
    west, east, a1, *_ = project.lab.hosts
    direct = subprocess.run(
        ssh_argv(project.lab, a1, "true"), capture_output=True, text=True, timeout=60
    )
    assert direct.returncode != 0  # the control host cannot reach an app host itself

    first = _run(project, "deploy", "lab", "--version", "v1")
    assert first["status"] == "SUCCEEDED", first
    assert _current(project) == _everywhere(project, "v1")
    for node in (west, east):  # installed under the node user's deployer-owned directory
        ready = _docker(node, "sh", "-c", "ls /home/deploy/.deployer-node/venv-*/READY")
        assert ready.returncode == 0, ready.stderr
    second = _run(project, "deploy", "lab", "--version", "v3")
    assert second["status"] == "SUCCEEDED", second

    for host in project.lab.hosts[4:]:  # the east site's hosts fail v2's health check
        assert _docker(host, "touch", FAIL_FLAG).returncode == 0
    broken = _run(project, "deploy", "lab", "--version", "v2", "--artifact", "sitefail", expect=1)
    assert broken["status"] == "ROLLED_BACK", broken
    reason = broken["reason"]  # the east site's hosts failed, and only they
    assert reason.startswith("2 host(s) failed"), reason
    assert all(h.name in reason for h in project.lab.hosts[4:]), reason
    assert not any(f"{h.name}:" in reason for h in project.lab.hosts[2:4]), reason
    assert {h["status"] for h in broken["hosts"]} == {"rolled_back"}
    assert _current(project) == _everywhere(project, "v3")  # the west site rolled back too

    status = _run(project, "status", "lab")
    assert {h["current"] for h in status["hosts"]} == {"v3"}
    assert len(status["hosts"]) == 4

    back = _run(project, "rollback", "lab")
    assert back["status"] == "SUCCEEDED", back
    assert _current(project) == _everywhere(project, "v1")

    apps = project.lab.hosts[2:]
    ran = project.cli("exec", "lab", "--", "pwd", env=ENV)  # a run, through both nodes
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.count(f"/srv/{project.app}/releases/v1") == len(apps), ran.stdout
    logs = project.cli("logs", "lab", "--lines", "400", env=ENV)  # plain ssh, via each node
    assert logs.returncode == 0, logs.stderr
    assert {h.name for h in apps} <= {line.split()[0] for line in logs.stdout.splitlines()}

    ledger = sqlite3.connect(project.root / ".deployer" / "ledger.sqlite3")
    rows = ledger.execute("SELECT version, status FROM deployments ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["v1", "v3", "v2", "v1"], rows  # one row per command

    # nothing of a run is left on a node: no private dir, no canary anywhere
    canaries = " -e ".join((ENV_CANARY, VAULT_CANARY, PASSWORD))
    for node in (west, east):
        left = _docker(node, "sh", "-c", "ls -A /home/deploy/.deployer-node/runs")
        assert left.stdout.strip() == "", left.stdout
        grep = _docker(
            node, "sh", "-c", f"grep -rl -e {canaries} /home /tmp /var/tmp /root 2>/dev/null; true"
        )
        assert grep.stdout.strip() == "", (node.name, grep.stdout)


def test_an_unreachable_node_is_named_and_nothing_changes_anywhere(sites: Project) -> None:
    project = sites
    before = _current(project)
    project.edit({"environments": {"lab": {"ssh": {"connect_timeout": 3}}}})
    project.edit({"environments": {"lab": {"ssh": {"nodes": {"east": {"port": 9}}}}}})
    try:
        proc = project.cli("deploy", "lab", "--version", "v4", env=ENV)
    finally:
        east = project.lab.hosts[1]
        project.edit({"environments": {"lab": {"ssh": {"nodes": {"east": {"port": east.port}}}}}})
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "environments.lab.ssh.nodes.east" in proc.stdout + proc.stderr
    assert _current(project) == before  # the west site was not touched either


def test_a_node_whose_host_key_does_not_match_is_named_and_nothing_changes(
    sites: Project,
) -> None:
    project = sites
    lab = project.lab
    east, a1 = lab.hosts[1], lab.hosts[2]
    before = _current(project)
    good = (project.root / "site_known_hosts").read_text()
    lines = good.splitlines()
    # east's node reached at its own address (a connection no earlier test shared), whose
    # entries carry another host's keys: a man in the middle, as ssh sees it
    theirs = [ln.split(" ", 1)[1] for ln in lines if ln.startswith(f"{a1.ip} ")]
    forged = [ln for ln in lines if not ln.startswith(f"{east.ip} ")]
    forged += [f"{east.ip} {key}" for key in theirs]
    (project.root / "site_known_hosts").write_text("\n".join(forged) + "\n")
    project.edit({"environments": {"lab": {"ssh": {"nodes": {"east": {"address": east.ip}}}}}})
    project.edit({"environments": {"lab": {"ssh": {"nodes": {"east": {"port": 22}}}}}})
    try:
        proc = project.cli("deploy", "lab", "--version", "v5", env=ENV)
    finally:
        (project.root / "site_known_hosts").write_text(good)
        node = {"address": "127.0.0.1", "port": east.port}
        project.edit({"environments": {"lab": {"ssh": {"nodes": {"east": node}}}}})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out
    assert "environments.lab.ssh.nodes.east" in out
    assert "host key does not match known_hosts" in out
    assert _current(project) == before
