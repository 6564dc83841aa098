"""Runs split by site (`ssh.nodes`): the parts, each part's inventory with the node's paths,
its extra vars, the ssh argv that reaches a node, and the merged result.

tests/golden/sites/<case>/expected.yml holds, for every part of a run over every host, its
hosts, inventory, shipped files and the argv of its worker and cleanup (the project
directory written as `{project}`). After an intended change, regenerate and review:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/plan/test_sites.py
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from deployer.config.loader import load_project
from deployer.config.resolve import Target, resolve
from deployer.plan.inventory import build_inventory
from deployer.plan.remote import ssh_command
from deployer.plan.sites import (
    Part,
    filter_inventory,
    node_extravars,
    node_inventory,
    node_ssh,
    part_extravars,
    parts,
    worker_argv,
)

GOLDEN = Path(__file__).parents[2] / "golden" / "sites"
CASES = sorted(p.parent for p in GOLDEN.glob("*/deploy.yml"))
REMOTE = PurePosixPath("/home/runner/.deployer-node/runs/R")


def _target(case: Path) -> Target:
    return resolve(load_project(case / "deploy.yml"), "production")


def _render(case: Path) -> str:
    target = _target(case)
    inventory = build_inventory(target)
    out: list[dict[str, Any]] = []
    for part in parts(target):
        entry: dict[str, Any] = {"part": part.name, "hosts": list(part.hosts)}
        if part.node is None:
            entry["inventory"] = filter_inventory(inventory, part.hosts)
        else:
            laid = node_inventory(target, inventory, part, REMOTE)
            entry["inventory"] = laid.inventory
            entry["files"] = {k: str(v) for k, v in laid.files.items()}
            runner = PurePosixPath("/home/runner/.deployer-node/venv-x/bin/ansible-runner")
            entry["worker"] = node_ssh(target, part.node, worker_argv(runner, REMOTE))
        out.append(entry)
    text = yaml.safe_dump(out, sort_keys=False, width=200)
    return text.replace(str(case.resolve()), "{project}")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_parts(case: Path) -> None:
    expected = case / "expected.yml"
    text = _render(case)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected.write_text(text)
    assert text == expected.read_text()


def test_parts_keep_direct_hosts_here_and_leave_out_sites_without_touched_hosts() -> None:
    target = _target(GOLDEN / "two_sites")
    assert [(p.name, p.hosts) for p in parts(target)] == [
        ("(direct)", ("direct1",)),
        ("west", ("w1", "w2")),
        ("east", ("e1", "e2")),
    ]
    assert [(p.name, p.hosts) for p in parts(target, ["e2"])] == [("east", ("e2",))]


def test_a_node_inventory_points_into_the_private_dir_only() -> None:
    target = _target(GOLDEN / "two_sites")
    east = next(p for p in parts(target) if p.name == "east")
    laid = node_inventory(target, build_inventory(target), east, REMOTE)
    text = yaml.safe_dump(laid.inventory)
    assert str(target.project_dir) not in text  # no controller path left
    (group,) = laid.inventory["all"]["children"].values()
    hosts = {h for c in group["children"].values() for h in c["hosts"]}
    assert hosts == {"e1", "e2"}
    args = shlex.split(group["vars"]["ansible_ssh_common_args"])
    assert f'UserKnownHostsFile="{REMOTE}/known_hosts/h0"' in args
    assert "StrictHostKeyChecking=yes" in args
    assert not any("ProxyCommand" in a for a in args)  # the node reaches its hosts itself
    assert laid.files == {
        "keys/k0": target.project_dir / "keys/deploy",
        "known_hosts/h0": target.project_dir / "site_known_hosts",
    }


def test_part_extravars_cut_host_lists_and_keep_the_lock_where_the_primary_is() -> None:
    target = _target(GOLDEN / "two_sites")
    assert target.primary == "w1"
    west = Part(target.sites[0].node, ("w1", "w2"))
    east = Part(target.sites[1].node, ("e1", "e2"))
    extravars = {
        "deployer_hosts": ["w1", "w2", "e1", "e2"],
        "deployer_rollback_to": {"w1": "v1", "e1": "v1"},
        "deployer_lock": {"path": "/x"},
        "deployer_lock_host": "w1",
        "deployer_lock_release": {"path": "/x", "token": "t"},
        "deployer_version": "v2",
    }
    here = part_extravars(extravars, target, west, several=True)
    there = part_extravars(extravars, target, east, several=True)
    assert here["deployer_hosts"] == ["w1", "w2"]
    assert there["deployer_hosts"] == ["e1", "e2"]
    assert there["deployer_rollback_to"] == {"e1": "v1"}
    assert "deployer_lock" in here
    assert "deployer_lock" not in there
    assert "deployer_lock_host" not in there
    # a release from within one part would free the lock while another part still works
    assert "deployer_lock_release" not in here
    assert "deployer_lock_release" not in there
    alone = part_extravars(extravars, target, west, several=False)
    assert alone["deployer_lock_release"] == {"path": "/x", "token": "t"}


def test_the_artifact_is_shipped_and_pointed_at_inside_the_private_dir(tmp_path: Path) -> None:
    out, files = node_extravars({"deployer_artifact": "/ctl/a.tar.gz", "x": 1}, REMOTE)
    assert out == {"deployer_artifact": f"{REMOTE}/files/artifact.tar.gz", "x": 1}
    assert files == {"files/artifact.tar.gz": Path("/ctl/a.tar.gz")}


def test_node_argv_checks_the_host_key_goes_through_its_own_bastion_and_quotes_words() -> None:
    target = _target(GOLDEN / "two_sites")
    east = target.sites[1].node
    argv = node_ssh(target, east, ["rm", "-rf", "--", "/x y; reboot"])
    assert argv[:3] == ["ssh", "-F", "none"]
    assert "StrictHostKeyChecking=yes" in argv
    assert f'UserKnownHostsFile="{target.project_dir / "east_known_hosts"}"' in argv
    (proxy,) = [a for a in argv if a.startswith("ProxyCommand=")]
    assert "jumper" in proxy
    assert "bastion.example.net" in proxy
    assert "-W" in proxy
    assert argv[-3:] == ["--", "203.0.113.9", "rm -rf -- '/x y; reboot'"]
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("-l") + 1] == "runner"


def test_plain_ssh_to_a_site_host_goes_through_its_node() -> None:
    target = _target(GOLDEN / "two_sites")
    (e1,) = [h for h in target.hosts if h.name == "e1"]
    (direct,) = [h for h in target.hosts if h.name == "direct1"]
    argv = ssh_command(target, e1, "true")
    (proxy,) = [a for a in argv if a.startswith("ProxyCommand=")]
    inner = shlex.split(proxy.removeprefix("ProxyCommand="))
    assert inner[-3:] == ["%h:%p", "--", "203.0.113.9"]  # -W through the node
    assert not any(a.startswith("ProxyCommand=") for a in ssh_command(target, direct, "true"))
