"""The deployment lifecycle, written once for every target:

    validate -> lock -> preflight and stage -> switch per the strategy's plan, checking the
    failure budget after each batch -> watch -> record and announce

and, when anything fails past the budget, the whole fleet back on its previous versions.
The plan (deployer.plan.strategy) fixes the order of the steps and which of them share a
remote run; the target (deployer.targets) does each step remotely and answers with typed
replies. The ledger row is opened first and closed last, whatever happens in between, so a
run is never left looking successful when it was not; the lock is given back in every case.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deployer.config.bluegreen import CANARY
from deployer.config.names import check_version
from deployer.engine import canary
from deployer.engine.results import DeployResult, RolloutStop
from deployer.errors import BadRequest, DeployerError, LockedError, UnreachableError
from deployer.exitcodes import ExitCode
from deployer.ledger import (
    Analysis,
    HookResult,
    HostStatus,
    Kind,
    ServiceResult,
    Status,
    pid_is_alive,
)
from deployer.plan.strategy import Plan, Step, plan
from deployer.session import Session
from deployer.targets.base import (
    BatchReply,
    HostReply,
    HostReport,
    LockInfo,
    Release,
    StageReply,
    Target,
    cap,
    new_token,
)

LOCK_POLL_SECONDS = 2.0
REASON_HOSTS = 10
"""Hosts named one by one in a failure reason; the rest are counted. A reason travels to the
rollback run, the ledger and every notification: its size must not grow with the fleet."""
REASON_HOST_CHARS = 300


class _Interrupted(Exception):
    """The operator pressed Ctrl-C: stop, release the lock, record INTERRUPTED."""


@dataclass
class _Rollout:
    """Mutable bookkeeping of one deployment, turned into ledger rows and the result."""

    session: Session
    driver: Target
    plan: Plan
    release: Release
    deployment_id: int
    before: dict[str, str | None] = field(default_factory=dict)
    hosts: dict[str, HostReport] = field(default_factory=dict)
    switched: list[str] = field(default_factory=list)
    changed: bool = False
    lock_held: bool = False
    token: str = field(default_factory=new_token)
    rollback_seconds: float | None = None
    live_since: float | None = None  # epoch seconds when the first batch switched
    measured: dict[str, float] = field(default_factory=dict)  # the watch's last PromQL values
    current: str = "lock"  # the stage the ledger shows
    hooks: list[HookResult] = field(default_factory=list)
    canary: canary.CanaryState = field(default_factory=canary.CanaryState)
    switch_replies: dict[str, HostReply] = field(default_factory=dict)
    """The last switch's reply of each host (a canary reads its slots there)."""
    canary_abort_note: str = ""

    @property
    def version(self) -> str:
        return self.release.version

    def note(
        self,
        host: str,
        status: HostStatus,
        stage: str,
        after: str | None,
        message: str = "",
        services: tuple[ServiceResult, ...] = (),
        analysis: Analysis | None = None,
    ) -> None:
        # a later note (the rollback of a host) keeps what its services did before, and why
        # the host failed
        prior = self.hosts.get(host)
        kept = prior.services if prior is not None and not services else services
        why = prior.analysis if prior is not None and analysis is None else analysis
        self.hosts[host] = HostReport(
            host, status, stage, self.before.get(host), after, message, kept, why
        )

    def keep_hooks(self, replies: Iterable[HostReply]) -> None:
        """Record what the hooks that ran in a step did, masked, as they come; and the
        database dumps taken before them."""
        for reply in replies:
            if reply.backup is not None:
                self.session.ledger.record_backup(
                    environment=self.session.target.environment,
                    deployment_id=self.deployment_id,
                    host=reply.host,
                    file=reply.backup.file,
                    size=reply.backup.bytes,
                    sha256=reply.backup.sha256,
                    label=self.version,
                )
            if reply.hook is not None:
                hook = replace(
                    reply.hook,
                    output=self.session.redact(reply.hook.output),
                    message=self.session.redact(reply.message) if not reply.hook.ok else "",
                )
                self.session.ledger.record_hook(self.deployment_id, hook)
                self.hooks.append(hook)

    def stage(self, name: str) -> None:
        self.current = name
        self.session.ledger.set_stage(self.deployment_id, name)

    def flush(self) -> None:
        self.session.ledger.record_hosts(
            self.deployment_id,
            [r.result() for r in self.hosts.values()],
        )

    def unlock_with(self, step: Step) -> str | None:
        """The token a step's run gives the lock back with, when the plan fused the unlock
        into that run and we hold the lock."""
        if self.lock_held and self.plan.fused(step, "unlock"):
            return self.token
        return None

    def answered(self, released: bool, interrupted: bool) -> None:
        if released:
            self.lock_held = False
        if interrupted or self.session.interrupted.is_set():
            raise _Interrupted

    @property
    def noop(self) -> bool:
        """Every host already ran this version and no switch changed anything."""
        return not self.changed and all(self.before.get(h) == self.version for h in self.plan_hosts)

    @property
    def plan_hosts(self) -> tuple[str, ...]:
        return tuple(h for batch in self.plan.batches for h in batch)


