"""The Docker Swarm target: images instead of tarballs, a stack instead of systemd units.

Its "hosts" are the stack's services. Swarm paces each service's update itself
(update_config: start-first, health-gated, failure_action rollback), so the whole stack is
one batch; deployer's work is to deliver the images to every node before anything
switches, apply the stack, tell what Swarm did, and put every service back on the previous
version when any of them failed (services that updated fine would otherwise stay on the new
one). It does not fuse steps: each is a few SSH commands on the manager, not a playbook run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import ClassVar

from deployer.config.models import Strategy
from deployer.config.swarm import SwarmSettings, settings_of
from deployer.errors import DeployerError
from deployer.plan.strategy import HostFacts
from deployer.session import Session
from deployer.targets.base import (
    BatchReply,
    HostReply,
    LockInfo,
    Release,
    ReleasesResult,
    RollbackResult,
    StageReply,
    StatusResult,
    WatchReply,
)
from deployer.targets.swarm import compose, deliver, manage, observe, rollout
from deployer.targets.swarm import lock as swarm_lock
from deployer.targets.swarm import monitoring as swarm_monitoring
from deployer.targets.swarm import secrets as swarm_secrets
from deployer.targets.swarm.build import BuildResult, build_images
from deployer.targets.swarm.observe import ServiceView
from deployer.targets.swarm.remote import Nodes
from deployer.targets.swarm.spec import ComponentSpec, stack_name


class SwarmTarget:
    kind: ClassVar[str] = "swarm"
    fuse: ClassVar[bool] = False

    def __init__(self, session: Session) -> None:
        self.session = session
        self._specs: tuple[ComponentSpec, ...] | None = None
        self._before: dict[str, ServiceView] = {}
        self._mounts: dict[str, str] = {}

    @cached_property
    def settings(self) -> SwarmSettings:
        return settings_of(self.session.target)

    @cached_property
    def nodes(self) -> Nodes:
        return Nodes(self.session.target, self.settings.docker)

    @property
    def stack(self) -> str:
        return stack_name(self.session.target, self.settings)

    @property
    def specs(self) -> tuple[ComponentSpec, ...]:
        if self._specs is None:
            from deployer.targets.swarm.build import specs_of

            self._specs = specs_of(self.session.target, self.settings)
        return self._specs

    def hosts(self) -> tuple[str, ...]:
        return tuple(s.service for s in self.specs)

    def strategy(self) -> Strategy:
        """One batch: Swarm paces each service's update by its update_config."""
        budget = self.session.target.strategy.failure_budget
        return Strategy(kind="all_at_once", failure_budget=budget)

    def prepare(self, version: str | None, artifact: Path | None, *, build: bool = True) -> Release:
        """Images are the release: they are built (cache hits when unchanged) even for
        `plan`, whose version is their content hash. What Docker or Prometheus would refuse
        is refused first, before the manager is touched."""
        swarm_secrets.check(self.session.secret_env)
        if artifact is not None:
            from deployer.targets.swarm.build import specs_of

            self._specs = specs_of(self.session.target, self.settings, artifact)
        swarm_monitoring.check(self.session.target, self.specs)  # before a build of minutes
        built = build_images(
            self.session.target, version, _say(self.session), settings=self.settings, root=artifact
        )
        return Release(built.version, built.digest, built)

    def facts(self) -> dict[str, HostFacts]:
        views = observe.read(self.nodes, self.stack)
        return {s: HostFacts(v.version) for s, v in views.items() if s in self.hosts()}

    def lock(self, action: str, token: str = "", deployment: int | None = None) -> LockInfo:
        return swarm_lock.run(self.session, self.nodes, action, token, deployment)

    def stage(
        self,
        release: Release,
        hosts: Sequence[str],
        *,
        lock: tuple[str, int] | None,
        switch: Sequence[str] | None,
        unlock: str | None,
        on_switch: Callable[[], None] | None = None,
    ) -> StageReply:
        """Every node holds every image, the release's secrets exist and monitoring is set
        up before anything switches."""
        if lock is not None or switch or unlock:
            raise ValueError("the Swarm target does not fuse steps")
        built: BuildResult = release.payload
        results = deliver.deliver(self.nodes, {i.image: i.image_id for i in built.images})
        replies: dict[str, HostReply] = {}
        for r in results:
            if r.unreachable:
                replies[r.node] = HostReply(r.node, ok=False, unreachable=True, message=r.error)
            elif not r.ok:
                replies[r.node] = HostReply(r.node, ok=False, message=r.error, stage="upload")
        if replies:
            return StageReply(hosts=replies, detail="image delivery failed")
        self._mounts = swarm_secrets.ensure(
            self.nodes, self.stack, release.version, self.session.secret_env
        )
        failed = swarm_monitoring.set_up(self.session, self.nodes, self.stack, self.specs)
        if failed:
            node, message = failed
            return StageReply(
                hosts={node: HostReply(node, ok=False, message=message, stage="monitoring")},
                detail="monitoring set-up failed",
            )
        self._before = observe.read(self.nodes, self.stack)
        for service in hosts:
            view = self._before.get(service)
            replies[service] = HostReply(service, current=view.version if view else None)
        return StageReply(hosts=replies)

    def activate(self, release: Release, batch: Sequence[str], *, unlock: str | None) -> BatchReply:
        env, version = self.session.target, release.version
        stack = compose.render(env, self.settings, self.specs, version, self._mounts)
        rollout.apply(self.nodes, self.stack, stack)
        settled = rollout.wait(
            self.nodes, self.stack, tuple(batch), version, self._before,
            timeout=self.settings.timeout, interrupted=self.session.interrupted,
        )  # fmt: skip
        if settled.ok:  # the version before stays, for the watch's rollback
            before = [v.version for v in self._before.values() if v.version]
            try:
                swarm_secrets.prune(
                    self.nodes, self.stack, env.keep_releases, [version, *before],
                    images=[spec.repository for spec in self.specs],
                )  # fmt: skip
            except DeployerError as exc:  # the release is live: what is left goes next time
                self.session.notes.append(f"old releases were not pruned: {exc.message}")
        return BatchReply(
            self._replies(settled, batch, version, "switch"), interrupted=settled.interrupted
        )

    def _replies(
        self, settled: rollout.Settled, services: Sequence[str], version: str, stage: str
    ) -> dict[str, HostReply]:
        out: dict[str, HostReply] = {}
        for service in services:
            view = settled.views.get(service)
            prior = self._before.get(service)
            now = view.version if view else None
            if settled.outcome.get(service) == "converged":
                changed = prior is None or prior.version != version
                out[service] = HostReply(service, changed=changed, current=now, switched=True)
            else:
                out[service] = HostReply(
                    service,
                    ok=False,
                    message=view.describe() if view else "not found",
                    stage=stage,
                    current=now,
                    switched=now == version,
                )
        return out

    def watch(
        self, release: Release, hosts: Sequence[str], since: float, *, unlock: str | None
    ) -> WatchReply:
        """The stack must stay converged for the window; with monitoring on, the rollback
        rules are judged in Prometheus on the manager over the same window meanwhile."""
        seconds = self.session.target.rollback.watch
        judging = swarm_monitoring.Judge.start(self.session, self.nodes, since)
        settled = rollout.watch(self.nodes, self.stack, tuple(hosts), release.version, seconds)
        replies = self._replies(settled, hosts, release.version, "watch")
        if judging is None:
            return WatchReply(replies)
        verdict = judging.result()
        return WatchReply(
            replies,
            judge=verdict.reply,
            judge_host=self.nodes.manager,
            breach=verdict.breach,
            measured=verdict.measured,
        )

    def roll_back(
        self,
        to: Mapping[str, str | None],
        *,
        mark_bad: str | None,
        reason: str,
        unlock: str | None,
    ) -> BatchReply:
        """The whole stack back on one version: Swarm cannot run services of one stack file
        on different versions. Services that ran nothing before are left to that version's
        stack too (it has every service); with no version at all, nothing can be done."""
        versions = [v for v in to.values() if v is not None]
        if not versions:
            return BatchReply(
                {
                    s: HostReply(s, ok=False, message="no previous version to roll back to")
                    for s in to
                }
            )
        version = max(set(versions), key=versions.count)
        env = self.session.target
        mounts = swarm_secrets.mounts_of(self.nodes, self.stack, version)
        stack = compose.render(env, self.settings, self.specs, version, mounts)
        rollout.apply(self.nodes, self.stack, stack)
        mid = observe.read(self.nodes, self.stack)
        back = rollout.wait(
            self.nodes, self.stack, tuple(to), version, mid, timeout=self.settings.timeout
        )
        replies = self._replies(back, tuple(to), version, "rollback")
        return BatchReply({s: r for s, r in replies.items()})

    def run_hook(self, name: str, version: str) -> HostReply | None:
        return None  # hooks are refused for target swarm when the config is resolved

    def status(self) -> StatusResult:
        return manage.status(self.session, self)

    def releases(self) -> ReleasesResult:
        return manage.releases(self.session, self)

    def rollback(self, to: str | None) -> RollbackResult:
        return manage.rollback(self.session, self, to=to)

    def build(self, version: str | None) -> BuildResult:
        return build_images(self.session.target, version, _say(self.session), self.settings)


def _say(session: Session) -> Callable[[str], None]:
    sink = session.progress
    if sink is None:
        return lambda _message: None
    return lambda message: sink.task("build", message, "running")


__all__ = ["SwarmTarget"]
