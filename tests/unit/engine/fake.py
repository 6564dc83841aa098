"""An in-memory `Target` for engine tests: it records every call in order and answers as a
scripted `Scenario` says, and it refuses what no real target would survive.

    fake = FakeTarget(session, Scenario(fail_health={"web3"}))
    result = deploy(session, fake, version="v2")
    assert fake.calls == [C.prepare(), C.stage(...), ...]

Rules the fake enforces by raising AssertionError (which the engine does not catch, so the
test fails loudly): every remote step runs while the engine holds the lock, and no host
switches before it was staged. A run given `unlock` gives the lock back only when every host
in it ended well, as a playbook that stops at the first failure would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from deployer.config.loader import load_project
from deployer.config.models import Strategy
from deployer.config.resolve import Target as Environment
from deployer.config.resolve import resolve
from deployer.errors import LockedError
from deployer.ledger import HookResult
from deployer.plan.strategy import HostFacts
from deployer.session import Session
from deployer.targets.base import (
    BackupTaken,
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

HOSTS = ("web1", "web2", "web3", "web4", "web5")
ENVIRONMENT = "staging"
CONFIG = """\
app:
  name: myapp
service:
  command: /usr/bin/python3 app.py
  port: 8000
health:
  tcp: {}
environments:
  staging:
    hosts:
      web:
"""


def environment(tmp_path: Path, **changes: Any) -> Environment:
    """The resolved `staging` environment of a project in tmp_path (its ledger there too),
    five hosts web1..web5, with `changes` applied (strategy=..., rollback=...)."""
    config = tmp_path / "deploy.yml"
    lines = [f"        - {{address: 10.0.0.{i}, name: {h}}}" for i, h in enumerate(HOSTS, 1)]
    config.write_text(CONFIG + "\n".join(lines) + "\n")
    return replace(resolve(load_project(config), ENVIRONMENT), **changes)


def session(tmp_path: Path, strategy: Strategy, *, watch: int = 0, **changes: Any) -> Session:
    env = environment(tmp_path)
    rollback = env.rollback.model_copy(update={"watch": watch})
    return Session(replace(env, strategy=strategy, rollback=rollback, **changes))


def other_lock(*, stale: bool = False, token: str = "their-token") -> LockInfo:
    """The lock as someone else holds it."""
    return LockInfo(
        environment=ENVIRONMENT,
        host="web1",
        held=True,
        holder={
            "user": "alice",
            "control_host": "laptop",
            "pid": 4242,
            "started_at": "2024-05-01T10:00:00+00:00",
            "deployment": 7,
        },
        age_seconds=30.0,
        stale=stale,
        stale_reason="older than the lock TTL (900 s)" if stale else "",
        token=token,
    )


@dataclass
class Scenario:
    """How the hosts answer. Hosts not named answer well."""

    before: Mapping[str, str | None] = field(default_factory=lambda: dict.fromkeys(HOSTS, "v1"))
    """What each host runs before the rollout (None: nothing yet)."""
    unreachable_in_stage: frozenset[str] = frozenset()
    reachable_after: int | None = None
    """Stage runs after which the unreachable_in_stage hosts answer (None: never)."""
    preflight: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """host -> (stage, message): fails there while staging (preflight | upload | stage)."""
    fail_health: frozenset[str] = frozenset()
    """Switched, then failed the health check."""
    unreachable_in_switch: frozenset[str] = frozenset()
    held_by: LockInfo | None = None
    """Someone else's lock at the start."""
    frees_after: int | None = None
    """Refused lock attempts after which that lock is gone (None: it stays)."""
    retaken_by: LockInfo | None = None
    """Someone takes the lock between the operator's read and the break."""
    watch_breach: str = ""
    """The monitoring server's verdict when the PromQL rules are breached."""
    interrupt: tuple[str, int] | None = None
    """(method, nth call of it) whose reply says the operator pressed Ctrl-C."""
    rollback_fail: frozenset[str] = frozenset()
    hooks_fail: frozenset[str] = frozenset()
    dump: bool = False
    """The host of before_switch reports a database dump taken right before it."""
    """Hooks (before_switch, after_switch, ...) that exit 1 with a masked secret in their output."""