def deploy(
    session: Session,
    driver: Target,
    *,
    version: str | None = None,
    artifact_path: Path | None = None,
    wait: float = 0.0,
) -> DeployResult:
    env = session.target
    if version is not None:  # bad input is refused before anything runs, the build included
        try:
            check_version(version)
        except ValueError as exc:
            raise BadRequest(f"--version: {exc}") from None
    release = driver.prepare(version, artifact_path)
    ledger = session.ledger
    ledger.reconcile_orphans(session.identity.control_host, pid_is_alive)
    if release.version in ledger.bad_versions(env.environment):
        raise BadRequest(
            f"version {release.version} is marked bad in {env.environment}: it failed before; "
            "deploy a new version"
        )
    hosts = driver.hosts()
    steps = plan(
        driver.strategy(),
        hosts,
        release.version,
        watch=env.rollback.watch,
        fuse=driver.fuse,
        proxies=env.proxy.hosts if env.proxy is not None else (),
        analyser=env.monitoring_server,
    )
    started = time.monotonic()
    deployment_id = ledger.begin(
        environment=env.environment,
        kind=Kind.DEPLOY,
        version=release.version,
        previous_version=ledger.current(env.environment),
        artifact_sha256=release.digest,
        user=session.identity.user,
        control_host=session.identity.control_host,
        pid=session.identity.pid,
    )
    deliveries = list(session.announce(ledger.get(deployment_id)))
    rollout = _Rollout(session, driver, steps, release, deployment_id)
    status, code, stage, reason = Status.SUCCEEDED, ExitCode.OK, "done", ""
    try:
        _walk(rollout, wait, started)
    except RolloutStop as stop:
        status, code, stage, reason = stop.status, stop.code, stop.stage, stop.reason
        rollout.stage(stage)  # the ledger keeps the stage that failed, as the result says
    except (_Interrupted, KeyboardInterrupt):
        status, code, stage = Status.INTERRUPTED, ExitCode.DEPLOY_FAILED, "interrupted"
        reason = "interrupted by the operator; hosts stay where they were: see `status`"
        if rollout.canary_abort_note:  # a canary is never left half-weighted
            reason = f"interrupted by the operator; {rollout.canary_abort_note}"
    except DeployerError as exc:  # the target's own channel failed (a Swarm manager refused)
        status, code, stage, reason = Status.FAILED, exc.exit_code, rollout.current, exc.message
    finally:
        lock_note = _release_lock(rollout)
    if lock_note:
        reason = f"{reason}; {lock_note}" if reason else lock_note
    # after_* hooks follow a deploy that reached the hosts; one refused before (someone
    # else's lock, a bad version) ran nothing that a hook could follow up on
    reached = bool(rollout.before)
    if (
        reached
        and status is not Status.INTERRUPTED
        and not (status is Status.SUCCEEDED and rollout.noop)
    ):
        reason = _after_hooks(rollout, status, reason)
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
        environment=env.environment,
        version=release.version,
        artifact_sha256=release.digest,
        status=record.status,
        exit_code=code,
        stage=stage,
        reason=session.redact(reason),
        noop=noop,
        batches=steps.batches,
        hosts=tuple(rollout.hosts[h] for h in hosts if h in rollout.hosts),
        deploy_seconds=seconds,
        rollback_seconds=rollout.rollback_seconds,
        notifications=tuple(deliveries),
        hooks=tuple(rollout.hooks),
        notes=tuple(session.notes),
    )


