"""The operator's side of the environment lock (`deployer lock status|release`), for every
target. A lock is stale when its holder process is gone (same control host) or when it is
older than `lock_ttl`; stale locks are reported, never broken silently. Breaking one names
the lock that was read, by its token: a lock taken again since is left alone."""

from __future__ import annotations

from deployer.errors import BadRequest, DeployerError, LockedError
from deployer.targets.base import LockInfo, Target


def status(driver: Target) -> LockInfo:
    return driver.lock("status")


def release(driver: Target, *, force: bool = False) -> LockInfo:
    """Break the environment's lock for an operator: only a stale one unless `force`, and
    only the lock that was read (by its token). Returns the lock as it was; LockedError when
    it was taken again in between (the new lock is left alone)."""
    before = driver.lock("status")
    if before.held and not before.stale and not force:
        raise BadRequest(
            f"{before.environment} is {before.describe()}; it is not stale. "
            "Use --force to break a live lock."
        )
    if before.held:
        if not before.token:  # a lock that does not report tokens: never guess
            raise DeployerError(f"lock on {before.host} reported no token: not breaking it")
        try:
            driver.lock("break", before.token)
        except LockedError as exc:
            now = exc.message.removeprefix(f"{before.environment} is ")
            raise LockedError(
                f"{before.environment}: the lock was taken again after it was read and was left "
                f"alone; it is now {now}"
            ) from None
    return before