@dataclass(frozen=True)
class Call:
    method: str
    hosts: tuple[str, ...] = ()
    action: str = ""  # lock: acquire | release | status | break
    lock: bool = False  # stage: the run takes the lock first
    switch: tuple[str, ...] | None = None  # stage: the fused first batch
    unlock: bool = False  # the run gives the lock back at its end
    to: tuple[tuple[str, str | None], ...] = ()  # roll_back: where each host goes
    mark_bad: str | None = None


class C:
    """Expected calls, spelled as the engine makes them."""

    @staticmethod
    def prepare() -> Call:
        return Call("prepare")

    @staticmethod
    def lock(action: str) -> Call:
        return Call("lock", action=action)

    @staticmethod
    def stage(
        hosts: Sequence[str] = HOSTS,
        *,
        lock: bool = False,
        switch: Sequence[str] | None = None,
        unlock: bool = False,
    ) -> Call:
        return Call(
            "stage",
            tuple(hosts),
            lock=lock,
            switch=None if switch is None else tuple(switch),
            unlock=unlock,
        )

    @staticmethod
    def run_hook(host: str, name: str) -> Call:
        return Call("run_hook", (host,), action=name)

    @staticmethod
    def activate(hosts: Sequence[str], *, unlock: bool = False) -> Call:
        return Call("activate", tuple(hosts), unlock=unlock)

    @staticmethod
    def watch(hosts: Sequence[str] = HOSTS, *, unlock: bool = False) -> Call:
        return Call("watch", tuple(hosts), unlock=unlock)

    @staticmethod
    def roll_back(
        to: Mapping[str, str | None], *, mark_bad: str | None = None, unlock: bool = False
    ) -> Call:
        return Call(
            "roll_back",
            tuple(to),
            to=tuple(sorted(to.items())),
            mark_bad=mark_bad,
            unlock=unlock,
        )


READS = frozenset({"hosts", "strategy"})


