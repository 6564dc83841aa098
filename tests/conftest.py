"""Shared fixtures: the fixture/golden directories, an empty lab directory and a CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
