"""The ledger's records and the one definition of what is read and written: every
statement here runs on every engine (`deployer.ledger.sqlite`, `deployer.ledger.postgres`).
See the package's documentation for the rules the readers follow."""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from deployer.ledger.base import Backend, Connection, LedgerError, LedgerUnreadable
from deployer.ledger.postgres import Postgres, PostgresBackend
from deployer.ledger.schema import SCHEMA_VERSION, statements
from deployer.ledger.sqlite import SqliteBackend, unreadable


class Status(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    ROLLED_BACK = "ROLLED_BACK"
    INTERRUPTED = "INTERRUPTED"


class Kind(StrEnum):
    DEPLOY = "deploy"
    ROLLBACK = "rollback"


class HostStatus(StrEnum):
    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    ROLLED_BACK = "rolled_back"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"


_FAILING = frozenset({HostStatus.FAILED, HostStatus.UNREACHABLE, HostStatus.UNKNOWN})


@dataclass(frozen=True)
class ServiceResult:
    """How one service of an app of several came out on one host."""

    name: str
    healthy: bool | None = None
    restarted: bool = False
    message: str = ""


@dataclass(frozen=True)
class HookResult:
    """What one deploy hook did on its host."""

    name: str
    host: str
    ok: bool
    exit_code: int | None = None
    seconds: float = 0.0
    timed_out: bool = False
    truncated: bool = False
    output: str = ""
    """Its output as the host masked it (the tail, when long), masked again here."""
    message: str = ""


@dataclass(frozen=True)
class Backup:
    """A dump of the app's database, kept on its host (`deployer db backups`)."""

    id: int
    environment: str
    deployment_id: int | None
    host: str
    file: str
    bytes: int
    sha256: str
    label: str
    """The version whose migrations it preceded."""
    created_at: datetime


CAUSES = {
    "crashed": "crashed on start",
    "exit": "exited with a non-zero code",
    "signal": "killed by a signal",
    "oom": "killed for memory",
    "port_in_use": "port in use",
    "no_command": "command not executable",
    "timeout": "health check timed out",
    "unhealthy": "unhealthy answer",
}
"""The causes a host's failure analysis classifies a failed start or health check into
(see the collection's module_utils/explain.py), with what the operator reads."""


@dataclass(frozen=True)
class Analysis:
    """Why a host failed its switch or health check: what systemd and the journal said."""

    cause: str
    """One of CAUSES."""
    summary: str
    """One sentence (`exited with code 3, restarted 2 times`)."""
    journal: tuple[str, ...] = ()
    """The last lines the app wrote, masked."""
    service: str = ""
    """For an app of several services: the one that failed."""

    @property
    def label(self) -> str:
        return CAUSES.get(self.cause, self.cause)


@dataclass(frozen=True)
class HostResult:
    host: str
    status: HostStatus
    stage: str = ""
    version_before: str | None = None
    version_after: str | None = None
    message: str = ""
    seconds: float = 0.0
    services: tuple[ServiceResult, ...] = ()
    analysis: Analysis | None = None


@dataclass(frozen=True)
class CanaryStep:
    """One step of a canary: a shift of `share` % of requests to the new slots, the analysis
    after it (with both slots' figures), a decision, the flip or the abort."""

    share: int
    action: str
    """shift | analysis | decision | flip | abort"""
    outcome: str
    """done | passed | breached | promoted | aborted | failed | timed out | interrupted"""
    canary_error_rate: float | None = None
    stable_error_rate: float | None = None
    canary_p95_ms: float | None = None
    stable_p95_ms: float | None = None
    canary_requests: float | None = None
    seconds: float = 0.0
    message: str = ""
    at: datetime | None = None


CANARY_DECISIONS = ("promote", "abort")


@dataclass(frozen=True)
class Deployment:
    id: int
    environment: str
    kind: Kind
    version: str
    previous_version: str | None
    artifact_sha256: str | None
    user: str
    control_host: str
    pid: int
    started_at: datetime
    ended_at: datetime | None
    status: Status
    stage: str
    reason: str
    noop: bool
    deploy_seconds: float | None
    rollback_seconds: float | None
    hosts: tuple[HostResult, ...]
    error_rate: float | None = None  # percent of requests answered 5xx, after the rollout
    p95_ms: float | None = None  # 95th percentile response time after the rollout
    hooks: tuple[HookResult, ...] = ()
    canary_steps: tuple[CanaryStep, ...] = ()

    @property
    def failing_hosts(self) -> tuple[str, ...]:
        return tuple(h.host for h in self.hosts if h.status in _FAILING)


def pid_is_alive(pid: int) -> bool:
    """Default ``is_alive`` probe for ``reconcile_orphans`` on a POSIX control host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _analysis(text: str | None) -> Analysis | None:
    if not text:
        return None
    data = json.loads(text)
    return Analysis(
        cause=str(data["cause"]),
        summary=str(data.get("summary") or ""),
        journal=tuple(str(line) for line in data.get("journal") or ()),
        service=str(data.get("service") or ""),
    )


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _check_measure(name: str, value: float | None, unit: str = "") -> float | None:
    """None, or a finite non-negative number (a duration or a rate)."""
    if value is None:
        return None
    if not (math.isfinite(value) and value >= 0):
        raise LedgerError(f"{name} must be a finite, non-negative number{unit}")
    return float(value)


def _check_seconds(name: str, value: float | None) -> float | None:
    return _check_measure(name, value, " of seconds")


class Ledger:
    """The release ledger of a project, in a SQLite file (a `Path`) or a PostgreSQL
    database (`Postgres`), created or migrated to this deployer's schema when opened."""

    def __init__(self, where: Path | Postgres, redact: Callable[[str], str] | None = None) -> None:
        self._redact = redact
        self._lock = threading.RLock()
        self._db: Backend = (
            PostgresBackend(where) if isinstance(where, Postgres) else SqliteBackend(Path(where))
        )
        self.where = self._db.where
        """The ledger as messages name it: its file, or its URL (never with a password)."""
        try:
            self._migrate()
        except LedgerError as exc:
            self._db.close()
            if isinstance(exc, LedgerUnreadable):
                raise
            why = exc.message.removeprefix(f"ledger {self.where}: ")
            raise unreadable(self.where, why) from None
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Connection]:
        """One transaction, safe against the other processes sharing the ledger."""
        with self._lock, self._db.transaction(write) as conn:
            yield conn

    def _migrate(self) -> None:
        with self._lock, self._db.migration() as (conn, found):
            for version in range(found + 1, SCHEMA_VERSION + 1):
                for statement in statements(version, self._db.types):
                    conn.execute(statement)
            if found != SCHEMA_VERSION:
                self._db.set_version(conn, SCHEMA_VERSION)

    def _text(self, value: str) -> str:
        """Free text as stored: with every secret masked (identifiers are never passed here)."""
        if self._redact is None:
            return value
        redacted = self._redact(value)
        if not isinstance(redacted, str):
            raise LedgerError("redact must return a str")
        return redacted

    def _load(self, conn: Connection, rows: Iterable[Any]) -> list[Deployment]:
        result = []
        for row in rows:
            try:
                result.append(self._deployment(conn, row))
            except (KeyError, TypeError, ValueError) as exc:
                raise unreadable(self.where, f"deployment row {row['id']}: {exc}") from None
        return result

    def _deployment(self, conn: Connection, row: Any) -> Deployment:
        hosts = tuple(
            HostResult(
                host=h["host"],
                status=HostStatus(h["status"]),
                stage=h["stage"],
                version_before=h["version_before"],
                version_after=h["version_after"],
                message=h["message"],
                seconds=float(h["seconds"]),
                services=tuple(
                    ServiceResult(
                        name=str(s["name"]),
                        healthy=None if s.get("healthy") is None else bool(s["healthy"]),
                        restarted=bool(s.get("restarted")),
                        message=str(s.get("message") or ""),
                    )
                    for s in json.loads(h["services"] or "[]")
                ),
                analysis=_analysis(h["analysis"]),
            )
            for h in conn.execute(
                "SELECT * FROM deployment_hosts WHERE deployment_id = ? ORDER BY host",
                (row["id"],),
            )
        )
        return Deployment(
            id=int(row["id"]),
            environment=row["environment"],
            kind=Kind(row["kind"]),
            version=row["version"],
            previous_version=row["previous_version"],
            artifact_sha256=row["artifact_sha256"],
            user=row["user"],
            control_host=row["control_host"],
            pid=int(row["pid"]),
            started_at=_parse_time(row["started_at"]),
            ended_at=_parse_time(row["ended_at"]) if row["ended_at"] else None,
            status=Status(row["status"]),
            stage=row["stage"],
            reason=row["reason"],
            noop=bool(row["noop"]),
            deploy_seconds=row["deploy_seconds"],
            rollback_seconds=row["rollback_seconds"],
            hosts=hosts,
            error_rate=row["error_rate"],
            p95_ms=row["p95_ms"],
            hooks=tuple(
                HookResult(
                    name=k["name"],
                    host=k["host"],
                    ok=bool(k["ok"]),
                    exit_code=k["exit_code"],
                    seconds=float(k["seconds"]),
                    timed_out=bool(k["timed_out"]),
                    truncated=bool(k["truncated"]),
                    output=k["output"],
                    message=k["message"],
                )
                for k in conn.execute(
                    "SELECT * FROM deployment_hooks WHERE deployment_id = ? ORDER BY seq",
                    (row["id"],),
                )
            ),
            canary_steps=tuple(
                CanaryStep(
                    share=int(c["share"]),
                    action=c["action"],
                    outcome=c["outcome"],
                    canary_error_rate=c["canary_error_rate"],
                    stable_error_rate=c["stable_error_rate"],
                    canary_p95_ms=c["canary_p95_ms"],
                    stable_p95_ms=c["stable_p95_ms"],
                    canary_requests=c["canary_requests"],
                    seconds=float(c["seconds"]),
                    message=c["message"],
                    at=_parse_time(c["at"]),
                )
                for c in conn.execute(
                    "SELECT * FROM canary_steps WHERE deployment_id = ? ORDER BY seq",
                    (row["id"],),
                )
            ),
        )

    def _get(self, conn: Connection, deployment_id: int) -> Deployment:
        rows = conn.execute("SELECT * FROM deployments WHERE id = ?", (deployment_id,))
        found = self._load(conn, rows)
        if not found:
            raise LedgerError(f"no deployment {deployment_id} in the ledger")
        return found[0]

    # -- deployments ------------------------------------------------------

    def begin(
        self,
        *,
        environment: str,
        kind: Kind,
        version: str,
        previous_version: str | None,
        artifact_sha256: str | None,
        user: str,
        control_host: str,
        pid: int,
    ) -> int:
        row = (
            environment,
            Kind(kind).value,
            version,
            previous_version,
            artifact_sha256,
            self._text(user),
            self._text(control_host),
            int(pid),
        )
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO deployments (environment, kind, version, previous_version,"
                ' artifact_sha256, "user", control_host, pid, started_at, status)'
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (*row, conn.now(), Status.RUNNING.value),
            )
            return int(cur.fetchone()["id"])

    def discard(self, deployment_id: int) -> None:
        """Take back a RUNNING row that recorded nothing: no host result, nothing changed
        (a rollback whose own check refused before any host was touched). Anything else is
        history and stays."""
        with self._tx() as conn:
            conn.lock_deployment(deployment_id)  # no host row can arrive meanwhile
            cur = conn.execute(
                "DELETE FROM deployments WHERE id = ? AND status = ? AND NOT EXISTS"
                " (SELECT 1 FROM deployment_hosts WHERE deployment_id = ?)",
                (deployment_id, Status.RUNNING.value, deployment_id),
            )
            if cur.rowcount != 1:
                self._get(conn, deployment_id)  # raises if unknown
                raise LedgerError(f"deployment {deployment_id} has a record: it is kept")

    def set_stage(self, deployment_id: int, stage: str) -> None:
        """Record the stage a RUNNING deployment has reached; finished rows are history."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE deployments SET stage = ? WHERE id = ? AND status = ?",
                (self._text(stage), deployment_id, Status.RUNNING.value),
            )
            if cur.rowcount != 1:
                current = self._get(conn, deployment_id).status  # raises if unknown
                raise LedgerError(f"deployment {deployment_id} is {current}, not RUNNING")

    def record_hosts(self, deployment_id: int, results: Iterable[HostResult]) -> None:
        rows = [
            (
                deployment_id,
                r.host,
                HostStatus(r.status).value,
                self._text(r.stage),
                r.version_before,
                r.version_after,
                self._text(r.message),
                _check_seconds("seconds", r.seconds),
                json.dumps(
                    [
                        {
                            "name": s.name,
                            "healthy": s.healthy,
                            "restarted": s.restarted,
                            "message": self._text(s.message),
                        }
                        for s in r.services
                    ]
                ),
                None
                if r.analysis is None
                else json.dumps(
                    {
                        "cause": r.analysis.cause,
                        "summary": self._text(r.analysis.summary),
                        "journal": [self._text(line) for line in r.analysis.journal],
                        "service": r.analysis.service,
                    }
                ),
            )
            for r in results
        ]
        with self._tx() as conn:
            conn.executemany(
                "INSERT INTO deployment_hosts (deployment_id, host, status, stage,"
                " version_before, version_after, message, seconds, services, analysis)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (deployment_id, host) DO UPDATE SET status = excluded.status,"
                " stage = excluded.stage, version_before = excluded.version_before,"
                " version_after = excluded.version_after, message = excluded.message,"
                " seconds = excluded.seconds, services = excluded.services,"
                " analysis = excluded.analysis",
                rows,
            )

    def record_backup(
        self,
        *,
        environment: str,
        deployment_id: int | None,
        host: str,
        file: str,
        size: int,
        sha256: str,
        label: str,
    ) -> int:
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO backups (environment, deployment_id, host, file, bytes, sha256,"
                " label, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (environment, deployment_id, host, file, int(size), sha256, label, conn.now()),
            )
            return int(cur.fetchone()["id"])

    def backups(self, environment: str) -> list[Backup]:
        """The environment's dumps, newest first."""
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT * FROM backups WHERE environment = ? ORDER BY id DESC", (environment,)
            ).fetchall()
        return [
            Backup(
                id=int(r["id"]),
                environment=r["environment"],
                deployment_id=r["deployment_id"],
                host=r["host"],
                file=r["file"],
                bytes=int(r["bytes"]),
                sha256=r["sha256"],
                label=r["label"],
                created_at=_parse_time(r["created_at"]),
            )
            for r in rows
        ]

    def record_hook(self, deployment_id: int, hook: HookResult) -> None:
        """Keep what a hook did (its output and message masked like every free text)."""
        with self._tx() as conn:
            conn.lock_deployment(deployment_id)  # its hooks are numbered one at a time
            conn.execute(
                "INSERT INTO deployment_hooks (deployment_id, seq, name, host, ok, exit_code,"
                " seconds, timed_out, truncated, output, message) VALUES (?, (SELECT"
                " COALESCE(MAX(seq), 0) + 1 FROM deployment_hooks WHERE deployment_id = ?),"
                " ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    deployment_id,
                    deployment_id,
                    hook.name,
                    hook.host,
                    int(hook.ok),
                    hook.exit_code,
                    _check_seconds("seconds", hook.seconds),
                    int(hook.timed_out),
                    int(hook.truncated),
                    self._text(hook.output),
                    self._text(hook.message),
                ),
            )

    def record_canary_step(self, deployment_id: int, step: CanaryStep) -> None:
        """Keep one step of a canary, numbered in the order they happen."""
        if not 0 <= step.share <= 100:
            raise LedgerError(f"a canary's share is a percentage, not {step.share}")
        figures = tuple(
            _check_measure(name, getattr(step, name))
            for name in (
                "canary_error_rate",
                "stable_error_rate",
                "canary_p95_ms",
                "stable_p95_ms",
                "canary_requests",
            )
        )
        with self._tx() as conn:
            conn.lock_deployment(deployment_id)
            conn.execute(
                "INSERT INTO canary_steps (deployment_id, seq, share, action, outcome,"
                " canary_error_rate, stable_error_rate, canary_p95_ms, stable_p95_ms,"
                " canary_requests, seconds, message, at) VALUES (?, (SELECT"
                " COALESCE(MAX(seq), 0) + 1 FROM canary_steps WHERE deployment_id = ?),"
                " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    deployment_id,
                    deployment_id,
                    step.share,
                    step.action,
                    step.outcome,
                    *figures,
                    _check_seconds("seconds", step.seconds),
                    self._text(step.message),
                    conn.now(),
                ),
            )

    def decide_canary(self, deployment_id: int, share: int, decision: str, user: str) -> str:
        """Record `decision` (promote or abort) for the step at `share` % of a running
        deployment; returns the decision that stands (the first one recorded wins)."""
        if decision not in CANARY_DECISIONS:
            raise LedgerError(f"a canary decision is promote or abort, not {decision!r}")
        with self._tx() as conn:
            conn.lock_deployment(deployment_id)
            found = conn.execute(
                "SELECT decision FROM canary_decisions WHERE deployment_id = ? AND share = ?",
                (deployment_id, share),
            ).fetchone()
            if found is not None:
                return str(found["decision"])
            conn.execute(
                'INSERT INTO canary_decisions (deployment_id, share, decision, "user",'
                " decided_at) VALUES (?, ?, ?, ?, ?)",
                (deployment_id, share, decision, user, conn.now()),
            )
            return decision

    def canary_decision(self, deployment_id: int, share: int) -> str | None:
        """The decision taken for the step at `share` % of a deployment, or None yet."""
        with self._tx(write=False) as conn:
            found = conn.execute(
                "SELECT decision FROM canary_decisions WHERE deployment_id = ? AND share = ?",
                (deployment_id, share),
            ).fetchone()
        return None if found is None else str(found["decision"])

    def finish(
        self,
        deployment_id: int,
        status: Status,
        *,
        reason: str = "",
        noop: bool = False,
        deploy_seconds: float | None = None,
        rollback_seconds: float | None = None,
        error_rate: float | None = None,
        p95_ms: float | None = None,
    ) -> Deployment:
        status = Status(status)
        if status is Status.RUNNING:
            raise LedgerError("a deployment cannot be finished as RUNNING")
        values = (
            self._text(reason),
            int(noop),
            _check_seconds("deploy_seconds", deploy_seconds),
            _check_seconds("rollback_seconds", rollback_seconds),
            _check_measure("error_rate", error_rate),
            _check_measure("p95_ms", p95_ms),
            deployment_id,
            Status.RUNNING.value,
        )
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE deployments SET status = ?, ended_at = ?, reason = ?, noop = ?,"
                " deploy_seconds = ?, rollback_seconds = ?, error_rate = ?, p95_ms = ?"
                " WHERE id = ? AND status = ?",
                (status.value, conn.now(), *values),
            )
            if cur.rowcount != 1:
                current = self._get(conn, deployment_id).status  # raises if unknown
                raise LedgerError(
                    f"deployment {deployment_id} is already {current}; cannot finish it as {status}"
                )
            return self._get(conn, deployment_id)

    def get(self, deployment_id: int) -> Deployment:
        with self._tx(write=False) as conn:
            return self._get(conn, deployment_id)

    def history(self, environment: str | None = None, limit: int = 50) -> list[Deployment]:
        """Newest first (by id, i.e. the order runs began)."""
        if limit < 1:
            raise LedgerError("limit must be at least 1")
        with self._tx(write=False) as conn:
            if environment is None:
                rows = conn.execute("SELECT * FROM deployments ORDER BY id DESC LIMIT ?", (limit,))
            else:
                rows = conn.execute(
                    "SELECT * FROM deployments WHERE environment = ? ORDER BY id DESC LIMIT ?",
                    (environment, limit),
                )
            return self._load(conn, rows.fetchall())

    def running(self, environment: str) -> list[Deployment]:
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT * FROM deployments WHERE environment = ? AND status = ? ORDER BY id DESC",
                (environment, Status.RUNNING.value),
            )
            return self._load(conn, rows.fetchall())

    def reconcile_orphans(self, control_host: str, is_alive: Callable[[int], bool]) -> list[int]:
        """Mark RUNNING rows of this control host whose process is gone as INTERRUPTED."""
        with self._tx(write=False) as conn:
            candidates = [
                (int(r["id"]), int(r["pid"]))
                for r in conn.execute(
                    "SELECT id, pid FROM deployments WHERE status = ? AND control_host = ?"
                    " ORDER BY id",
                    (Status.RUNNING.value, self._text(control_host)),
                )
            ]
        dead = [(i, pid) for i, pid in candidates if not is_alive(pid)]  # probe outside the lock
        interrupted: list[int] = []
        if not dead:
            return interrupted
        with self._tx() as conn:
            now = conn.now()
            for deployment_id, pid in dead:
                reason = f"control process ended without recording a result (pid {pid})"
                cur = conn.execute(
                    "UPDATE deployments SET status = ?, ended_at = ?, reason = ?"
                    " WHERE id = ? AND status = ?",
                    (
                        Status.INTERRUPTED.value,
                        now,
                        self._text(reason),
                        deployment_id,
                        Status.RUNNING.value,
                    ),
                )
                if cur.rowcount == 1:  # a finish() that raced us wins
                    interrupted.append(deployment_id)
        return interrupted

    # -- versions ---------------------------------------------------------

    def mark_bad(
        self, environment: str, version: str, *, deployment_id: int | None, reason: str
    ) -> None:
        """Idempotent: the first marking (its reason and deployment) is kept."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO bad_versions (environment, version, deployment_id, reason, marked_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (environment, version) DO NOTHING",
                (environment, version, deployment_id, self._text(reason), conn.now()),
            )

    def bad_versions(self, environment: str) -> frozenset[str]:
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT version FROM bad_versions WHERE environment = ?",
                (environment,),
            )
            return frozenset(r["version"] for r in rows)

    def good_versions(self, environment: str) -> list[str]:
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT version, MAX(ended_at) AS last_ok, MAX(id) AS last_id FROM deployments"
                " WHERE environment = ? AND status = ?"
                " AND version NOT IN (SELECT version FROM bad_versions WHERE environment = ?)"
                " GROUP BY version ORDER BY last_ok DESC NULLS LAST, last_id DESC",
                (environment, Status.SUCCEEDED.value, environment),
            )
            return [r["version"] for r in rows]

    def last_good(self, environment: str, exclude: str | None = None) -> str | None:
        return next((v for v in self.good_versions(environment) if v != exclude), None)

    def current(self, environment: str) -> str | None:
        """What the ledger believes is live; see the module docstring for the rule."""
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT status, version, previous_version FROM deployments"
                " WHERE environment = ? AND (status = ?"
                " OR (status = ? AND previous_version IS NOT NULL))"
                " ORDER BY ended_at DESC NULLS LAST, id DESC LIMIT 1",
                (environment, Status.SUCCEEDED.value, Status.ROLLED_BACK.value),
            ).fetchone()
        if row is None:
            return None
        live: str = row["version"] if row["status"] == Status.SUCCEEDED else row["previous_version"]
        return live

    # -- observations -----------------------------------------------------

    def record_observation(
        self, environment: str, host: str, version: str | None, healthy: bool | None
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO observations (environment, host, version, healthy, observed_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (environment, host) DO UPDATE SET"
                " version = excluded.version, healthy = excluded.healthy,"
                " observed_at = excluded.observed_at",
                (environment, host, version, None if healthy is None else int(healthy), conn.now()),
            )

    def observations(self, environment: str) -> dict[str, tuple[str | None, bool | None, datetime]]:
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT host, version, healthy, observed_at FROM observations"
                " WHERE environment = ? ORDER BY host",
                (environment,),
            )
            return {
                r["host"]: (
                    r["version"],
                    None if r["healthy"] is None else bool(r["healthy"]),
                    _parse_time(r["observed_at"]),
                )
                for r in rows
            }
