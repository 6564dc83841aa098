"""Strategies as pure plans: golden plans per strategy and case, and the rules every plan keeps.

Each tests/golden/strategy/<case>.json is `plan(...).to_dict()` for one entry of CASES,
dumped with `json.dumps(indent=2, sort_keys=True)`. After an intended change, regenerate them
and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/plan/test_strategy.py
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deployer.config.models import Strategy
from deployer.plan.strategy import LOCAL, HostFacts, Plan, plan, rollback_targets

GOLDEN = Path(__file__).parents[2] / "golden" / "strategy"


def _hosts(n: int) -> tuple[str, ...]:
    return tuple(f"web{i}" for i in range(1, n + 1))


@dataclass(frozen=True)
class Case:
    strategy: Strategy
    hosts: tuple[str, ...]
    version: str = "v2"
    watch: float = 0.0
    facts: Mapping[str, HostFacts] = field(default_factory=dict)
    fuse: bool = True  # the SSH target fuses; Swarm does not
    proxies: tuple[str, ...] = ()
    analyser: str | None = None

    def plan(self) -> Plan:
        return plan(
            self.strategy,
            self.hosts,
            self.version,
            watch=self.watch,
            facts=self.facts,
            fuse=self.fuse,
            proxies=self.proxies,
            analyser=self.analyser,
        )


ROLLING_2 = Strategy(kind="rolling", batch_size=2)
BLUE_GREEN = Strategy(kind="blue_green")
ON_V2 = HostFacts(current="v2", previous_good="v1", stored=("v1", "v2"))
MIXED = {
    "web1": HostFacts(current="v1", previous_good="v0", stored=("v0", "v1")),
    "web2": HostFacts(current="v0", stored=("v0",)),
    "web3": HostFacts(current="v2", previous_good="v1", stored=("v1", "v2")),
    "web4": HostFacts(),  # runs nothing yet: a failure stops the app there
    # web5 was not read: it has no rollback target at all
}

CASES: dict[str, Case] = {
    "rolling_count_2_of_5_fused": Case(ROLLING_2, _hosts(5)),
    "rolling_count_2_of_5_unfused": Case(ROLLING_2, _hosts(5), fuse=False),
    "rolling_percent_25_of_10_fused": Case(Strategy(kind="rolling", batch_size="25%"), _hosts(10)),
    "all_at_once_fused": Case(Strategy(kind="all_at_once"), _hosts(4)),
    "all_at_once_unfused": Case(Strategy(kind="all_at_once"), _hosts(4), fuse=False),
    "all_at_once_watch_fused": Case(Strategy(kind="all_at_once"), _hosts(4), watch=60),
    "failure_budget_1_fused": Case(
        Strategy(kind="rolling", batch_size=2, failure_budget=1), _hosts(5)
    ),
    "watch_rolling_fused": Case(ROLLING_2, _hosts(5), watch=30),
    "watch_rolling_unfused": Case(ROLLING_2, _hosts(5), watch=30, fuse=False),
    "already_on_version_fused": Case(
        ROLLING_2,
        _hosts(3),
        facts=dict.fromkeys(_hosts(3), ON_V2),
    ),
    "mixed_fleet_fused": Case(ROLLING_2, _hosts(5), facts=MIXED),
    "mixed_fleet_unfused": Case(ROLLING_2, _hosts(5), facts=MIXED, fuse=False),
    "blue_green_fused": Case(BLUE_GREEN, _hosts(4), proxies=("edge1",)),
    "blue_green_watch_fused": Case(
        Strategy(kind="blue_green", keep_warm=120), _hosts(4), watch=60, proxies=("edge1",)
    ),
    "blue_green_unfused": Case(BLUE_GREEN, _hosts(3), fuse=False, proxies=("web1", "web2")),
    "blue_green_mixed_fleet_fused": Case(BLUE_GREEN, _hosts(5), facts=MIXED, proxies=("web1",)),
    "canary_fused": Case(
        Strategy(kind="canary", steps=["10%", 50, 100], analysis=20),
        _hosts(4),
        watch=60,
        proxies=("edge1",),
        analyser="web1",
    ),
    "canary_unfused": Case(
        Strategy(kind="canary"), _hosts(3), watch=30, fuse=False, proxies=("web1",), analyser="web1"
    ),
    "canary_manual_fused": Case(
        Strategy(kind="canary", steps=[25, 100], auto_promote=False, keep_warm=120),
        _hosts(2),
        watch=30,
        proxies=("web1", "web2"),
        analyser="web2",
    ),
    "canary_one_step_fused": Case(
        Strategy(kind="canary", steps=[100]), _hosts(2), proxies=("web1",), analyser="web1"
    ),
    "canary_mixed_fleet_fused": Case(
        Strategy(kind="canary", analysis=10),
        _hosts(5),
        facts=MIXED,
        proxies=("web1",),
        analyser="web1",
    ),
}


def _render(case: Case) -> str:
    return json.dumps(case.plan().to_dict(), indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_plan_matches_golden(name: str) -> None:
    golden = GOLDEN / f"{name}.json"
    text = _render(CASES[name])
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


def test_every_golden_file_is_a_case() -> None:
    assert {p.name for p in GOLDEN.iterdir()} == {f"{name}.json" for name in CASES}


# --- rules every plan keeps -------------------------------------------------------------------

STRATEGIES = [
    Strategy(kind="rolling", batch_size=1),
    Strategy(kind="rolling", batch_size=2, failure_budget=1),
    Strategy(kind="rolling", batch_size="25%"),
    Strategy(kind="rolling", batch_size="50%", failure_budget=3),
    Strategy(kind="all_at_once"),
]
GRID = list(itertools.product(STRATEGIES, [1, 2, 5, 10], [True, False], [0.0, 45.0]))


def _grid_id(strategy: Strategy, n: int, fuse: bool, watch: float) -> str:
    size = "all" if strategy.kind == "all_at_once" else strategy.batch_size
    return f"{size}-budget{strategy.failure_budget}-{n}hosts-{'fused' if fuse else 'apart'}" + (
        "-watch" if watch else ""
    )


_grid = pytest.mark.parametrize(
    ("strategy", "n", "fuse", "watch"), GRID, ids=[_grid_id(*g) for g in GRID]
)


@_grid
def test_lock_first_unlock_last(strategy: Strategy, n: int, fuse: bool, watch: float) -> None:
    steps = plan(strategy, _hosts(n), "v2", watch=watch, fuse=fuse).steps
    assert steps[0].action == "lock"
    assert steps[-1].action == "unlock"
    assert [s.action for s in steps].count("lock") == 1
    assert [s.action for s in steps].count("unlock") == 1


@_grid
def test_staging_precedes_every_switch_and_covers_every_host(
    strategy: Strategy, n: int, fuse: bool, watch: float
) -> None:
    steps = plan(strategy, _hosts(n), "v2", watch=watch, fuse=fuse).steps
    assert steps[1].action == "stage"
    assert steps[1].hosts == _hosts(n)
    switched = [h for s in steps if s.action == "switch" for h in s.hosts]
    assert switched == list(_hosts(n))  # each host once, in inventory order


@_grid
def test_every_switch_is_followed_by_a_budget_check(
    strategy: Strategy, n: int, fuse: bool, watch: float
) -> None:
    steps = plan(strategy, _hosts(n), "v2", watch=watch, fuse=fuse).steps
    switches = [i for i, s in enumerate(steps) if s.action == "switch"]
    assert switches
    for i in switches:
        budget = steps[i + 1]
        assert budget.action == "budget"
        assert budget.run == LOCAL  # decided on the controller, never remotely
        assert budget.limit == strategy.failure_budget
    assert sum(s.action == "budget" for s in steps) == len(switches)


@_grid
def test_batches_are_numbered_in_order(
    strategy: Strategy, n: int, fuse: bool, watch: float
) -> None:
    p = plan(strategy, _hosts(n), "v2", watch=watch, fuse=fuse)
    switches = [s for s in p.steps if s.action == "switch"]
    assert [s.batch for s in switches] == list(range(1, len(p.batches) + 1))
    assert {s.of for s in switches} == {len(p.batches)}
    assert [s.hosts for s in switches] == list(p.batches)


@_grid
def test_the_watch_comes_after_the_last_switch(
    strategy: Strategy, n: int, fuse: bool, watch: float
) -> None:
    steps = plan(strategy, _hosts(n), "v2", watch=watch, fuse=fuse).steps
    watches = [i for i, s in enumerate(steps) if s.action == "watch"]
    if not watch:
        assert watches == []
        return
    (at,) = watches
    last_switch = max(i for i, s in enumerate(steps) if s.action == "switch")
    assert at > last_switch
    assert steps[at].seconds == watch
    assert steps[at].hosts == _hosts(n)


@_grid
def test_remote_runs_are_in_order(strategy: Strategy, n: int, fuse: bool, watch: float) -> None:
    runs = [s.run for s in plan(strategy, _hosts(n), "v2", watch=watch, fuse=fuse).steps]
    remote = [r for r in runs if r != LOCAL]
    assert remote == sorted(remote)
    assert remote[0] == 0
    assert sorted(set(remote)) == list(range(len(set(remote))))  # no run number skipped


@_grid
def test_runs_count(strategy: Strategy, n: int, fuse: bool, watch: float) -> None:
    """Fused (SSH): the lock, staging and the first batch share the first run, every later
    batch costs one, the watch one, and the unlock rides on the last. Apart (Swarm): the
    lock, staging and the unlock cost one each on top."""
    p = plan(strategy, _hosts(n), "v2", watch=watch, fuse=fuse)
    expected = len(p.batches) + (1 if watch else 0) + (0 if fuse else 3)
    assert p.runs == expected


@_grid
def test_fusing_shares_runs_only_as_documented(
    strategy: Strategy, n: int, fuse: bool, watch: float
) -> None:
    p = plan(strategy, _hosts(n), "v2", watch=watch, fuse=fuse)
    lock, stage, first = p.steps[0], p.steps[1], p.steps[2]
    unlock = p.steps[-1]
    last_remote = next(s for s in reversed(p.steps[:-1]) if s.run != LOCAL)
    assert first.action == "switch"
    assert p.fused(stage, "lock") is fuse
    assert p.fused(stage, "switch") is fuse
    assert p.fused(last_remote, "unlock") is fuse
    assert unlock.run == (last_remote.run if fuse else last_remote.run + 1)
    if not fuse:  # every remote step in a run of its own
        remote = [s.run for s in p.steps if s.run != LOCAL]
        assert len(remote) == len(set(remote))
    assert lock.run == 0


@_grid
def test_facts_change_no_step(strategy: Strategy, n: int, fuse: bool, watch: float) -> None:
    """A plan made before the hosts were read has the same steps as one made after."""
    hosts = _hosts(n)
    facts = {h: HostFacts(current="v2" if i % 2 else "v1") for i, h in enumerate(hosts)}
    before = plan(strategy, hosts, "v2", watch=watch, fuse=fuse)
    after = plan(strategy, hosts, "v2", watch=watch, fuse=fuse, facts=facts)
    assert after.steps == before.steps
    assert after.batches == before.batches
    assert after.already == tuple(h for i, h in enumerate(hosts) if i % 2)
    assert (before.already, dict(before.rollback_to)) == ((), {})


def test_step_labels_are_the_ledger_stages() -> None:
    steps = plan(ROLLING_2, _hosts(5), "v2", watch=10, fuse=False).steps
    assert [s.label for s in steps] == [
        "lock",
        "prepare",
        "switch 1/3",
        "budget",
        "switch 2/3",
        "budget",
        "switch 3/3",
        "budget",
        "watch",
        "done",
    ]


def test_rollback_targets() -> None:
    to = rollback_targets("v2", MIXED, _hosts(5))
    assert to == {
        "web1": "v1",  # back to what it runs
        "web2": "v0",
        "web3": "v1",  # already on v2: back to its previous good release
        "web4": None,  # ran nothing: stop the app
    }
    assert "web5" not in to  # not read: nothing known to go back to


# --- blue_green -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 5, 10])
@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("watch", [0.0, 45.0])
def test_blue_green_switches_every_host_at_once_then_flips(
    n: int, fuse: bool, watch: float
) -> None:
    p = plan(BLUE_GREEN, _hosts(n), "v2", watch=watch, fuse=fuse, proxies=("edge1",))
    actions = [s.action for s in p.steps]
    assert p.batches == (_hosts(n),)
    switch = actions.index("switch")
    assert actions[switch + 1 : switch + 3] == ["flip", "budget"]
    flip = p.steps[switch + 1]
    assert flip.hosts == ("edge1",)
    assert flip.seconds == 300  # the old slots keep running this long: keep_warm's default
    assert p.fused(flip, "switch") is fuse  # the switch's own run flips, once every host passed
    assert p.steps[switch + 2].limit == 0
    if watch:
        assert actions.index("watch") > switch + 2
    assert p.runs == 1 + (1 if watch else 0) + (0 if fuse else 4)


def test_only_blue_green_flips() -> None:
    for strategy in STRATEGIES:
        steps = plan(strategy, _hosts(4), "v2", fuse=True, proxies=("edge1",)).steps
        assert "flip" not in [s.action for s in steps]


# --- canary -----------------------------------------------------------------------------------

CANARIES = [
    Strategy(kind="canary"),
    Strategy(kind="canary", steps=[5, 25, 50, 75, 100], analysis=15),
    Strategy(kind="canary", steps=[100]),
    Strategy(kind="canary", steps=[10, 100], auto_promote=False),
    Strategy(kind="canary", steps=[1, 2, 3, 100], auto_promote=False),
]
CANARY_GRID = list(itertools.product(CANARIES, [1, 3, 10], [True, False]))


@pytest.mark.parametrize(("strategy", "n", "fuse"), CANARY_GRID)
def test_a_canary_shifts_through_every_step_each_judged_then_flips(
    strategy: Strategy, n: int, fuse: bool
) -> None:
    shares = strategy.steps or [10, 50, 100]
    steps = plan(
        strategy, _hosts(n), "v2", watch=40, fuse=fuse, proxies=("edge1",), analyser="web1"
    ).steps
    actions = [s.action for s in steps]
    assert actions.count("switch") == 1
    assert [s.share for s in steps if s.action in ("shift", "flip")] == shares
    assert actions.index("switch") < actions.index("budget")
    assert actions.index("budget") < (actions.index("analyse") if "analyse" in actions else 99)
    assert steps[actions.index("budget") - 1].share == shares[0]  # checked before any analysis
    judged = [s for s in steps if s.action == "analyse"]
    assert [s.share for s in judged] == shares[:-1]  # every step short of 100, after it
    seconds = strategy.analysis or 40
    assert all(s.seconds == seconds and s.hosts == ("web1",) for s in judged)
    for i, step in enumerate(steps):
        if step.action == "analyse":
            after = next(s.action for s in steps[i + 1 :] if s.action != "decide")
            assert after in ("shift", "flip")
            assert steps[i + 1].action == ("decide" if strategy.auto_promote is False else after)
    decides = [s for s in steps if s.action == "decide"]
    assert len(decides) == (len(shares) - 1 if strategy.auto_promote is False else 0)
    assert all(s.run == LOCAL for s in decides)  # waited for on the controller, never remotely
    flip = next(s for s in steps if s.action == "flip")
    assert flip.hosts == ("edge1",)
    assert flip.seconds == 300


@pytest.mark.parametrize(("strategy", "n", "fuse"), CANARY_GRID)
def test_a_canary_decision_is_never_inside_a_remote_run(
    strategy: Strategy, n: int, fuse: bool
) -> None:
    steps = plan(strategy, _hosts(n), "v2", watch=40, fuse=fuse, proxies=("e",), analyser="w").steps
    for i, step in enumerate(steps):
        if step.action == "decide":  # the shift after it starts a run of its own
            assert steps[i + 1].run not in {s.run for s in steps[:i]}
