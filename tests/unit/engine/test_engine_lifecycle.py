"""The lifecycle on an in-memory target: the exact calls it makes, in order, per strategy and
scenario, and what the ledger and the result say afterwards.

Sequences are asserted whole: a step moved (switching before staging everywhere, the unlock
before the last switch, a rollback after the lock is given back) changes them, and the fake
refuses a remote step without the lock or a switch before staging outright.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fake import HOSTS, ApartTarget, C, FakeTarget, Scenario, other_lock, session

from deployer.config.models import Strategy
from deployer.engine import lifecycle
from deployer.engine.lifecycle import deploy
from deployer.engine.results import DeployResult
from deployer.errors import BadRequest, DeployerError
from deployer.exitcodes import ExitCode
from deployer.ledger import HostStatus, Status
from deployer.session import Session
from deployer.targets.base import HostReport, LockInfo

ALL = Strategy(kind="all_at_once")
ROLLING_2 = Strategy(kind="rolling", batch_size=2)  # web1 web2 | web3 web4 | web5
ON_V1 = dict.fromkeys(HOSTS, "v1")


def _deploy(
    tmp_path: Path,
    strategy: Strategy,
    scenario: Scenario | None = None,
    *,
    fuse: bool = True,
    watch: int = 0,
    wait: float = 0.0,
) -> tuple[DeployResult, FakeTarget, Session]:
    s = session(tmp_path, strategy, watch=watch)
    fake = (FakeTarget if fuse else ApartTarget)(s, scenario)
    result = deploy(s, fake, version="v2", wait=wait)
    mine = fake.holder is not None and fake.holder.mine
    assert not mine, "the engine must give its lock back in every case"
    return result, fake, s


def _report(
    host: str,
    status: HostStatus,
    stage: str,
    before: str | None,
    after: str | None,
    message: str = "",
) -> HostReport:
    return HostReport(host, status, stage, before, after, message)


def _changed(*hosts: str, before: str | None = "v1") -> list[HostReport]:
    return [_report(h, HostStatus.CHANGED, "switch", before, "v2") for h in hosts]


def _ledger_hosts(s: Session, deployment_id: int) -> dict[str, tuple[str, str, str | None]]:
    row = s.ledger.get(deployment_id)
    return {h.host: (h.status.value, h.stage, h.version_after) for h in row.hosts}


# --- successful rollouts ------------------------------------------------------------------


def test_all_at_once_fused_is_one_call(tmp_path: Path) -> None:
    """Lock, staging, the switch and the unlock travel in one remote run."""
    result, fake, s = _deploy(tmp_path, ALL)
    assert fake.calls == [C.prepare(), C.stage(lock=True, switch=HOSTS, unlock=True)]
    assert (result.status, result.exit_code, result.stage) == (
        Status.SUCCEEDED,
        ExitCode.OK,
        "done",
    )
    assert list(result.hosts) == _changed(*HOSTS)
    assert result.batches == (HOSTS,)
    assert not result.noop
    row = s.ledger.get(result.deployment_id)
    assert row.status is Status.SUCCEEDED
    assert row.stage == "switch 1/1"  # the last stage reached; the result says "done"
    assert _ledger_hosts(s, result.deployment_id) == {h: ("changed", "switch", "v2") for h in HOSTS}
    assert s.ledger.current("staging") == "v2"


def test_all_at_once_apart_is_a_call_per_step(tmp_path: Path) -> None:
    result, fake, _ = _deploy(tmp_path, ALL, fuse=False)
    assert fake.calls == [
        C.prepare(),
        C.lock("acquire"),
        C.stage(),
        C.activate(HOSTS),
        C.lock("release"),
    ]
    assert result.status is Status.SUCCEEDED


def test_rolling_fused_in_three_batches(tmp_path: Path) -> None:
    """The first batch rides on the staging run; the last batch's run gives the lock back."""
    result, fake, s = _deploy(tmp_path, ROLLING_2)
    assert fake.calls == [
        C.prepare(),
        C.stage(lock=True, switch=("web1", "web2")),
        C.activate(("web3", "web4")),
        C.activate(("web5",), unlock=True),
    ]
    assert result.batches == (("web1", "web2"), ("web3", "web4"), ("web5",))
    assert (result.status, result.exit_code) == (Status.SUCCEEDED, ExitCode.OK)
    assert list(result.hosts) == _changed(*HOSTS)
    assert s.ledger.get(result.deployment_id).stage == "switch 3/3"


