"""Moving a ledger into another (`deployer ledger migrate`): a SQLite file into the team's
PostgreSQL database.

Every table of the schema is copied row for row, ids and times as they were, in one
transaction on the target, held alone against other copies and migrations. The target must
be empty, or already hold exactly the same rows (a copy that was done before: nothing is
written then); anything else is refused and the target is left as it was. The source is
only read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deployer.errors import BadRequest
from deployer.ledger.base import Connection
from deployer.ledger.schema import TABLES
from deployer.ledger.store import Ledger


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class Moved:
    """What `deployer ledger migrate` did."""

    source: str
    target: str
    rows: Mapping[str, int]
    """Rows of each table, as the source holds them."""
    copied: bool
    """False: the target already held these rows, and nothing was written."""


def _quoted(columns: tuple[str, ...]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _read(conn: Connection, table: str, columns: tuple[str, ...] | None = None) -> Table:
    key = _quoted(TABLES[table])
    cursor = conn.execute(
        f"SELECT {_quoted(columns) if columns else '*'} FROM {table} ORDER BY {key}"  # noqa: S608
    )
    names = columns or tuple(str(d[0]) for d in cursor.description)
    return Table(names, tuple(tuple(row[c] for c in names) for row in cursor.fetchall()))


def snapshot(ledger: Ledger) -> dict[str, Table]:
    """Every row of every table, as stored, in one read."""
    with ledger._tx(write=False) as conn:
        return {table: _read(conn, table) for table in TABLES}


def move(source: Ledger, target: Ledger) -> Moved:
    """Copy `source` into `target`; see the module's documentation."""
    data = snapshot(source)
    counts = {table: len(found.rows) for table, found in data.items()}
    copied = _take(target, data)
    return Moved(source=source.where, target=target.where, rows=counts, copied=copied)


def _take(target: Ledger, data: Mapping[str, Table]) -> bool:
    with target._lock, target._db.migration() as (conn, _):
        count = "SELECT COUNT(*) AS n FROM {}"
        held = {t: int(conn.execute(count.format(t)).fetchone()["n"]) for t in data}
        if any(held.values()):
            if all(_read(conn, t, found.columns) == found for t, found in data.items()):
                return False
            rows = ", ".join(f"{n} {t}" for t, n in held.items() if n)
            raise BadRequest(
                f"ledger {target.where} already holds rows ({rows}) that are not this "
                "ledger's: move it into an empty database (nothing was written)"
            )
        for table, found in data.items():
            if found.rows:
                marks = ", ".join("?" for _ in found.columns)
                conn.executemany(
                    f"INSERT INTO {table} ({_quoted(found.columns)}) VALUES ({marks})",  # noqa: S608
                    found.rows,
                )
            conn.after_copy(table)
        return True
