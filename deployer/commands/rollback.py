"""`deployer rollback ENV [--to V]`: every host back to one stored, good version.

The target must be present on every host; otherwise nothing happens and the command exits 2
naming the hosts that lack it. Without --to, the newest good version the ledger knows that
every host still stores (and that is not what runs now) is chosen.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from deployer.commands.context import Session
from deployer.commands.deploy import HostReport
from deployer.commands.lock import new_token, release_own
from deployer.commands.state import HostState, read_hosts
from deployer.config.names import check_version
from deployer.errors import BadRequest, DeployerError, UnreachableError
from deployer.exitcodes import ExitCode
from deployer.ledger import HostResult, HostStatus, Kind, Status, pid_is_alive
from deployer.notify import Delivery
from deployer.plan.extravars import lock_release_vars, lock_vars, rollback_vars


@dataclass(frozen=True)
class RollbackResult:
    deployment_id: int
    environment: str
    version: str
    status: Status
    exit_code: ExitCode
    reason: str
    hosts: tuple[HostReport, ...]
    seconds: float
    notifications: tuple[Delivery, ...] = ()


def choose_version(
    states: dict[str, HostState], good: list[str], bad: frozenset[str], to: str | None
) -> str:
    """The rollback target, or BadRequest naming why none is acceptable."""
    if to is not None:
        if to in bad:
            raise BadRequest(f"--to {to}: that version is marked bad in this environment")
        lacking = sorted(h for h, s in states.items() if not s.has(to))
        if lacking:
            raise BadRequest(
                f"--to {to}: not present on {len(lacking)} host(s): {', '.join(lacking)}; "
                "refusing a rollback that would split the fleet"
            )
        marked = sorted(h for h, s in states.items() if s.state_of(to) == "bad")
        if marked:
            raise BadRequest(f"--to {to}: marked bad on {', '.join(marked)}")
        return to
    running = {s.current for s in states.values()}
    candidates = [v for v in good if v not in running]
    # versions the hosts themselves remember as good, newest first, when the ledger is new
    candidates += [
        s.previous_good for s in states.values() if s.previous_good and s.previous_good not in bad
    ]
    for version in candidates:
        if version in running:
            continue
        if all(s.has(version) and s.state_of(version) != "bad" for s in states.values()):
            return version
    raise BadRequest(
        "no previous good version is stored on every host; name one with --to "
        "(see `deployer releases`)"
    )


def rollback(session: Session, *, to: str | None = None) -> RollbackResult:
    if to is not None:  # checked before anything is opened or run
        try:
            check_version(to)
        except ValueError as exc:
            raise BadRequest(f"--to: {exc}") from None
    ledger = session.ledger
    ledger.reconcile_orphans(session.identity.control_host, pid_is_alive)
    token = new_token()
    target = session.target
    lock = lock_vars(target, token, session.identity.holder(), target.lock_ttl)
    states = read_hosts(session, health=False, lock=lock)  # locks, then reads: one run
    released = False
    try:
        result, released = _locked_rollback(session, to, states, token)
        return result
    finally:
        if not released:
            # a lock left behind shows as stale in `lock status`; it never hides the result
            with contextlib.suppress(DeployerError):
                release_own(session, token)


def _locked_rollback(
    session: Session,
    to: str | None,
    states: dict[str, HostState],
    token: str,
) -> tuple[RollbackResult, bool]:
    """The rollback itself, under the lock; also says whether its run released the lock."""
    target, ledger = session.target, session.ledger
    down = sorted(h for h, s in states.items() if not s.reachable)
    if down:
        raise UnreachableError(f"unreachable: {', '.join(down)}; nothing was changed")
    env = target.environment
    version = choose_version(states, ledger.good_versions(env), ledger.bad_versions(env), to)
    started = time.monotonic()
    currents = {s.current for s in states.values()}
    deployment_id = ledger.begin(
        environment=env,
        kind=Kind.ROLLBACK,
        version=version,
        previous_version=currents.pop() if len(currents) == 1 else None,
        artifact_sha256=None,
        user=session.identity.user,
        control_host=session.identity.control_host,
        pid=session.identity.pid,
    )
    ledger.set_stage(deployment_id, "rollback")
    deliveries = list(session.announce(ledger.get(deployment_id)))
    mapping = {h: version for h in states}
    reason = f"rollback to {version} requested by {session.identity.user}"
    extravars = {**rollback_vars(target, mapping, None, reason), **lock_release_vars(target, token)}
    result = session.run("rollback.yml", extravars, cancellable=False)
    released = any(o.data.get("released") for o in result.hosts.values())
    reports: list[HostReport] = []
    for host, state in states.items():
        outcome = result.hosts.get(host)
        if outcome is not None and outcome.good:
            ok = HostStatus.CHANGED if outcome.changed else HostStatus.OK
            reports.append(HostReport(host, ok, "rollback", state.current, version))
        else:
            unknown = outcome is None or outcome.unreachable
            reports.append(
                HostReport(
                    host,
                    HostStatus.UNKNOWN if unknown else HostStatus.FAILED,
                    "rollback",
                    state.current,
                    None,
                    outcome.message if outcome else "no result",
                )
            )
    ledger.record_hosts(
        deployment_id,
        [HostResult(r.host, r.status, r.stage, r.before, r.after, r.message) for r in reports],
    )
    failed = [r.host for r in reports if r.status in {HostStatus.FAILED, HostStatus.UNKNOWN}]
    seconds = time.monotonic() - started
    status = Status.FAILED if failed else Status.SUCCEEDED
    why = f"rollback failed on {', '.join(failed)}" if failed else ""
    deliveries += session.announce(
        ledger.finish(deployment_id, status, reason=why, rollback_seconds=seconds)
    )
    done = RollbackResult(
        deployment_id=deployment_id,
        environment=env,
        version=version,
        status=status,
        exit_code=ExitCode.DEPLOY_FAILED if failed else ExitCode.OK,
        reason=session.redact(why),
        hosts=tuple(reports),
        seconds=seconds,
        notifications=tuple(deliveries),
    )
    return done, released
