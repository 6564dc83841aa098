"""`deployer accessory ACTION ENV [NAME]`: the environment's database and cache on their own,
outside a deploy. Accessories are never rolled back with releases; these are the commands
that manage them."""

from __future__ import annotations

import time
from collections.abc import Sequence

from deployer.errors import BadRequest
from deployer.plan.accessories import accessory_vars, restore_vars
from deployer.targets.base import AccessoryResult, BackupsResult, RestoreResult, new_token
from deployer.targets.ssh import lock as ssh_lock
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
    if "database" not in chosen:
        extravars.pop("deployer_standbys", None)
    specs = [*extravars["deployer_accessories"].values(), *extravars.get("deployer_standbys", [])]
    hosts = sorted({spec["host"] for spec in specs})
    # the credentials the project's vault holds go with every run that may set them
    result = session.run(
        "accessories.yml", extravars, hosts=hosts, cancellable=False, secrets=action != "status"
    )
    states = accessory_states(target, result.hosts)
    return AccessoryResult(
        target.environment,
        action,
        tuple(s for s in states if s.kind in chosen),
        notes=tuple(session.notes),
    )


def backups(session: SshSession) -> BackupsResult:
    """The dumps deploys took (database.backup.before_migrate), from the ledger."""
    target = session.target
    return BackupsResult(target.environment, tuple(session.ledger.backups(target.environment)))


def restore(session: SshSession, backup_id: int) -> RestoreResult:
    """Restore dump `backup_id` into the app's database, holding the environment lock (no
    deploy migrates meanwhile). The dump's sha256 from the ledger is checked on the host
    before anything is dropped."""
    target = session.target
    if target.accessory("database") is None:
        raise BadRequest(f"environments.{target.environment}.database: no database to restore")
    known = {b.id: b for b in session.ledger.backups(target.environment)}
    chosen = known.get(backup_id)
    if chosen is None:
        ids = ", ".join(str(i) for i in sorted(known)) or "none"
        raise BadRequest(f"no backup {backup_id} of {target.environment} (known: {ids})")
    token = new_token()
    started = time.monotonic()
    ssh_lock.acquire(session, token)
    try:
        extravars = restore_vars(target, chosen.file, chosen.sha256)
        result = session.run("accessories.yml", extravars, hosts=[chosen.host], cancellable=False)
    finally:
        ssh_lock.release_own(session, token)
    outcome = result.hosts.get(chosen.host)
    ok = outcome is not None and outcome.good
    message = "" if ok else (outcome.message if outcome else f"no result ({result.status})")
    return RestoreResult(target.environment, chosen, ok, time.monotonic() - started, message)
