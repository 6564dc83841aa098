"""A canary's steps in the lifecycle, after the switch that started the new release in each
host's other slot (not live): shifts of the edge proxy's weights, the analysis after each
one, the operators' decisions when nothing promotes by itself, and the abort.

The abort puts every request back on the stable slots and stops the new ones: only the
canary's share of requests ever met the new release. Every step is a ledger row of its own
(`canary_steps`), with what its analysis measured of both slots. A decision is a ledger row
too (`canary_decisions`), written by `deployer promote` or `deployer abort` wherever they run
(the team's PostgreSQL ledger included) and polled here; a wait is bounded by
`strategy.decision_timeout`, and Ctrl-C during it aborts the canary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deployer.config.canary import decision_timeout
from deployer.engine.results import RolloutStop
from deployer.exitcodes import ExitCode
from deployer.ledger import CanaryStep, HostStatus, Status
from deployer.plan.monitoring import analysis_figures, canary_checks, judge_canary
from deployer.targets.base import cap

if TYPE_CHECKING:
    from deployer.plan.strategy import Step

DECISION_POLL_SECONDS = 1.0
SLOTS = ("blue", "green")


@dataclass
class CanaryState:
    """Where a canary stands: the stable (live) slot, the hosts running the new release in
    the other one, the share the proxies give it and since when."""

    live: str = "blue"
    started: list[str] = field(default_factory=list)
    share: int = 0
    since: float = 0.0
    active: bool = False
    """The new slots run next to the live ones (a stable release was there to compare)."""

    @property
    def new(self) -> str:
        return next(s for s in SLOTS if s != self.live)


def after_switch(rollout: Any, step: Step) -> None:
    """Read what the canary's switch started (the first shift travelled in its run)."""
    state: CanaryState = rollout.canary
    replies = rollout.switch_replies
    started = [h for h, r in replies.items() if r.good and r.started]
    lives = {r.slot or "blue" for h, r in replies.items() if r.good and r.started}
    if len(lives) > 1:  # the hosts disagree: the flip in that run failed; budget rolls back
        return
    state.live = lives.pop() if lives else "blue"
    state.started = started
    state.active = bool(started) and len(started) == len(replies)
    fresh = [h for h, r in replies.items() if r.good and not r.started]
    if not state.active and fresh:  # nothing ran before there: nothing to compare with
        where = "no host" if not started else ", ".join(fresh)
        rollout.session.notes.append(
            f"canary: {where} ran a release before, so there was nothing to compare the new "
            "one with: it went live at once, as blue-green, without the canary's analysis"
        )
    state.share = step.share if state.active else 100
    state.since = time.time()
    _record(rollout, CanaryStep(step.share, "shift", "done" if state.active else "skipped"))


def shift(rollout: Any, step: Step) -> None:
    state: CanaryState = rollout.canary
    if not state.active:
        return
    rollout.stage(step.label)
    began = time.monotonic()
    reply = rollout.driver.shift(state.live, step.share)
    failed = {h: r for h, r in reply.hosts.items() if not r.good}
    missing = [h for h in step.hosts if h not in reply.hosts]
    if failed or missing:
        why = "; ".join(f"{h}: {cap(r.message or 'unreachable', 300)}" for h, r in failed.items())
        why = why or f"no answer from {', '.join(missing)}"
        _record(rollout, CanaryStep(step.share, "shift", "failed", message=why))
        abort(rollout, f"shifting {step.share} % to the canary failed: {why}", mark_bad=False)
    state.share, state.since = step.share, time.time()
    _record(rollout, CanaryStep(step.share, "shift", "done", seconds=time.monotonic() - began))
    if reply.interrupted or rollout.session.interrupted.is_set():
        interrupted(rollout)


def analyse(rollout: Any, step: Step) -> None:
    state: CanaryState = rollout.canary
    if not state.active:
        return
    rollout.stage(step.label)
    env = rollout.session.target
    checks = canary_checks(env, state.new, state.live)
    began = time.monotonic()
    verdict, last = rollout.driver.analyse(checks, state.since)
    seconds = time.monotonic() - began
    figures = analysis_figures(last)
    breached, why = judge_canary(checks, figures)
    if verdict is None or not verdict.good:
        message = verdict.message if verdict is not None else "no answer"
        why = [f"Prometheus on {env.monitoring_server}: {cap(message, 600)}", *why]
        breached = True
    row = CanaryStep(
        step.share,
        "analysis",
        "breached" if breached else "passed",
        canary_error_rate=_figure(figures, "error_rate", "canary"),
        stable_error_rate=_figure(figures, "error_rate", "stable"),
        canary_p95_ms=_figure(figures, "p95_latency", "canary"),
        stable_p95_ms=_figure(figures, "p95_latency", "stable"),
        canary_requests=_figure(figures, "error_rate", "volume"),
        seconds=seconds,
        message="; ".join(why),
    )
    _record(rollout, row)
    rollout.measured = {
        k: v
        for k, v in (("error_rate", row.canary_error_rate), ("p95_latency", row.canary_p95_ms))
        if v is not None
    }
    if rollout.session.interrupted.is_set():
        interrupted(rollout)
    if breached:
        abort(rollout, f"the canary's analysis at {step.share} %: {'; '.join(why)}", mark_bad=True)


