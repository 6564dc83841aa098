"""`deploy` for `target: swarm` environments: build, deliver, stack deploy, follow Swarm.

Same contract as the SSH deploy (`deployer.commands.deploy`): the environment lock (on the
primary host, which is the swarm manager), one ledger row opened first and closed last, the
same DeployResult and exit codes. The "hosts" of the result are the stack's services.

Failure handling: Swarm rolls a failing update back by itself (failure_action rollback);
deployer then puts every service of the stack back on the previous version too (services
that had updated fine would otherwise stay on the new one), marks the version bad, and
reports ROLLED_BACK with exit 1. A first deploy has nothing to return to: FAILED, exit 1.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from deployer.commands.context import Session
from deployer.commands.deploy import DeployResult, HostReport, RolloutStop
from deployer.commands.lock import acquire, new_token, release_own
from deployer.config.swarm import SwarmSettings, settings_of
from deployer.errors import BadRequest, DeployerError, LockedError, UnreachableError
from deployer.exitcodes import ExitCode
from deployer.ledger import HostResult, HostStatus, Kind, Status, pid_is_alive
from deployer.swarm import compose, deliver, observe, rollout
from deployer.swarm.build import BuildResult, build_images, specs_of
from deployer.swarm.observe import ServiceView
from deployer.swarm.remote import Nodes
from deployer.swarm.spec import ComponentSpec, stack_name

LOCK_POLL_SECONDS = 2.0


@dataclass
class _Run:
    session: Session
    settings: SwarmSettings
    specs: tuple[ComponentSpec, ...]
    nodes: Nodes
    deployment_id: int
    version: str
    previous: str | None
    before: dict[str, ServiceView] = field(default_factory=dict)
    reports: dict[str, HostReport] = field(default_factory=dict)
    rollback_seconds: float | None = None
    current: str = "lock"

    @property
    def stack(self) -> str:
        return stack_name(self.session.target, self.settings)

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(s.service for s in self.specs)

    def stage(self, name: str) -> None:
        self.current = name
        self.session.ledger.set_stage(self.deployment_id, name)

    def note(
        self, service: str, status: HostStatus, stage: str, after: str | None, msg: str = ""
    ) -> None:
        prior = self.before.get(service)
        self.reports[service] = HostReport(
            service, status, stage, prior.version if prior else None, after, msg
        )


def deploy(session: Session, *, version: str | None = None, wait: float = 0.0) -> DeployResult:
    """Build (cache hits when unchanged), deliver, deploy the stack, follow it to the end."""
    target, ledger = session.target, session.ledger
    settings = settings_of(target)
    built = build_images(target, version, settings=settings)
    version = built.version
    ledger.reconcile_orphans(session.identity.control_host, pid_is_alive)
    if version in ledger.bad_versions(target.environment):
        raise BadRequest(
            f"version {version} is marked bad in {target.environment}: it failed before; "
            "deploy a new version"
        )
    started = time.monotonic()
    previous = ledger.current(target.environment)
    deployment_id = ledger.begin(
        environment=target.environment,
        kind=Kind.DEPLOY,
        version=version,
        previous_version=previous,
        artifact_sha256=built.digest,
        user=session.identity.user,
        control_host=session.identity.control_host,
        pid=session.identity.pid,
    )
    deliveries = list(session.announce(ledger.get(deployment_id)))
    nodes = Nodes(target, settings.docker)
    run = _Run(
        session, settings, specs_of(target, settings), nodes, deployment_id, version, previous
    )
    token = new_token()
    locked = False
    status, code, stage, reason = Status.SUCCEEDED, ExitCode.OK, "done", ""
    try:
        locked = _lock(run, token, wait, started)
        _deliver(run, built)
        _switch(run)
    except RolloutStop as stop:
        status, code, stage, reason = stop.status, stop.code, stop.stage, stop.reason
    except DeployerError as exc:  # the manager refused or vanished: Swarm state unknown
        status, code, stage, reason = Status.FAILED, exc.exit_code, run.current, exc.message
    except KeyboardInterrupt:
        status, code, stage = Status.INTERRUPTED, ExitCode.DEPLOY_FAILED, "interrupted"
        reason = "interrupted by the operator; Swarm carries on with what it was given"
    finally:
        if locked:
            with contextlib.suppress(DeployerError):
                release_own(session, token)
    ledger.record_hosts(
        deployment_id,
        [
            HostResult(r.host, r.status, r.stage, r.before, r.after, r.message)
            for r in run.reports.values()
        ],
    )
    seconds = time.monotonic() - started
    noop = status is Status.SUCCEEDED and all(
        (v := run.before.get(s)) is not None and v.version == version and v.converged
        for s in run.services
    )
    record = ledger.finish(
        deployment_id, status, reason=reason, noop=noop, deploy_seconds=seconds,
        rollback_seconds=run.rollback_seconds,
    )  # fmt: skip
    deliveries += session.announce(record)
    return DeployResult(
        deployment_id=deployment_id,
        environment=target.environment,
        version=version,
        artifact_sha256=built.digest,
        status=record.status,
        exit_code=code,
        stage=stage,
        reason=session.redact(reason),
        noop=noop,
        batches=(run.services,),
        hosts=tuple(run.reports[s] for s in run.services if s in run.reports),
        deploy_seconds=seconds,
        rollback_seconds=run.rollback_seconds,
        notifications=tuple(deliveries),
    )


def _lock(run: _Run, token: str, wait: float, started: float) -> bool:
    run.stage("lock")
    while True:
        try:
            acquire(run.session, token, run.deployment_id)
            return True
        except LockedError as exc:
            if time.monotonic() - started < wait:
                time.sleep(LOCK_POLL_SECONDS)
                continue
            raise RolloutStop(Status.FAILED, ExitCode.LOCKED, "lock", exc.message) from None
        except UnreachableError as exc:
            raise RolloutStop(
                Status.FAILED, ExitCode.UNREACHABLE, "preflight", exc.message
            ) from None


def _deliver(run: _Run, built: BuildResult) -> None:
    """Every node holds every image before anything switches."""
    run.stage("deliver")
    results = deliver.deliver(run.nodes, {i.image: i.image_id for i in built.images})
    down = [r.node for r in results if r.unreachable]
    if down:
        raise RolloutStop(
            Status.FAILED, ExitCode.UNREACHABLE, "preflight",
            f"unreachable: {', '.join(down)}; nothing was changed",
        )  # fmt: skip
    failed = [f"{r.node}: {r.error}" for r in results if not r.ok]
    if failed:
        raise RolloutStop(
            Status.FAILED, ExitCode.DEPLOY_FAILED, "upload",
            f"image delivery failed, nothing was switched: {'; '.join(failed)}",
        )  # fmt: skip


def _switch(run: _Run) -> None:
    target = run.session.target
    run.before = observe.read(run.nodes, run.stack)
    run.stage("switch")
    rollout.apply(
        run.nodes, run.stack, compose.render(target, run.settings, run.specs, run.version)
    )
    settled = rollout.wait(
        run.nodes, run.stack, run.services, run.version, run.before,
        timeout=run.settings.timeout, interrupted=run.session.interrupted,
    )  # fmt: skip
    if settled.interrupted:
        raise KeyboardInterrupt
    stage = "switch"
    if settled.ok and target.rollback.watch > 0:
        run.stage("watch")
        stage = "watch"
        settled = rollout.watch(
            run.nodes, run.stack, run.services, run.version, target.rollback.watch
        )
    for service in run.services:
        view = settled.views.get(service)
        result = settled.outcome.get(service)
        changed = run.before.get(service) is None or run.before[service].version != run.version
        if result == "converged":
            run.note(service, HostStatus.CHANGED if changed else HostStatus.OK, stage, run.version)
        else:
            after = view.version if view else None
            run.note(service, HostStatus.FAILED, stage, after, view.describe() if view else "")
    if not settled.ok:
        _fail(run, settled.reason(), stage)


def _fail(run: _Run, reason: str, stage: str) -> None:
    """Put the whole stack back on the previous version (or say why not) and stop."""
    target = run.session.target
    if not target.rollback.automatic:
        raise RolloutStop(
            Status.FAILED, ExitCode.DEPLOY_FAILED, stage, f"{reason}; automatic rollback is off"
        )
    run.session.ledger.mark_bad(
        target.environment, run.version, deployment_id=run.deployment_id, reason=reason
    )
    if run.previous is None:
        raise RolloutStop(
            Status.FAILED, ExitCode.DEPLOY_FAILED, stage,
            f"{reason}; no previous version to roll back to",
        )  # fmt: skip
    run.stage("rollback")
    started = time.monotonic()
    compose_file = compose.render(target, run.settings, run.specs, run.previous)
    rollout.apply(run.nodes, run.stack, compose_file)
    mid = observe.read(run.nodes, run.stack)
    back = rollout.wait(
        run.nodes, run.stack, run.services, run.previous, mid, timeout=run.settings.timeout
    )
    run.rollback_seconds = time.monotonic() - started
    for service, result in back.outcome.items():
        view = back.views.get(service)
        why = run.reports[service].message if service in run.reports else ""
        if result == "converged":
            run.note(service, HostStatus.ROLLED_BACK, "rollback", run.previous, why)
        else:
            run.note(
                service,
                HostStatus.FAILED,
                "rollback",
                view.version if view else None,
                back.reason(),
            )
    tail = "" if back.ok else f"; rollback FAILED: {back.reason()}"
    raise RolloutStop(
        Status.ROLLED_BACK,
        ExitCode.DEPLOY_FAILED,
        stage,
        f"{reason}; rolled back to {run.previous}{tail}",
    )
