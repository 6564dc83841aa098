"""The environment lock: one deployment per environment at a time.

It lives on the environment's primary host (an atomic mkdir), so two control hosts contend
for the same lock. A lock is stale when its holder process is gone (same control host) or
when it is older than `lock_ttl`; stale locks are reported, never broken silently. Breaking
one names the lock that was read, by its token: a lock taken again since is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deployer.errors import DeployerError, LockedError, UnreachableError
from deployer.plan.extravars import lock_vars
from deployer.targets.base import LockInfo, lock_info, new_token
from deployer.targets.ssh.context import SshSession as Session

__all__ = ["LockInfo", "acquire", "break_lock", "lock_info", "new_token", "release_own", "status"]


def locked_error(info: LockInfo) -> LockedError:
    return LockedError(f"{info.environment} is {info.describe()}")


def _lock_run(
    session: Session, action: str, token: str = "", deployment: int | None = None
) -> Mapping[str, Any]:
    """Run lock.yml on the primary host; returns the lock module's report."""
    target = session.target
    extravars = {
        "deployer_lock": lock_vars(
            target, token, session.identity.holder(deployment), target.lock_ttl
        ),
        "deployer_lock_action": action,
    }
    result = session.run("lock.yml", extravars, hosts=[target.primary], cancellable=False)
    outcome = result.hosts.get(target.primary)
    if outcome is None or outcome.unreachable:
        message = outcome.message if outcome else f"no result ({result.status})"
        raise UnreachableError(f"lock host {target.primary} unreachable: {message}")
    if outcome.data.get("held") and outcome.failed:
        raise locked_error(lock_info(session, outcome.data))
    if outcome.failed:
        raise DeployerError(f"lock {action} on {target.primary} failed: {outcome.message}")
    return outcome.data


def status(session: Session) -> LockInfo:
    return lock_info(session, _lock_run(session, "status"))


def break_lock(session: Session, token: str) -> None:
    """Break the lock held with `token` (LockedError when it is held with another now)."""
    _lock_run(session, "break", token)


def acquire(session: Session, token: str, deployment: int | None = None) -> None:
    """Take the lock in a run of its own (targets without a combined read); LockedError
    when held."""
    _lock_run(session, "acquire", token, deployment)


def release_own(session: Session, token: str) -> None:
    _lock_run(session, "release", token)
