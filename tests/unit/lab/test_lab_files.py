"""Pure logic of the lab's controller-side files: known_hosts lines, hosts.yml, keys."""

from __future__ import annotations

import base64
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from deployer.lab import LabError, LabHost, LabState
from deployer.lab.files import (
    ensure_key,
    known_hosts_line,
    render_hosts_yml,
    render_known_hosts,
    write_atomic,
)

ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIES88hioOTPHCYgaMOBamQAdj/bU3+EIqA/Qu2Y9qnq root@lab1"
)


def _state(directory: Path, *hosts: LabHost) -> LabState:
    return LabState(
        name="lab",
        directory=directory,
        private_key=directory / "id_ed25519",
        known_hosts=directory / "known_hosts",
        hosts_file=directory / "hosts.yml",
        image="deployer-lab:0123456789ab",
        hosts=hosts,
    )


def _host(index: int, port: int) -> LabHost:
    return LabHost(
        name=f"lab{index}",
        container=f"deployer-lab-{index}",
        address="127.0.0.1",
        port=port,
        user="deploy",
        state="running",
        ip=f"172.18.0.{index + 1}",
    )


def test_known_hosts_line_brackets_non_default_port_and_drops_comment() -> None:
    line = known_hosts_line("127.0.0.1", 32771, ED25519)
    assert line == f"[127.0.0.1]:32771 {' '.join(ED25519.split()[:2])}"


def test_known_hosts_line_port_22_is_bare_address() -> None:
    assert known_hosts_line("172.18.0.2", 22, ED25519).startswith("172.18.0.2 ssh-ed25519 ")


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not a key",
        "ssh-ed25519",
        "ssh-ed25519 %%%notbase64%%%",
        # valid base64, but the blob names another key type: a mixed-up file
        "ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x07ssh-rsa....").decode(),
    ],
)
def test_known_hosts_line_rejects_what_is_not_a_public_key(garbage: str) -> None:
    with pytest.raises(LabError):
        known_hosts_line("127.0.0.1", 2222, garbage)


def test_render_known_hosts_one_line_per_key_per_host() -> None:
    text = render_known_hosts([("127.0.0.1", 1001, [ED25519]), ("127.0.0.1", 1002, [ED25519])])
    assert text.splitlines() == [
        known_hosts_line("127.0.0.1", 1001, ED25519),
        known_hosts_line("127.0.0.1", 1002, ED25519),
    ]
    assert text.endswith("\n")


def test_hosts_yml_golden(tmp_path: Path) -> None:
    state = _state(Path("/abs/path"), _host(1, 32771), _host(2, 32772))
    assert render_hosts_yml(state) == (
        "# Written by `deployer lab up`; do not edit.\n"
        "lab: lab\n"
        "known_hosts: /abs/path/known_hosts\n"
        "hosts:\n"
        "  - {name: lab1, address: 127.0.0.1, port: 32771, user: deploy,"
        " private_address: 172.18.0.2, private_key: /abs/path/id_ed25519,"
        " container: deployer-lab-1}\n"
        "  - {name: lab2, address: 127.0.0.1, port: 32772, user: deploy,"
        " private_address: 172.18.0.3, private_key: /abs/path/id_ed25519,"
        " container: deployer-lab-2}\n"
    )


def test_hosts_yml_parses_back_even_with_awkward_paths() -> None:
    directory = Path("/home/a user/#labs: yes")
    state = _state(directory, _host(1, 2201))
    data = yaml.safe_load(render_hosts_yml(state))
    assert data == {
        "lab": "lab",
        "known_hosts": str(directory / "known_hosts"),
        "hosts": [
            {
                "name": "lab1",
                "address": "127.0.0.1",
                "port": 2201,
                "user": "deploy",
                "private_address": "172.18.0.2",
                "private_key": str(directory / "id_ed25519"),
                "container": "deployer-lab-1",
            }
        ],
    }


def test_hosts_yml_without_hosts_is_an_empty_list(tmp_path: Path) -> None:
    assert yaml.safe_load(render_hosts_yml(_state(tmp_path)))["hosts"] == []


def test_write_atomic_replaces_content_and_sets_mode(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file"
    write_atomic(target, "one\n")
    write_atomic(target, "two\n", mode=0o600)
    assert target.read_text() == "two\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["file"]


def test_ensure_key_generates_once_with_private_mode(tmp_path: Path) -> None:
    key = tmp_path / "lab" / "id_ed25519"
    public = ensure_key(key)
    assert public.startswith("ssh-ed25519 ")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True
    ).stdout
    assert derived.split()[:2] == public.split()[:2]
    before = key.read_bytes()
    assert ensure_key(key) == public
    assert key.read_bytes() == before
