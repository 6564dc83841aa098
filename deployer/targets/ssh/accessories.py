"""`deployer accessory ACTION ENV [NAME]`: the environment's database and cache on their own,
outside a deploy. Accessories are never rolled back with releases; these are the commands
that manage them."""

from __future__ import annotations

from collections.abc import Sequence

from deployer.errors import BadRequest
from deployer.plan.accessories import accessory_vars
from deployer.targets.base import AccessoryResult
from deployer.targets.ssh.context import SshSession
from deployer.targets.ssh.state import accessory_states

ACTIONS = {"setup": "present", "status": "status", "restart": "restarted", "upgrade": "upgraded"}
"""Command -> the state deployer_accessory is asked for."""


def run(session: SshSession, action: str, names: Sequence[str] = ()) -> AccessoryResult:
    target = session.target
    known = [a.kind for a in target.accessories]
    if not known:
        raise BadRequest(
            f"environments.{target.environment}: no accessories (set database or cache)"
        )
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadRequest(
            f"accessory {unknown[0]!r} is not one of environment {target.environment}'s "
            f"({', '.join(known)})"
        )
    extravars = accessory_vars(target, ACTIONS[action])
    chosen = set(names or known)
    extravars["deployer_accessories"] = {
        kind: spec for kind, spec in extravars["deployer_accessories"].items() if kind in chosen
    }
    hosts = sorted({spec["host"] for spec in extravars["deployer_accessories"].values()})
    result = session.run("accessories.yml", extravars, hosts=hosts, cancellable=False)
    states = accessory_states(target, result.hosts)
    return AccessoryResult(target.environment, action, tuple(s for s in states if s.kind in chosen))
