"""The ssh argv deployer builds for plain SSH commands and for every Ansible connection,
directly and through `ssh.jump` (one bastion or a chain)."""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

from deployer.config.loader import load_project
from deployer.config.resolve import JumpHop, Target, resolve
from deployer.plan.inventory import ssh_common_args
from deployer.plan.remote import jump_options, proxy_command, ssh_command

CONFIG = """\
app: {name: myapp}
service: {command: /usr/bin/python3 app.py, port: 8000}
health: {http: {path: /healthz}}
environments:
  production:
    hosts:
      web: [{address: 10.0.0.5, user: app}]
    ssh:
      private_key: keys/deploy
      jump:
        - {address: bastion.example.net, user: jumper, known_hosts: edge_known_hosts}
        - {address: 10.1.0.1, port: 2222}
"""


def _target(tmp_path: Path, text: str = CONFIG) -> Target:
    (tmp_path / "deploy.yml").write_text(text)
    return resolve(load_project(tmp_path / "deploy.yml"), "production")


def _option(argv: list[str], name: str) -> str:
    values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-o"]
    (found,) = [v.split("=", 1)[1] for v in values if v.startswith(f"{name}=")]
    return found


def test_without_jump_hosts_nothing_changes(tmp_path: Path) -> None:
    target = replace(_target(tmp_path), jump=())
    assert proxy_command(target) is None
    assert jump_options(target) == []
    assert "ProxyCommand" not in ssh_common_args(target)


def test_each_hop_keeps_its_user_key_known_hosts_and_checked_host_key(tmp_path: Path) -> None:
    target = _target(tmp_path)
    first, second = target.jump
    assert first == JumpHop(
        "bastion.example.net",
        22,
        "jumper",
        tmp_path / "keys/deploy",
        (tmp_path / "edge_known_hosts",),
    )
    assert (second.port, second.user, second.known_hosts) == (
        2222,
        "deploy",
        (tmp_path / ".deployer/known_hosts",),
    )
    argv = ssh_command(target, target.hosts[0], "true")
    assert argv[-3:] == ["--", "10.0.0.5", "true"]
    outer = shlex.split(_option(argv, "ProxyCommand"))
    # the outer proxy reaches the last hop, and asks it for the host (%h:%p of the host)
    assert outer[-4:] == ["-W", "%h:%p", "--", "10.1.0.1"]
    assert _option(outer, "StrictHostKeyChecking") == "yes"
    assert outer[outer.index("-p") + 1] == "2222"
    # the first hop is the inner proxy, its tokens doubled so the outer ssh leaves them
    inner = shlex.split(_option(outer, "ProxyCommand"))
    assert inner[-4:] == ["-W", "%%h:%%p", "--", "bastion.example.net"]
    assert inner[inner.index("-l") + 1] == "jumper"
    assert _option(inner, "UserKnownHostsFile") == f'"{tmp_path / "edge_known_hosts"}"'
    assert _option(inner, "StrictHostKeyChecking") == "yes"
    assert "ProxyCommand" not in " ".join(inner)


def test_ansible_connections_take_the_same_proxy(tmp_path: Path) -> None:
    target = _target(tmp_path)
    words = shlex.split(ssh_common_args(target))
    assert _option(words, "ProxyCommand") == proxy_command(target)
    assert _option(words, "StrictHostKeyChecking") == "yes"


def test_each_hop_can_be_tried_through_the_ones_before_it(tmp_path: Path) -> None:
    from deployer.plan.remote import hop_command

    target = _target(tmp_path)
    first = hop_command(target, 0, "true")
    assert first[-3:] == ["--", "bastion.example.net", "true"]
    assert "ProxyCommand" not in " ".join(first)
    second = hop_command(target, 1, "true")
    assert second[-3:] == ["--", "10.1.0.1", "true"]
    inner = shlex.split(_option(second, "ProxyCommand"))
    assert inner[-4:] == ["-W", "%h:%p", "--", "bastion.example.net"]


def test_unreachable_hosts_name_the_broken_hop_first() -> None:
    from deployer.targets.ssh.jump import name_broken_hop
    from deployer.targets.ssh.runner import HostOutcome, RunResult

    result = RunResult(
        "preflight.yml",
        "failed",
        4,
        {
            "web1": HostOutcome("web1", unreachable=True, message="Connection closed"),
            "web2": HostOutcome("web2", ok=3),
        },
        1.0,
        Path("/nonexistent"),
        phases={"preflight": {"web1": HostOutcome("web1", unreachable=True, message="x")}},
    )
    named = name_broken_hop(result, "jump host b:22 (ssh.jump[0]) cannot be reached: refused")
    assert named.hosts["web1"].message.startswith("jump host b:22 (ssh.jump[0])")
    assert named.hosts["web1"].message.endswith("; Connection closed")
    assert named.hosts["web2"].message == ""
    assert named.phases["preflight"]["web1"].message.startswith("jump host b:22")


def test_file_names_reach_ssh_as_one_word_each_with_their_tokens_kept(tmp_path: Path) -> None:
    base = tmp_path / "a b%c"
    base.mkdir()
    text = CONFIG.replace("keys/deploy", "keys %d/deploy").replace(
        "known_hosts: edge_known_hosts", "known_hosts: 'edge known_hosts %h'"
    )
    target = _target(base, text)
    argv = ssh_command(target, target.hosts[0], "true")
    # the host's own ssh: quoted (the space stays inside), `%` doubled once (its own expansion)
    assert _option(argv, "IdentityFile") == f'"{tmp_path}/a b%%c/keys %%d/deploy"'
    assert _option(argv, "UserKnownHostsFile") == f'"{tmp_path}/a b%%c/.deployer/known_hosts"'
    # inside the ProxyCommand, each level of expansion above a hop doubles its `%` again
    outer = shlex.split(_option(argv, "ProxyCommand"))
    assert _option(outer, "IdentityFile") == f'"{tmp_path}/a b%%%%c/keys %%%%d/deploy"'
    inner = shlex.split(_option(outer, "ProxyCommand"))
    assert _option(inner, "UserKnownHostsFile") == (
        f'"{tmp_path}/a b%%%%%%%%c/edge known_hosts %%%%%%%%h"'
    )
    assert "-i" not in argv + outer + inner  # ssh's -i takes no quoting and expands tokens
