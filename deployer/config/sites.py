"""Sites: the execution nodes of an environment (`ssh.nodes`), resolved, and what they refuse.

A site is a node and the hosts of the groups it names. Every Ansible run that touches a
site's hosts is streamed to its node, which connects to them itself; the hosts of the other
groups are reached from the control host as before. What a run does across several sites
that one playbook run would do across the fleet (the edge proxy in front of every site, the
monitoring server judging them all, an accessory's hosts feeding another site's releases) is
not built for nodes yet: refused here, with the path, before any host is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deployer.config.loader import format_loc
from deployer.config.models import Environment, JumpHost, Ssh


@dataclass(frozen=True)
class JumpHop:
    """One bastion of `ssh.jump`, with the user, key and known_hosts it is reached with."""

    address: str
    port: int
    user: str
    private_key: Path | None
    known_hosts: tuple[Path, ...]


@dataclass(frozen=True)
class ExecutionNode:
    """`ssh.nodes.<site>`: where the site's runs go, and how the control host reaches it."""

    site: str
    address: str
    port: int
    user: str
    private_key: Path | None
    known_hosts: tuple[Path, ...]
    jump: tuple[JumpHop, ...]
    config_path: str  # environments.<env>.ssh.nodes.<site>, for messages

    @property
    def label(self) -> str:
        return f"execution node {self.site} ({self.address}:{self.port}, {self.config_path})"


@dataclass(frozen=True)
class Site:
    node: ExecutionNode
    hosts: tuple[str, ...]  # inventory names


def hops(
    chain: Sequence[JumpHost], ssh: Ssh, base: Path, known_hosts: tuple[Path, ...]
) -> tuple[JumpHop, ...]:
    def path(setting: str | None) -> Path | None:
        return base / Path(setting).expanduser() if setting else None

    return tuple(
        JumpHop(
            address=hop.address,
            port=hop.port,
            user=hop.user or ssh.user,
            private_key=path(hop.private_key or ssh.private_key),
            known_hosts=(base / hop.known_hosts,) if hop.known_hosts else known_hosts,
        )
        for hop in chain
    )


def site_problems(
    env: Environment, base: tuple[str, ...], *, hooks: bool, accessories: bool, blue_green: bool
) -> list[str]:
    """What `ssh.nodes` refuses, each naming its config path."""
    nodes = env.ssh.nodes
    if not nodes:
        return []
    where = format_loc((*base, "ssh", "nodes"))
    if env.target != "ssh":
        return [
            f"{where}: execution nodes run Ansible, which only target ssh uses; environment "
            f"is target {env.target!r}; remove it"
        ]
    problems: list[str] = []
    owner: dict[str, str] = {}
    for site, node in nodes.items():
        for index, group in enumerate(node.groups):
            loc = format_loc((*base, "ssh", "nodes", site, "groups", index))
            if group not in env.groups:
                problems.append(
                    f"{loc}: no such group in {format_loc((*base, 'hosts'))} "
                    f"({', '.join(env.groups)})"
                )
            elif group in owner:
                problems.append(f"{loc}: {group} is already at site {owner[group]}")
            else:
                owner[group] = site
    unbuilt = {
        "ssh.jump": bool(env.ssh.jump),
        "domain/proxy (the edge proxy)": env.domain is not None or env.proxy is not None,
        "features.monitoring": env.features.monitoring,
        "database/cache (accessories)": accessories,
        "hooks": hooks,
        "strategy blue_green": blue_green,
    }
    for what, used in unbuilt.items():
        if used:
            hint = " (give a node's bastions under its own `jump`)" if what == "ssh.jump" else ""
            problems.append(
                f"{where}: execution nodes together with {what} are not built yet{hint}; "
                "remove one of them"
            )
    return problems


def resolve_sites(
    env: Environment,
    base: tuple[str, ...],
    directory: Path,
    known_hosts: tuple[Path, ...],
    members: dict[str, list[str]],
) -> tuple[Site, ...]:
    """The environment's sites; `members`: the host names of each group."""
    sites = []
    for site, node in env.ssh.nodes.items():
        names: list[str] = []
        for group in node.groups:
            names += [n for n in members.get(group, []) if n not in names]
        key = node.private_key or env.ssh.private_key
        spec = ExecutionNode(
            site=site,
            address=node.address,
            port=node.port,
            user=node.user or env.ssh.user,
            private_key=directory / Path(key).expanduser() if key else None,
            known_hosts=(directory / node.known_hosts,) if node.known_hosts else known_hosts,
            jump=hops(node.jump, env.ssh, directory, known_hosts),
            config_path=format_loc((*base, "ssh", "nodes", site)),
        )
        sites.append(Site(spec, tuple(names)))
    return tuple(sites)
