"""Nothing deployer hands Ansible is templated: the inventory, extra vars and secrets go in
files with every string marked unsafe. Checked against the real ansible-playbook, on the
controller alone (local connection)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deployer.targets.ssh.runner import UNSAFE, unsafe, vars_json

pytestmark = pytest.mark.hostile

PLAYBOOK = """\
- name: Show what the variables hold
  hosts: all
  gather_facts: false
  tasks:
    - name: Show
      ansible.builtin.debug:
        msg: "{{ {'plain': plain, 'nested': nested.deep[0], 'host': from_inventory,
                   'joined': plain ~ '/suffix'} | to_json }}"
"""


def test_every_string_is_marked_at_any_depth() -> None:
    value = {"a": "x", "b": [1, "y", {"c": ("z",)}], "d": None, "e": True, "f": Path("/p")}
    assert unsafe(value) == {
        "a": {UNSAFE: "x"},
        "b": [1, {UNSAFE: "y"}, {"c": [{UNSAFE: "z"}]}],
        "d": None,
        "e": True,
        "f": {UNSAFE: "/p"},
    }


def test_ansible_keeps_templates_in_vars_files_as_text(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    evil = "{{ lookup('pipe', 'touch " + str(marker) + "') }}"
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "vars.json").write_text(
        vars_json({"plain": "{{ 7*7 }}", "nested": {"deep": [evil]}})
    )
    inventory = {"all": {"hosts": {"here": {"ansible_connection": "local"}}}}
    inventory["all"]["hosts"]["here"]["from_inventory"] = "{# x {{ 6*6 }}"
    (tmp_path / "inventory.json").write_text(vars_json(inventory))
    bin_dir = Path(sys.executable).parent
    proc = subprocess.run(
        [
            str(bin_dir / "ansible-playbook"),
            "-i",
            str(tmp_path / "inventory.json"),
            "-e",
            f"@{tmp_path / 'vars.json'}",
            str(tmp_path / "play.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "ANSIBLE_STDOUT_CALLBACK": "json",
            "ANSIBLE_LOCALHOST_WARNING": "False",
            "HOME": str(tmp_path),
        },
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    (task,) = result["plays"][0]["tasks"]
    shown = json.loads(task["hosts"]["here"]["msg"])
    assert shown == {
        "plain": "{{ 7*7 }}",
        "nested": evil,
        "host": "{# x {{ 6*6 }}",
        "joined": "{{ 7*7 }}/suffix",
    }
    assert not marker.exists()