def test_rolling_apart_in_three_batches(tmp_path: Path) -> None:
    result, fake, _ = _deploy(tmp_path, ROLLING_2, fuse=False)
    assert fake.calls == [
        C.prepare(),
        C.lock("acquire"),
        C.stage(),
        C.activate(("web1", "web2")),
        C.activate(("web3", "web4")),
        C.activate(("web5",)),
        C.lock("release"),
    ]
    assert result.status is Status.SUCCEEDED


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "apart"])
def test_the_watch_comes_last_and_gives_the_lock_back_when_fused(
    tmp_path: Path, fuse: bool
) -> None:
    result, fake, s = _deploy(tmp_path, ROLLING_2, fuse=fuse, watch=30)
    later = [C.activate(("web3", "web4")), C.activate(("web5",))]
    if fuse:  # the watch's run gives the lock back, not the last batch's
        expected = [C.prepare(), C.stage(lock=True, switch=("web1", "web2")), *later]
        expected += [C.watch(unlock=True)]
    else:
        expected = [C.prepare(), C.lock("acquire"), C.stage(), C.activate(("web1", "web2"))]
        expected += [*later, C.watch(), C.lock("release")]
    assert fake.calls == expected
    assert result.status is Status.SUCCEEDED
    assert s.ledger.get(result.deployment_id).stage == "watch"


def test_a_fleet_already_on_the_version_is_a_noop(tmp_path: Path) -> None:
    result, fake, _ = _deploy(tmp_path, ALL, Scenario(before=dict.fromkeys(HOSTS, "v2")))
    assert fake.calls == [C.prepare(), C.stage(lock=True, switch=HOSTS, unlock=True)]
    assert result.status is Status.SUCCEEDED
    assert result.noop
    assert {r.status for r in result.hosts} == {HostStatus.OK}


# --- failures past the budget: the whole fleet back -------------------------------------


def test_a_failure_past_the_budget_rolls_every_switched_host_back(tmp_path: Path) -> None:
    """web3 fails health in batch 2 with a budget of 0: web1..web4 (web3 included: its switch
    happened) go back to v1 in one run that gives the lock back; web5 was never switched."""
    result, fake, s = _deploy(tmp_path, ROLLING_2, Scenario(fail_health=frozenset({"web3"})))
    back = {h: "v1" for h in ("web1", "web2", "web3", "web4")}
    assert fake.calls == [
        C.prepare(),
        C.stage(lock=True, switch=("web1", "web2")),
        C.activate(("web3", "web4")),
        C.roll_back(back, mark_bad="v2", unlock=True),
    ]
    assert result.status is Status.ROLLED_BACK
    assert result.exit_code is ExitCode.DEPLOY_FAILED
    assert result.stage == "switch"
    assert result.reason.startswith(
        "1 host(s) failed in batch 2/3: web3: failed: GET /healthz: 503"
    )
    assert result.reason.endswith("; rolled back")
    assert list(result.hosts) == [
        _report("web1", HostStatus.ROLLED_BACK, "rollback", "v1", "v1"),
        _report("web2", HostStatus.ROLLED_BACK, "rollback", "v1", "v1"),
        _report("web3", HostStatus.ROLLED_BACK, "rollback", "v1", "v1", "GET /healthz: 503"),
        _report("web4", HostStatus.ROLLED_BACK, "rollback", "v1", "v1"),
    ]
    assert fake.running == {**ON_V1}  # every host back where it was
    row = s.ledger.get(result.deployment_id)
    assert (row.status, row.stage) == (Status.ROLLED_BACK, "switch")
    assert row.rollback_seconds is not None
    assert set(_ledger_hosts(s, result.deployment_id)) == {"web1", "web2", "web3", "web4"}
    assert "v2" in s.ledger.bad_versions("staging")
    assert fake.reasons == [result.reason.removesuffix("; rolled back")]


