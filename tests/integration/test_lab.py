"""The lab against real docker and the real OpenSSH client: no mocks.

Every check goes through `ssh` with strict host key checking and the lab's own
known_hosts, the way deployer and Ansible reach the hosts.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml
from docker.errors import NotFound

from deployer.lab import LabHost, LabState, down, status, up
from deployer.lab.image import image_tag

pytestmark = pytest.mark.integration

LAB_HOSTS = 4  # what the `lab` fixture in conftest.py brings up


def ssh(
    state: LabState,
    host: LabHost,
    command: str,
    known_hosts: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real openssh client, host key checking on, nothing but the given known_hosts."""
    return subprocess.run(
        [
            "ssh",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts or state.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-i",
            str(state.private_key),
            "-p",
            str(host.port),
            f"{host.user}@{host.address}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def host_key(host: LabHost) -> str:
    """The ed25519 host key as the container itself has it (not as ssh reports it)."""
    container = docker.from_env().containers.get(host.container)
    result = container.exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.decode().split()[:2])


@pytest.fixture
def client() -> Iterator[docker.DockerClient]:
    connection = docker.from_env()
    yield connection
    connection.close()


def test_up_gives_the_requested_hosts(lab: LabState) -> None:
    assert [h.name for h in lab.hosts] == [f"lab{i}" for i in range(1, LAB_HOSTS + 1)]
    assert [h.container for h in lab.hosts] == [
        f"deployer-{lab.name}-{i}" for i in range(1, LAB_HOSTS + 1)
    ]
    assert all(h.state == "running" and h.address == "127.0.0.1" for h in lab.hosts)
    assert len({h.port for h in lab.hosts}) == LAB_HOSTS
    assert all(h.ip for h in lab.hosts)
    assert lab.image == image_tag()
    assert lab.private_key.stat().st_mode & 0o777 == 0o600


def test_every_host_is_a_server_reachable_by_key_with_sudo(lab: LabState) -> None:
    for host in lab.hosts:
        run = ssh(
            lab,
            host,
            "whoami; hostname; systemctl is-system-running; "
            "sudo -n true && echo sudo-ok; python3 -c 'print(42)'",
        )
        assert run.returncode in (0, 1), run.stderr  # is-system-running: 1 when degraded
        whoami, hostname, system, sudo, python = run.stdout.split()
        assert (whoami, hostname, sudo, python) == ("deploy", host.name, "sudo-ok", "42")
        assert system in ("running", "degraded"), run.stdout


def test_sshd_refuses_passwords_and_root(lab: LabState) -> None:
    run = ssh(lab, lab.hosts[0], "sudo -n /usr/sbin/sshd -T")
    assert run.returncode == 0, run.stderr
    settings = dict(line.split(" ", 1) for line in run.stdout.splitlines() if " " in line)
    assert settings["passwordauthentication"] == "no"
    assert settings["permitrootlogin"] == "no"


def test_each_host_has_its_own_host_key_recorded_from_the_host(lab: LabState) -> None:
    keys = {host.name: host_key(host) for host in lab.hosts}
    assert len(set(keys.values())) == len(lab.hosts)
    recorded = lab.known_hosts.read_text().splitlines()
    for host in lab.hosts:
        assert f"[127.0.0.1]:{host.port} {keys[host.name]}" in recorded


def test_the_image_ships_no_host_keys(client: docker.DockerClient, lab: LabState) -> None:
    output = client.containers.run(
        lab.image, ["sh", "-c", "ls /etc/ssh/ | grep -c ssh_host_ || true"], remove=True
    )
    assert output.decode().strip() == "0"


def test_wrong_or_missing_known_hosts_entry_makes_ssh_fail(lab: LabState, tmp_path: Path) -> None:
    target, other = lab.hosts[0], lab.hosts[1]
    assert ssh(lab, target, "true").returncode == 0  # control: the real entry works
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(f"[127.0.0.1]:{target.port} {host_key(other)}\n")
    run = ssh(lab, target, "true", known_hosts=wrong)
    assert run.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in run.stderr
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    run = ssh(lab, target, "true", known_hosts=empty)
    assert run.returncode == 255
    assert "Host key verification failed" in run.stderr


def test_up_again_is_idempotent(lab: LabState, client: docker.DockerClient) -> None:
    def started() -> dict[str, tuple[str, str]]:
        return {
            h.container: (
                client.containers.get(h.container).id,
                client.containers.get(h.container).attrs["State"]["StartedAt"],
            )
            for h in lab.hosts
        }

    before, known_hosts = started(), lab.known_hosts.read_text()
    again = up(LAB_HOSTS, name=lab.name)
    assert again.hosts == lab.hosts  # same names, containers, ports, addresses
    assert started() == before  # same containers, not restarted
    assert again.known_hosts.read_text() == known_hosts
    assert status(lab.name).hosts == lab.hosts


def test_hosts_yml_describes_the_lab(lab: LabState) -> None:
    data = yaml.safe_load(lab.hosts_file.read_text())
    assert data["lab"] == lab.name
    assert data["known_hosts"] == str(lab.known_hosts)
    assert data["hosts"] == [
        {
            "name": h.name,
            "address": h.address,
            "port": h.port,
            "user": h.user,
            "private_address": h.ip,
            "private_key": str(lab.private_key),
            "container": h.container,
        }
        for h in lab.hosts
    ]


def test_hosts_reach_each_other_by_name(lab: LabState) -> None:
    first, second = lab.hosts[0], lab.hosts[1]
    run = ssh(lab, first, f"getent hosts {second.name}")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[0] == second.ip


def test_hosts_can_change_their_firewall(lab: LabState) -> None:
    """NET_ADMIN: fault-injection tests add iptables rules inside a host."""
    run = ssh(
        lab,
        lab.hosts[-1],
        "sudo -n iptables -N deployer-lab-test && "
        "sudo -n iptables -S deployer-lab-test && "
        "sudo -n iptables -X deployer-lab-test",
    )
    assert run.returncode == 0, run.stderr
    assert "-N deployer-lab-test" in run.stdout


def test_scale_restart_and_down(lab: LabState, client: docker.DockerClient) -> None:
    """A second, small lab: scaling, restarting a stopped host, and `down`."""
    name = f"{lab.name}-scale"
    try:
        two = up(2, name=name)
        first = client.containers.get(two.hosts[0].container)
        first.stop(timeout=10)
        assert status(name).hosts[0].state == "exited"

        restarted = up(2, name=name)
        assert client.containers.get(two.hosts[0].container).id == first.id  # started, not new
        assert all(h.state == "running" for h in restarted.hosts)
        assert ssh(restarted, restarted.hosts[0], "true").returncode == 0  # new port, new entry

        one = up(1, name=name)
        assert [h.name for h in one.hosts] == ["lab1"]
        with pytest.raises(NotFound):
            client.containers.get(two.hosts[1].container)
        entries = one.known_hosts.read_text().splitlines()
        assert entries
        assert all(e.startswith(f"[127.0.0.1]:{one.hosts[0].port} ") for e in entries)
    finally:
        before = down(name)
    assert [h.name for h in before.hosts] == ["lab1"]
    assert status(name).hosts == ()
    with pytest.raises(NotFound):
        client.containers.get(two.hosts[0].container)
    assert not client.networks.list(names=[f"deployer-{name}"])
    assert not before.hosts_file.exists()
    assert before.private_key.exists()  # the key survives down
