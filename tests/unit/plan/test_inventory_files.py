"""Golden trees of `deployer inventory ENV --write`, and what Ansible makes of them.

Each tests/golden/inventory/<case>/ with a deploy.yml also holds written/: the files
`render_files` gives for its one environment (hosts.yml, group_vars/env_<env>.yml), the
project directory written as `{project}`. After an intended change, regenerate them and
review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/plan/test_inventory_files.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.config.loader import load_project
from deployer.config.resolve import Target, resolve
from deployer.plan.inventory import build_inventory
from deployer.plan.inventory_files import render_files

GOLDEN = Path(__file__).parents[2] / "golden" / "inventory"
CASES = sorted(p.parent for p in GOLDEN.glob("*/deploy.yml"))
SERVICE_ENV = GOLDEN / "service_env"


def _target(case: Path) -> Target:
    loaded = load_project(case / "deploy.yml")
    (env,) = loaded.project.environments
    return resolve(loaded, env)


def _rendered(case: Path) -> dict[str, str]:
    project = str(case.resolve())
    return {
        path: text.replace(project, "{project}")
        for path, text in render_files(_target(case), "deploy.yml").items()
    }


def _golden(case: Path) -> dict[str, str]:
    root = case / "written"
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_written_tree(case: Path) -> None:
    if os.environ.get("UPDATE_GOLDEN") == "1":
        shutil.rmtree(case / "written", ignore_errors=True)
        for path, text in _rendered(case).items():
            (case / "written" / path).parent.mkdir(parents=True, exist_ok=True)
            (case / "written" / path).write_text(text)
    assert _rendered(case) == _golden(case)


@dataclass(frozen=True)
class Unsafe:
    value: str


class _Loader(yaml.SafeLoader):
    """Reads `!unsafe` as Ansible's loader does (the scalar re-resolved as plain YAML),
    remembering that it was marked."""


_Loader.add_constructor(
    "!unsafe",
    lambda loader, node: Unsafe(loader.construct_scalar(node)),  # type: ignore[arg-type]
)


def _load(case: Path) -> dict[str, Any]:
    return {p: yaml.load(t, Loader=_Loader) for p, t in render_files(_target(case), "x").items()}


def test_a_template_in_a_service_env_value_is_written_unsafe() -> None:
    group_vars = _load(SERVICE_ENV)["group_vars/env_prod_eu.yml"]
    env = group_vars["deployer_service"]["env"]
    assert env["GREETING"] == Unsafe("{{ 7*7 }}")
    assert env["BLOCK"] == Unsafe("{% if true %}yes{% endif %}")
    assert group_vars["deployer_service"]["command"] == Unsafe(
        '/usr/bin/python3 -m api --greeting "{{ 7*7 }}"'
    )
    # Ansible reads `!unsafe '16'` as the int 16: strings that cannot be templates stay untagged
    assert (env["WORKERS"], env["DEBUG"], env["EMPTY"]) == ("16", "false", "")


def test_every_string_with_a_brace_is_unsafe_wherever_it_is() -> None:
    def strings(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    for case in CASES:
        for data in _load(case).values():
            assert [s for s in strings(data) if "{" in s] == []


def _unwrapped(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unwrapped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrapped(v) for v in value]
    return value.value if isinstance(value, Unsafe) else value


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_two_files_split_the_inventory(case: Path) -> None:
    target = _target(case)
    ((group, expected),) = build_inventory(target)["all"]["children"].items()
    files = _unwrapped(_load(case))
    assert set(files) == {"hosts.yml", f"group_vars/{group}.yml"}
    assert files["hosts.yml"] == {"all": {"children": {group: {"children": expected["children"]}}}}
    group_vars = files[f"group_vars/{group}.yml"]
    assert {k: group_vars[k] for k in expected["vars"]} == expected["vars"]
    assert group_vars["deployer_deploy_to"] == target.deploy_to
    assert group_vars["deployer_service"]["env"] == dict(target.service.env)
    assert "deployer_hosts" not in group_vars  # a play's `hosts:` never sees inventory vars


def test_secrets_are_not_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN_FOR_GOLDEN", "s3cr3t-token-value")
    text = "".join(render_files(_target(SERVICE_ENV), "deploy.yml").values())
    assert "s3cr3t-token-value" not in text
    assert "API_TOKEN" not in text


PLAYBOOK = """\
- name: Show what the written inventory holds
  hosts: "{{ deployer_hosts }}"
  gather_facts: false
  tasks:
    - name: Show
      ansible.builtin.debug:
        msg: "{{ {'env': deployer_service.env, 'command': deployer_service.command,
                   'workers': deployer_service.env.WORKERS | type_debug,
                   'port': ansible_port} | to_json }}"
"""


@pytest.mark.hostile
def test_ansible_playbook_takes_the_written_values_as_data(tmp_path: Path) -> None:
    """The real ansible-playbook on the written files (local connection): nothing templated."""
    for path, text in render_files(_target(SERVICE_ENV), "deploy.yml").items():
        (tmp_path / "inv" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "inv" / path).write_text(text)
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    bindir = Path(sys.executable).parent
    done = subprocess.run(
        [
            str(bindir / "ansible-playbook"),
            "-i",
            str(tmp_path / "inv"),
            str(tmp_path / "play.yml"),
            "-e",
            "deployer_hosts=web1",
            "-e",
            "ansible_connection=local",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_NOCOLOR": "1"},
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run = json.loads(done.stdout)
    (task,) = run["plays"][0]["tasks"]
    shown = json.loads(task["hosts"]["web1"]["msg"])
    assert shown["env"]["GREETING"] == "{{ 7*7 }}"
    assert shown["env"]["BLOCK"] == "{% if true %}yes{% endif %}"
    assert shown["env"]["WORKERS"] == "16"
    assert shown["workers"] == "str"
    assert shown["command"] == '/usr/bin/python3 -m api --greeting "{{ 7*7 }}"'
    assert shown["port"] == 22