def test_automatic_rollback_off_leaves_the_hosts_and_says_so(tmp_path: Path) -> None:
    """`rollback.automatic: false`: the failure stops the rollout, nothing is rolled back,
    and the result and the ledger say the hosts were left as they are."""
    s = session(tmp_path, ROLLING_2)
    manual = s.target.rollback.model_copy(update={"automatic": False})
    s = Session(replace(s.target, rollback=manual))
    fake = FakeTarget(s, Scenario(fail_health=frozenset({"web3"})))
    result = deploy(s, fake, version="v2")
    assert [c.method for c in fake.calls if c.method == "roll_back"] == []
    assert result.status is Status.FAILED
    assert result.exit_code is ExitCode.DEPLOY_FAILED
    assert result.reason.endswith("automatic rollback is off: hosts were left as they are")
    assert fake.running["web1"] == "v2"  # switched in batch 1 and left there
    assert s.ledger.get(result.deployment_id).status is Status.FAILED
    assert "v2" not in s.ledger.bad_versions("staging")


def test_a_version_marked_bad_is_refused_before_any_remote_call(tmp_path: Path) -> None:
    _deploy(tmp_path, ROLLING_2, Scenario(fail_health=frozenset({"web1"})))
    s = session(tmp_path, ROLLING_2)
    again = FakeTarget(s)
    with pytest.raises(BadRequest, match="marked bad"):
        deploy(s, again, version="v2")
    assert again.calls == [C.prepare()]


def test_a_failure_past_the_budget_apart_rolls_back_then_unlocks(tmp_path: Path) -> None:
    result, fake, _ = _deploy(
        tmp_path, ROLLING_2, Scenario(fail_health=frozenset({"web1"})), fuse=False
    )
    assert fake.calls == [
        C.prepare(),
        C.lock("acquire"),
        C.stage(),
        C.activate(("web1", "web2")),
        C.roll_back({"web1": "v1", "web2": "v1"}, mark_bad="v2"),
        C.lock("release"),
    ]
    assert result.status is Status.ROLLED_BACK


def test_a_first_deploy_failing_goes_back_to_nothing(tmp_path: Path) -> None:
    """Hosts that ran nothing before are stopped (rolled back to None), not left on v2."""
    scenario = Scenario(before=dict.fromkeys(HOSTS, None), fail_health=frozenset({"web1"}))
    result, fake, s = _deploy(tmp_path, ROLLING_2, scenario)
    assert fake.calls == [
        C.prepare(),
        C.stage(lock=True, switch=("web1", "web2")),
        C.roll_back({"web1": None, "web2": None}, mark_bad="v2", unlock=True),
    ]
    stopped = "no previous release here: stopped, nothing runs on this host"
    back = HostStatus.ROLLED_BACK
    assert list(result.hosts) == [
        _report("web1", back, "rollback", None, None, f"GET /healthz: 503; {stopped}"),
        _report("web2", back, "rollback", None, None, stopped),
    ]
    assert result.status is Status.ROLLED_BACK
    assert s.ledger.current("staging") is None


def test_an_unreachable_host_in_a_switch_does_not_mark_the_version_bad(tmp_path: Path) -> None:
    """A host that went away says nothing about the version: roll back, but allow a re-run."""
    scenario = Scenario(unreachable_in_switch=frozenset({"web3"}))
    result, fake, s = _deploy(tmp_path, ROLLING_2, scenario)
    back = {h: "v1" for h in ("web1", "web2", "web3", "web4")}
    assert fake.calls[-1] == C.roll_back(back, mark_bad=None, unlock=True)
    assert result.status is Status.ROLLED_BACK
    assert "v2" not in s.ledger.bad_versions("staging")