AFTER_HOOKS = {
    Status.SUCCEEDED: ("after_switch",),
    Status.ROLLED_BACK: ("after_rollback", "after_failure"),
    Status.FAILED: ("after_failure",),
}


def _after_hooks(rollout: _Rollout, status: Status, reason: str) -> str:
    """The hooks that follow the outcome, on their host, in the release it runs now (the
    new one after a success, the one it was put back on otherwise). Their failure is
    reported in the reason and changes nothing else."""
    target = rollout.session.target
    for name in AFTER_HOOKS.get(status, ()):
        hook = target.hooks.get(name)
        if hook is None:
            continue
        version = rollout.version if status is Status.SUCCEEDED else rollout.before.get(hook.host)
        if version is None:
            note = f"hook {name} not run: {hook.host} runs no release"
        else:
            try:
                reply = rollout.driver.run_hook(name, version)
            except DeployerError as exc:
                reply = HostReply(hook.host, ok=False, message=exc.message, stage="hook")
            if reply is None:
                continue
            rollout.keep_hooks([reply])
            if reply.good:
                continue
            note = f"hook {name} failed on {hook.host}: {cap(reply.message, REASON_HOST_CHARS)}"
        reason = f"{reason}; {note}" if reason else note
    return reason


def _walk(rollout: _Rollout, wait: float, started: float) -> None:
    """Every step of the plan, in its order."""
    steps = rollout.plan.steps
    last_budget = max((i for i, s in enumerate(steps) if s.action == "budget"), default=-1)
    broken: dict[str, HostReply] = {}
    first: BatchReply | None = None
    where = ""
    for index, step in enumerate(steps):
        if step.action == "lock":
            if not rollout.plan.fused(step, "stage"):
                _lock(rollout, wait, started)
        elif step.action == "stage":
            first = _stage(rollout, step, wait, started)
        elif step.action == "switch":
            where = f"batch {step.batch}/{step.of}"
            _switch(rollout, step, broken, first if step.batch == 1 else None)
        elif step.action == "budget":
            if len(broken) > step.limit and rollout.canary.started:
                # a canary whose new slot did not start everywhere: no request moved
                canary.abort(rollout, _why(broken, where), mark_bad=True)
            if len(broken) > step.limit:
                _fleet_rollback(rollout, _why(broken, where), "switch", broken)
            if index == last_budget and broken:  # within the budget: just those hosts back
                hosts = [h for h in broken if h in rollout.switched]
                final = not any(s.action == "watch" for s in steps)
                _rollback(
                    rollout,
                    hosts,
                    mark_bad=None,
                    reason=_why(broken, "within the failure budget"),
                    final=final,
                )
        elif step.action == "flip" and rollout.plan.kind == CANARY:
            _canary_flip(rollout, step)
        elif step.action == "flip":
            # blue_green: the target flips the edge proxies in the switch's own run, once
            # every host of it passed (a host it could not flip for comes back failed, and
            # the budget check that follows rolls the fleet back, which flips back)
            pass
        elif step.action == "watch":
            _watch(rollout, step)
        elif step.action == "shift" and rollout.plan.fused(step, "switch"):
            canary.after_switch(rollout, step)
        elif step.action == "shift":
            canary.shift(rollout, step)
        elif step.action == "analyse":
            canary.analyse(rollout, step)
        elif step.action == "decide":
            canary.decide(rollout, step)
        elif step.action == "unlock" and not any(
            s is not step and s.run == step.run for s in steps
        ):
            # A release that fails leaves the lock held: the final release tries again and
            # reports it; the deployment itself succeeded and is recorded so.
            _release_lock(rollout)


def _canary_flip(rollout: _Rollout, step: Step) -> None:
    """A canary's 100 %: blue-green's switch (each host's new slot, running already, made
    live; the old one stopped keep_warm later) and flip, in a run of its own unless the
    canary had a single step. A host that fails it rolls the fleet back (a flip back)."""
    state = rollout.canary
    if rollout.plan.fused(step, "switch") or not state.active:
        if state.active or state.share == 100:
            canary.flipped(rollout, step)
        return
    broken: dict[str, HostReply] = {}
    hosts = tuple(state.started)
    rollout.stage("flip")
    rollout.live_since = time.time()  # the watch judges the release from its flip on
    driver: Any = rollout.driver  # a target that runs canaries (SSH; refused elsewhere)
    reply = driver.flip_canary(rollout.release, hosts)
    _switched_hosts(rollout, hosts, reply, broken)
    rollout.answered(reply.released, reply.interrupted)
    if broken:
        _fleet_rollback(rollout, _why(broken, "the canary's flip"), "flip", broken)
    state.active = False
    canary.flipped(rollout, step)


