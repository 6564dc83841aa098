"""Strategies as pure plans: from the resolved strategy, the hosts and what they run now to
the ordered steps of one rollout. Golden-tested per strategy and case (tests/golden/strategy).

A plan never touches a host. The engine walks its steps in order; a target that can carry
several steps in one remote run (the SSH target: one Ansible run for lock, preflight, staging
and the first batch) says so with `fuse`, and the plan then gives those steps the same `run`
number. The plan therefore also states how many remote runs a rollout costs when it succeeds.

Steps:
    lock                       take the environment lock
    stage    hosts             preflight, upload and unpack on every host; nothing switches
    switch   hosts batch/of    point the batch at the new version, health-check each host
                               (blue_green: start it in each host's other slot, next to the
                               live one, and health-check it on the slot's port)
    flip     hosts seconds     blue_green: once every host passed, every edge proxy (`hosts`)
                               sends requests to the new slots; the old slots keep running
                               `seconds` (strategy.keep_warm), so a rollback is a flip back
    budget   limit             more failed hosts than `limit` so far: roll the fleet back
    watch    hosts seconds     watch the live fleet (health, and PromQL rules when on)
    unlock                     give the lock back
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from deployer.config.bluegreen import BLUE_GREEN, keep_warm
from deployer.config.models import Strategy

Action = Literal["lock", "stage", "switch", "flip", "budget", "watch", "unlock"]
LOCAL = -1
"""The `run` of a step the engine decides on the controller (a budget check)."""


@dataclass(frozen=True)
class HostFacts:
    """What one host runs and stores, as far as the planner needs to know."""

    current: str | None = None
    previous_good: str | None = None
    stored: tuple[str, ...] = ()
    bad: tuple[str, ...] = ()
    """Stored versions the host has marked bad."""
    reachable: bool = True


@dataclass(frozen=True)
class Step:
    action: Action
    run: int
    hosts: tuple[str, ...] = ()
    batch: int = 0
    of: int = 0
    limit: int = 0
    seconds: float = 0.0

    @property
    def label(self) -> str:
        """The ledger's name of the stage this step is in."""
        if self.action == "switch":
            return f"switch {self.batch}/{self.of}"
        return {"lock": "lock", "stage": "prepare", "unlock": "done"}.get(self.action, self.action)


@dataclass(frozen=True)
class Plan:
    version: str
    kind: str
    steps: tuple[Step, ...]
    batches: tuple[tuple[str, ...], ...]
    already: tuple[str, ...] = ()
    """Hosts that run `version` already: their switch only re-checks health."""
    rollback_to: Mapping[str, str | None] = field(default_factory=dict)
    """Where each host goes back to on failure (None: stop the app; it ran nothing before).
    Empty when the plan was made before the hosts were read."""

    @property
    def runs(self) -> int:
        """Remote runs a successful rollout costs."""
        return len({s.run for s in self.steps if s.run != LOCAL})

    def fused(self, step: Step, other: Action) -> bool:
        """Whether `step` travels in the same remote run as a step of kind `other`."""
        return any(s.action == other and s.run == step.run for s in self.steps if s is not step)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "kind": self.kind,
            "runs": self.runs,
            "batches": [list(b) for b in self.batches],
            "already": list(self.already),
            "rollback_to": dict(self.rollback_to),
            "steps": [
                {k: v for k, v in asdict(s).items() if v not in ((), 0, 0.0) or k == "run"}
                for s in self.steps
            ],
        }


def batch_size(strategy: Strategy, total: int) -> int:
    """Hosts per batch for `total` hosts: at least 1, at most all."""
    if total <= 0:
        return 0
    if strategy.kind in ("all_at_once", BLUE_GREEN):
        return total
    size = strategy.batch_size
    if isinstance(size, str):  # "25%": of the fleet, rounded up so progress is guaranteed
        size = math.ceil(total * int(size.rstrip("%")) / 100)
    return max(1, min(total, size))


def batches(strategy: Strategy, hosts: Sequence[str]) -> list[list[str]]:
    """Hosts split into rollout batches, in inventory order."""
    size = batch_size(strategy, len(hosts))
    return [list(hosts[i : i + size]) for i in range(0, len(hosts), size)] if size else []


def rollback_targets(
    version: str, facts: Mapping[str, HostFacts], hosts: Sequence[str]
) -> dict[str, str | None]:
    """Per host, the version a failed rollout puts it back on: what it runs now (None when it
    runs nothing), or, for a host already on `version`, its previous good release."""
    out: dict[str, str | None] = {}
    for host in hosts:
        fact = facts.get(host)
        if fact is None or not fact.reachable:
            continue
        out[host] = fact.previous_good if fact.current == version else fact.current
    return out


def plan(
    strategy: Strategy,
    hosts: Sequence[str],
    version: str,
    *,
    watch: float = 0.0,
    facts: Mapping[str, HostFacts] | None = None,
    fuse: bool = False,
    proxies: Sequence[str] = (),
) -> Plan:
    """The steps of one rollout of `version` to `hosts`.

    Batches follow the inventory order whatever the hosts run (a plan made before the hosts
    were read has the same steps as one made after: facts only fill `already` and
    `rollback_to`); the failure budget is checked after every batch; the lock is given back
    by the last remote run when the target can fuse (`fuse`), else by a run of its own.
    blue_green switches every host in one batch and flips the edge proxies (`proxies`) in
    the same run, once every host passed.
    """
    facts = facts or {}
    order = list(hosts)
    already = tuple(
        h for h in order if (f := facts.get(h)) is not None and f.reachable and f.current == version
    )
    groups = [tuple(b) for b in batches(strategy, order)]
    steps: list[Step] = []
    run = 0

    def add(action: Action, *, new_run: bool, **kw: Any) -> None:
        nonlocal run
        if new_run and steps:
            run += 1
        steps.append(Step(action, run, **kw))

    add("lock", new_run=True)
    add("stage", new_run=not fuse, hosts=tuple(order))
    for number, batch in enumerate(groups, start=1):
        add("switch", new_run=not (fuse and number == 1), hosts=batch, batch=number, of=len(groups))
        if strategy.kind == BLUE_GREEN:
            add("flip", new_run=not fuse, hosts=tuple(proxies), seconds=keep_warm(strategy))
        steps.append(Step("budget", LOCAL, limit=strategy.failure_budget))
    if watch > 0:
        add("watch", new_run=True, hosts=tuple(order), seconds=watch)
    add("unlock", new_run=not fuse)
    return Plan(
        version=version,
        kind=strategy.kind,
        steps=tuple(steps),
        batches=tuple(groups),
        already=already,
        rollback_to=rollback_targets(version, facts, order),
    )
