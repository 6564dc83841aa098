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
    shift    hosts share       canary: every edge proxy (`hosts`) sends `share` % of requests
                               to the new slots, the rest to the live ones (weighted upstreams)
    analyse  hosts seconds     canary: Prometheus on `hosts` compares the new version's error
                               ratio and p95 latency with the stable one's over `seconds`; a
                               breach aborts (the requests back to the stable slots, the new
                               slots stopped)
    decide   share             canary with auto_promote false: wait for `deployer promote` or
                               `deployer abort` before the step after `share` %
    budget   limit             more failed hosts than `limit` so far: roll the fleet back
    watch    hosts seconds     watch the live fleet (health, and PromQL rules when on)
    unlock                     give the lock back
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from deployer.config.bluegreen import BLUE_GREEN, CANARY, SLOTTED, keep_warm
from deployer.config.canary import auto_promote
from deployer.config.canary import steps as canary_steps
from deployer.config.models import Strategy

Action = Literal[
    "lock", "stage", "switch", "flip", "shift", "analyse", "decide", "budget", "watch", "unlock"
]
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
    share: int = 0
    """shift: the percent of requests the new release takes; analyse and decide: the share
    being judged or waited on."""

    @property
    def label(self) -> str:
        """The ledger's name of the stage this step is in."""
        if self.action == "switch":
            return f"switch {self.batch}/{self.of}"
        if self.action in ("shift", "analyse", "decide"):
            return f"{self.action} {self.share}%"
        return {"lock": "lock", "stage": "prepare", "unlock": "done"}.get(self.action, self.action)


def waiting_share(stage: str) -> int | None:
    """The share a canary waits at for `deployer promote`/`abort`, read back from the
    ledger's stage (`decide 20%`, Step.label's), or None for any other stage."""
    action, _, share = stage.partition(" ")
    if action != "decide" or not share.endswith("%") or not share[:-1].isdigit():
        return None
    return int(share[:-1])


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
    if strategy.kind in ("all_at_once", *SLOTTED):
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
    analyser: str | None = None,
) -> Plan:
    """The steps of one rollout of `version` to `hosts`.

    Batches follow the inventory order whatever the hosts run (a plan made before the hosts
    were read has the same steps as one made after: facts only fill `already` and
    `rollback_to`); the failure budget is checked after every batch; the lock is given back
    by the last remote run when the target can fuse (`fuse`), else by a run of its own.
    blue_green switches every host in one batch and flips the edge proxies (`proxies`) in
    the same run, once every host passed. canary does the same switch, then shifts the edge
    proxies through `strategy.steps`, each step short of 100 % judged by Prometheus on
    `analyser` (the monitoring server) and decided on the controller.
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
        if strategy.kind == CANARY:
            _canary(strategy, add, steps, tuple(proxies), analyser, watch, fuse=fuse)
        else:
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


def _canary(
    strategy: Strategy,
    add: Any,
    steps: list[Step],
    proxies: tuple[str, ...],
    analyser: str | None,
    watch: float,
    *,
    fuse: bool,
) -> None:
    """The canary's steps after the switch that started the new slots (not live yet): the
    first shift in the switch's run (once every host passed, as blue-green's flip), then per
    step an analysis in a run of its own on the monitoring server, a decision on the
    controller when nobody promotes automatically, and the next shift in a run of its own;
    100 % is the flip."""
    seconds = float(watch if strategy.analysis is None else strategy.analysis)
    judge = (analyser,) if analyser else ()
    automatic = auto_promote(strategy)
    previous: int | None = None
    for share in canary_steps(strategy):
        if previous is not None:
            add("analyse", new_run=True, hosts=judge, seconds=seconds, share=previous)
            if not automatic:
                steps.append(Step("decide", LOCAL, share=previous))
        # the first shift travels in the switch's run; each later one follows the
        # controller's verdict on the analysis before it, so it needs a run of its own
        fused = fuse and previous is None
        if share == 100:
            add("flip", new_run=not fused, hosts=proxies, seconds=keep_warm(strategy), share=100)
        else:
            add("shift", new_run=not fused, hosts=proxies, share=share)
        if previous is None:  # a host that could not start its new slot: nothing shifted
            steps.append(Step("budget", LOCAL, limit=strategy.failure_budget))
        previous = share