def _lock(rollout: _Rollout, wait: float, started: float) -> None:
    """The lock in a step of its own (a target that cannot fuse it into staging)."""
    rollout.stage("lock")
    while True:
        try:
            rollout.driver.lock("acquire", rollout.token, rollout.deployment_id)
            rollout.lock_held = True
            return
        except LockedError as exc:
            if time.monotonic() - started < wait and not rollout.session.interrupted.is_set():
                time.sleep(LOCK_POLL_SECONDS)
                continue
            raise RolloutStop(Status.FAILED, ExitCode.LOCKED, "lock", exc.message) from None
        except UnreachableError as exc:
            raise RolloutStop(
                Status.FAILED, ExitCode.UNREACHABLE, "preflight", exc.message
            ) from None


def _stage(rollout: _Rollout, step: Step, wait: float, started: float) -> BatchReply | None:
    """Preflight and staging on every host (nothing switches until every host got
    through); with a fusing target, the lock first and the first batch after, in one run.
    Returns the first batch's switch when the same run did it."""
    driver, plan = rollout.driver, rollout.plan
    rollout.stage("prepare")
    with_lock = plan.fused(step, "lock")
    first = next((s for s in plan.steps if s.action == "switch"), None)
    switch = first.hosts if first is not None and plan.fused(step, "switch") else None
    unlock = rollout.token if with_lock and plan.fused(step, "unlock") else None

    def switching() -> None:  # the ledger says so right away: an interruption from here on
        if first is not None:  # is one in the switch stage
            rollout.stage(first.label)

    strategy = rollout.session.target.strategy
    retries, delay = strategy.retries, strategy.retry_delay
    while True:
        if with_lock:
            # Until a reply says otherwise we may hold the lock: releasing it with our own
            # token is harmless when we do not, and forgetting it would leave it stale.
            rollout.lock_held = True
        reply = driver.stage(
            rollout.release,
            step.hosts,
            lock=(rollout.token, rollout.deployment_id) if with_lock else None,
            switch=switch,
            unlock=unlock,
            on_switch=switching,
        )
        if with_lock and not reply.lock_taken:
            rollout.lock_held = False
        if reply.lock is not None:  # held by someone else: nothing ran
            rollout.lock_held = False
            rollout.answered(False, reply.interrupted)
            if time.monotonic() - started < wait and not reply.lock.stale:
                time.sleep(LOCK_POLL_SECONDS)
                continue
            raise RolloutStop(Status.FAILED, ExitCode.LOCKED, "lock", _locked(reply.lock))
        if retries and _transient(reply) and not rollout.session.interrupted.is_set():
            # Only unreachable hosts, before any switch: the run stopped before anything
            # was uploaded anywhere, so the whole preparation runs again (a host already
            # staged is not uploaded to twice; our own lock is taken again by its token).
            away = sorted(h for h, r in reply.hosts.items() if r.unreachable)
            attempt = strategy.retries - retries + 1
            rollout.session.notes.append(
                f"unreachable in preflight: {', '.join(away)}; tried again after {delay:g}s "
                f"(retry {attempt} of {strategy.retries})"
            )
            time.sleep(delay)
            retries, delay = retries - 1, min(delay * 2, 60.0)
            continue
        break
    rollout.keep_hooks(reply.hosts.values())
    switch_began = reply.switched is not None
    if not switch_began:
        rollout.answered(reply.released, reply.interrupted)
    if reply.lock_error:
        rollout.lock_held = False
        raise RolloutStop(Status.FAILED, ExitCode.DEPLOY_FAILED, "lock", reply.lock_error)
    for host in step.hosts:
        if host in reply.hosts:
            rollout.before[host] = reply.hosts[host].current
    unreachable = [h for h, r in reply.hosts.items() if r.unreachable]
    missing = [h for h in step.hosts if h not in reply.hosts]
    stopped = not switch_began and not reply.complete
    if unreachable or (missing and stopped):
        for host in unreachable:
            rollout.note(host, HostStatus.UNREACHABLE, "preflight", None, reply.hosts[host].message)
        names = ", ".join(unreachable or missing)
        raise RolloutStop(
            Status.FAILED,
            ExitCode.UNREACHABLE,
            "preflight",
            f"unreachable in preflight: {names}; nothing was changed",
        )
    failed = [r for r in reply.hosts.values() if not r.good]
    if failed or stopped:
        for r in failed:
            rollout.note(r.host, HostStatus.FAILED, r.stage or "stage", r.current, r.message)
        detail = _detail({r.host: r.message for r in failed}) or reply.detail
        stage = (failed[0].stage or "stage") if failed else "prepare"
        raise RolloutStop(
            Status.FAILED,
            ExitCode.DEPLOY_FAILED,
            stage,
            f"{stage} failed, nothing was switched: {detail}",
        )
    if reply.switched is None:
        return None
    rollout.live_since = reply.switch_started or time.time()
    return BatchReply(reply.switched, released=reply.released, interrupted=reply.interrupted)


