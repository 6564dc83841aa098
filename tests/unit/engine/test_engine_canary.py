"""A canary's steps in the engine, against a stand-in target and ledger: what an analysis,
a decision, its timeout and Ctrl-C lead to. Every way out before the flip is an abort (the
requests back on the stable slots, the new slots stopped), recorded step by step."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from deployer.config.models import Monitoring, Rollback, Strategy
from deployer.engine import canary
from deployer.engine.lifecycle import _Interrupted
from deployer.engine.results import RolloutStop
from deployer.ledger import Status
from deployer.plan.strategy import LOCAL, Step
from deployer.targets.base import BatchReply, HostReply


@dataclass
class Ledger:
    steps: list[Any] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    decisions: list[str | None] = field(default_factory=list)

    def record_canary_step(self, deployment_id: int, step: Any) -> None:
        self.steps.append(step)

    def mark_bad(self, environment: str, version: str, **_: Any) -> None:
        self.bad.append(version)

    def canary_decision(self, deployment_id: int, share: int) -> str | None:
        return self.decisions.pop(0) if self.decisions else None


@dataclass
class Driver:
    last: dict[str, float] = field(default_factory=dict)
    ok: bool = True
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def analyse(self, checks: Any, since: float) -> tuple[HostReply, dict[str, float]]:
        self.calls.append(("analyse", since))
        return HostReply("web1", ok=self.ok, message="" if self.ok else "breached"), self.last

    def abort(self, live: str, hosts: Any) -> BatchReply:
        self.calls.append(("abort", live, tuple(hosts)))
        return BatchReply({h: HostReply(h) for h in hosts})

    def shift(self, live: str, share: int) -> BatchReply:
        self.calls.append(("shift", live, share))
        return BatchReply({"web1": HostReply("web1")})


class Rollout:
    def __init__(self, strategy: Strategy, driver: Driver) -> None:
        self.driver = driver
        self.deployment_id = 7
        self.version = "v2"
        self.before = {"web1": "v1", "web2": "v1"}
        self.rollback_seconds: float | None = None
        self.measured: dict[str, float] = {}
        self.canary_abort_note = ""
        self.stages: list[str] = []
        self.notes: dict[str, tuple[Any, ...]] = {}
        self.canary = canary.CanaryState(live="green", started=["web1", "web2"], active=True)
        self.session = _Session(strategy)

    def stage(self, name: str) -> None:
        self.stages.append(name)

    def note(self, host: str, *args: Any) -> None:
        self.notes[host] = args

    def flush(self) -> None:
        pass


class _Session:
    def __init__(self, strategy: Strategy) -> None:
        self.ledger = Ledger()
        self.interrupted = threading.Event()
        self.notes: list[str] = []
        self.target = _Target(strategy)


class _Target:
    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self.environment = "production"
        self.monitoring_server = "web1"
        self.monitoring = Monitoring()
        self.rollback = Rollback(watch=20)


@pytest.fixture(autouse=True)
def _checks(monkeypatch: pytest.MonkeyPatch) -> None:
    checks = [
        {"name": n, "threshold": t, "unit": u, "min_volume": 10}
        for n, t, u in (("error_rate", 5.0, "%"), ("p95_latency", 500.0, "ms"))
    ]
    monkeypatch.setattr(canary, "canary_checks", lambda *_: checks)
    monkeypatch.setattr(canary, "DECISION_POLL_SECONDS", 0.01)


GOOD = {
    "error_rate:canary": 0.0,
    "error_rate:stable": 0.0,
    "p95_latency:canary": 9.0,
    "p95_latency:stable": 8.0,
    "requests:canary": 40.0,
}


def test_a_passing_analysis_records_both_slots_figures() -> None:
    rollout = Rollout(Strategy(kind="canary"), Driver(last=GOOD))
    canary.analyse(rollout, Step("analyse", 1, share=10, seconds=20))
    (step,) = rollout.session.ledger.steps
    assert (step.share, step.action, step.outcome) == (10, "analysis", "passed")
    assert (step.canary_p95_ms, step.stable_p95_ms, step.canary_requests) == (9.0, 8.0, 40.0)
    assert not any(c[0] == "abort" for c in rollout.driver.calls)


@pytest.mark.parametrize(
    "last",
    [
        {**GOOD, "error_rate:canary": 30.0},
        {**GOOD, "p95_latency:canary": 900.0},
        {**GOOD, "requests:canary": 2.0},  # too little to judge: never promoted on nothing
    ],
)
def test_a_breached_analysis_aborts_and_marks_the_version_bad(last: dict[str, float]) -> None:
    rollout = Rollout(Strategy(kind="canary"), Driver(last=last))
    with pytest.raises(RolloutStop) as stop:
        canary.analyse(rollout, Step("analyse", 1, share=10))
    assert (stop.value.status, stop.value.stage) == (Status.ROLLED_BACK, "abort")
    assert ("abort", "green", ("web1", "web2")) in rollout.driver.calls
    assert rollout.session.ledger.bad == ["v2"]
    assert [(s.action, s.outcome) for s in rollout.session.ledger.steps] == [
        ("analysis", "breached"),
        ("abort", "aborted"),
    ]
    assert rollout.canary.active is False


def test_prometheus_failing_the_analysis_aborts() -> None:
    rollout = Rollout(Strategy(kind="canary"), Driver(last=GOOD, ok=False))
    with pytest.raises(RolloutStop) as stop:
        canary.analyse(rollout, Step("analyse", 1, share=10))
    assert "Prometheus on web1: breached" in stop.value.reason


MANUAL = Strategy(kind="canary", auto_promote=False, decision_timeout=10)


def test_promote_goes_on() -> None:
    rollout = Rollout(MANUAL, Driver())
    rollout.session.ledger.decisions = [None, None, "promote"]
    canary.decide(rollout, Step("decide", LOCAL, share=10))
    assert rollout.stages == ["decide 10%"]
    assert [(s.action, s.outcome) for s in rollout.session.ledger.steps] == [
        ("decision", "promoted")
    ]


def test_abort_takes_the_requests_back_without_marking_the_version_bad() -> None:
    rollout = Rollout(MANUAL, Driver())
    rollout.session.ledger.decisions = ["abort"]
    with pytest.raises(RolloutStop) as stop:
        canary.decide(rollout, Step("decide", LOCAL, share=50))
    assert stop.value.reason.startswith("aborted at 50 % by `deployer abort`")
    assert rollout.session.ledger.bad == []
    assert ("abort", "green", ("web1", "web2")) in rollout.driver.calls


def test_no_decision_within_the_timeout_aborts(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(0, 1000, 4))
    monkeypatch.setattr(canary.time, "monotonic", lambda: float(next(clock)))
    rollout = Rollout(MANUAL, Driver())
    with pytest.raises(RolloutStop) as stop:
        canary.decide(rollout, Step("decide", LOCAL, share=10))
    assert "within strategy.decision_timeout (10 s)" in stop.value.reason
    outcomes = [(s.action, s.outcome) for s in rollout.session.ledger.steps]
    assert outcomes == [("decision", "timed out"), ("abort", "aborted")]


def test_ctrl_c_while_waiting_aborts_the_canary_then_reports_the_interruption() -> None:
    rollout = Rollout(MANUAL, Driver())
    rollout.session.interrupted.set()
    with pytest.raises(_Interrupted):
        canary.decide(rollout, Step("decide", LOCAL, share=10))
    assert ("abort", "green", ("web1", "web2")) in rollout.driver.calls
    assert "canary aborted" in rollout.canary_abort_note
    outcomes = [(s.action, s.outcome) for s in rollout.session.ledger.steps]
    assert outcomes == [("decision", "interrupted"), ("abort", "aborted")]


@pytest.mark.parametrize(
    ("started", "note"),
    [
        ((), "canary: no host ran a release before"),
        (("web1",), "canary: web2 ran a release before"),
    ],
)
def test_a_fleet_without_a_stable_release_everywhere_goes_live_at_once_and_says_so(
    started: tuple[str, ...], note: str
) -> None:
    rollout = Rollout(Strategy(kind="canary"), Driver())
    rollout.switch_replies = {  # type: ignore[attr-defined]
        h: HostReply(h, started="green" if h in started else None) for h in ("web1", "web2")
    }
    canary.after_switch(rollout, Step("shift", LOCAL, share=10))
    assert not rollout.canary.active
    assert rollout.canary.share == 100
    (said,) = rollout.session.notes
    assert said.startswith(note)
    assert said.endswith("without the canary's analysis")
    (step,) = rollout.session.ledger.steps
    assert (step.action, step.outcome) == ("shift", "skipped")