def test_a_watch_breach_rolls_the_fleet_back(tmp_path: Path) -> None:
    scenario = Scenario(watch_breach="error rate 12.5% > 5%")
    result, fake, s = _deploy(tmp_path, ROLLING_2, scenario, watch=30)
    assert fake.calls == [
        C.prepare(),
        C.stage(lock=True, switch=("web1", "web2")),
        C.activate(("web3", "web4")),
        C.activate(("web5",)),
        C.watch(unlock=True),
        C.roll_back(ON_V1, mark_bad="v2", unlock=True),
    ]
    assert (result.status, result.stage) == (Status.ROLLED_BACK, "watch")
    assert "Prometheus on web1: error rate 12.5% > 5%" in result.reason
    row = s.ledger.get(result.deployment_id)
    assert (row.status, row.stage, row.error_rate) == (Status.ROLLED_BACK, "watch", 12.5)
    assert "v2" in s.ledger.bad_versions("staging")


def test_a_failed_rollback_is_reported_per_host(tmp_path: Path) -> None:
    scenario = Scenario(fail_health=frozenset({"web1"}), rollback_fail=frozenset({"web2"}))
    result, _, _ = _deploy(tmp_path, ROLLING_2, scenario)
    assert result.status is Status.ROLLED_BACK
    assert result.reason.endswith("; rolled back; rollback FAILED on web2")
    assert result.hosts[1] == _report(
        "web2", HostStatus.FAILED, "rollback", "v1", "v1", "old release failed its health check"
    )


# --- failures within the budget ---------------------------------------------------------


def test_a_failure_within_the_budget_in_the_last_batch(tmp_path: Path) -> None:
    """Only the failed host goes back, in the last run, which then gives the lock back; the
    deployment SUCCEEDED and the version is not marked bad."""
    strategy = Strategy(kind="rolling", batch_size=2, failure_budget=1)
    result, fake, s = _deploy(tmp_path, strategy, Scenario(fail_health=frozenset({"web5"})))
    assert fake.calls == [
        C.prepare(),
        C.stage(lock=True, switch=("web1", "web2")),
        C.activate(("web3", "web4")),
        C.activate(("web5",), unlock=True),  # web5 failed: the run kept the lock
        C.roll_back({"web5": "v1"}, unlock=True),
    ]
    assert (result.status, result.exit_code) == (Status.SUCCEEDED, ExitCode.OK)
    assert list(result.hosts) == [
        *_changed("web1", "web2", "web3", "web4"),
        _report("web5", HostStatus.ROLLED_BACK, "rollback", "v1", "v1", "GET /healthz: 503"),
    ]
    assert s.ledger.bad_versions("staging") == frozenset()
    assert s.ledger.get(result.deployment_id).status is Status.SUCCEEDED


def test_a_failure_within_the_budget_apart(tmp_path: Path) -> None:
    strategy = Strategy(kind="rolling", batch_size=2, failure_budget=1)
    result, fake, _ = _deploy(
        tmp_path, strategy, Scenario(fail_health=frozenset({"web3"})), fuse=False
    )
    assert fake.calls == [
        C.prepare(),
        C.lock("acquire"),
        C.stage(),
        C.activate(("web1", "web2")),
        C.activate(("web3", "web4")),
        C.activate(("web5",)),
        C.roll_back({"web3": "v1"}),
        C.lock("release"),
    ]
    assert result.status is Status.SUCCEEDED
    assert result.hosts[2] == _report(
        "web3", HostStatus.ROLLED_BACK, "rollback", "v1", "v1", "GET /healthz: 503"
    )


def test_a_failure_within_the_budget_in_an_earlier_batch_is_rolled_back_under_the_lock(
    tmp_path: Path,
) -> None:
    """web3 fails in batch 2 within a budget of 1; batch 3 (web5) then succeeds and its run,
    which the plan fused the unlock into, gives the lock back. web3 must still go back to v1
    under the lock (the fake refuses a roll_back while no lock is held)."""
    strategy = Strategy(kind="rolling", batch_size=2, failure_budget=1)
    result, fake, _ = _deploy(tmp_path, strategy, Scenario(fail_health=frozenset({"web3"})))
    rollbacks = [c for c in fake.calls if c.method == "roll_back"]
    assert [c.to for c in rollbacks] == [(("web3", "v1"),)]
    assert fake.running["web3"] == "v1"
    assert result.status is Status.SUCCEEDED