def _transient(reply: StageReply) -> bool:
    """The preparation failed only because hosts could not be reached, before any switch."""
    away = [r for r in reply.hosts.values() if r.unreachable]
    others = [r for r in reply.hosts.values() if not r.good and not r.unreachable]
    return bool(away) and not others and reply.switched is None and not reply.lock_error


def _locked(info: LockInfo) -> str:
    return f"{info.environment} is {info.describe()}"


def _switch(
    rollout: _Rollout, step: Step, broken: dict[str, HostReply], fused: BatchReply | None
) -> None:
    """Switch one batch (or read the switch the staging run did) and note every host."""
    rollout.stage(step.label)
    reply = fused
    if reply is None:
        if rollout.live_since is None:
            rollout.live_since = time.time()
        # With hosts already broken (within the budget), their rollback still follows and
        # must run under the lock: this run keeps it, the rollback gives it back.
        unlock = None if broken else rollout.unlock_with(step)
        reply = rollout.driver.activate(rollout.release, step.hosts, unlock=unlock)
    _switched_hosts(rollout, step.hosts, reply, broken)
    rollout.answered(reply.released, reply.interrupted)


def _switched_hosts(
    rollout: _Rollout, hosts: Iterable[str], reply: BatchReply, broken: dict[str, HostReply]
) -> None:
    """Note how each host of a switch came out; the failed ones go into `broken`."""
    version = rollout.version
    for host in hosts:
        outcome = reply.hosts.get(host) or HostReply(
            host, ok=False, unreachable=True, message="no result"
        )
        rollout.switch_replies[host] = outcome
        rollout.changed = rollout.changed or outcome.changed
        if outcome.good:
            rollout.switched.append(host)
            status = HostStatus.CHANGED if outcome.changed else HostStatus.OK
            rollout.note(host, status, "switch", version, services=outcome.services)
            continue
        broken[host] = outcome
        if outcome.switched or outcome.unreachable:
            rollout.switched.append(host)
        after = (
            None
            if outcome.unreachable
            else (version if outcome.switched else rollout.before.get(host))
        )
        rollout.note(
            host,
            HostStatus.UNKNOWN if outcome.unreachable else HostStatus.FAILED,
            "health" if outcome.switched else "switch",
            after,
            outcome.message,
            outcome.services,
            outcome.analysis,
        )
    rollout.flush()


def _detail(lines: Mapping[str, str]) -> str:
    """`host: message; ...` for at most REASON_HOSTS hosts, each message capped."""
    shown = list(lines.items())[:REASON_HOSTS]
    text = "; ".join(f"{host}: {cap(message, REASON_HOST_CHARS)}" for host, message in shown)
    if len(lines) > len(shown):
        text += f"; and {len(lines) - len(shown)} more host(s)"
    return text


def _why(broken: Mapping[str, HostReply], where: str) -> str:
    details = _detail(
        {
            host: f"{'unreachable' if o.unreachable else 'failed'}: {o.message}"
            for host, o in broken.items()
        }
    )
    return f"{len(broken)} host(s) failed in {where}: {details}"


