"""Release ledger: real SQLite files under tmp_path and real PostgreSQL databases (the
tests' own server), real processes, no mocks. What holds for one engine holds for both."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest

from deployer.ledger import (
    SCHEMA_VERSION,
    Deployment,
    HostResult,
    HostStatus,
    Kind,
    Ledger,
    LedgerError,
    Postgres,
    Status,
    pid_is_alive,
)

Where = Path | Postgres

CANARY = "s3cr3t-CANARY-7f1d9a"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "project" / ".deployer" / "ledger.sqlite3"


@pytest.fixture(params=["sqlite", "postgres"])
def where(request: pytest.FixtureRequest, db_path: Path) -> Where:
    """A new ledger of each engine: a file that does not exist yet, an empty database."""
    if request.param == "sqlite":
        return db_path
    return request.getfixturevalue("postgres").where  # type: ignore[no-any-return]


@pytest.fixture
def ledger(where: Where) -> Iterator[Ledger]:
    with Ledger(where) as opened:
        yield opened


def stored(where: Where, sql: str) -> list[tuple[object, ...]]:
    """Rows read past the ledger, straight from its database."""
    if isinstance(where, Postgres):
        import psycopg

        with psycopg.connect(where.url, password=where.password) as conn:
            return conn.execute(sql).fetchall()  # type: ignore[arg-type]
    with sqlite3.connect(where) as conn:
        return conn.execute(sql).fetchall()


def start(
    ledger: Ledger,
    environment: str,
    version: str,
    *,
    kind: Kind = Kind.DEPLOY,
    previous: str | None = None,
    control_host: str = "ctl-1",
    pid: int = 4242,
) -> int:
    return ledger.begin(
        environment=environment,
        kind=kind,
        version=version,
        previous_version=previous,
        artifact_sha256="ab" * 32,
        user="alice",
        control_host=control_host,
        pid=pid,
    )


def run(
    ledger: Ledger,
    environment: str,
    version: str,
    status: Status,
    *,
    kind: Kind = Kind.DEPLOY,
    previous: str | None = None,
) -> Deployment:
    deployment_id = start(ledger, environment, version, kind=kind, previous=previous)
    return ledger.finish(deployment_id, status, reason="" if status is Status.SUCCEEDED else "x")


def test_lifecycle_begin_record_hosts_finish(ledger: Ledger) -> None:
    deployment_id = start(ledger, "prod", "1.2.0", previous="1.1.0")
    assert [d.id for d in ledger.running("prod")] == [deployment_id]
    began = ledger.get(deployment_id)
    assert began.status is Status.RUNNING
    assert began.ended_at is None

    ledger.set_stage(deployment_id, "stage")
    ledger.record_hosts(
        deployment_id,
        [
            HostResult("web2", HostStatus.FAILED, "stage", "1.1.0", None, "disk full", 1.5),
            HostResult("web1", HostStatus.CHANGED, "stage", "1.1.0", "1.2.0", "", 2.0),
        ],
    )
    # Upsert: a retry of web2 overwrites its row instead of adding a second one.
    ledger.record_hosts(
        deployment_id,
        [HostResult("web2", HostStatus.CHANGED, "switch", "1.1.0", "1.2.0", "retried", 3.25)],
    )
    ledger.set_stage(deployment_id, "health")
    finished = ledger.finish(deployment_id, Status.SUCCEEDED, deploy_seconds=12.5)

    assert finished == ledger.get(deployment_id)
    assert finished.environment == "prod"
    assert finished.kind is Kind.DEPLOY
    assert (finished.version, finished.previous_version) == ("1.2.0", "1.1.0")
    assert finished.artifact_sha256 == "ab" * 32
    assert (finished.user, finished.control_host, finished.pid) == ("alice", "ctl-1", 4242)
    assert finished.status is Status.SUCCEEDED
    assert finished.stage == "health"
    assert finished.reason == ""
    assert finished.noop is False
    assert finished.deploy_seconds == 12.5
    assert finished.rollback_seconds is None
    assert finished.started_at.tzinfo is not None
    assert finished.started_at.utcoffset() == UTC.utcoffset(None)
    assert finished.ended_at is not None
    assert finished.ended_at >= finished.started_at
    assert finished.hosts == (
        HostResult("web1", HostStatus.CHANGED, "stage", "1.1.0", "1.2.0", "", 2.0),
        HostResult("web2", HostStatus.CHANGED, "switch", "1.1.0", "1.2.0", "retried", 3.25),
    )
    assert finished.failing_hosts == ()
    assert ledger.running("prod") == []


def test_failing_hosts_lists_failed_unreachable_and_unknown(ledger: Ledger) -> None:
    deployment_id = start(ledger, "prod", "2.0")
    ledger.record_hosts(deployment_id, [HostResult(f"h-{s.value}", s) for s in HostStatus])
    finished = ledger.finish(
        deployment_id, Status.ROLLED_BACK, reason="health failed", rollback_seconds=4.0
    )
    assert finished.failing_hosts == ("h-failed", "h-unknown", "h-unreachable")
    assert finished.reason == "health failed"
    assert finished.rollback_seconds == 4.0


def test_history_is_newest_first_and_filters_by_environment(ledger: Ledger) -> None:
    ids = [
        run(ledger, env, f"v{i}", Status.SUCCEEDED).id
        for i, env in enumerate(["prod", "staging", "prod", "staging", "prod"])
    ]
    assert [d.id for d in ledger.history()] == ids[::-1]
    prod = ledger.history("prod")
    assert [d.id for d in prod] == [ids[4], ids[2], ids[0]]
    assert {d.environment for d in prod} == {"prod"}
    assert [d.id for d in ledger.history("staging", limit=1)] == [ids[3]]
    assert [d.id for d in ledger.history(limit=2)] == [ids[4], ids[3]]
    assert ledger.history("nowhere") == []


def test_good_versions_newest_success_first_distinct_and_without_bad(ledger: Ledger) -> None:
    run(ledger, "prod", "v1", Status.SUCCEEDED)
    run(ledger, "prod", "v2", Status.SUCCEEDED)
    run(ledger, "prod", "v3", Status.FAILED)
    run(ledger, "prod", "v5", Status.ROLLED_BACK, previous="v2")
    run(ledger, "prod", "v1", Status.SUCCEEDED, kind=Kind.ROLLBACK)
    run(ledger, "prod", "v4", Status.SUCCEEDED)
    run(ledger, "staging", "v9", Status.SUCCEEDED)
    assert ledger.good_versions("prod") == ["v4", "v1", "v2"]

    ledger.mark_bad("prod", "v4", deployment_id=None, reason="memory leak")
    assert ledger.bad_versions("prod") == frozenset({"v4"})
    assert ledger.bad_versions("staging") == frozenset()
    assert ledger.good_versions("prod") == ["v1", "v2"]
    assert ledger.last_good("prod") == "v1"
    assert ledger.last_good("prod", exclude="v1") == "v2"

    ledger.mark_bad("prod", "v2", deployment_id=None, reason="cve")
    assert ledger.last_good("prod", exclude="v1") is None
    assert ledger.good_versions("staging") == ["v9"]
    assert ledger.last_good("nowhere") is None


def test_mark_bad_is_idempotent_and_keeps_first_marking(ledger: Ledger, where: Where) -> None:
    failed = run(ledger, "prod", "v3", Status.FAILED)
    ledger.mark_bad("prod", "v3", deployment_id=failed.id, reason="first")
    ledger.mark_bad("prod", "v3", deployment_id=None, reason="second")
    assert ledger.bad_versions("prod") == frozenset({"v3"})
    rows = stored(where, "SELECT deployment_id, reason FROM bad_versions")
    assert rows == [(failed.id, "first")]
    with pytest.raises(LedgerError):
        ledger.mark_bad("prod", "v4", deployment_id=999_999, reason="no such deployment")


def test_current_follows_successes_and_rollbacks(ledger: Ledger) -> None:
    assert ledger.current("prod") is None
    run(ledger, "prod", "v1", Status.SUCCEEDED)
    assert ledger.current("prod") == "v1"
    run(ledger, "prod", "v2", Status.ROLLED_BACK, previous="v1")
    assert ledger.current("prod") == "v1"
    run(ledger, "prod", "v3", Status.FAILED, previous="v1")
    assert ledger.current("prod") == "v1"
    run(ledger, "prod", "v3", Status.SUCCEEDED, previous="v1")
    assert ledger.current("prod") == "v3"
    run(ledger, "prod", "v4", Status.INTERRUPTED, previous="v3")
    start(ledger, "prod", "v5", previous="v3")  # still running
    assert ledger.current("prod") == "v3"
    run(ledger, "prod", "v1", Status.SUCCEEDED, kind=Kind.ROLLBACK, previous="v3")
    assert ledger.current("prod") == "v1"
    assert ledger.current("staging") is None


def test_finish_refuses_finished_rows_and_running_status(ledger: Ledger) -> None:
    deployment_id = start(ledger, "prod", "v1")
    with pytest.raises(LedgerError):
        ledger.finish(deployment_id, Status.RUNNING)
    assert ledger.get(deployment_id).status is Status.RUNNING

    ledger.finish(deployment_id, Status.FAILED, reason="health check failed")
    with pytest.raises(LedgerError, match="already FAILED"):
        ledger.finish(deployment_id, Status.SUCCEEDED)
    with pytest.raises(LedgerError):
        ledger.set_stage(deployment_id, "switch")
    after = ledger.get(deployment_id)
    assert (after.status, after.reason, after.stage) == (Status.FAILED, "health check failed", "")

    with pytest.raises(LedgerError):
        ledger.finish(999_999, Status.SUCCEEDED)
    with pytest.raises(LedgerError):
        ledger.get(999_999)


def test_discard_takes_back_only_a_running_row_that_recorded_nothing(ledger: Ledger) -> None:
    kept = run(ledger, "prod", "v1", Status.SUCCEEDED)
    untouched = start(ledger, "prod", "v1", kind=Kind.ROLLBACK, previous="v2")
    ledger.discard(untouched)
    assert [d.id for d in ledger.history("prod")] == [kept.id]
    with pytest.raises(LedgerError):
        ledger.get(untouched)

    touched = start(ledger, "prod", "v1", kind=Kind.ROLLBACK)
    ledger.record_hosts(touched, [HostResult("web1", HostStatus.CHANGED)])
    with pytest.raises(LedgerError, match="has a record"):
        ledger.discard(touched)
    with pytest.raises(LedgerError, match="has a record"):
        ledger.discard(kept.id)  # finished: history
    with pytest.raises(LedgerError):
        ledger.discard(999_999)
    assert {d.id for d in ledger.history("prod")} == {kept.id, touched}


def test_foreign_keys_reject_hosts_of_unknown_deployment(ledger: Ledger) -> None:
    with pytest.raises(LedgerError):
        ledger.record_hosts(999_999, [HostResult("web1", HostStatus.OK)])


def _write_deployments(where: Where, environment: str, count: int, barrier: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    with Ledger(where) as ledger:
        for i in range(count):
            deployment_id = start(ledger, environment, f"{environment}-{i}", pid=os.getpid())
            ledger.set_stage(deployment_id, "switch")
            ledger.record_hosts(deployment_id, [HostResult("web1", HostStatus.CHANGED)])
            ledger.finish(deployment_id, Status.SUCCEEDED, deploy_seconds=0.1)


def test_concurrent_writers_from_two_processes_lose_nothing(where: Where) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    # Both processes also race to create the (not yet existing) ledger and its schema.
    procs = [
        ctx.Process(target=_write_deployments, args=(where, env, 50, barrier))
        for env in ("prod", "staging")
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0, 0]

    with Ledger(where) as ledger:
        rows = ledger.history(limit=1000)
        assert len(rows) == 100
        assert len({d.id for d in rows}) == 100
        for env in ("prod", "staging"):
            mine = [d for d in rows if d.environment == env]
            assert sorted(d.version for d in mine) == sorted(f"{env}-{i}" for i in range(50))
            assert all(d.status is Status.SUCCEEDED and d.stage == "switch" for d in mine)
            assert all(len(d.hosts) == 1 for d in mine)


def test_reconcile_orphans_interrupts_dead_pids_only(ledger: Ledger) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead_pid = child.pid
    assert not pid_is_alive(dead_pid)
    assert pid_is_alive(os.getpid())

    dead = start(ledger, "prod", "v2", pid=dead_pid)
    alive = start(ledger, "staging", "v2", pid=os.getpid())
    elsewhere = start(ledger, "qa", "v2", pid=dead_pid, control_host="ctl-2")
    done = start(ledger, "dev", "v2", pid=dead_pid)
    ledger.finish(done, Status.SUCCEEDED)

    assert ledger.reconcile_orphans("ctl-1", pid_is_alive) == [dead]
    orphan = ledger.get(dead)
    assert orphan.status is Status.INTERRUPTED
    assert orphan.reason == f"control process ended without recording a result (pid {dead_pid})"
    assert orphan.ended_at is not None
    assert ledger.get(alive).status is Status.RUNNING
    assert ledger.get(elsewhere).status is Status.RUNNING
    assert ledger.get(done).status is Status.SUCCEEDED
    assert ledger.running("prod") == []

    assert ledger.reconcile_orphans("ctl-1", pid_is_alive) == []
    with pytest.raises(LedgerError):
        ledger.finish(dead, Status.SUCCEEDED)  # a killed run never turns into a success


def test_reconcile_orphans_lets_a_racing_finish_win(ledger: Ledger, where: Where) -> None:
    deployment_id = start(ledger, "prod", "v2", pid=999_999)

    def finishes_while_probed(pid: int) -> bool:
        # The deploy process records its result between our read and our write.
        with Ledger(where) as other:
            other.finish(deployment_id, Status.SUCCEEDED)
        return False

    assert ledger.reconcile_orphans("ctl-1", finishes_while_probed) == []
    assert ledger.get(deployment_id).status is Status.SUCCEEDED


def _populate(ledger: Ledger, secret: str) -> None:
    deployment_id = ledger.begin(
        environment="prod",
        kind=Kind.DEPLOY,
        version="v1",
        previous_version=None,
        artifact_sha256=None,
        user=f"alice token={secret}",
        control_host=f"ctl {secret}",
        pid=1,
    )
    ledger.set_stage(deployment_id, f"stage {secret}")
    ledger.record_hosts(
        deployment_id,
        [HostResult("web1", HostStatus.FAILED, f"switch {secret}", None, None, f"err {secret}")],
    )
    ledger.finish(deployment_id, Status.FAILED, reason=f"password={secret} rejected")
    ledger.mark_bad("prod", "v1", deployment_id=deployment_id, reason=f"bad {secret}")
    ledger.record_observation("prod", "web1", "v0", healthy=False)


def _database_bytes(path: Path) -> bytes:
    return b"".join(
        p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()
    )


def test_redaction_keeps_the_canary_out_of_the_database_files(tmp_path: Path) -> None:
    # Control: without redaction the canary is visible in the files, so the grep works.
    plain = tmp_path / "plain" / "ledger.sqlite3"
    with Ledger(plain) as ledger:
        _populate(ledger, CANARY)
        assert CANARY.encode() in _database_bytes(plain)

    path = tmp_path / "redacted" / "ledger.sqlite3"
    ledger = Ledger(path, redact=lambda text: text.replace(CANARY, "[REDACTED]"))
    _populate(ledger, CANARY)
    assert Path(f"{path}-wal").exists()
    assert CANARY.encode() not in _database_bytes(path)  # while the WAL holds the data
    [row] = ledger.history("prod")
    assert row.reason == "password=[REDACTED] rejected"
    assert row.user == "alice token=[REDACTED]"
    assert row.stage == "stage [REDACTED]"
    assert row.hosts[0].message == "err [REDACTED]"
    ledger.close()
    assert b"[REDACTED]" in _database_bytes(path)
    assert CANARY.encode() not in _database_bytes(path)  # after the checkpoint on close


@pytest.fixture(params=[0o022, 0o277], ids=["umask022", "umask277"])
def umask(request: pytest.FixtureRequest) -> Iterator[None]:
    old = os.umask(request.param)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask")
def test_file_modes(tmp_path: Path) -> None:
    path = tmp_path / "project" / ".deployer" / "ledger.sqlite3"
    with Ledger(path) as ledger:
        run(ledger, "prod", "v1", Status.SUCCEEDED)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(Path(f"{path}-wal").stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


def test_pragmas_wal_busy_timeout_and_schema_version(db_path: Path) -> None:
    with Ledger(db_path) as ledger:
        conn = ledger._db.conn  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"deployments", "deployment_hosts", "bad_versions", "observations"} <= tables


def test_reopening_an_existing_ledger_keeps_data(where: Where) -> None:
    with Ledger(where) as ledger:
        first = run(ledger, "prod", "v1", Status.SUCCEEDED)
        ledger.mark_bad("prod", "v0", deployment_id=None, reason="old")
        ledger.record_observation("prod", "web1", "v1", healthy=True)
    with Ledger(where) as reopened:
        assert reopened.get(first.id) == first
        assert reopened.current("prod") == "v1"
        assert reopened.bad_versions("prod") == frozenset({"v0"})
        assert set(reopened.observations("prod")) == {"web1"}
        second = run(reopened, "prod", "v2", Status.SUCCEEDED)
        assert second.id > first.id
        assert [d.id for d in reopened.history("prod")] == [second.id, first.id]


def test_newer_schema_is_refused(db_path: Path) -> None:
    Ledger(db_path).close()
    with sqlite3.connect(db_path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(LedgerError, match="schema version"):
        Ledger(db_path)


def test_observations_keep_latest_per_host(ledger: Ledger) -> None:
    ledger.record_observation("prod", "web1", "v1", healthy=True)
    before = ledger.observations("prod")["web1"][2]
    ledger.record_observation("prod", "web1", "v2", healthy=False)
    ledger.record_observation("prod", "web2", None, healthy=None)
    ledger.record_observation("staging", "web1", "v9", healthy=True)

    seen = ledger.observations("prod")
    assert set(seen) == {"web1", "web2"}
    assert seen["web1"][:2] == ("v2", False)
    assert seen["web1"][2] >= before
    assert seen["web1"][2].tzinfo is not None
    assert seen["web2"][:2] == (None, None)
    assert ledger.observations("staging")["web1"][:2] == ("v9", True)
    assert ledger.observations("nowhere") == {}


def test_post_deploy_measures_are_kept_and_checked(ledger: Ledger) -> None:
    started = start(ledger, "prod", "v1")
    done = ledger.finish(started, Status.SUCCEEDED, error_rate=1.25, p95_ms=87.5)
    assert (done.error_rate, done.p95_ms) == (1.25, 87.5)
    assert ledger.get(started).error_rate == 1.25
    other = run(ledger, "prod", "v2", Status.SUCCEEDED)
    assert (other.error_rate, other.p95_ms) == (None, None)  # monitoring off: not measured
    with pytest.raises(LedgerError, match="error_rate must be a finite, non-negative"):
        ledger.finish(start(ledger, "prod", "v3"), Status.SUCCEEDED, error_rate=float("nan"))


def test_a_version_1_ledger_is_migrated_keeping_its_rows(db_path: Path) -> None:
    with Ledger(db_path) as ledger:
        first = run(ledger, "prod", "v1", Status.SUCCEEDED)
    with sqlite3.connect(db_path) as raw:  # back to what a version 1 file looked like
        raw.execute("ALTER TABLE deployments DROP COLUMN error_rate")
        raw.execute("ALTER TABLE deployments DROP COLUMN p95_ms")
        raw.execute("ALTER TABLE deployment_hosts DROP COLUMN services")
        raw.execute("ALTER TABLE deployment_hosts DROP COLUMN analysis")
        raw.execute("DROP TABLE deployment_hooks")
        raw.execute("DROP TABLE backups")
        raw.execute("DROP TABLE canary_steps")
        raw.execute("DROP TABLE canary_decisions")
        raw.execute("PRAGMA user_version = 1")
    with Ledger(db_path) as reopened:
        assert reopened.get(first.id) == first
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6


def test_why_a_host_failed_is_kept_with_it_and_masked(where: Where) -> None:
    from deployer.ledger import Analysis, HostResult, HostStatus

    with Ledger(where, redact=lambda t: t.replace("s3cret", "***")) as ledger:
        dep = run(ledger, "prod", "v2", Status.FAILED)
        why = Analysis(
            "crashed",
            "crashed on start: exited with code 1 0.2s after it started",
            ("KeyError: 'DATABASE_URL'", "token s3cret refused"),
            service="api",
        )
        ledger.record_hosts(
            dep.id,
            [
                HostResult("api1", HostStatus.FAILED, analysis=why),
                HostResult("api2", HostStatus.OK),
            ],
        )
        first, second = ledger.get(dep.id).hosts
    assert first.analysis is not None
    assert first.analysis.cause == "crashed"
    assert first.analysis.label == "crashed on start"
    assert first.analysis.journal == ("KeyError: 'DATABASE_URL'", "token *** refused")
    assert first.analysis.service == "api"
    assert second.analysis is None


def test_per_service_results_are_kept_with_each_host_and_masked(where: Where) -> None:
    from deployer.ledger import HostResult, HostStatus, ServiceResult

    with Ledger(where, redact=lambda t: t.replace("s3cret", "***")) as ledger:
        dep = run(ledger, "prod", "v2", Status.FAILED)
        results = (
            ServiceResult("api", healthy=True, restarted=True, message="ok"),
            ServiceResult("worker", healthy=False, message="exited 1: token s3cret refused"),
        )
        ledger.record_hosts(dep.id, [HostResult("api1", HostStatus.FAILED, services=results)])
        (host,) = ledger.get(dep.id).hosts  # type: ignore[union-attr]
    assert [s.name for s in host.services] == ["api", "worker"]
    assert host.services[0] == results[0]
    assert host.services[1].message == "exited 1: token *** refused"


def test_a_canary_s_steps_and_decisions_are_kept(where: Where) -> None:
    from deployer.ledger import CanaryStep, LedgerError

    with Ledger(where, redact=lambda t: t.replace("s3cret", "***")) as ledger:
        dep = run(ledger, "prod", "v2", Status.ROLLED_BACK)
        ledger.record_canary_step(dep.id, CanaryStep(20, "shift", "done"))
        ledger.record_canary_step(
            dep.id,
            CanaryStep(20, "analysis", "breached", 31.5, 0.0, 12.0, 11.0, 80.0, 6.2, "s3cret"),
        )
        assert ledger.canary_decision(dep.id, 20) is None
        assert ledger.decide_canary(dep.id, 20, "abort", "bob") == "abort"
        assert ledger.decide_canary(dep.id, 20, "promote", "eve") == "abort"  # the first stands
        assert ledger.canary_decision(dep.id, 20) == "abort"
        with pytest.raises(LedgerError):
            ledger.decide_canary(dep.id, 50, "maybe", "bob")
        with pytest.raises(LedgerError):
            ledger.record_canary_step(dep.id, CanaryStep(101, "shift", "done"))
        with pytest.raises(LedgerError):
            ledger.record_canary_step(dep.id, CanaryStep(20, "analysis", "passed", -1.0))
        shift, analysis = ledger.get(dep.id).canary_steps
    assert (shift.share, shift.action, shift.outcome) == (20, "shift", "done")
    assert (analysis.canary_error_rate, analysis.stable_error_rate) == (31.5, 0.0)
    assert (analysis.canary_p95_ms, analysis.stable_p95_ms, analysis.canary_requests) == (
        12.0,
        11.0,
        80.0,
    )
    assert analysis.message == "***"
    assert analysis.at is not None


def test_history_id_shows_a_canary_s_steps_with_both_slots_figures(db_path: Path) -> None:
    from rich.console import Console

    from deployer import render
    from deployer.ledger import CanaryStep

    with Ledger(db_path) as ledger:
        dep = run(ledger, "prod", "v2", Status.ROLLED_BACK)
        ledger.record_canary_step(dep.id, CanaryStep(20, "shift", "done"))
        ledger.record_canary_step(
            dep.id, CanaryStep(20, "analysis", "breached", 22.2, 0.0, 4.75, 4.87, 78.7, 5.9)
        )
        found = ledger.get(dep.id)
    console = Console(width=160, record=True)
    render.show_deployment(found, console)
    text = console.export_text()
    assert "20 %    analysis  breached  22.20% / 0.00%" in text, text
    assert "79" in text
