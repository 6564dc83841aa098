"""`rollback` and `status` for `target: swarm` environments.

rollback redeploys a stored version: its images must be on every node (the controller sends
them when it still has them, like a deploy would); otherwise nothing happens and the
command exits 2 naming the nodes that lack them. status reads the service tasks through
the manager and sets them beside what the ledger expects.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

import docker
from docker.errors import DockerException, ImageNotFound

from deployer.config.names import check_version
from deployer.errors import BadRequest, DeployerError
from deployer.exitcodes import ExitCode
from deployer.ledger import HostStatus, Kind, Status, pid_is_alive
from deployer.session import Session
from deployer.targets.base import (
    HostReport,
    HostState,
    ReleaseOnHost,
    ReleasesResult,
    RollbackResult,
    StatusResult,
    cap,
    compare_with_ledger,
    new_token,
    release_rows,
)
from deployer.targets.swarm import compose, deliver, observe, rollout
from deployer.targets.swarm import secrets as swarm_secrets
from deployer.targets.swarm.remote import Nodes
from deployer.targets.swarm.spec import ComponentSpec

if TYPE_CHECKING:
    from deployer.targets.swarm.target import SwarmTarget


def _local_ids(refs: list[str]) -> dict[str, str] | None:
    """Image IDs on the controller, or None when it lacks any of them."""
    try:
        client = docker.from_env()
        return {ref: str(client.images.get(ref).id) for ref in refs}
    except (ImageNotFound, DockerException):
        return None


def _ensure_on_nodes(nodes: Nodes, specs: tuple[ComponentSpec, ...], version: str) -> str:
    """Make sure every node holds `version`'s images; returns the ledger digest string."""
    refs = [s.image(version) for s in specs]
    local = _local_ids(refs)
    if local is not None:
        failed = [f"{r.node}: {r.error}" for r in deliver.deliver(nodes, local) if not r.ok]
        if failed:
            raise DeployerError(f"could not send {version}'s images: {'; '.join(failed)}")
    else:
        lacking = deliver.lacking(nodes, refs)
        if lacking:
            where = "; ".join(f"{n} lacks {', '.join(r)}" for n, r in lacking.items())
            raise BadRequest(
                f"--to {version}: not present on every node ({where}); refusing a rollback "
                "that Swarm could only place on some nodes"
            )
    ids = local or deliver.held(nodes, nodes.manager, refs) or {}
    return ";".join(
        f"{s.name}={ids.get(s.image(version), '')}" for s in sorted(specs, key=lambda x: x.name)
    )


def _choose(session: Session, running: set[str | None], to: str | None) -> str:
    env = session.target.environment
    bad = session.ledger.bad_versions(env)
    if to is not None:
        if to in bad:
            raise BadRequest(f"--to {to}: that version is marked bad in this environment")
        return to
    for version in session.ledger.good_versions(env):
        if version not in running:
            return version
    raise BadRequest("no previous good version in the ledger; name one with --to")


def rollback(session: Session, driver: SwarmTarget, *, to: str | None = None) -> RollbackResult:
    target, ledger = session.target, session.ledger
    if to is not None:
        try:
            check_version(to)
        except ValueError as exc:
            raise BadRequest(f"--to: {exc}") from None
    settings, specs, nodes, stack = driver.settings, driver.specs, driver.nodes, driver.stack
    ledger.reconcile_orphans(session.identity.control_host, pid_is_alive)
    token = new_token()
    driver.lock("acquire", token)
    try:
        before = observe.read(nodes, stack)
        running = {v.version for v in before.values()}
        version = _choose(session, running, to)
        digest = _ensure_on_nodes(nodes, specs, version)
        started = time.monotonic()
        deployment_id = ledger.begin(
            environment=target.environment,
            kind=Kind.ROLLBACK,
            version=version,
            previous_version=running.pop() if len(running) == 1 else None,
            artifact_sha256=digest,
            user=session.identity.user,
            control_host=session.identity.control_host,
            pid=session.identity.pid,
        )
        services = tuple(s.service for s in specs)
        deliveries = list(session.announce(ledger.get(deployment_id)))
        try:
            ledger.set_stage(deployment_id, "rollback")
            mounts = swarm_secrets.mounts_of(nodes, stack, version)
            rollout.apply(nodes, stack, compose.render(target, settings, specs, version, mounts))
            settled = rollout.wait(
                nodes, stack, services, version, before, timeout=settings.timeout
            )
        except DeployerError as exc:
            session.announce(ledger.finish(deployment_id, Status.FAILED, reason=exc.message))
            raise
    finally:
        with contextlib.suppress(DeployerError):
            driver.lock("release", token)
    reports = []
    for service in services:
        prior = before.get(service)
        was = prior.version if prior else None
        view = settled.views.get(service)
        if settled.outcome.get(service) == "converged":
            changed = prior is None or prior.version != version
            ok = HostStatus.CHANGED if changed else HostStatus.OK
            reports.append(HostReport(service, ok, "rollback", was, version))
        else:
            after = view.version if view else None
            detail = view.describe() if view else "not found"
            reports.append(HostReport(service, HostStatus.FAILED, "rollback", was, after, detail))
    ledger.record_hosts(
        deployment_id,
        [r.result() for r in reports],
    )
    seconds = time.monotonic() - started
    why = "" if settled.ok else f"rollback to {version} failed: {settled.reason()}"
    status = Status.SUCCEEDED if settled.ok else Status.FAILED
    deliveries += session.announce(
        ledger.finish(deployment_id, status, reason=why, rollback_seconds=seconds)
    )
    return RollbackResult(
        deployment_id=deployment_id,
        environment=target.environment,
        version=version,
        status=status,
        exit_code=ExitCode.OK if settled.ok else ExitCode.DEPLOY_FAILED,
        reason=session.redact(why),
        hosts=tuple(reports),
        seconds=seconds,
        notifications=tuple(deliveries),
    )


