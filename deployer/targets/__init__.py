"""Targets: each one way of running releases, behind one protocol (`base.Target`).

    ssh    servers over SSH, each step an Ansible run (targets/ssh)
    swarm  a Docker Swarm stack, reached over SSH on its manager (targets/swarm)

`nomad` is accepted in deploy.yml (its settings validate) but there is no Nomad target yet:
every command refuses it with exit 2 before anything is contacted. Imports are lazy, so a
command pays only for the target it uses.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from deployer.errors import BadRequest

if TYPE_CHECKING:
    from deployer.session import Session
    from deployer.targets.base import Target

REGISTRY = {
    "ssh": "deployer.targets.ssh.target:SshTarget",
    "swarm": "deployer.targets.swarm.target:SwarmTarget",
}
PLANNED = {"nomad": "Nomad is not implemented yet"}


def check_supported(kind: str, environment: str) -> None:
    """BadRequest (exit 2) for a target kind with no implementation."""
    if kind not in REGISTRY:
        why = PLANNED.get(kind, "unknown target")
        raise BadRequest(
            f"environments.{environment}.target: {kind!r} cannot be used: {why} "
            f"(available: {', '.join(REGISTRY)})"
        )


def for_session(session: Session) -> Target:
    """The target the session's environment names."""
    env = session.target
    check_supported(env.kind, env.environment)
    module, _, name = REGISTRY[env.kind].partition(":")
    target: Target = getattr(import_module(module), name)(session)
    return target
