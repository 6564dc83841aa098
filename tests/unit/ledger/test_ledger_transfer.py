"""Moving a SQLite ledger into PostgreSQL (deployer.ledger.transfer), on a real server:
every table, ids and times kept, into an empty database only, again without effect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deployer.errors import BadRequest
from deployer.exitcodes import ExitCode
from deployer.ledger import (
    CanaryStep,
    HookResult,
    HostResult,
    HostStatus,
    Kind,
    Ledger,
    ServiceResult,
    Status,
)
from deployer.ledger.schema import TABLES
from deployer.ledger.transfer import move, snapshot


def _run(ledger: Ledger, version: str, status: Status, **fields: Any) -> int:
    deployment_id = ledger.begin(
        environment=fields.pop("environment", "prod"),
        kind=fields.pop("kind", Kind.DEPLOY),
        version=version,
        previous_version=fields.pop("previous", None),
        artifact_sha256="ab" * 32,
        user="alice",
        control_host="laptop",
        pid=4242,
    )
    ledger.record_hosts(
        deployment_id,
        [
            HostResult(
                "web1",
                HostStatus.CHANGED,
                "switch",
                None,
                version,
                "",
                1.25,
                (ServiceResult("api", True, True, "ok"),),
            ),
            HostResult(
                "web2", HostStatus.FAILED if status is not Status.SUCCEEDED else HostStatus.OK
            ),
        ],
    )
    if status is not Status.RUNNING:
        ledger.finish(deployment_id, status, deploy_seconds=12.5, error_rate=0.5, **fields)
    return deployment_id


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """A SQLite ledger with a row in every table."""
    path = tmp_path / ".deployer" / "ledger.sqlite3"
    with Ledger(path) as ledger:
        _run(ledger, "v1", Status.SUCCEEDED)
        second = _run(ledger, "v2", Status.SUCCEEDED, previous="v1")
        ledger.record_hook(second, HookResult("before_switch", "web1", True, 0, 2.5, output="ok"))
        ledger.record_canary_step(second, CanaryStep(10, "analysis", "passed", 0.5, 0.25, 12.0))
        ledger.decide_canary(second, 10, "promote", "alice")
        ledger.record_backup(
            environment="prod",
            deployment_id=second,
            host="web1",
            file="/var/backups/a.dump",
            size=2**40,  # more than 32 bits
            sha256="cd" * 32,
            label="v2",
        )
        bad = _run(ledger, "v3", Status.ROLLED_BACK, previous="v2", rollback_seconds=3.0)
        ledger.mark_bad("prod", "v3", deployment_id=bad, reason="health check failed")
        _run(ledger, "v1", Status.SUCCEEDED, kind=Kind.ROLLBACK, previous="v2")
        _run(ledger, "s1", Status.FAILED, environment="staging")
        ledger.record_observation("prod", "web1", "v1", healthy=True)
        ledger.record_observation("prod", "web2", None, healthy=None)
    return path


def test_every_table_is_copied_with_its_ids_and_times(history: Path, postgres: Any) -> None:
    with Ledger(history) as source, postgres.ledger() as target:
        moved = move(source, target)
        assert moved.copied is True
        assert (moved.source, moved.target) == (str(history), postgres.url)
        assert dict(moved.rows) == {
            "deployments": 5,
            "deployment_hosts": 10,
            "deployment_hooks": 1,
            "bad_versions": 1,
            "observations": 2,
            "backups": 1,
            "canary_steps": 1,
            "canary_decisions": 1,
        }
        assert snapshot(target) == snapshot(source)  # row for row, every column
        assert target.history(limit=100) == source.history(limit=100)  # ids, times, hosts, hooks
        for env in ("prod", "staging"):
            assert target.current(env) == source.current(env)
            assert target.good_versions(env) == source.good_versions(env)
            assert target.bad_versions(env) == source.bad_versions(env)
            assert target.observations(env) == source.observations(env)
            assert target.backups(env) == source.backups(env)
        assert target.current("prod") == "v1"
        assert target.bad_versions("prod") == frozenset({"v3"})
        # ids the server assigns from now on follow the copied ones
        assert _run(target, "v4", Status.SUCCEEDED) == 6
        assert (
            target.record_backup(
                environment="prod",
                deployment_id=6,
                host="web1",
                file="b",
                size=1,
                sha256="e",
                label="v4",
            )
            == 2
        )


def test_moving_again_changes_nothing(history: Path, postgres: Any) -> None:
    with Ledger(history) as source, postgres.ledger() as target:
        assert move(source, target).copied is True
        before = snapshot(target)
        again = move(source, target)
        assert again.copied is False
        assert again.rows["deployments"] == 5
        assert snapshot(target) == before


def test_a_target_holding_other_rows_is_refused_and_left_as_it_was(
    history: Path, postgres: Any
) -> None:
    with postgres.ledger() as target:
        _run(target, "other", Status.SUCCEEDED)
        before = snapshot(target)
        with Ledger(history) as source, pytest.raises(BadRequest) as info:
            move(source, target)
        assert info.value.exit_code == ExitCode.BAD_INPUT
        assert "already holds rows (1 deployments, 2 deployment_hosts)" in info.value.message
        assert snapshot(target) == before


def test_a_partly_moved_target_is_refused(history: Path, postgres: Any) -> None:
    """The same ids with one row missing is not the same data."""
    with Ledger(history) as source, postgres.ledger() as target:
        move(source, target)
        postgres.sql("DELETE FROM observations WHERE host = 'web2'")
        with pytest.raises(BadRequest, match="already holds rows"):
            move(source, target)


def test_snapshot_reads_every_table_of_the_schema(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        assert list(snapshot(ledger)) == list(TABLES)