def status(session: Session, driver: SwarmTarget) -> StatusResult:
    """The stack's services as HostStates (one per service), with the ledger's view."""
    target, ledger = session.target, session.ledger
    ledger.reconcile_orphans(session.identity.control_host, pid_is_alive)
    specs = driver.specs
    views = observe.read(driver.nodes, driver.stack)
    states: list[HostState] = []
    problems: list[str] = []
    for spec in specs:
        view = views.get(spec.service)
        if view is None:
            states.append(HostState(spec.service, True, None, None, False, "not deployed", ()))
            problems.append(f"{spec.service}: not deployed")
            continue
        versions = {t.version for t in view.running}
        current = versions.pop() if len(versions) == 1 else None
        healthy = view.converged
        states.append(HostState(spec.service, True, current, None, healthy, view.describe(), ()))
        ledger.record_observation(target.environment, spec.service, current, healthy)
        if not healthy:
            problems.append(f"{spec.service}: {view.describe()}")
    running = observe.versions([v for v in views.values() if v.name in {s.service for s in specs}])
    expected, more, last = compare_with_ledger(ledger, target.environment, running, "services")
    problems += more
    return StatusResult(
        environment=target.environment,
        hosts=tuple(states),
        versions=running,
        expected=expected,
        drift=len(running) > 1,
        healthy=all(s.healthy for s in states),
        problems=tuple(problems),
        last=last,
    )


def releases(session: Session, driver: SwarmTarget) -> ReleasesResult:
    """The versions whose images the manager stores, per service (the "hosts" of a Swarm
    environment), marked as the SSH target marks releases: current, good, bad, staged and
    partial when some service lacks that version's image."""
    env = session.target
    views = observe.read(driver.nodes, driver.stack)
    good = set(session.ledger.good_versions(env.environment))
    bad = session.ledger.bad_versions(env.environment)
    script = "; ".join(
        driver.nodes.docker_cmd(
            "image", "ls", "--format", spec.service + " {{.Tag}} {{.CreatedAt}}", spec.repository
        )
        for spec in driver.specs
    )
    stored: dict[str, list[ReleaseOnHost]] = {s.service: [] for s in driver.specs}
    for line in driver.nodes.manage_script(script, what="docker image ls").splitlines():
        service, _, rest = line.partition(" ")
        tag, _, created = rest.partition(" ")
        version = valid_version(tag)
        if service in stored and version is not None:
            state = "bad" if version in bad else "good" if version in good else "staged"
            # the creation time is the manager's text: shown, never trusted, so capped
            stamp = cap(created, 40) if created else None
            stored[service].append(ReleaseOnHost(version, state, stamp, None))
    states = {
        service: HostState(
            service,
            True,
            views[service].version if service in views else None,
            None,
            None,
            "",
            tuple(rels),
        )
        for service, rels in stored.items()
    }
    return ReleasesResult(env.environment, release_rows(states, bad))


def valid_version(text: str) -> str | None:
    try:
        return check_version(text)
    except ValueError:
        return None