def _watch(rollout: _Rollout, step: Step) -> None:
    """Watch the live fleet over the window (health, and the PromQL rules when monitoring
    is on); a breach, or more failing hosts than the budget, rolls the fleet back."""
    rollout.stage("watch")
    version = rollout.version
    hosts = [
        h for h in step.hosts if (r := rollout.hosts.get(h)) is not None and r.after == version
    ]
    since = rollout.live_since or time.time()
    reply = rollout.driver.watch(rollout.release, hosts, since, unlock=rollout.unlock_with(step))
    rollout.answered(reply.released, reply.interrupted)
    rollout.measured = dict(reply.measured)
    judge, server = reply.judge, reply.judge_host
    if judge is not None and reply.breach:
        # the rules judge the release across the fleet: past the budget by definition
        reason = f"the watch window: Prometheus on {server}: {judge.message}"
        _fleet_rollback(rollout, reason, "watch", {server: judge})
    broken = {h: o for h, o in reply.hosts.items() if not o.good and h in hosts}
    for host, outcome in broken.items():
        rollout.note(host, HostStatus.FAILED, "watch", version, outcome.message)
    if judge is not None and server not in hosts and not judge.good:
        broken[server] = judge  # the server could not judge: unreachable, or no verdict
    if len(broken) > rollout.session.target.strategy.failure_budget:
        _fleet_rollback(rollout, _why(broken, "the watch window"), "watch", broken)


def _fleet_rollback(
    rollout: _Rollout, reason: str, stage: str, broken: Mapping[str, HostReply]
) -> None:
    """Every switched host back to its previous version. The new version is marked bad only
    when a host failed it: a host that went unreachable says nothing about the version, and
    marking it bad would refuse the re-run that converges once the host is back."""
    env = rollout.session.target
    if not env.rollback.automatic:
        raise RolloutStop(
            Status.FAILED,
            ExitCode.DEPLOY_FAILED,
            stage,
            f"{reason}; automatic rollback is off: hosts were left as they are",
        )
    bad = rollout.version if any(not o.unreachable for o in broken.values()) else None
    if bad is not None:
        rollout.session.ledger.mark_bad(
            env.environment, bad, deployment_id=rollout.deployment_id, reason=reason
        )
    failed = _rollback(rollout, list(rollout.switched), mark_bad=bad, reason=reason, final=True)
    tail = f"; rollback FAILED on {', '.join(failed)}" if failed else ""
    raise RolloutStop(
        Status.ROLLED_BACK, ExitCode.DEPLOY_FAILED, stage, f"{reason}; rolled back{tail}"
    )


def _rollback(
    rollout: _Rollout, hosts: list[str], *, mark_bad: str | None, reason: str, final: bool
) -> list[str]:
    """Put `hosts` back on their previous versions; `final`: nothing follows, so the run
    may give the lock back. Returns the hosts where that failed."""
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
    fuse = final and rollout.lock_held and rollout.driver.fuse
    reply = rollout.driver.roll_back(
        to, mark_bad=mark_bad, reason=reason, unlock=rollout.token if fuse else None
    )
    if reply.released:
        rollout.lock_held = False
    rollout.rollback_seconds = (rollout.rollback_seconds or 0.0) + time.monotonic() - started
    failed = list(stuck)
    for host, version in to.items():
        outcome = reply.hosts.get(host)
        prior = rollout.hosts.get(host)
        why = prior.message if prior else ""
        if outcome is not None and outcome.good:
            if version is None:
                why = f"{why}; no previous release here: stopped, nothing runs on this host"
            rollout.note(host, HostStatus.ROLLED_BACK, "rollback", version, why.lstrip("; "))
            continue
        failed.append(host)
        unreachable = outcome is None or outcome.unreachable
        rollout.note(
            host,
            HostStatus.UNKNOWN if unreachable else HostStatus.FAILED,
            "rollback",
            # where `current` points now: the switch back may have happened even though
            # the old version then failed its health checks there
            None if outcome is None or unreachable else outcome.current,
            outcome.message if outcome else "no result",
        )
    rollout.flush()
    return failed


def _release_lock(rollout: _Rollout) -> str:
    """Release our lock; a failure is reported (the lock will show as stale), not raised."""
    if not rollout.lock_held:
        return ""
    try:
        rollout.driver.lock("release", rollout.token)
    except DeployerError as exc:
        return f"the lock could not be released ({exc.message})"
    rollout.lock_held = False
    return ""
