"""The SSH target: servers reached over SSH, each step an Ansible run of one playbook.

It fuses: the prepare run takes the lock, reaches every host, stages the release and (once
every host got through) switches the first batch; the last run of a deployment gives the
lock back itself. So an all-at-once deploy with no watch window is one Ansible run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from deployer import artifact as artifacts
from deployer.config.models import Strategy
from deployer.plan.accessories import hook_vars
from deployer.plan.extravars import (
    base_vars,
    canary_abort_vars,
    canary_analysis_vars,
    canary_shift_vars,
    canary_switch_vars,
    first_batch_vars,
    lock_release_vars,
    lock_vars,
    monitoring_vars,
    prepare_vars,
    rollback_vars,
    switch_vars,
    watch_vars,
)
from deployer.plan.sites import parts
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
    lock_info,
)
from deployer.targets.ssh import lock as ssh_lock
from deployer.targets.ssh import rollback as ssh_rollback
from deployer.targets.ssh import state
from deployer.targets.ssh.context import SshSession
from deployer.targets.ssh.runner import HostOutcome, RunResult

# Phases of the prepare run, by play name: the first batch's switch (switch.yml's play),
# blue-green's flip of the edge proxy after it, and prepare.yml's guard before it, whose
# refusal only echoes the host failures it saw.
PHASES = {"switch": "Switch the batch", "flip": "Flip the edge proxy", "guard": "Guard |"}


def _host(outcome: HostOutcome, default_stage: str) -> HostReply:
    reply = outcome.reply
    return HostReply(
        host=outcome.host,
        ok=not outcome.failed,
        unreachable=outcome.unreachable,
        changed=outcome.changed > 0,
        message=outcome.message,
        stage="" if outcome.good else (reply.stage or default_stage),
        current=reply.current,
        previous_good=reply.previous_good,
        switched=reply.switched,
        services=reply.services,
        hook=replace(reply.hook, host=outcome.host) if reply.hook else None,
        backup=reply.backup,
        analysis=reply.analysis,
        slot=reply.slot,
        started=reply.started,
    )


def _switched(outcomes: Mapping[str, HostOutcome]) -> dict[str, HostReply]:
    return {h: _host(o, "health" if o.reply.switched else "switch") for h, o in outcomes.items()}


def _flipped(
    switched: dict[str, HostReply], flip: Mapping[str, HostOutcome]
) -> dict[str, HostReply]:
    """Blue-green: a proxy that did not flip to the new slots (it kept the old file) fails
    every host of the batch, so the fleet goes back to the slots the proxies still use."""
    failed = sorted((h, o) for h, o in flip.items() if not o.good)
    if not failed:
        return switched
    why = "; ".join(f"{h}: {o.message or 'unreachable'}" for h, o in failed)
    message = f"the edge proxy did not flip to the new slot ({why})"
    return {
        h: replace(r, ok=False, stage="proxy", message=message) if r.good else r
        for h, r in switched.items()
    }


def _released(result: RunResult) -> bool:
    return any(o.reply.released for o in result.hosts.values())


class SshTarget:
    kind: ClassVar[str] = "ssh"

    def __init__(self, session: Session) -> None:
        self.session = SshSession.of(session)

    @property
    def fuse(self) -> bool:
        """One run for lock, staging and the first batch, unless the hosts sit in several
        places (sites of `ssh.nodes`, or sites and direct hosts): then each step is a run of
        its own across every place, so the lock is held before any place stages, and no place
        switches before every place staged."""
        return len(parts(self.session.target)) <= 1

    @property
    def env(self) -> Any:
        return self.session.target

    def hosts(self) -> tuple[str, ...]:
        return tuple(self.env.host_names)

    def strategy(self) -> Strategy:
        return self.env.strategy  # type: ignore[no-any-return]

    def prepare(self, version: str | None, artifact: Path | None, *, build: bool = True) -> Release:
        env = self.session.target
        dest = self.session.state_dir / "artifacts"
        if env.services:
            overrides = artifacts.service_overrides(env, artifact)
            art = artifacts.for_services(env, dest, build=build, overrides=overrides)
        else:
            source = artifact or (env.project_dir / env.artifact.path)
            command = env.artifact.build if build and not artifact else None
            art = artifacts.for_target(env, source, dest, command)
        self.session.runner  # noqa: B018 - the controller's own checks run before the row opens
        return Release(version or art.default_version, art.sha256, art)

    def facts(self) -> dict[str, HostFacts]:
        return {
            h: HostFacts(
                s.current,
                s.previous_good,
                tuple(r.version for r in s.releases),
                tuple(r.version for r in s.releases if r.state == "bad"),
                s.reachable,
            )
            for h, s in state.read_hosts(self.session, health=False).items()
        }

    def _unlock(self, extravars: dict[str, Any], token: str | None) -> dict[str, Any]:
        return {**extravars, **lock_release_vars(self.env, token)} if token else extravars

    def lock(self, action: str, token: str = "", deployment: int | None = None) -> LockInfo:
        if action == "status":
            return ssh_lock.status(self.session)
        if action == "acquire":
            ssh_lock.acquire(self.session, token, deployment)
        elif action == "release":
            ssh_lock.release_own(self.session, token)
        elif action == "break":
            ssh_lock.break_lock(self.session, token)
        else:
            raise ValueError(f"unknown lock action {action!r}")
        return lock_info(self.session, {"held": action == "acquire", "mine": True})

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
        session, env = self.session, self.env
        art = release.payload
        extravars: dict[str, Any] = prepare_vars(
            env,
            list(hosts),
            version=release.version,
            artifact=str(art.path),
            sha256=art.sha256,
            required_bytes=art.required_bytes,
            lock=(
                lock_vars(env, lock[0], session.identity.holder(lock[1]), env.lock_ttl)
                if lock
                else {}
            ),
        ) | monitoring_vars(env)
        if switch:
            extravars |= first_batch_vars(env, switch) | self._canary_start()
        result = session.run(
            "prepare.yml",
            self._unlock(extravars, unlock),
            secrets=True,
            phases=PHASES,
            on_phase=lambda phase: on_switch() if phase == "switch" and on_switch else None,
        )
        prep = result.phase("")
        primary = prep.get(env.primary) or HostOutcome(env.primary)
        found = primary.reply
        if primary.failed and found.held and not found.mine:
            return StageReply(
                hosts={},
                lock=lock_info(session, found.lock_report()),
                lock_taken=False,
                interrupted=result.canceled,
            )
        if primary.failed and found.stage == "lock" and not found.held:
            return StageReply(
                hosts={},
                lock_error=(
                    f"taking the lock on {env.primary} failed: {primary.message}; "
                    "nothing was changed"
                ),
                lock_taken=False,
                interrupted=result.canceled,
            )
        began = "switch" in result.phase_started
        return StageReply(
            hosts={h: _host(o, "stage") for h, o in prep.items()},
            switched=_flipped(_switched(result.phase("switch")), result.phase("flip"))
            if began
            else None,
            switch_started=result.phase_started.get("switch"),
            complete=result.status == "successful",
            detail=result.status,
            lock_taken=not primary.unreachable,
            released=_released(result),
            interrupted=result.canceled,
        )

    def _canary_start(self, final: bool = False) -> dict[str, Any]:
        """A canary's first switch starts the new slots with the first step's share; the
        final one (`final`: 100 %) is blue-green's switch and flip."""
        from deployer.config.bluegreen import CANARY
        from deployer.config.canary import steps

        env = self.env
        if env.strategy.kind != CANARY or final or steps(env.strategy)[0] == 100:
            return {}
        return canary_switch_vars(env, steps(env.strategy)[0])

    def shift(self, live: str, share: int) -> BatchReply:
        """Every edge proxy sends `share` % of requests to the slots that are not `live`."""
        result = self.session.run(
            "canary.yml", canary_shift_vars(self.env, live, share), hosts=self.env.proxy.hosts
        )
        replies = {h: _host(o, "proxy") for h, o in result.hosts.items()}
        return BatchReply(replies, _released(result), result.canceled)

    def abort(self, live: str, hosts: Sequence[str]) -> BatchReply:
        """Every request back to the `live` slots, then the new slot stopped on `hosts`."""
        touched = sorted({*self.env.proxy.hosts, *hosts})
        result = self.session.run(
            "canary.yml",
            canary_abort_vars(self.env, live, hosts),
            hosts=touched,
            cancellable=False,
        )
        replies = {
            h: _host(o, "proxy" if h in self.env.proxy.hosts else "rollback")
            for h, o in result.hosts.items()
        }
        return BatchReply(replies, _released(result))

    def analyse(
        self, checks: Sequence[dict[str, Any]], since: float
    ) -> tuple[HostReply | None, dict[str, float]]:
        """The analysis after a step on the monitoring server: its verdict (None when it
        did not answer) and the figures it measured."""
        env = self.env
        server = env.monitoring_server or ""
        result = self.session.run(
            "canary.yml", canary_analysis_vars(env, checks, since=since), hosts=[server]
        )
        verdict = result.hosts.get(server)
        if verdict is None:
            return None, {}
        return _host(verdict, "analysis"), dict(verdict.reply.last)

    def flip_canary(self, release: Release, hosts: Sequence[str]) -> BatchReply:
        """A canary's 100 %: each host's new slot (running it already) made live and the
        edge proxies flipped to it, as blue-green's switch."""
        return self._activate(release, hosts, unlock=None, final=True)

    def activate(self, release: Release, batch: Sequence[str], *, unlock: str | None) -> BatchReply:
        return self._activate(release, batch, unlock=unlock)

    def _activate(
        self, release: Release, batch: Sequence[str], *, unlock: str | None, final: bool = False
    ) -> BatchReply:
        extravars = switch_vars(self.env, batch, release.version) | self._canary_start(final)
        result = self.session.run(
            "switch.yml", self._unlock(extravars, unlock), hosts=batch, phases=PHASES
        )
        replies = _flipped(_switched(result.hosts), result.phase("flip"))
        return BatchReply(replies, _released(result), result.canceled)

    def watch(
        self, release: Release, hosts: Sequence[str], since: float, *, unlock: str | None
    ) -> WatchReply:
        env = self.env
        extravars = watch_vars(env, hosts, since=since)
        result = self.session.run("watch.yml", self._unlock(extravars, unlock), hosts=hosts)
        server = env.monitoring_server or ""
        verdict = result.hosts.get(server)
        judge = _host(verdict, "watch") if verdict is not None else None
        return WatchReply(
            hosts={h: _host(o, "watch") for h, o in result.hosts.items() if h in hosts},
            judge=judge,
            judge_host=server,
            breach=bool(verdict is not None and verdict.reply.breach),
            measured=dict(verdict.reply.last) if verdict is not None else {},
            released=_released(result),
            interrupted=result.canceled,
        )

    def roll_back(
        self,
        to: Mapping[str, str | None],
        *,
        mark_bad: str | None,
        reason: str,
        unlock: str | None,
    ) -> BatchReply:
        extravars = rollback_vars(self.env, dict(to), mark_bad, reason)
        result = self.session.run(
            "rollback.yml", self._unlock(extravars, unlock), hosts=list(to), cancellable=False
        )
        replies = {h: _host(o, "rollback") for h, o in result.hosts.items()}
        return BatchReply(replies, _released(result))

    def run_hook(self, name: str, version: str) -> HostReply | None:
        env = self.env
        hook = env.hooks.get(name)
        if hook is None:
            return None
        extravars = {
            **base_vars(env, [hook.host]),
            "deployer_version": version,
            "deployer_hook_name": name,
            **hook_vars(env, [name]),
        }
        result = self.session.run("hook.yml", extravars, hosts=[hook.host], cancellable=False)
        outcome = result.hosts.get(hook.host)
        return _host(outcome, "hook") if outcome is not None else None

    def status(self) -> StatusResult:
        return state.status(self.session)

    def releases(self) -> ReleasesResult:
        return state.releases(self.session)

    def rollback(self, to: str | None) -> RollbackResult:
        return ssh_rollback.rollback(self.session, to=to)
