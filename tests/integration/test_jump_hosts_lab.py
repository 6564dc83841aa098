"""Hosts behind a bastion (`ssh.jump`), on real lab hosts.

Two lab hosts play the app's servers and accept SSH only from the last hop (an iptables
rule inside each, set and removed through docker, the lab's admin channel): the control host
cannot reach them, directly or through their published ports. Every command goes through
the bastion (one hop) or a chain of two (the second hop reached through the first), with
every hop's host key checked against a known_hosts file the test writes from the keys the
lab read through docker.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from deployer.lab import ssh_argv

if TYPE_CHECKING:
    from conftest import Project

pytestmark = pytest.mark.integration


def _docker(host: Any, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "exec", host.container, *argv], capture_output=True, text=True, timeout=60
    )


def _known_hosts(project: Project) -> str:
    """The lab's entries (`[127.0.0.1]:PORT type key`) plus each host's key at its own
    address and port 22, where the hops and the app's hosts see it."""
    lines = project.lab.known_hosts.read_text().splitlines()
    out = list(lines)
    for host in project.lab.hosts:
        mine = [line for line in lines if line.startswith(f"[127.0.0.1]:{host.port} ")]
        out += [host.ip + line[line.index(" ") :] for line in mine]
    return "\n".join(out) + "\n"


@pytest.fixture(params=["one bastion", "a chain of two"])
def behind(request: pytest.FixtureRequest, project: Project) -> Iterator[Project]:
    lab = project.lab
    bastion, second, *apps = lab.hosts
    # file names with a space and %-tokens: ssh must get each as the one file it names, at
    # every level of the ProxyCommand chain, from Ansible's connections and plain ssh alike
    (project.root / "jump known_hosts %h").write_text(_known_hosts(project))
    key = project.root / "lab key %r"
    shutil.copyfile(lab.private_key, key)
    key.chmod(0o600)
    first_hop = {"address": "127.0.0.1", "port": bastion.port, "user": "deploy"}
    chain = [first_hop]
    if request.param == "a chain of two":
        chain.append({"address": second.ip, "port": 22, "user": "deploy"})
    last_ip = bastion.ip if len(chain) == 1 else second.ip
    project.edit(
        {
            "environments": {
                "lab": {
                    "hosts": {
                        "web": [
                            {"address": h.ip, "port": 22, "name": h.name, "user": "deploy"}
                            for h in apps
                        ]
                    },
                    "ssh": {
                        "private_key": key.name,
                        "known_hosts": "jump known_hosts %h",
                        "jump": chain,
                    },
                }
            }
        }
    )
    rule = ["-p", "tcp", "--dport", "22", "!", "-s", last_ip, "-j", "REJECT"]
    for host in apps:
        assert _docker(host, "iptables", "-I", "INPUT", *rule).returncode == 0
    try:
        yield project
    finally:
        for host in apps:
            _docker(host, "iptables", "-D", "INPUT", *rule)
            _docker(host, "sh", "-c", f"systemctl stop '{project.app}@*' {project.app}.target")


def _current(project: Project) -> dict[str, str]:
    out = {}
    for host in project.lab.hosts[2:]:
        link = _docker(host, "readlink", f"/srv/{project.app}/current").stdout.strip()
        out[host.name] = link.rsplit("/", 1)[-1]
    return out


def test_deploy_rollback_status_exec_and_logs_through_the_bastion(behind: Project) -> None:
    project = behind
    apps = project.lab.hosts[2:]
    # the control host cannot reach the app's hosts itself
    direct = subprocess.run(
        ssh_argv(project.lab, apps[0], "true"), capture_output=True, text=True, timeout=60
    )
    assert direct.returncode != 0

    first = project.json("deploy", "lab", "--version", "v1")
    assert first["status"] == "SUCCEEDED", first
    assert _current(project) == {h.name: "v1" for h in apps}

    broken = project.json("deploy", "lab", "--version", "v2", "--artifact", "broken", expect=1)
    assert broken["status"] == "ROLLED_BACK", broken
    assert _current(project) == {h.name: "v1" for h in apps}

    status = project.json("status", "lab")
    assert {h["current"] for h in status["hosts"]} == {"v1"}
    assert status["problems"] == []

    second = project.json("deploy", "lab", "--version", "v3")
    assert second["status"] == "SUCCEEDED", second
    back = project.json("rollback", "lab")
    assert back["status"] == "SUCCEEDED", back
    assert _current(project) == {h.name: "v1" for h in apps}

    ran = project.cli("exec", "lab", "--", "pwd")  # in the current release, as the service
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.count(f"/srv/{project.app}/releases/v1") == len(apps), ran.stdout

    logs = project.cli("logs", "lab", "--lines", "20")  # plain ssh through the same hops
    assert logs.returncode == 0, logs.stderr
    assert {h.name for h in apps} <= {line.split()[0] for line in logs.stdout.splitlines()}


def _isolated(project: Project, jump: dict[str, Any]) -> None:
    lab = project.lab
    project.edit(
        {
            "environments": {
                "lab": {
                    "hosts": {"web": [{"address": lab.hosts[2].ip, "port": 22, "user": "deploy"}]},
                    "ssh": {
                        "private_key": str(lab.private_key),
                        "known_hosts": "jump_known_hosts",
                        "connect_timeout": 3,
                        "jump": [jump],
                    },
                }
            }
        }
    )


def test_a_bastion_whose_key_does_not_match_is_named_and_nothing_changes(
    project: Project,
) -> None:
    lab = project.lab
    bastion, other = lab.hosts[0], lab.hosts[1]
    text = _known_hosts(project)
    # the bastion's entries carry another host's keys: a man in the middle, as ssh sees it
    lines = text.splitlines()
    theirs = [ln.split(" ", 1)[1] for ln in lines if ln.startswith(f"[127.0.0.1]:{other.port} ")]
    forged = [ln for ln in lines if not ln.startswith(f"[127.0.0.1]:{bastion.port} ")]
    forged += [f"[127.0.0.1]:{bastion.port} {key}" for key in theirs]
    (project.root / "jump_known_hosts").write_text("\n".join(forged) + "\n")
    _isolated(project, {"address": "127.0.0.1", "port": bastion.port, "user": "deploy"})
    result = project.json("deploy", "lab", "--version", "v1", expect=4)
    (host,) = result["hosts"]
    assert host["message"].startswith(f"jump host 127.0.0.1:{bastion.port} (ssh.jump[0]) ")
    assert "host key does not match known_hosts" in host["message"]
    assert _docker(lab.hosts[2], "test", "-e", f"/srv/{project.app}").returncode != 0


def test_an_unreachable_bastion_is_named_and_nothing_changes(project: Project) -> None:
    lab = project.lab
    (project.root / "jump_known_hosts").write_text(_known_hosts(project))
    _isolated(project, {"address": "127.0.0.1", "port": 9, "user": "deploy"})
    result = project.json("deploy", "lab", "--version", "v1", expect=4)
    assert result["status"] != "SUCCEEDED"
    (host,) = result["hosts"]
    assert host["message"].startswith("jump host 127.0.0.1:9 (ssh.jump[0]) cannot be reached: ")
    assert "Connection refused" in host["message"]
    assert _docker(lab.hosts[2], "test", "-e", f"/srv/{project.app}").returncode != 0