def decide(rollout: Any, step: Step) -> None:
    """Wait for `deployer promote` or `deployer abort` (auto_promote false)."""
    state: CanaryState = rollout.canary
    if not state.active:
        return
    rollout.stage(step.label)
    ledger, env = rollout.session.ledger, rollout.session.target
    limit = decision_timeout(env.strategy)
    began = time.monotonic()
    rollout.session.notes.append(
        f"canary at {step.share} %: waited for `deployer promote {env.environment}` or "
        f"`deployer abort {env.environment}`"
    )
    while True:
        decision = ledger.canary_decision(rollout.deployment_id, step.share)
        waited = time.monotonic() - began
        if decision == "promote":
            _record(rollout, CanaryStep(step.share, "decision", "promoted", seconds=waited))
            return
        if decision == "abort":
            _record(rollout, CanaryStep(step.share, "decision", "aborted", seconds=waited))
            abort(rollout, f"aborted at {step.share} % by `deployer abort`", mark_bad=False)
        if rollout.session.interrupted.is_set():
            _record(rollout, CanaryStep(step.share, "decision", "interrupted", seconds=waited))
            interrupted(rollout)
        if waited >= limit:
            _record(rollout, CanaryStep(step.share, "decision", "timed out", seconds=waited))
            abort(
                rollout,
                f"no `deployer promote` or `deployer abort` within strategy.decision_timeout "
                f"({limit} s) at {step.share} %",
                mark_bad=False,
            )
        time.sleep(DECISION_POLL_SECONDS)


def flipped(rollout: Any, step: Step) -> None:
    _record(rollout, CanaryStep(100, "flip", "done"))
    rollout.canary.share = 100


def interrupted(rollout: Any) -> None:
    """Ctrl-C before the flip: the canary is aborted (never left half-weighted), and the
    deployment recorded INTERRUPTED."""
    from deployer.engine.lifecycle import _Interrupted

    try:
        abort(rollout, "interrupted by the operator", mark_bad=False)
    except RolloutStop as stop:
        rollout.canary_abort_note = stop.reason
    raise _Interrupted


def abort(rollout: Any, reason: str, *, mark_bad: bool) -> None:
    """Every request back on the stable slots, the new ones stopped; raises RolloutStop."""
    state: CanaryState = rollout.canary
    env = rollout.session.target
    if mark_bad:
        rollout.session.ledger.mark_bad(
            env.environment, rollout.version, deployment_id=rollout.deployment_id, reason=reason
        )
    rollout.stage("abort")
    began = time.monotonic()
    reply = rollout.driver.abort(state.live, state.started)
    rollout.rollback_seconds = (rollout.rollback_seconds or 0.0) + time.monotonic() - began
    failed = sorted(h for h, r in reply.hosts.items() if not r.good)
    for host in state.started:
        outcome = reply.hosts.get(host)
        if outcome is not None and outcome.good:
            rollout.note(host, HostStatus.ROLLED_BACK, "abort", rollout.before.get(host), reason)
        else:
            message = outcome.message if outcome is not None else "no result"
            rollout.note(host, HostStatus.FAILED, "abort", rollout.version, message)
    rollout.flush()
    outcome = "failed" if failed else "aborted"
    tail = f"; the abort FAILED on {', '.join(failed)}" if failed else ""
    _record(rollout, CanaryStep(0, "abort", outcome, seconds=time.monotonic() - began))
    state.share, state.active = 0, False
    raise RolloutStop(
        Status.ROLLED_BACK,
        ExitCode.DEPLOY_FAILED,
        "abort",
        f"{reason}; canary aborted: every request back on the stable release, the new "
        f"slots stopped{tail}",
    )


def _figure(figures: dict[str, dict[str, float | None]], name: str, side: str) -> float | None:
    value = figures.get(name, {}).get(side)
    return None if value is None or value < 0 else value


def _record(rollout: Any, step: CanaryStep) -> None:
    rollout.session.ledger.record_canary_step(rollout.deployment_id, step)
