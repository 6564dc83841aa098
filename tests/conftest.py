"""Shared fixtures: the fixture/golden directories, an empty lab directory, a CLI runner and
a PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

TESTS = Path(__file__).parent


@pytest.fixture
def no_lab(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """DEPLOYER_LAB_DIR pointing at an empty directory: no lab is up."""
    labs = tmp_path_factory.mktemp("labs")
    monkeypatch.setenv("DEPLOYER_LAB_DIR", str(labs))
    monkeypatch.delenv("DEPLOYER_LAB_NAME", raising=False)
    monkeypatch.delenv("DEPLOYER_CONFIG", raising=False)
    return labs


@pytest.fixture
def cli(no_lab: Path) -> Callable[..., Result]:
    """Run `deployer ARGS...` in-process; stdout and stderr are both in `.output`."""
    from deployer.cli import app

    def run(*args: str | Path) -> Result:
        return CliRunner().invoke(app, [str(a) for a in args])

    return run


# --- a real PostgreSQL server, for the team ledger ---------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One PostgreSQL server for the session (see ledger_db.py), removed at its end."""
    import ledger_db

    server = ledger_db.start()
    try:
        yield server
    finally:
        ledger_db.stop()


@pytest.fixture
def postgres(postgres_server: Any) -> Iterator[Any]:
    """An empty database of that server, of this test alone."""
    import ledger_db

    with ledger_db.database(postgres_server) as db:
        yield db
