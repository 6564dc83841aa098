"""What the ledger's engines (SQLite, PostgreSQL) offer the ledger, and its errors.

The ledger's statements are written once, with `?` placeholders; an engine's `Connection`
runs them as its driver wants them. An engine also knows how to begin a transaction that
is safe against the other processes sharing the ledger, where it keeps the schema version,
how it serializes migrations, and how to lock a deployment's row while one is being
changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from deployer.errors import DeployerError
from deployer.exitcodes import ExitCode
from deployer.ledger.schema import Types


class LedgerError(DeployerError):
    """The ledger refuses an operation."""


class LedgerUnreadable(LedgerError):
    """The ledger cannot be read as a ledger of this deployer: bad input."""

    exit_code = ExitCode.BAD_INPUT


class LedgerUnreachable(LedgerError):
    """The ledger's server cannot be reached or refused the credentials: bad input,
    reported before any host is touched."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message: str, *, credentials: bool = False) -> None:
        super().__init__(message)
        self.credentials = credentials
        """The server refused the password (or asked for one that was not given)."""


class Cursor(Protocol):
    """Rows come back as mappings: `row["column"]`."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], /) -> None: ...

    def now(self) -> str:
        """The time to record, UTC ISO-8601 text with microseconds: the control host's
        clock on SQLite, the server's on PostgreSQL (one clock for every control host)."""

    def lock_deployment(self, deployment_id: int, /) -> None:
        """Hold the deployment's row until the transaction ends: writes to one deployment
        that read before they write are not interleaved with another process's."""

    def after_copy(self, table: str, /) -> None:
        """Rows were copied into `table` with their ids: ids assigned from now on follow."""


class Backend(Protocol):
    where: str
    """The ledger as messages name it: a file, or a URL (never with a password)."""
    types: Types

    def transaction(self, write: bool) -> AbstractContextManager[Connection]:
        """One transaction: committed when the block ends, rolled back when it raises.
        A write transaction is safe against concurrent writers of other processes."""

    def migration(self) -> AbstractContextManager[tuple[Connection, int]]:
        """A write transaction, held alone among every process that opens the ledger, and
        the schema version found (LedgerUnreadable when it is newer than this deployer's)."""

    def set_version(self, conn: Connection, version: int) -> None: ...

    def close(self) -> None: ...
