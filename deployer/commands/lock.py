"""The environment lock: one deployment per environment at a time.

It lives on the environment's primary host (an atomic mkdir), so two control hosts contend
for the same lock. A lock is stale when its holder process is gone (same control host) or
when it is older than `lock_ttl`; stale locks are reported, never broken silently. Breaking
one names the lock that was read, by its token: a lock taken again since is left alone.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deployer.commands.context import Session
from deployer.errors import BadRequest, DeployerError, LockedError, UnreachableError
from deployer.ledger import pid_is_alive
from deployer.plan.extravars import lock_vars


@dataclass(frozen=True)
class LockInfo:
    environment: str
    host: str
    held: bool
    holder: Mapping[str, Any]
    age_seconds: float
    stale: bool
    stale_reason: str
    token: str = ""
    """The token the lock is held with (not a secret): what `release` breaks it by."""

    def describe(self) -> str:
        if not self.held:
            return f"{self.environment}: not locked"
        h = self.holder
        who = f"{h.get('user', '?')}@{h.get('control_host', '?')} (pid {h.get('pid', '?')})"
        text = f"locked by {who} since {h.get('started_at', '?')}"
        if h.get("deployment"):
            text += f", deployment #{h['deployment']}"
        if self.stale:
            text += f"; STALE: {self.stale_reason} (clear it with `deployer lock release "
            text += f"{self.environment}`)"
        return text


def new_token() -> str:
    return secrets.token_hex(16)


def lock_info(session: Session, data: Mapping[str, Any]) -> LockInfo:
    """Interpret the lock module's report, adding the same-host dead-pid staleness rule."""
    holder: Mapping[str, Any] = data.get("holder") or {}
    age = float(data.get("age_seconds") or 0.0)
    reason = ""
    if data.get("stale"):
        reason = f"older than the lock TTL ({session.target.lock_ttl} s)"
    pid = holder.get("pid")
    if (
        holder.get("control_host") == session.identity.control_host
        and isinstance(pid, int)
        and pid != session.identity.pid
        and not pid_is_alive(pid)
    ):
        reason = f"holder process {pid} is gone"
    return LockInfo(
        environment=session.target.environment,
        host=session.target.primary,
        held=bool(data.get("held")),
        holder=holder,
        age_seconds=age,
        stale=bool(reason),
        stale_reason=reason,
        token=str(data.get("token") or ""),
    )


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


def release(session: Session, *, force: bool = False) -> LockInfo:
    """Break the environment's lock for an operator: only a stale one unless `force`, and
    only the lock that was read (by its token). Returns the lock as it was; LockedError when
    it was taken again in between (the new lock is left alone)."""
    before = status(session)
    if before.held and not before.stale and not force:
        raise BadRequest(
            f"{before.environment} is {before.describe()}; it is not stale. "
            "Use --force to break a live lock."
        )
    if before.held:
        if not before.token:  # a lock module that does not report tokens: never guess
            raise DeployerError(f"lock on {before.host} reported no token: not breaking it")
        try:
            _lock_run(session, "break", before.token)
        except LockedError as exc:
            now = exc.message.removeprefix(f"{before.environment} is ")
            raise LockedError(
                f"{before.environment}: the lock was taken again after it was read and was left "
                f"alone; it is now {now}"
            ) from None
    return before


def acquire(session: Session, token: str, deployment: int | None = None) -> None:
    """Take the lock in a run of its own (targets without a combined read); LockedError
    when held."""
    _lock_run(session, "acquire", token, deployment)


def release_own(session: Session, token: str) -> None:
    _lock_run(session, "release", token)
