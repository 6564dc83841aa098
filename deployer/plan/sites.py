"""Runs split by site (`ssh.nodes`), as pure functions: which hosts each part of a run
touches, the inventory and extra vars each part gets, the paths a node's inventory points at
(inside the run's private directory on the node), the ssh argv that reaches a node, and the
merge of the parts' outcomes into the one result the engine reads.

The inventory deployer builds names controller paths (private keys, known_hosts files). On a
node they are wrong: each file a site's hosts need is shipped inside the transmitted private
data directory and the node's inventory points into that directory, `<remote>/keys/...`.
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from deployer.config.resolve import Target
from deployer.config.sites import ExecutionNode, Site
from deployer.plan.inventory import ssh_common_args
from deployer.plan.remote import _checked, _login, proxy_command

NODE_DIR = ".deployer-node"
"""The deployer-owned directory on a node, under its user's home: venvs, collections, runs."""

LOCK_VARS = ("deployer_lock", "deployer_lock_host")
HOST_LISTS = ("deployer_hosts", "deployer_switch_batch", "deployer_batch")
HOST_MAPS = ("deployer_rollback_to", "deployer_units", "deployer_services")


@dataclass(frozen=True)
class Part:
    """One part of a run: the hosts at one site (node None: reached from the control host)."""

    node: ExecutionNode | None
    hosts: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.node.site if self.node is not None else "(direct)"


def parts(target: Target, touched: Iterable[str] | None = None) -> list[Part]:
    """The parts of a run over `touched` (None: every host), direct first, then each site in
    config order; a part without any touched host is left out."""
    every = [h.name for h in target.every_host]
    wanted = set(every if touched is None else touched)
    at_site = {name for site in target.sites for name in site.hosts}
    out = []
    direct = tuple(n for n in every if n in wanted and n not in at_site)
    if direct:
        out.append(Part(None, direct))
    for site in target.sites:
        mine = tuple(n for n in site.hosts if n in wanted)
        if mine:
            out.append(Part(site.node, mine))
    return out


def filter_inventory(inventory: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """`inventory` with only the hosts `names` (their vars kept: a host's vars are written in
    the first group that lists it, so a host kept keeps them wherever they were)."""
    out = copy.deepcopy(dict(inventory))
    keep = set(names)
    written: set[str] = set()
    env_groups = out["all"]["children"]
    for group in env_groups.values():
        for component in group["children"].values():
            hosts = {}
            for name, values in component["hosts"].items():
                if name not in keep:
                    continue
                hosts[name] = values
                if values:
                    written.add(name)
            component["hosts"] = hosts
    missing = keep - written
    if missing:  # a kept host whose vars sat under a dropped host's group entry: cannot be
        raise ValueError(f"hosts without their vars: {', '.join(sorted(missing))}")
    return out


@dataclass(frozen=True)
class NodeFiles:
    """What a node's part of a run needs besides the inventory: files shipped inside the
    private data directory ({relative path: controller path})."""

    inventory: dict[str, Any]
    files: dict[str, Path]


def node_inventory(
    target: Target, inventory: Mapping[str, Any], site: Site | Part, remote: PurePosixPath
) -> NodeFiles:
    """The inventory of one site's part, pointing into `remote` (the run's private directory on
    the node) for every key and known_hosts file, each shipped in that directory."""
    names = site.hosts
    out = filter_inventory(inventory, names)
    files: dict[str, Path] = {}
    keys: dict[str, str] = {}
    for group in out["all"]["children"].values():
        for component in group["children"].values():
            for values in component["hosts"].values():
                key = values.get("ansible_ssh_private_key_file")
                if key is None:
                    continue
                if key not in keys:
                    rel = f"keys/k{len(keys)}"
                    keys[key] = rel
                    files[rel] = Path(key.replace("%%", "%"))  # host_vars escaped its `%`
                values["ansible_ssh_private_key_file"] = str(remote / keys[key])
    known = []
    for index, path in enumerate(target.known_hosts):
        rel = f"known_hosts/h{index}"
        files[rel] = path
        known.append(Path(str(remote / rel)))
    # from the node, the hosts are reached directly (its own bastions lead to the node only)
    at_node = replace(target, known_hosts=tuple(known), jump=())
    for group in out["all"]["children"].values():
        group["vars"]["ansible_ssh_common_args"] = ssh_common_args(at_node)
    return NodeFiles(out, files)


def part_extravars(
    extravars: Mapping[str, Any], target: Target, part: Part, *, several: bool
) -> dict[str, Any]:
    """The extra vars of one part: host lists and per-host maps cut to its hosts; the lock only
    where the primary host is. A run of several parts never gives the lock back from within
    (`deployer_lock_release`): one part's hosts being done says nothing of the others', so the
    caller releases it in a run of its own once every part is done."""
    mine = set(part.hosts)
    out = dict(extravars)
    for key in HOST_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [h for h in out[key] if h in mine]
    for key in HOST_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {h: v for h, v in out[key].items() if h in mine}
    if target.primary not in mine:
        for key in LOCK_VARS:
            out.pop(key, None)
    if several:
        out.pop("deployer_lock_release", None)
    return out


CONTROLLER_FILES = {"deployer_artifact": "files/artifact.tar.gz"}
"""Extra vars that name a file on the control host ({var: where it goes in the private dir})."""


def node_extravars(
    extravars: Mapping[str, Any], remote: PurePosixPath
) -> tuple[dict[str, Any], dict[str, Path]]:
    """`extravars` for a node's part: each file they name on the control host shipped inside
    the private data directory, the var pointing at it there."""
    out = dict(extravars)
    files: dict[str, Path] = {}
    for key, rel in CONTROLLER_FILES.items():
        value = out.get(key)
        if isinstance(value, str) and value:
            files[rel] = Path(value)
            out[key] = str(remote / rel)
    return out, files


def node_ssh(
    target: Target, node: ExecutionNode, argv: Sequence[str], control_dir: Path | None = None
) -> list[str]:
    """`ssh ... node argv` with the node's user, key and known_hosts (host key checked, no
    prompt), through its own bastions; each word of `argv` quoted for the node's login shell.
    With `control_dir`, the connections to the node share one master there."""
    proxy = proxy_command(target, node.jump)
    sharing = (
        []
        if control_dir is None
        else [
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPersist=60s",
            "-o",
            f"ControlPath={control_dir}/n-%C",
        ]
    )
    return [
        "ssh",
        "-F",
        "none",
        *_checked(node.known_hosts, target.connect_timeout),
        "-o",
        "ServerAliveInterval=5",
        "-o",
        "ServerAliveCountMax=6",
        *sharing,
        *([] if proxy is None else ["-o", f"ProxyCommand={proxy}"]),
        *_login(node.port, node.user, node.private_key),
        "--",
        node.address,
        shlex.join(argv),
    ]


def worker_argv(runner_bin: PurePosixPath, remote: PurePosixPath) -> list[str]:
    """What runs on the node for one part: ansible-runner's worker, reading the transmitted
    job on stdin, deleting its private directory when done."""
    return [str(runner_bin), "worker", "--private-data-dir", str(remote), "--delete"]


def cleanup_argv(remote: PurePosixPath) -> list[str]:
    """Removes a part's private directory on the node (after a failed or cut-off stream)."""
    return ["rm", "-rf", "--one-file-system", "--", str(remote)]
