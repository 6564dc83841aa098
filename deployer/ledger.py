"""Release ledger: the SQLite record of every deployment and rollback.

The ledger is the tool's memory: ``history``, ``status``, ``releases``, rollback
targets and deployment KPIs are all read from it.  One file per project
(default ``<project>/.deployer/ledger.sqlite3``), shared by every process on the
control host:

* WAL journal + a 10 s busy timeout, so deploys of different environments can
  write concurrently from separate processes; every write is one
  ``BEGIN IMMEDIATE`` transaction (``with conn:``), so it either lands whole or
  not at all.
* The schema is versioned with ``PRAGMA user_version`` and created/migrated on
  open.  A file written by a newer deployer is refused rather than guessed at.
* Timestamps are UTC ISO-8601 text, durations float seconds.
* Nothing secret is stored in free text: reasons, messages, stages, the user
  and the control host pass through ``redact`` before they reach SQLite.
  Identifiers (environment, versions, host names, the artifact's sha256) are
  stored as given and never redacted: they are checked by the config's rules,
  name things deployer looks up again (a bad version must stay refused, a
  rollback target must stay usable), and masking part of one (secret ``2024``
  in version ``v2024.1``) would corrupt the record. The trade-off: a secret
  whose value equals an identifier is stored in that identifier's column (it
  is not secret there: it is on every host already); in free text it is still
  masked.
* A file that is not a ledger, a row that does not parse or a ledger written
  by a newer deployer raises ``LedgerUnreadable`` (bad input, exit 2) naming
  the file. ``check_readable`` refuses the first and the last from the file
  header alone, before a command does any work; neither is written to.

Rules the readers follow:

* ``good_versions``: distinct targets of SUCCEEDED runs (deploy or rollback),
  newest success (``ended_at``) first, minus the environment's bad versions.
* ``current``: among finished runs of the environment that say what is live,
  take the newest by ``ended_at``: a SUCCEEDED run means its target ``version``
  is live; a ROLLED_BACK run means the rollback restored ``previous_version``
  (ROLLED_BACK runs with no ``previous_version`` say nothing and are skipped).
  FAILED, INTERRUPTED and RUNNING runs are ignored: they leave the hosts in an
  unknown state, which is what host observations are for.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from deployer.errors import DeployerError
from deployer.exitcodes import ExitCode

SCHEMA_VERSION = 5
BUSY_TIMEOUT_MS = 10_000

# user_version N -> statements that migrate a version N-1 file to version N.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE deployments (
            id               INTEGER PRIMARY KEY AUTOINCREMENT,
            environment      TEXT    NOT NULL,
            kind             TEXT    NOT NULL,
            version          TEXT    NOT NULL,
            previous_version TEXT,
            artifact_sha256  TEXT,
            user             TEXT    NOT NULL,
            control_host     TEXT    NOT NULL,
            pid              INTEGER NOT NULL,
            started_at       TEXT    NOT NULL,
            ended_at         TEXT,
            status           TEXT    NOT NULL,
            stage            TEXT    NOT NULL DEFAULT '',
            reason           TEXT    NOT NULL DEFAULT '',
            noop             INTEGER NOT NULL DEFAULT 0,
            deploy_seconds   REAL,
            rollback_seconds REAL
        )""",
        "CREATE INDEX deployments_by_env ON deployments (environment, id)",
        "CREATE INDEX deployments_by_status ON deployments (status, control_host)",
        """CREATE TABLE deployment_hosts (
            deployment_id  INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
            host           TEXT    NOT NULL,
            status         TEXT    NOT NULL,
            stage          TEXT    NOT NULL DEFAULT '',
            version_before TEXT,
            version_after  TEXT,
            message        TEXT    NOT NULL DEFAULT '',
            seconds        REAL    NOT NULL DEFAULT 0,
            PRIMARY KEY (deployment_id, host)
        )""",
        """CREATE TABLE bad_versions (
            environment   TEXT NOT NULL,
            version       TEXT NOT NULL,
            deployment_id INTEGER REFERENCES deployments (id),
            reason        TEXT NOT NULL,
            marked_at     TEXT NOT NULL,
            PRIMARY KEY (environment, version)
        )""",
        """CREATE TABLE observations (
            environment TEXT NOT NULL,
            host        TEXT NOT NULL,
            version     TEXT,
            healthy     INTEGER,
            observed_at TEXT NOT NULL,
            PRIMARY KEY (environment, host)
        )""",
    ),
    # What the watch window measured in Prometheus after the rollout (monitoring on only).
    2: (
        "ALTER TABLE deployments ADD COLUMN error_rate REAL",
        "ALTER TABLE deployments ADD COLUMN p95_ms REAL",
    ),
    # Per-service results on each host, for an app of several services (a JSON list).
    3: ("ALTER TABLE deployment_hosts ADD COLUMN services TEXT NOT NULL DEFAULT '[]'",),
    # What each deploy hook did (its output masked), in the order they ran.
    4: (
        """CREATE TABLE deployment_hooks (
            deployment_id INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
            seq           INTEGER NOT NULL,
            name          TEXT    NOT NULL,
            host          TEXT    NOT NULL,
            ok            INTEGER NOT NULL,
            exit_code     INTEGER,
            seconds       REAL    NOT NULL DEFAULT 0,
            timed_out     INTEGER NOT NULL DEFAULT 0,
            truncated     INTEGER NOT NULL DEFAULT 0,
            output        TEXT    NOT NULL DEFAULT '',
            message       TEXT    NOT NULL DEFAULT '',
            PRIMARY KEY (deployment_id, seq)
        )""",
        # Database dumps deploys took before their migrations (database.backup).
        """CREATE TABLE backups (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            environment   TEXT    NOT NULL,
            deployment_id INTEGER REFERENCES deployments (id),
            host          TEXT    NOT NULL,
            file          TEXT    NOT NULL,
            bytes         INTEGER NOT NULL,
            sha256        TEXT    NOT NULL,
            label         TEXT    NOT NULL,
            created_at    TEXT    NOT NULL
        )""",
        "CREATE INDEX backups_by_env ON backups (environment, id)",
    ),
    # Why a host failed its switch or health check, as the host analysed it (a JSON object:
    # cause, summary, journal, service), or NULL.
    5: ("ALTER TABLE deployment_hosts ADD COLUMN analysis TEXT",),
}


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

    @property
    def failing_hosts(self) -> tuple[str, ...]:
        return tuple(h.host for h in self.hosts if h.status in _FAILING)