# --- failures before anything switched --------------------------------------------------


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "apart"])
def test_a_preflight_failure_switches_nothing(tmp_path: Path, fuse: bool) -> None:
    """The stage named is the typed field of the host's reply, not a parsed task name."""
    scenario = Scenario(preflight={"web2": ("upload", "no space left on device")})
    result, fake, s = _deploy(tmp_path, ROLLING_2, scenario, fuse=fuse)
    staging = C.stage(lock=True, switch=("web1", "web2")) if fuse else C.stage()
    locking = [] if fuse else [C.lock("acquire")]
    assert fake.calls == [C.prepare(), *locking, staging, C.lock("release")]
    assert (result.status, result.exit_code, result.stage) == (
        Status.FAILED,
        ExitCode.DEPLOY_FAILED,
        "upload",
    )
    assert result.reason == "upload failed, nothing was switched: web2: no space left on device"
    assert list(result.hosts) == [
        _report("web2", HostStatus.FAILED, "upload", "v1", "v1", "no space left on device")
    ]
    assert fake.running == ON_V1
    row = s.ledger.get(result.deployment_id)
    assert (row.status, row.stage) == (Status.FAILED, "upload")
    assert s.ledger.bad_versions("staging") == frozenset()


def test_an_unreachable_host_in_preflight_changes_nothing(tmp_path: Path) -> None:
    scenario = Scenario(unreachable_in_stage=frozenset({"web4"}))
    result, fake, s = _deploy(tmp_path, ROLLING_2, scenario)
    assert fake.calls == [
        C.prepare(),
        C.stage(lock=True, switch=("web1", "web2")),
        C.lock("release"),
    ]
    assert (result.status, result.exit_code, result.stage) == (
        Status.FAILED,
        ExitCode.UNREACHABLE,
        "preflight",
    )
    assert result.reason == "unreachable in preflight: web4; nothing was changed"
    assert list(result.hosts) == [
        _report("web4", HostStatus.UNREACHABLE, "preflight", None, None, "ssh: timed out")
    ]
    assert s.ledger.get(result.deployment_id).stage == "preflight"


def test_unreachable_hosts_are_retried_with_backoff_before_anything_is_switched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("deployer.engine.lifecycle.time.sleep", slept.append)
    strategy = Strategy(kind="rolling", batch_size=2, retries=3, retry_delay=1.5)
    scenario = Scenario(unreachable_in_stage=frozenset({"web4"}), reachable_after=2)
    result, fake, _ = _deploy(tmp_path, strategy, scenario)
    assert (result.status, result.exit_code) == (Status.SUCCEEDED, ExitCode.OK), result.reason
    stages = [c for c in fake.calls if c.method == "stage"]
    assert len(stages) == 3  # twice web4 was away, the third preparation got through
    assert slept == [1.5, 3.0]
    assert result.notes == (
        "unreachable in preflight: web4; tried again after 1.5s (retry 1 of 3)",
        "unreachable in preflight: web4; tried again after 3s (retry 2 of 3)",
    )
    assert fake.running == dict.fromkeys(HOSTS, "v2")


def test_retries_give_up_with_exit_4_and_a_failed_host_is_never_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("deployer.engine.lifecycle.time.sleep", lambda seconds: None)
    strategy = Strategy(kind="rolling", batch_size=2, retries=2)
    away = Scenario(unreachable_in_stage=frozenset({"web4"}))
    result, fake, _ = _deploy(tmp_path, strategy, away)
    assert (result.exit_code, result.stage) == (ExitCode.UNREACHABLE, "preflight")
    assert len([c for c in fake.calls if c.method == "stage"]) == 3
    assert fake.running == ON_V1
    broken = Scenario(
        unreachable_in_stage=frozenset({"web4"}), preflight={"web2": ("upload", "disk full")}
    )
    (tmp_path / "2").mkdir()
    result, fake, _ = _deploy(tmp_path / "2", strategy, broken)
    assert result.exit_code == ExitCode.UNREACHABLE  # the unreachable host is reported first
    assert len([c for c in fake.calls if c.method == "stage"]) == 1


