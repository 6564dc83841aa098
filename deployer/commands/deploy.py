"""`deployer deploy`: stage everywhere, switch in batches, watch, and put the whole fleet back
on its previous good version when anything fails.

Stages, in order: prepare (lock, preflight, upload, unpack: nothing is switched until every
host got through it) -> switch per batch (with on-host health checks) -> watch window -> release
the lock. The first batch is switched in the prepare run itself, once every host is ready, and
each later batch and the watch window is a run of its own; the last run releases the lock. The
ledger row is opened first and closed last, whatever happens in between, so a run is never left
looking successful when it was not.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer import artifact as artifacts
from deployer.commands.context import Session
from deployer.commands.lock import LockInfo, lock_info, locked_error, new_token, release_own
from deployer.config.names import check_version
from deployer.errors import BadRequest, DeployerError
from deployer.exitcodes import ExitCode
from deployer.ledger import HostResult, HostStatus, Kind, Status, pid_is_alive
from deployer.plan.batches import batches as plan_batches
from deployer.plan.extravars import (
    first_batch_vars,
    lock_release_vars,
    lock_vars,
    monitoring_vars,
    prepare_vars,
    rollback_vars,
    switch_vars,
    watch_vars,
)
from deployer.replies import cap
from deployer.runner import HostOutcome, RunResult

if TYPE_CHECKING:  # the notifier's imports (smtplib, ssl) load only when it sends
    from deployer.notify import Delivery

LOCK_POLL_SECONDS = 2.0
# Phases of the prepare run, by play name: the first batch's switch (switch.yml's play) and
# prepare.yml's guard before it, whose refusal only echoes the host failures it saw.
PHASES = {"switch": "Switch the batch", "guard": "Guard |"}


@dataclass(frozen=True)
class HostReport:
    host: str
    status: HostStatus
    stage: str
    before: str | None
    after: str | None
    message: str = ""


@dataclass(frozen=True)
class DeployResult:
    deployment_id: int
    environment: str
    version: str
    artifact_sha256: str
    status: Status
    exit_code: ExitCode
    stage: str
    reason: str
    noop: bool
    batches: tuple[tuple[str, ...], ...]
    hosts: tuple[HostReport, ...]
    deploy_seconds: float
    rollback_seconds: float | None
    notifications: tuple[Delivery, ...] = ()


class _Interrupted(Exception):
    """The operator pressed Ctrl-C: stop, release the lock, record INTERRUPTED."""


class RolloutStop(Exception):
    """The rollout cannot go on; carries the ledger status and the exit code."""

    def __init__(self, status: Status, code: ExitCode, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.code, self.stage, self.reason = status, code, stage, reason


@dataclass
class _Rollout:
    """Mutable bookkeeping of one deployment, turned into ledger rows and the result."""

    session: Session
    deployment_id: int
    version: str
    before: dict[str, str | None] = field(default_factory=dict)
    hosts: dict[str, HostReport] = field(default_factory=dict)
    switched: list[str] = field(default_factory=list)
    changed: bool = False
    lock_held: bool = False
    token: str = field(default_factory=new_token)
    rollback_seconds: float | None = None
    live_since: float | None = None  # epoch seconds when the first batch switched
    measured: dict[str, float] = field(default_factory=dict)  # the watch's last PromQL values

    def note(
        self, host: str, status: HostStatus, stage: str, after: str | None, message: str = ""
    ) -> None:
        self.hosts[host] = HostReport(host, status, stage, self.before.get(host), after, message)

    def stage(self, name: str) -> None:
        self.session.ledger.set_stage(self.deployment_id, name)

    def flush(self) -> None:
        self.session.ledger.record_hosts(
            self.deployment_id,
            [
                HostResult(r.host, r.status, r.stage, r.before, r.after, r.message)
                for r in self.hosts.values()
            ],
        )

    def check(self, result: RunResult) -> None:
        self.check_lock(result)  # the run may have given the lock back itself
        if self.session.interrupted.is_set() or result.canceled:
            raise _Interrupted

    def check_lock(self, result: RunResult) -> None:
        if any(o.data.get("released") for o in result.hosts.values()):
            self.lock_held = False

    def release_with(self, extravars: dict[str, Any]) -> dict[str, Any]:
        """Let this run (the deployment's last) release the lock in its final task."""
        if self.lock_held:
            return {**extravars, **lock_release_vars(self.session.target, self.token)}
        return extravars

    @property
    def noop(self) -> bool:
        """Every host already ran this version and no switch changed anything."""
        hosts = self.session.target.host_names
        return not self.changed and all(self.before.get(h) == self.version for h in hosts)


def deploy(
    session: Session,
    *,
    version: str | None = None,
    artifact_path: Path | None = None,
    wait: float = 0.0,
) -> DeployResult:
    target = session.target
    if version is not None:  # bad input is refused before anything runs, the build included
        try:
            check_version(version)
        except ValueError as exc:
            raise BadRequest(f"--version: {exc}") from None
    source = artifact_path or (target.project_dir / target.artifact.path)
    build = None if artifact_path else target.artifact.build
    art = artifacts.for_target(target, source, session.state_dir / "artifacts", build)
    version = version or art.default_version  # a sha256 prefix: always a valid version
    session.runner  # noqa: B018 - the controller's own checks run before the row opens
    ledger = session.ledger
    ledger.reconcile_orphans(session.identity.control_host, pid_is_alive)
    if version in ledger.bad_versions(target.environment):
        raise BadRequest(
            f"version {version} is marked bad in {target.environment}: it failed before; "
            "deploy a new version"
        )
    started = time.monotonic()
    deployment_id = ledger.begin(
        environment=target.environment,
        kind=Kind.DEPLOY,
        version=version,
        previous_version=ledger.current(target.environment),
        artifact_sha256=art.sha256,
        user=session.identity.user,
        control_host=session.identity.control_host,
        pid=session.identity.pid,
    )
    deliveries = list(session.announce(ledger.get(deployment_id)))
    rollout = _Rollout(session, deployment_id, version)
    plan = [tuple(b) for b in plan_batches(target.strategy, target.host_names)]
    status, code, stage, reason = Status.SUCCEEDED, ExitCode.OK, "done", ""
    try:
        first = _prepare(rollout, art, wait, started, plan)
        _switch_all(rollout, plan, first)
        _watch(rollout)
    except RolloutStop as stop:
        status, code, stage, reason = stop.status, stop.code, stop.stage, stop.reason
        rollout.stage(stage)  # the ledger keeps the stage that failed, as the result says
    except (_Interrupted, KeyboardInterrupt):
        status, code, stage = Status.INTERRUPTED, ExitCode.DEPLOY_FAILED, "interrupted"
        reason = "interrupted by the operator; hosts stay where they were: see `status`"
    finally:
        lock_problem = _release_lock(rollout)
    if lock_problem:
        reason = f"{reason}; {lock_problem}" if reason else lock_problem
    rollout.flush()
    seconds = time.monotonic() - started
    noop = status is Status.SUCCEEDED and rollout.noop
    record = ledger.finish(
        deployment_id,
        status,
        reason=reason,
        noop=noop,
        deploy_seconds=seconds,
        rollback_seconds=rollout.rollback_seconds,
        error_rate=rollout.measured.get("error_rate"),
        p95_ms=rollout.measured.get("p95_latency"),
    )
    deliveries += session.announce(record)
    return DeployResult(
        deployment_id=deployment_id,
        environment=target.environment,
        version=version,
        artifact_sha256=art.sha256,
        status=record.status,
        exit_code=code,
        stage=stage,
        reason=session.redact(reason),
        noop=noop,
        batches=tuple(plan),
        hosts=tuple(rollout.hosts[h] for h in target.host_names if h in rollout.hosts),
        deploy_seconds=seconds,
        rollback_seconds=rollout.rollback_seconds,
        notifications=tuple(deliveries),
    )


def _prepare(
    rollout: _Rollout,
    art: artifacts.Artifact,
    wait: float,
    started: float,
    plan: list[tuple[str, ...]],
) -> RunResult | None:
    """Lock, preflight, upload and unpack on every host; when every host got through, the
    same run switches the first batch. Returns that run when it did."""
    session, target = rollout.session, rollout.session.target
    rollout.stage("prepare")
    hosts = list(target.host_names)
    while True:
        holder = session.identity.holder(rollout.deployment_id)
        # Until a result says otherwise we may hold the lock: releasing it with our own
        # token is harmless when we do not, and forgetting it would leave it stale.
        rollout.lock_held = True
        extravars = (
            prepare_vars(
                target,
                hosts,
                version=rollout.version,
                artifact=str(art.path),
                sha256=art.sha256,
                required_bytes=art.required_bytes,
                lock=lock_vars(target, rollout.token, holder, target.lock_ttl),
            )
            | monitoring_vars(target)
            | first_batch_vars(target, plan[0])
        )
        if len(plan) == 1 and target.rollback.watch <= 0:
            extravars = rollout.release_with(extravars)
        result = session.run(
            "prepare.yml",
            extravars,
            secrets=True,
            phases=PHASES,
            on_phase=lambda phase: _switching(rollout, phase, len(plan)),
        )
        prep = result.phase("")
        primary = prep.get(target.primary) or HostOutcome(target.primary)
        if primary.unreachable:
            rollout.lock_held = False
        if primary.failed and primary.data.get("held") and not primary.data.get("mine"):
            rollout.lock_held = False
            rollout.check(result)
            info = lock_info(session, primary.data)
            if time.monotonic() - started < wait and not info.stale:
                time.sleep(LOCK_POLL_SECONDS)
                continue
            raise RolloutStop(Status.FAILED, ExitCode.LOCKED, "lock", _locked_reason(info))
        break
    # Once the first batch's switch began, what happens next (an interruption included) is
    # that batch's to report, host by host, as for a switch run of its own.
    switch_began = "switch" in result.phase_started
    if not switch_began:
        rollout.check(result)
    if primary.failed and primary.failed_task.startswith("Lock |"):
        # The lock could not be taken for another reason than a holder: nothing ran after it
        rollout.lock_held = False
        raise RolloutStop(
            Status.FAILED,
            ExitCode.DEPLOY_FAILED,
            "lock",
            f"taking the lock on {target.primary} failed: {primary.message}; nothing was changed",
        )
    for host, outcome in prep.items():
        rollout.before[host] = outcome.data.get("current")
    stopped = not switch_began and result.status != "successful"  # failed before any switch
    unreachable = [h for h, o in prep.items() if o.unreachable]
    missing = [h for h in hosts if h not in prep]
    if unreachable or (missing and stopped):
        for host in unreachable:
            rollout.note(host, HostStatus.UNREACHABLE, "preflight", None, prep[host].message)
        names = ", ".join(unreachable or missing)
        raise RolloutStop(
            Status.FAILED,
            ExitCode.UNREACHABLE,
            "preflight",
            f"unreachable in preflight: {names}; nothing was changed",
        )
    failed = _failed(prep.values())
    if failed or stopped:
        for outcome in failed:
            stage = _stage_of(outcome)
            rollout.note(
                outcome.host, HostStatus.FAILED, stage, outcome.data.get("current"), outcome.message
            )
        detail = _detail({o.host: o.message for o in failed}) or result.status
        stage = _stage_of(failed[0]) if failed else "prepare"
        raise RolloutStop(
            Status.FAILED,
            ExitCode.DEPLOY_FAILED,
            stage,
            f"{stage} failed, nothing was switched: {detail}",
        )
    if switch_began:
        rollout.live_since = result.phase_started["switch"]
        return result
    return None


def _switching(rollout: _Rollout, phase: str, batches: int) -> None:
    """The prepare run reached the first batch's switch: the ledger says so right away (an
    interruption from here on is one in the switch stage)."""
    if phase == "switch":
        rollout.stage(f"switch 1/{batches}")


def _locked_reason(info: LockInfo) -> str:
    return str(locked_error(info).message)


def _stage_of(outcome: HostOutcome) -> str:
    task = outcome.failed_task.lower()
    for stage in ("lock", "preflight", "upload", "stage", "monitoring"):
        if stage in task:
            return "preflight" if stage == "lock" else stage
    return "stage"


def _failed(outcomes: Iterable[HostOutcome]) -> list[HostOutcome]:
    return [o for o in outcomes if not o.good]


def _switch_all(
    rollout: _Rollout, plan: list[tuple[str, ...]], first: RunResult | None = None
) -> None:
    """Switch batch by batch (the first one may have been switched by the prepare run,
    `first`); past the failure budget, roll the whole fleet back."""
    session, target = rollout.session, rollout.session.target
    budget = target.strategy.failure_budget
    broken: dict[str, HostOutcome] = {}
    for number, batch in enumerate(plan, start=1):
        rollout.stage(f"switch {number}/{len(plan)}")
        if number == 1 and first is not None:
            result, outcomes = first, first.phase("switch")
        else:
            extravars = switch_vars(target, batch, rollout.version)
            if number == len(plan) and target.rollback.watch <= 0:
                extravars = rollout.release_with(extravars)
            if rollout.live_since is None:
                rollout.live_since = time.time()
            result = session.run("switch.yml", extravars, hosts=batch)
            outcomes = result.hosts
        for host in batch:
            outcome = outcomes.get(host) or HostOutcome(host, unreachable=True, message="no result")
            rollout.changed = rollout.changed or outcome.changed > 0
            if outcome.good:
                rollout.switched.append(host)
                rollout.note(
                    host,
                    HostStatus.CHANGED if outcome.changed else HostStatus.OK,
                    "switch",
                    rollout.version,
                )
            else:
                broken[host] = outcome
                if outcome.data.get("switched") or outcome.unreachable:
                    rollout.switched.append(host)
                after = (
                    None
                    if outcome.unreachable
                    else (
                        rollout.version
                        if outcome.data.get("switched")
                        else rollout.before.get(host)
                    )
                )
                status = HostStatus.UNKNOWN if outcome.unreachable else HostStatus.FAILED
                rollout.note(
                    host,
                    status,
                    "health" if outcome.data.get("switched") else "switch",
                    after,
                    outcome.message,
                )
        rollout.flush()
        rollout.check(result)
        if len(broken) > budget:
            reason = _why(broken, f"batch {number}/{len(plan)}")
            _fleet_rollback(rollout, reason, stage="switch", broken=broken)
    if broken:  # within the budget: put just those hosts back
        _rollback(
            rollout,
            [h for h in broken if h in rollout.switched],
            mark_bad=None,
            reason=_why(broken, "within the failure budget"),
        )


REASON_HOSTS = 10
"""Hosts named one by one in a failure reason; the rest are counted. A reason travels to the
rollback run, the ledger and every notification: its size must not grow with the fleet."""
REASON_HOST_CHARS = 300


def _detail(lines: Mapping[str, str]) -> str:
    """`host: message; ...` for at most REASON_HOSTS hosts, each message capped."""
    shown = list(lines.items())[:REASON_HOSTS]
    text = "; ".join(f"{host}: {cap(message, REASON_HOST_CHARS)}" for host, message in shown)
    if len(lines) > len(shown):
        text += f"; and {len(lines) - len(shown)} more host(s)"
    return text


def _why(broken: Mapping[str, HostOutcome], where: str) -> str:
    details = _detail(
        {
            host: f"{'unreachable' if o.unreachable else 'failed'}: {o.message}"
            for host, o in broken.items()
        }
    )
    return f"{len(broken)} host(s) failed in {where}: {details}"


def _watch(rollout: _Rollout) -> None:
    """Sample health over the watch window and, with monitoring on, evaluate the error-rate
    and response-time rules in Prometheus; a breach rolls the fleet back."""
    session, target = rollout.session, rollout.session.target
    if target.rollback.watch <= 0:
        return
    rollout.stage("watch")
    hosts = [
        h
        for h in target.host_names
        if rollout.hosts.get(h, None) is not None and rollout.hosts[h].after == rollout.version
    ]
    since = rollout.live_since or time.time()
    result = session.run(
        "watch.yml", rollout.release_with(watch_vars(target, hosts, since=since)), hosts=hosts
    )
    rollout.check(result)
    server = target.monitoring_server or ""
    verdict = result.hosts.get(server)
    if verdict is not None:
        last = verdict.data.get("last") or {}
        rollout.measured = {k: float(v) for k, v in last.items() if isinstance(v, int | float)}
    if verdict is not None and verdict.data.get("breach"):
        # the rules judge the release across the fleet: past the budget by definition
        reason = f"the watch window: Prometheus on {server}: {verdict.message}"
        _fleet_rollback(rollout, reason, stage="watch", broken={server: verdict})
    broken = {h: o for h, o in result.hosts.items() if not o.good and h in hosts}
    for host, outcome in broken.items():
        rollout.note(host, HostStatus.FAILED, "watch", rollout.version, outcome.message)
    if server and server not in hosts and server in result.hosts:
        lost = result.hosts[server]
        if not lost.good:  # the server could not judge: unreachable, or no verdict at all
            broken[server] = lost
    if len(broken) > target.strategy.failure_budget:
        _fleet_rollback(rollout, _why(broken, "the watch window"), stage="watch", broken=broken)


def _fleet_rollback(
    rollout: _Rollout, reason: str, *, stage: str, broken: Mapping[str, HostOutcome]
) -> None:
    """Every switched host back to its previous version. The new version is marked bad only
    when a host failed it: a host that went unreachable says nothing about the version, and
    marking it bad would refuse the re-run that converges once the host is back."""
    target = rollout.session.target
    if not target.rollback.automatic:
        raise RolloutStop(
            Status.FAILED,
            ExitCode.DEPLOY_FAILED,
            stage,
            f"{reason}; automatic rollback is off: hosts were left as they are",
        )
    bad = rollout.version if any(not o.unreachable for o in broken.values()) else None
    if bad is not None:
        rollout.session.ledger.mark_bad(
            target.environment, bad, deployment_id=rollout.deployment_id, reason=reason
        )
    failed = _rollback(rollout, list(rollout.switched), mark_bad=bad, reason=reason)
    tail = f"; rollback FAILED on {', '.join(failed)}" if failed else ""
    raise RolloutStop(
        Status.ROLLED_BACK, ExitCode.DEPLOY_FAILED, stage, f"{reason}; rolled back{tail}"
    )


def _rollback(
    rollout: _Rollout, hosts: list[str], *, mark_bad: str | None, reason: str
) -> list[str]:
    """Put `hosts` back on their previous versions. Returns the hosts where that failed."""
    session, target = rollout.session, rollout.session.target
    # A host that ran nothing before goes back to running nothing (None: the switch stops
    # the app and removes `current`), so no broken first release keeps restarting there.
    to: dict[str, str | None] = {}
    for host in hosts:
        if host in rollout.before and rollout.before[host] is None:
            to[host] = None
        elif (previous := rollout.before.get(host)) and previous != rollout.version:
            to[host] = previous
    stuck = [h for h in hosts if h not in to]
    for host in stuck:
        prior = rollout.hosts.get(host)
        rollout.note(
            host,
            HostStatus.FAILED,
            "rollback",
            prior.after if prior else None,
            "no previous release to roll back to",
        )
    if not to:
        return stuck
    rollout.stage("rollback")
    started = time.monotonic()
    result = session.run(
        "rollback.yml",
        rollout.release_with(rollback_vars(target, to, mark_bad, reason)),
        hosts=list(to),
        cancellable=False,
    )
    rollout.check_lock(result)
    rollout.rollback_seconds = (rollout.rollback_seconds or 0.0) + time.monotonic() - started
    failed = list(stuck)
    for host, version in to.items():
        outcome = result.hosts.get(host)
        prior = rollout.hosts.get(host)
        why = prior.message if prior else ""
        if outcome is not None and outcome.good:
            if version is None:
                why = f"{why}; no previous release here: stopped, nothing runs on this host"
            rollout.note(host, HostStatus.ROLLED_BACK, "rollback", version, why.lstrip("; "))
        else:
            failed.append(host)
            unreachable = outcome is None or outcome.unreachable
            rollout.note(
                host,
                HostStatus.UNKNOWN if unreachable else HostStatus.FAILED,
                "rollback",
                # where `current` points now: the switch back may have happened even though
                # the old version then failed its health checks there
                None if outcome is None or unreachable else outcome.data.get("current"),
                outcome.message if outcome else "no result",
            )
    rollout.flush()
    return failed


def _release_lock(rollout: _Rollout) -> str:
    """Release our lock; a failure is reported (the lock will show as stale), not raised."""
    if not rollout.lock_held:
        return ""
    try:
        release_own(rollout.session, rollout.token)
    except DeployerError as exc:
        return f"the lock could not be released ({exc.message})"
    rollout.lock_held = False
    return ""