class LedgerError(DeployerError):
    """The ledger refuses an operation."""


class LedgerUnreadable(LedgerError):
    """The ledger file cannot be read as a ledger of this deployer: bad input."""

    exit_code = ExitCode.BAD_INPUT


# SQLite's answers for a file that is not a database, or a damaged one.
_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def _damaged(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in _DAMAGED


def _unreadable(path: Path, why: str) -> LedgerUnreadable:
    return LedgerUnreadable(
        f"ledger {path} is not a deployer ledger or is damaged ({why}); "
        "move it aside to start a new one"
    )


def _known_schema(path: Path, found: int) -> int:
    """`found`, the file's schema version; LedgerUnreadable when a newer deployer wrote it."""
    if found > SCHEMA_VERSION:
        raise LedgerUnreadable(
            f"ledger {path} has schema version {found}; this deployer "
            f"understands up to {SCHEMA_VERSION} (it was written by a newer deployer)"
        )
    return found


_HEADER = b"SQLite format 3\x00"
_USER_VERSION_AT = 60  # offset of the big-endian user_version in SQLite's file header


def check_readable(path: Path) -> None:
    """Refuse (LedgerUnreadable) an existing file that is not a SQLite database or was
    written by a newer deployer, from its header alone: nothing is created or changed, so
    commands call it before any work. Opening the ledger checks the rest."""
    try:
        with path.open("rb") as handle:
            head = handle.read(100)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LedgerError(f"cannot read ledger {path}: {exc}") from None
    if not head:  # SQLite takes an empty file as an empty database
        return
    if len(head) < 100 or not head.startswith(_HEADER):
        raise _unreadable(path, "no SQLite header")
    _known_schema(path, int.from_bytes(head[_USER_VERSION_AT : _USER_VERSION_AT + 4], "big"))


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


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


def _prepare_file(path: Path) -> None:
    """Create missing parent directories (0700) and the database file (0600)."""
    missing: list[Path] = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:  # another process won the race
            continue
        directory.chmod(0o700)  # mkdir's mode is filtered by the umask
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
    path.chmod(0o600)


def _enable_wal(conn: sqlite3.Connection) -> str:
    """Switch to WAL. While another process is setting up the same new file SQLite may
    answer SQLITE_BUSY to this switch without waiting, so retry within the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Ledger:
    def __init__(self, path: Path, redact: Callable[[str], str] | None = None) -> None:
        self.path = Path(path)
        self._redact = redact
        self._lock = threading.RLock()
        try:
            _prepare_file(self.path)
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # transactions are explicit: see _tx
                check_same_thread=False,  # guarded by self._lock instead
            )
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        self._conn = conn
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            self._schema_version()  # before anything is written to the file
            mode = _enable_wal(conn)
            if mode != "wal":
                raise LedgerError(f"ledger {self.path}: cannot enable WAL (journal_mode={mode})")
            self._migrate()
        except sqlite3.Error as exc:
            conn.close()
            if _damaged(exc):
                raise _unreadable(self.path, str(exc)) from None
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc
        except LedgerError as exc:
            conn.close()
            if isinstance(exc, LedgerUnreadable):
                raise
            raise LedgerUnreadable(exc.message) from None
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction. Writes take the write lock up front so the busy timeout applies."""
        with self._lock:
            try:
                with self._conn:
                    self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    yield self._conn
            except sqlite3.Error as exc:
                if _damaged(exc):
                    raise _unreadable(self.path, str(exc)) from None
                raise LedgerError(f"ledger {self.path}: {exc}") from exc

    def _schema_version(self) -> int:
        found = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        return _known_schema(self.path, found)

    def _migrate(self) -> None:
        with self._tx() as conn:
            found = self._schema_version()
            for version in range(found + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version]:
                    conn.execute(statement)
            if found != SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _text(self, value: str) -> str:
        """Free text as stored: with every secret masked (identifiers are never passed here)."""
        if self._redact is None:
            return value
        redacted = self._redact(value)
        if not isinstance(redacted, str):
            raise LedgerError("redact must return a str")
        return redacted

    def _load(self, conn: sqlite3.Connection, rows: Iterable[sqlite3.Row]) -> list[Deployment]:
        result = []
        for row in rows:
            try:
                result.append(self._deployment(conn, row))
            except (KeyError, TypeError, ValueError) as exc:
                raise _unreadable(self.path, f"deployment row {row['id']}: {exc}") from None
        return result

    def _deployment(self, conn: sqlite3.Connection, row: sqlite3.Row) -> Deployment:
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
        )

    def _get(self, conn: sqlite3.Connection, deployment_id: int) -> Deployment:
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
            _now(),
            Status.RUNNING.value,
        )
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO deployments (environment, kind, version, previous_version,"
                " artifact_sha256, user, control_host, pid, started_at, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            if cur.lastrowid is None:  # pragma: no cover - sqlite always sets it for INSERT
                raise LedgerError("insert did not return a deployment id")
            return cur.lastrowid

    def discard(self, deployment_id: int) -> None:
        """Take back a RUNNING row that recorded nothing: no host result, nothing changed
        (a rollback whose own check refused before any host was touched). Anything else is
        history and stays."""
        with self._tx() as conn:
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
                " label, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (environment, deployment_id, host, file, int(size), sha256, label, _now()),
            )
            if cur.lastrowid is None:  # pragma: no cover - sqlite always sets it for INSERT
                raise LedgerError("insert did not return a backup id")
            return cur.lastrowid

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
            status.value,
            _now(),
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
                values,
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
            now = _now()
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
                (environment, version, deployment_id, self._text(reason), _now()),
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
                " GROUP BY version ORDER BY last_ok DESC, last_id DESC",
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
                " ORDER BY ended_at DESC, id DESC LIMIT 1",
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
                (environment, host, version, None if healthy is None else int(healthy), _now()),
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
