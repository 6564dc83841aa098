"""Deploy hooks in the lifecycle: before_switch after every host is staged and before any
switch (its failure switches nothing), the after_* hooks by outcome, in the release each
host runs then; every hook's result kept in the ledger with its output masked."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fake import HOSTS, C, FakeTarget, Scenario, other_lock, session

from deployer.config.accessories import ResolvedHook
from deployer.config.models import Strategy
from deployer.engine.lifecycle import deploy
from deployer.exitcodes import ExitCode
from deployer.ledger import Status
from deployer.secrets import Redactor

ALL = Strategy(kind="all_at_once")
ROLLING_2 = Strategy(kind="rolling", batch_size=2)


def _hook(name: str) -> ResolvedHook:
    return ResolvedHook(name, ("bin/x",), None, "", "web2", 60, ())


def _session(tmp_path: Path, strategy: Strategy, *names: str):  # type: ignore[no-untyped-def]
    s = session(tmp_path, strategy, hooks={n: _hook(n) for n in names})
    s.redact = Redactor(("s3cret-value",))  # a secret the hook's output happens to print
    return s


def test_a_failing_before_switch_stops_the_deploy_before_any_switch(tmp_path: Path) -> None:
    s = _session(tmp_path, ROLLING_2, "before_switch", "after_failure", "after_rollback")
    fake = FakeTarget(s, Scenario(hooks_fail=frozenset({"before_switch"})))
    result = deploy(s, fake, version="v2")
    assert (result.status, result.exit_code, result.stage) == (
        Status.FAILED,
        ExitCode.DEPLOY_FAILED,
        "hook",
    )
    # staged everywhere, the first batch never switched, no rollback needed
    assert fake.calls[:2] == [C.prepare(), C.stage(lock=True, switch=("web1", "web2"))]
    assert not any(c.method in {"activate", "roll_back"} for c in fake.calls)
    assert fake.running == dict.fromkeys(HOSTS, "v1")
    assert "hook before_switch failed (exit 1): boom" in result.reason
    # only after_failure follows a deploy that failed without a rollback, in the old release
    assert fake.hooks_ran == [("before_switch", "v2"), ("after_failure", "v1")]
    row = s.ledger.get(result.deployment_id)
    assert row.stage == "hook"
    (before, after) = row.hooks
    assert (before.name, before.host, before.ok, before.exit_code) == (
        "before_switch",
        "web2",
        False,
        1,
    )
    assert "s3cret-value" not in before.output
    assert "********" in before.output
    assert "boom" in before.output
    assert after.name == "after_failure"
    assert [h.name for h in result.hooks] == ["before_switch", "after_failure"]


def test_after_switch_runs_once_the_fleet_is_on_the_new_version(tmp_path: Path) -> None:
    s = _session(tmp_path, ALL, "before_switch", "after_switch", "after_failure")
    fake = FakeTarget(s)
    result = deploy(s, fake, version="v2")
    assert result.status is Status.SUCCEEDED
    assert fake.hooks_ran == [("before_switch", "v2"), ("after_switch", "v2")]
    assert fake.calls[-1] == C.run_hook("web2", "after_switch")
    assert [h.ok for h in s.ledger.get(result.deployment_id).hooks] == [True, True]


def test_a_failing_after_switch_is_reported_and_changes_nothing(tmp_path: Path) -> None:
    s = _session(tmp_path, ALL, "after_switch")
    fake = FakeTarget(s, Scenario(hooks_fail=frozenset({"after_switch"})))
    result = deploy(s, fake, version="v2")
    assert (result.status, result.exit_code) == (Status.SUCCEEDED, ExitCode.OK)
    assert "hook after_switch failed on web2" in result.reason
    assert fake.running == dict.fromkeys(HOSTS, "v2")
    assert not any(c.method == "roll_back" for c in fake.calls)


def test_after_rollback_and_after_failure_follow_a_rollback_in_the_old_release(
    tmp_path: Path,
) -> None:
    s = _session(tmp_path, ALL, "after_switch", "after_rollback", "after_failure")
    fake = FakeTarget(s, Scenario(fail_health=frozenset({"web3"})))
    result = deploy(s, fake, version="v2")
    assert result.status is Status.ROLLED_BACK
    assert fake.hooks_ran == [("after_rollback", "v1"), ("after_failure", "v1")]


def test_no_hook_runs_for_a_deploy_that_changed_nothing(tmp_path: Path) -> None:
    s = _session(tmp_path, ALL, "after_switch")
    fake = FakeTarget(s, Scenario(before=dict.fromkeys(HOSTS, "v2")))
    result = deploy(s, fake, version="v2")
    assert result.noop
    assert fake.hooks_ran == []


def test_hooks_not_configured_cost_no_call(tmp_path: Path) -> None:
    s = replace(_session(tmp_path, ALL), redact=Redactor(()))
    fake = FakeTarget(s)
    deploy(s, fake, version="v2")
    assert not any(c.method == "run_hook" for c in fake.calls)


def test_a_dump_before_the_migrations_is_recorded_with_its_deploy(tmp_path: Path) -> None:
    s = _session(tmp_path, ALL, "before_switch")
    fake = FakeTarget(s, Scenario(dump=True, hooks_fail=frozenset({"before_switch"})))
    result = deploy(s, fake, version="v2")
    (backup,) = s.ledger.backups("staging")
    assert (backup.deployment_id, backup.host, backup.label) == (result.deployment_id, "web2", "v2")
    assert (backup.file, backup.bytes) == ("20261204T014500Z-v2.dump", 4096)


def test_a_deploy_that_reached_no_host_runs_no_after_failure(tmp_path: Path) -> None:
    """Refused by someone else's lock: nothing of this deploy ran, so its failure hook must
    not run (or be reported as not run) while the other deployment holds the environment."""
    s = _session(tmp_path, ALL, "after_failure")
    fake = FakeTarget(s, Scenario(held_by=other_lock()))
    result = deploy(s, fake, version="v2")
    assert result.exit_code == ExitCode.LOCKED
    assert fake.hooks_ran == []
    assert "hook" not in result.reason
