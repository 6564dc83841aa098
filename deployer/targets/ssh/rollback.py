"""`deployer rollback ENV [--to V]`: every host back to one stored, good version.

The target must be present on every host; otherwise nothing happens and the command exits 2
naming the hosts that lack it. Without --to, the newest good version the ledger knows that
every host still stores (and that is not what runs now) is chosen.

When the ledger names the target (--to, or its newest good version other than the live one),
the rollback is one Ansible run: lock, check on every host that it stores the target and has not
marked it bad (one plain command each; any host without it stops the run before any switch),
switch, release the lock. When that check refuses, the run changed nothing: its ledger row is
taken back and the rollback reads every host and chooses as described above, in two runs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deployer.config.names import check_version
from deployer.errors import BadRequest, DeployerError, UnreachableError
from deployer.exitcodes import ExitCode
from deployer.ledger import HostStatus, Kind, Status, pid_is_alive
from deployer.plan.extravars import lock_release_vars, lock_vars, rollback_vars
from deployer.plan.sites import parts
from deployer.targets.base import HostReport, HostState, RollbackResult
from deployer.targets.ssh.context import SshSession as Session
from deployer.targets.ssh.lock import lock_info, locked_error, new_token, release_own
from deployer.targets.ssh.runner import RunResult
from deployer.targets.ssh.state import read_hosts

if TYPE_CHECKING:  # the notifier's imports (smtplib, ssl) load only when it sends
    from deployer.notify import Delivery


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
    session.runner  # noqa: B018 - the controller's own checks run before any row opens
    ledger = session.ledger
    ledger.reconcile_orphans(session.identity.control_host, pid_is_alive)
    token = new_token()
    target = session.target
    lock = lock_vars(target, token, session.identity.holder(), target.lock_ttl)
    released = False
    try:
        # across places the one-run path would check and switch each on its own: one
        # place's refusal would not stop another's switch, so they take the two-run path
        guess = None if len(parts(target)) > 1 else _ledger_target(session, to)
        if guess is not None:
            done = _one_run(session, guess, lock)
            if done is not None:
                result, released = done
                return result
        states = read_hosts(session, health=False, lock=lock)  # locks, then reads: one run
        result, released = _locked_rollback(session, to, states, token)
        return result
    finally:
        if not released:
            # a lock left behind shows as stale in `lock status`; it never hides the result
            with contextlib.suppress(DeployerError):
                release_own(session, token)


def _ledger_target(session: Session, to: str | None) -> str | None:
    """What the one-run path may try: --to, unless the ledger marked it bad (choose_version
    then refuses it); else the newest good version that is not the live one."""
    env = session.target.environment
    if to is not None:
        return None if to in session.ledger.bad_versions(env) else to
    live = session.ledger.current(env)
    return next((v for v in session.ledger.good_versions(env) if v != live), None)


def _one_run(
    session: Session, version: str, lock: dict[str, Any]
) -> tuple[RollbackResult, bool] | None:
    """Lock, check, switch and release in one run. None when the check refused (nothing was
    changed and no row is left): the caller then reads the hosts and chooses."""
    target, ledger = session.target, session.ledger
    hosts = list(target.host_names)
    deployment_id, deliveries = _open(session, version, ledger.current(target.environment))
    mapping = {h: version for h in hosts}
    reason = f"rollback to {version} requested by {session.identity.user}"
    extravars = {
        **rollback_vars(target, mapping, None, reason),
        **lock_release_vars(target, str(lock["token"])),
        "deployer_lock": lock,
        "deployer_lock_host": target.primary,
        "deployer_rollback_check": True,
    }
    started = time.monotonic()
    result = session.run("rollback.yml", extravars, hosts=hosts, cancellable=False)
    if not any("switched" in o.data for o in result.hosts.values()):
        # stopped before any switch: the lock, an unreachable host or the check refused
        ledger.discard(deployment_id)
        primary = result.hosts.get(target.primary)
        if primary and primary.failed and primary.data.get("held") and not primary.data.get("mine"):
            raise locked_error(lock_info(session, primary.data))
        return None
    before = {h: (o.data.get("previous") if (o := result.hosts.get(h)) else None) for h in hosts}
    return _close(session, deployment_id, deliveries, version, before, result, started)


def _open(session: Session, version: str, previous: str | None) -> tuple[int, list[Delivery]]:
    """The ledger row of this rollback, opened before any host changes, and its announcement."""
    ledger = session.ledger
    deployment_id = ledger.begin(
        environment=session.target.environment,
        kind=Kind.ROLLBACK,
        version=version,
        previous_version=previous,
        artifact_sha256=None,
        user=session.identity.user,
        control_host=session.identity.control_host,
        pid=session.identity.pid,
    )
    ledger.set_stage(deployment_id, "rollback")
    return deployment_id, list(session.announce(ledger.get(deployment_id)))


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
    currents = {s.current for s in states.values()}
    deployment_id, deliveries = _open(
        session, version, currents.pop() if len(currents) == 1 else None
    )
    mapping = {h: version for h in states}
    reason = f"rollback to {version} requested by {session.identity.user}"
    extravars = {**rollback_vars(target, mapping, None, reason), **lock_release_vars(target, token)}
    started = time.monotonic()
    result = session.run("rollback.yml", extravars, cancellable=False)
    before = {h: s.current for h, s in states.items()}
    return _close(session, deployment_id, deliveries, version, before, result, started)


def _close(
    session: Session,
    deployment_id: int,
    deliveries: list[Delivery],
    version: str,
    before: Mapping[str, str | None],
    result: RunResult,
    started: float,
) -> tuple[RollbackResult, bool]:
    """Host rows, the finished ledger row and the result; also whether the run released the
    lock."""
    ledger = session.ledger
    released = any(o.data.get("released") for o in result.hosts.values())
    reports: list[HostReport] = []
    for host, current in before.items():
        outcome = result.hosts.get(host)
        if outcome is not None and outcome.good:
            ok = HostStatus.CHANGED if outcome.changed else HostStatus.OK
            reports.append(HostReport(host, ok, "rollback", current, version))
        else:
            unknown = outcome is None or outcome.unreachable
            reports.append(
                HostReport(
                    host,
                    HostStatus.UNKNOWN if unknown else HostStatus.FAILED,
                    "rollback",
                    current,
                    None,
                    outcome.message if outcome else "no result",
                )
            )
    ledger.record_hosts(
        deployment_id,
        [r.result() for r in reports],
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
        environment=session.target.environment,
        version=version,
        status=status,
        exit_code=ExitCode.DEPLOY_FAILED if failed else ExitCode.OK,
        reason=session.redact(why),
        hosts=tuple(reports),
        seconds=seconds,
        notifications=tuple(deliveries),
    )
    return done, released
