"""The embedded ledger: one SQLite file per project, shared by every process on the
control host.

* WAL journal + a 10 s busy timeout, so deploys of different environments can write
  concurrently from separate processes; every write is one ``BEGIN IMMEDIATE``
  transaction, which takes the file's write lock up front: writers are serialized, so a
  write that reads first (a row's status, the next hook's number) needs no row lock.
* The schema version is ``PRAGMA user_version``.
* The file is 0600 in directories created 0700.
* A file that is not a database, or a damaged one, raises ``LedgerUnreadable`` naming
  it; ``check_readable`` refuses one (or a file of a newer deployer) from its header
  alone, before a command does any work.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deployer.ledger.base import Cursor, LedgerError, LedgerUnreadable
from deployer.ledger.schema import SCHEMA_VERSION, Types

BUSY_TIMEOUT_MS = 10_000
TYPES = Types(id="INTEGER PRIMARY KEY AUTOINCREMENT", int="INTEGER", real="REAL", text="TEXT")

# SQLite's answers for a file that is not a database, or a damaged one.
_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def _damaged(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in _DAMAGED


def unreadable(where: str, why: str) -> LedgerUnreadable:
    return LedgerUnreadable(
        f"ledger {where} is not a deployer ledger or is damaged ({why}); "
        "move it aside to start a new one"
    )


def known_schema(where: str, found: int) -> int:
    """`found`, the ledger's schema version; LedgerUnreadable when a newer deployer wrote it."""
    if found > SCHEMA_VERSION:
        raise LedgerUnreadable(
            f"ledger {where} has schema version {found}; this deployer "
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
        raise unreadable(str(path), "no SQLite header")
    known_schema(str(path), int.from_bytes(head[_USER_VERSION_AT : _USER_VERSION_AT + 4], "big"))


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


def _now() -> str:
    """The control host's clock, as the ledger records it."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class _Connection:
    """The ledger's statements on SQLite, as written."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor:
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], /) -> None:
        self._conn.executemany(sql, rows)

    def now(self) -> str:
        return _now()

    def lock_deployment(self, deployment_id: int, /) -> None:
        """Nothing to do: a write transaction holds the whole file (BEGIN IMMEDIATE)."""

    def after_copy(self, table: str, /) -> None:
        """Nothing to do: AUTOINCREMENT follows the largest id inserted."""


class SqliteBackend:
    types = TYPES

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        try:
            _prepare_file(self.path)
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # transactions are explicit: see transaction()
                check_same_thread=False,  # the ledger serializes its threads itself
            )
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        self.conn = conn
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            self._version()  # before anything is written to the file
            mode = _enable_wal(conn)
            if mode != "wal":
                raise LedgerError(f"ledger {self.path}: cannot enable WAL (journal_mode={mode})")
        except sqlite3.Error as exc:
            conn.close()
            if _damaged(exc):
                raise unreadable(self.where, str(exc)) from None
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self, write: bool) -> Iterator[_Connection]:
        """Writes take the write lock up front, so the busy timeout applies to them."""
        try:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield _Connection(self.conn)
        except sqlite3.Error as exc:
            if _damaged(exc):
                raise unreadable(self.where, str(exc)) from None
            raise LedgerError(f"ledger {self.path}: {exc}") from exc

    @contextmanager
    def migration(self) -> Iterator[tuple[_Connection, int]]:
        with self.transaction(write=True) as conn:  # the write lock keeps other processes out
            yield conn, self._version()

    def set_version(self, conn: Any, version: int) -> None:
        conn.execute(f"PRAGMA user_version = {int(version)}")

    def _version(self) -> int:
        found = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        return known_schema(self.where, found)