# --- the lock -----------------------------------------------------------------------------


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "apart"])
def test_a_lock_held_by_someone_else_stops_before_staging(tmp_path: Path, fuse: bool) -> None:
    result, fake, s = _deploy(tmp_path, ROLLING_2, Scenario(held_by=other_lock()), fuse=fuse)
    attempt = C.stage(lock=True, switch=("web1", "web2")) if fuse else C.lock("acquire")
    assert fake.calls == [C.prepare(), attempt]  # nothing past the lock, no release of theirs
    assert fake.staged == set()
    assert (result.status, result.exit_code, result.stage) == (
        Status.FAILED,
        ExitCode.LOCKED,
        "lock",
    )
    assert "locked by alice@laptop (pid 4242)" in result.reason
    assert result.hosts == ()
    assert (s.ledger.get(result.deployment_id).stage) == "lock"


@pytest.fixture
def no_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "LOCK_POLL_SECONDS", 0.0)


@pytest.mark.usefixtures("no_poll")
@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "apart"])
def test_waiting_for_a_lock_that_frees(tmp_path: Path, fuse: bool) -> None:
    scenario = Scenario(held_by=other_lock(), frees_after=2)
    result, fake, _ = _deploy(tmp_path, ALL, scenario, fuse=fuse, wait=60)
    if fuse:
        attempt = C.stage(lock=True, switch=HOSTS, unlock=True)
        assert fake.calls == [C.prepare(), attempt, attempt, attempt]
    else:
        assert fake.calls == [
            C.prepare(),
            C.lock("acquire"),
            C.lock("acquire"),
            C.lock("acquire"),
            C.stage(),
            C.activate(HOSTS),
            C.lock("release"),
        ]
    assert result.status is Status.SUCCEEDED


@pytest.mark.usefixtures("no_poll")
def test_waiting_stops_at_a_stale_lock(tmp_path: Path) -> None:
    """A stale lock will not free itself: say so at once, however long --wait is."""
    scenario = Scenario(held_by=other_lock(stale=True))
    result, fake, _ = _deploy(tmp_path, ALL, scenario, wait=60)
    assert fake.calls == [C.prepare(), C.stage(lock=True, switch=HOSTS, unlock=True)]
    assert result.exit_code is ExitCode.LOCKED
    assert "STALE" in result.reason


# --- the operator's interrupt ------------------------------------------------------------


def test_an_interrupt_stops_the_rollout_and_gives_the_lock_back(tmp_path: Path) -> None:
    result, fake, s = _deploy(tmp_path, ROLLING_2, Scenario(interrupt=("activate", 1)))
    assert fake.calls == [
        C.prepare(),
        C.stage(lock=True, switch=("web1", "web2")),
        C.activate(("web3", "web4")),
        C.lock("release"),
    ]
    assert (result.status, result.exit_code, result.stage) == (
        Status.INTERRUPTED,
        ExitCode.DEPLOY_FAILED,
        "interrupted",
    )
    assert list(result.hosts) == _changed("web1", "web2", "web3", "web4")  # left where they are
    row = s.ledger.get(result.deployment_id)
    assert (row.status, row.stage) == (Status.INTERRUPTED, "switch 2/3")


class _FlakyRelease(ApartTarget):
    """The first lock release fails (the lock host's channel dropped)."""

    failed = False

    def lock(self, action: str, token: str = "", deployment: int | None = None) -> LockInfo:
        if action == "release" and not self.failed:
            self.failed = True
            self._record(C.lock(action))
            raise DeployerError("lock release on lab1 failed: connection reset")
        return super().lock(action, token, deployment)


def test_a_failed_lock_release_after_a_good_rollout_keeps_it_succeeded(tmp_path: Path) -> None:
    """The hosts run v2 and the ledger must say so: the release is tried again at the end
    and its failure is reported in the reason, not turned into a failed deployment."""
    s = session(tmp_path, ALL)
    fake = _FlakyRelease(s, Scenario())
    result = deploy(s, fake, version="v2")
    assert [c for c in fake.calls if c.method == "lock"] == [
        C.lock("acquire"),
        C.lock("release"),
        C.lock("release"),
    ]
    assert (result.status, result.exit_code) == (Status.SUCCEEDED, ExitCode.OK)
    assert s.ledger.current(s.target.environment) == "v2"
