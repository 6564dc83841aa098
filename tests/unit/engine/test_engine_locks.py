"""The operator's side of the lock (`deployer lock status|release`) on the in-memory target:
a live lock is broken only with --force, only by the token that was read, and a lock taken
again in between is left alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fake import C, FakeTarget, Scenario, other_lock, session

from deployer.config.models import Strategy
from deployer.engine import locks
from deployer.errors import BadRequest, DeployerError, LockedError
from deployer.targets.base import LockInfo


def _fake(tmp_path: Path, scenario: Scenario) -> FakeTarget:
    return FakeTarget(session(tmp_path, Strategy()), scenario)


def test_status_reads_the_lock(tmp_path: Path) -> None:
    fake = _fake(tmp_path, Scenario(held_by=other_lock()))
    assert locks.status(fake) == other_lock()
    assert fake.calls == [C.lock("status")]


def test_releasing_a_free_lock_breaks_nothing(tmp_path: Path) -> None:
    fake = _fake(tmp_path, Scenario())
    assert not locks.release(fake).held
    assert fake.calls == [C.lock("status")]


def test_a_live_lock_is_not_broken_without_force(tmp_path: Path) -> None:
    fake = _fake(tmp_path, Scenario(held_by=other_lock()))
    with pytest.raises(BadRequest, match=r"it is not stale\. Use --force"):
        locks.release(fake)
    assert fake.calls == [C.lock("status")]
    assert fake.holder == other_lock()


@pytest.mark.parametrize(
    ("held", "force"),
    [(other_lock(stale=True), False), (other_lock(), True)],
    ids=["stale", "forced"],
)
def test_breaking_names_the_lock_that_was_read(tmp_path: Path, held: LockInfo, force: bool) -> None:
    fake = _fake(tmp_path, Scenario(held_by=held))
    assert locks.release(fake, force=force) == held  # the lock as it was
    assert fake.calls == [C.lock("status"), C.lock("break")]
    assert fake.holder is None


def test_a_lock_without_a_token_is_never_broken(tmp_path: Path) -> None:
    fake = _fake(tmp_path, Scenario(held_by=other_lock(stale=True, token="")))
    with pytest.raises(DeployerError, match="reported no token: not breaking it"):
        locks.release(fake)
    assert fake.calls == [C.lock("status")]


def test_a_lock_taken_again_after_the_read_is_left_alone(tmp_path: Path) -> None:
    theirs = other_lock(token="bobs-token")
    again = replace(theirs, holder={**theirs.holder, "user": "bob"})
    fake = _fake(tmp_path, Scenario(held_by=other_lock(stale=True), retaken_by=again))
    with pytest.raises(LockedError) as caught:
        locks.release(fake)
    assert caught.value.message == (
        "staging: the lock was taken again after it was read and was left alone; it is now "
        + again.describe()
    )
    assert fake.calls == [C.lock("status"), C.lock("break")]
    assert fake.holder == again
