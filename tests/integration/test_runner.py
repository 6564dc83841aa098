"""The runner layer against real lab hosts: real SSH, host key checking on, no mocks."""

from __future__ import annotations

import json
import secrets
import shutil
import time
from pathlib import Path

import pytest

from deployer.config.loader import load_project
from deployer.config.models import Host
from deployer.config.resolve import LabInfo, Target, resolve
from deployer.lab import LabState
from deployer.plan.inventory import build_inventory
from deployer.targets.ssh.runner import Runner

pytestmark = pytest.mark.integration

PLAYBOOK = """
- name: Probe every host
  hosts: all
  gather_facts: false
  tasks:
    - name: Read the hostname
      ansible.builtin.command: hostname
      register: probe
      changed_when: false
    - name: Report it the way deployer modules do
      ansible.builtin.set_fact:
        deployer: {hostname: "{{ probe.stdout }}"}
    - name: Return it
      ansible.builtin.debug:
        var: deployer
    - name: Touch a secret without logging it
      ansible.builtin.command: "true {{ deployer_secret_env.CANARY | default('') }}"
      changed_when: false
      no_log: true
"""


def lab_target(tmp_path: Path, lab: LabState, known_hosts: Path | None = None) -> Target:
    (tmp_path / "deploy.yml").write_text(
        "app: {name: probe}\n"
        "service: {command: /bin/true, port: 8000}\n"
        "health: {tcp: {}}\n"
        "environments: {lab: {hosts: {web: lab}}}\n"
    )
    info = LabInfo(
        name=lab.name,
        hosts=tuple(
            Host(name=h.name, address=h.address, port=h.port, user=h.user) for h in lab.hosts
        ),
        private_key=lab.private_key,
        known_hosts=known_hosts or lab.known_hosts,
    )
    return resolve(load_project(tmp_path / "deploy.yml"), "lab", info)


def run_probe(tmp_path: Path, target: Target, **kwargs: object):  # type: ignore[no-untyped-def]
    playbook = tmp_path / "probe.yml"
    playbook.write_text(PLAYBOOK)
    return Runner(tmp_path / ".deployer").run(
        str(playbook), build_inventory(target), {}, forks=len(target.hosts), **kwargs
    )


def test_playbook_reaches_every_lab_host_with_host_key_checking(tmp_path, lab):
    target = lab_target(tmp_path, lab)
    result = run_probe(tmp_path, target)
    assert result.ok, {h: o.message for h, o in result.hosts.items()}
    assert sorted(result.hosts) == sorted(h.name for h in lab.hosts)
    for name, outcome in result.hosts.items():
        assert outcome.data["hostname"] == name  # the lab host's own hostname came back
    args = build_inventory(target)["all"]["children"]["env_lab"]["vars"]["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=yes" in args


def test_changed_host_key_is_refused_not_retrusted(tmp_path, lab):
    first = lab.hosts[0]
    lines = lab.known_hosts.read_text().splitlines()
    forged = tmp_path / "known_hosts"
    other_key = next(line for line in lines if f"]:{first.port} " not in line).split(" ", 1)[1]
    forged.write_text(
        "\n".join(
            f"[{first.address}]:{first.port} {other_key}" if f"]:{first.port} " in line else line
            for line in lines
        )
        + "\n"
    )
    before = forged.read_text()
    target = lab_target(tmp_path, lab, known_hosts=forged)
    result = run_probe(tmp_path, target)
    bad = result.hosts[first.name]
    assert bad.unreachable
    assert "host key" in bad.message.lower() or "identification has changed" in bad.message.lower()
    assert all(o.good for n, o in result.hosts.items() if n != first.name)
    assert forged.read_text() == before  # nothing was re-trusted


def test_secrets_and_environment_stay_out_of_artifacts(tmp_path, lab, monkeypatch):
    canary = "canary-" + secrets.token_hex(8)
    env_canary = "envcanary-" + secrets.token_hex(8)
    monkeypatch.setenv("SOME_CREDENTIAL", env_canary)
    target = lab_target(tmp_path, lab)
    result = run_probe(tmp_path, target, secret_vars={"deployer_secret_env": {"CANARY": canary}})
    assert result.ok, {h: o.message for h, o in result.hosts.items()}
    hits = []
    for path in (tmp_path / ".deployer").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if canary.encode() in data or env_canary.encode() in data:
                hits.append(str(path))
    assert hits == []
    command = json.loads((result.artifact_dir / "command").read_text())
    assert "SOME_CREDENTIAL" not in command["env"]
    assert command["env"]["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert not (tmp_path / ".deployer" / "runs" / "env").exists() or not any(
        (tmp_path / ".deployer" / "runs" / "env").iterdir()
    )


def test_cancel_stops_a_running_playbook(tmp_path, lab):
    target = lab_target(tmp_path, lab)
    playbook = tmp_path / "slow.yml"
    playbook.write_text(
        "- name: Slow\n  hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Sleep\n      ansible.builtin.command: sleep 30\n      changed_when: false\n"
    )
    started = time.monotonic()
    result = Runner(tmp_path / ".deployer").run(
        str(playbook),
        build_inventory(target),
        {},
        cancel=lambda: time.monotonic() - started > 3,
    )
    assert result.canceled
    assert time.monotonic() - started < 25


def test_artifacts_are_rotated(tmp_path, lab):
    from deployer.targets.ssh import runner as runner_module

    target = lab_target(tmp_path, lab)
    keep = 3
    original = runner_module.KEEP_ARTIFACTS
    runner_module.KEEP_ARTIFACTS = keep
    try:
        for _ in range(keep + 2):
            run_probe(tmp_path, target)
    finally:
        runner_module.KEEP_ARTIFACTS = original
    artifacts = list((tmp_path / ".deployer" / "runs" / "artifacts").iterdir())
    assert len(artifacts) <= keep
    shutil.rmtree(tmp_path / ".deployer")
