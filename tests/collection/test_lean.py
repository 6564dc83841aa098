"""The lean module runner (plugin_utils/lean.py and lean_host.py): the host side run locally
through the very loader command the controller sends, and the controller side in the lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))

from ansible_collections.deployer.core.plugins.plugin_utils import lean
from coll_harness import Deployment


def run_host(
    module: str,
    source: str,
    params: dict[str, Any],
    *,
    archive: bytes | None = None,
    check: bool = False,
    paths: list[list[str]] | None = None,
) -> tuple[int, dict[str, Any]]:
    """What one lean round trip does on a host, here: `python3 -I -S -c LOADER` fed the
    runtime, the payload and (optionally) the tarball on stdin."""
    payload = json.dumps(
        {
            "module": module,
            "source": source,
            "sources": lean.module_utils_sources(),
            "params": params,
            "paths": paths or [],
            "check": check,
            "archive": archive is not None,
        }
    ).encode()
    stream = lean.frame(lean.host_runtime(), payload) + (archive or b"")
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", lean.LOADER], input=stream, capture_output=True
    )
    return proc.returncode, json.loads(proc.stdout)


def lock_source() -> str:
    return lean.module_spec("deployer_lock")[0]


def test_paths_become_strings_for_the_host_to_expand() -> None:
    spec = {
        "deploy_to": {"type": "path", "required": True},
        "app": {"type": "str"},
        "info": {"type": "dict", "options": {"path": {"type": "path"}, "env": {"type": "str"}}},
    }
    plain, paths = lean.split_paths(spec)
    assert plain["deploy_to"] == {"type": "str", "required": True}
    assert plain["info"]["options"]["path"]["type"] == "str"
    assert paths == [["deploy_to"], ["info", "path"]]
    assert spec["deploy_to"]["type"] == "path"  # the module's own spec is left alone


def test_every_lean_module_publishes_its_spec() -> None:
    for module in (
        "deployer_lock",
        "deployer_release",
        "deployer_switch",
        "deployer_preflight",
        "deployer_health",
        "deployer_hook",
    ):
        source, spec, _paths, _rules, check = lean.module_spec(module)
        assert "MODULE_SPEC" in source, module
        assert spec, module
        assert check, module


def test_a_module_runs_through_the_loader_and_its_imports(tmp_path: Path) -> None:
    path = str(tmp_path / "locks" / "env.lock")
    params = {"path": path, "action": "acquire", "token": "t1", "holder": {"user": "me"}, "ttl": 60}
    rc, result = run_host("deployer_lock", lock_source(), params)
    assert rc == 0, result
    assert result["changed"] is True
    assert result["deployer"]["mine"] is True
    assert (
        json.loads((tmp_path / "locks" / "env.lock" / "holder.json").read_text())["token"] == "t1"
    )
    rc, result = run_host(
        "deployer_lock", lock_source(), {**params, "token": "t2", "holder": {"user": "other"}}
    )
    assert rc == 1
    assert result["failed"] is True
    assert "held" in result["msg"]


def test_check_mode_reaches_the_module(tmp_path: Path) -> None:
    params = {
        "path": str(tmp_path / "x.lock"),
        "action": "acquire",
        "token": "t",
        "holder": {},
        "ttl": 60,
    }
    rc, result = run_host("deployer_lock", lock_source(), params, check=True)
    assert rc == 0
    assert result["changed"] is True
    assert not (tmp_path / "x.lock").exists()


def test_path_options_are_expanded_on_the_host(tmp_path: Path) -> None:
    os.environ["DEPLOYER_LEAN_TEST_DIR"] = str(tmp_path)
    params = {
        "path": "$DEPLOYER_LEAN_TEST_DIR/y.lock",
        "action": "status",
        "token": "",
        "holder": {},
        "ttl": 60,
    }
    rc, result = run_host("deployer_lock", lock_source(), params, paths=[["path"]])
    assert rc == 0
    assert result["deployer"]["path"] == str(tmp_path / "y.lock")


def test_a_crashing_module_reports_its_traceback() -> None:
    source = "raise RuntimeError('boom')\n"
    rc, result = run_host("broken", source, {})
    assert rc == 1
    assert result["failed"] is True
    assert result["msg"] == "MODULE FAILURE: RuntimeError: boom"
    assert "Traceback" in result["exception"]


def test_the_tarball_arrives_as_a_private_file_the_module_owns(tmp_path: Path) -> None:
    source = (
        "import os, stat\n"
        "from ansible.module_utils.basic import AnsibleModule\n"
        "m = AnsibleModule(argument_spec={})\n"
        "p = m.params['archive']\n"
        "m.exit_json(path=p, data=open(p, 'rb').read().decode(),\n"
        "            mode=stat.S_IMODE(os.stat(p).st_mode))\n"
    )
    data = os.urandom(8).hex().encode() * 1000
    rc, result = run_host("probe", source, {"deploy_to": str(tmp_path)}, archive=data)
    assert rc == 0, result
    assert result["data"].encode() == data
    assert result["mode"] == 0o600
    assert os.path.dirname(result["path"]) == str(tmp_path)  # next to the releases


def test_run_command_never_hands_our_stdin_to_children() -> None:
    source = (
        "from ansible.module_utils.basic import AnsibleModule\n"
        "m = AnsibleModule(argument_spec={})\n"
        "rc, out, err = m.run_command(['cat'])\n"
        "m.exit_json(rc=rc, out=out)\n"
    )
    rc, result = run_host("probe", source, {}, archive=b"tarball bytes")
    assert rc == 0
    assert result["out"] == ""


@pytest.mark.usefixtures("lab")
def test_in_the_lab_lean_when_the_interpreter_is_known_else_the_usual_way(
    deployment: Deployment,
) -> None:
    """The first task on a host whose interpreter is not known runs the usual way (AnsiballZ,
    which says so with `invocation` and discovers the interpreter); the next ones are lean.
    Bad arguments are refused on the controller with Ansible's own message."""
    host = deployment.hosts[0]
    playbook = deployment.workdir / "lean.yml"
    lock = {"path": deployment.lock_path, "action": "status"}
    playbook.write_text(
        json.dumps(
            [
                {
                    "hosts": host,
                    "gather_facts": False,
                    "become": True,
                    "vars": {"ansible_python_interpreter": "auto_silent"},
                    "tasks": [
                        {"name": "first", "deployer.core.deployer_lock": lock},
                        {"name": "second", "deployer.core.deployer_lock": lock},
                        {
                            "name": "bad",
                            "deployer.core.deployer_lock": {**lock, "bogus": 1},
                            "ignore_errors": True,
                        },
                    ],
                }
            ]
        )
    )
    events = deployment.workdir / "lean.events.jsonl"
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(deployment.inventory()),
            str(playbook),
        ],
        capture_output=True,
        text=True,
        env=deployment.env(events),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    results = {
        r["task"]: r["result"]
        for r in map(json.loads, events.read_text().splitlines())
        if r["status"] != "start"
    }
    assert "invocation" in results["first"]
    assert results["first"]["ansible_facts"]["discovered_interpreter_python"]
    assert "invocation" not in results["second"]
    assert results["second"]["deployer"] == results["first"]["deployer"]
    assert results["bad"]["msg"] == (
        "Unsupported parameters for (deployer.core.deployer_lock) module: bogus. "
        "Supported parameters include: action, holder, path, token, ttl."
    )