class FakeTarget:
    kind: ClassVar[str] = "fake"
    fuse: ClassVar[bool] = True

    def __init__(self, session: Session, scenario: Scenario | None = None) -> None:
        self.session = session
        self.scenario = scenario or Scenario()
        self.log: list[Call] = []
        self.holder: LockInfo | None = self.scenario.held_by
        self.refused = 0
        self.staged: set[str] = set()
        self.running: dict[str, str | None] = dict(self.scenario.before)
        self.version = ""
        self.reasons: list[str] = []
        self.hooks_ran: list[tuple[str, str | None]] = []

    # -- bookkeeping ---------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every call but the plain reads (hosts, strategy), in order."""
        return [c for c in self.log if c.method not in READS]

    def _record(self, call: Call) -> int:
        self.log.append(call)
        return sum(c.method == call.method for c in self.log)

    def _interrupted(self, method: str, nth: int) -> bool:
        return self.scenario.interrupt == (method, nth)

    def _mine(self, token: str | None) -> bool:
        return self.holder is not None and bool(token) and self.holder.token == token

    def _require_lock(self, method: str) -> None:
        if self.holder is None or self.holder.token in {"", self._their_token}:
            raise AssertionError(f"{method} ran without the engine holding the lock")

    @property
    def _their_token(self) -> str:
        held = self.scenario.held_by
        return held.token if held is not None else "\0"

    def _acquire(self, token: str, deployment: int | None) -> LockInfo | None:
        """None when taken; else the lock that refused us."""
        if self.holder is not None and self.holder.token != token:
            self.refused += 1
            frees = self.scenario.frees_after
            if frees is None or self.refused <= frees:
                return self.holder
        self.holder = LockInfo(
            ENVIRONMENT, "web1", True, {"deployment": deployment}, 0.0, False, "", token, True
        )
        return None

    def _give_back(self, token: str | None, ok: bool) -> bool:
        if token and ok and self._mine(token):
            self.holder = None
            return True
        return False

    def _switch(self, batch: Sequence[str]) -> dict[str, HostReply]:
        s, out = self.scenario, {}
        for host in batch:
            if host not in self.staged:
                raise AssertionError(f"{host} switched before it was staged")
            if host in s.unreachable_in_switch:
                out[host] = HostReply(
                    host, ok=False, unreachable=True, stage="switch", message="host went away"
                )
                continue
            before = self.running.get(host)
            self.running[host] = self.version
            if host in s.fail_health:
                out[host] = HostReply(
                    host,
                    ok=False,
                    changed=True,
                    stage="health",
                    message="GET /healthz: 503",
                    current=self.version,
                    switched=True,
                )
            else:
                out[host] = HostReply(
                    host, changed=before != self.version, current=self.version, switched=True
                )
        return out

    # -- the protocol --------------------------------------------------------------------

    def hosts(self) -> tuple[str, ...]:
        self._record(Call("hosts"))
        return tuple(self.session.target.host_names)

    def strategy(self) -> Strategy:
        self._record(Call("strategy"))
        return self.session.target.strategy

    def prepare(self, version: str | None, artifact: Path | None, *, build: bool = True) -> Release:
        self._record(C.prepare())
        self.version = version or "sha-0123abcd"
        return Release(self.version, "0123abcd" * 8)

    def facts(self) -> Mapping[str, HostFacts]:
        self._record(Call("facts"))
        return {h: HostFacts(current=v) for h, v in self.running.items()}

    def lock(self, action: str, token: str = "", deployment: int | None = None) -> LockInfo:
        self._record(C.lock(action))
        if action == "acquire":
            refused = self._acquire(token, deployment)
            if refused is not None:
                raise LockedError(f"{ENVIRONMENT} is {refused.describe()}")
            assert self.holder is not None
            return self.holder
        if action == "release":  # our own token only; harmless when we do not hold it
            if self._mine(token):
                self.holder = None
            return replace(other_lock(), held=False, holder={}, token="")
        if action == "status":
            return self.holder or replace(other_lock(), held=False, holder={}, token="")
        if action == "break":
            if self.scenario.retaken_by is not None:
                self.holder = self.scenario.retaken_by
            if self.holder is None or self.holder.token != token:
                now = self.holder.describe() if self.holder else "not locked"
                raise LockedError(f"{ENVIRONMENT} is {now}")
            self.holder = None
            return replace(other_lock(), held=False, holder={}, token="")
        raise ValueError(f"unknown lock action {action!r}")

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
        nth = self._record(
            C.stage(hosts, lock=lock is not None, switch=switch, unlock=unlock is not None)
        )
        interrupted = self._interrupted("stage", nth)
        if lock is not None:
            refused = self._acquire(*lock)
            if refused is not None:  # nothing ran
                return StageReply(hosts={}, lock=refused, lock_taken=False)
        self._require_lock("stage")
        s, replies = self.scenario, {}
        for host in hosts:
            current = self.running.get(host)
            away = s.reachable_after is None or nth <= s.reachable_after
            if host in s.unreachable_in_stage and away:
                replies[host] = HostReply(
                    host, ok=False, unreachable=True, stage="preflight", message="ssh: timed out"
                )
            elif host in s.preflight:
                where, message = s.preflight[host]
                replies[host] = HostReply(
                    host, ok=False, stage=where, message=message, current=current
                )
            else:
                self.staged.add(host)
                replies[host] = HostReply(host, changed=True, current=current)
        good = all(r.good for r in replies.values())
        before = self.session.target.hooks.get("before_switch")
        if good and before is not None:  # after every host is staged, before any switch
            replies[before.host] = self._hook("before_switch", replies[before.host])
            if self.scenario.dump:
                dump = BackupTaken("20261204T014500Z-v2.dump", 4096, "ab" * 32)
                replies[before.host] = replace(replies[before.host], backup=dump)
            good = replies[before.host].good
        switched = None
        if good and switch:
            if on_switch is not None:
                on_switch()
            switched = self._switch(switch)
            good = all(r.good for r in switched.values())
        return StageReply(
            hosts=replies,
            switched=switched,
            switch_started=time.time() if switched is not None else None,
            complete=good,
            detail="successful" if good else "failed",
            released=self._give_back(unlock, good),
            interrupted=interrupted,
        )

    def _hook(self, name: str, reply: HostReply) -> HostReply:
        self.hooks_ran.append(
            (name, self.running.get(reply.host) if name != "before_switch" else self.version)
        )
        if name in self.scenario.hooks_fail:
            result = HookResult(
                name, reply.host, False, 1, 0.5, output="password=s3cret-value\nboom\n"
            )
            return replace(
                reply,
                ok=False,
                stage="hook",
                message=f"hook {name} failed (exit 1): boom",
                hook=result,
            )
        return replace(reply, hook=HookResult(name, reply.host, True, 0, 0.5, output="migrated\n"))

    def run_hook(self, name: str, version: str) -> HostReply | None:
        hook = self.session.target.hooks[name]
        self._record(Call("run_hook", (hook.host,), action=name))
        return self._hook(name, HostReply(hook.host, current=version))

    def activate(self, release: Release, batch: Sequence[str], *, unlock: str | None) -> BatchReply:
        nth = self._record(C.activate(batch, unlock=unlock is not None))
        self._require_lock("activate")
        replies = self._switch(batch)
        good = all(r.good for r in replies.values())
        return BatchReply(
            replies, self._give_back(unlock, good), interrupted=self._interrupted("activate", nth)
        )

    def watch(
        self, release: Release, hosts: Sequence[str], since: float, *, unlock: str | None
    ) -> WatchReply:
        nth = self._record(C.watch(hosts, unlock=unlock is not None))
        self._require_lock("watch")
        breach = self.scenario.watch_breach
        judge = HostReply("web1", ok=False, stage="watch", message=breach) if breach else None
        replies = {h: HostReply(h, current=self.running.get(h)) for h in hosts}
        return WatchReply(
            hosts=replies,
            judge=judge,
            judge_host="web1" if breach else "",
            breach=bool(breach),
            measured={"error_rate": 12.5, "p95_latency": 180.0} if breach else {},
            released=self._give_back(unlock, not breach),
            interrupted=self._interrupted("watch", nth),
        )

    def roll_back(
        self,
        to: Mapping[str, str | None],
        *,
        mark_bad: str | None,
        reason: str,
        unlock: str | None,
    ) -> BatchReply:
        self._record(C.roll_back(to, mark_bad=mark_bad, unlock=unlock is not None))
        self._require_lock("roll_back")
        self.reasons.append(reason)
        replies = {}
        for host, version in to.items():
            if host in self.scenario.rollback_fail:
                replies[host] = HostReply(
                    host,
                    ok=False,
                    stage="rollback",
                    message="old release failed its health check",
                    current=version,
                )
            else:
                self.running[host] = version
                replies[host] = HostReply(host, changed=True, current=version)
        good = all(r.good for r in replies.values())
        return BatchReply(replies, self._give_back(unlock, good))

    def status(self) -> StatusResult:
        raise NotImplementedError("not used by the engine's deploy")

    def releases(self) -> ReleasesResult:
        raise NotImplementedError("not used by the engine's deploy")

    def rollback(self, to: str | None) -> RollbackResult:
        raise NotImplementedError("not used by the engine's deploy")


class ApartTarget(FakeTarget):
    """A target that cannot fuse steps (as Swarm): every step a call of its own."""

    fuse: ClassVar[bool] = False
