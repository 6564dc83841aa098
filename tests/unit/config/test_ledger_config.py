"""`ledger`: a SQLite path (the short form, as configs always wrote it) or a PostgreSQL URL
with its password as a secret reference; anything else is refused naming `ledger`, and a URL
that carries a password is refused without being quoted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from deployer.config.base import SecretRef
from deployer.config.ledger import LedgerPlace
from deployer.config.loader import load_project
from deployer.config.resolve import resolve
from deployer.errors import ConfigError

BASE: dict[str, Any] = {
    "app": {"name": "shop"},
    "service": {"command": "/usr/bin/python3 app.py", "port": 8000},
    "health": {"tcp": {}},
    "environments": {"prod": {"hosts": {"web": [{"address": "10.0.0.1"}]}}},
}
SECRET = "hunter2-CANARY-4b1e"


def _write(tmp_path: Path, ledger: Any) -> Path:
    data = dict(BASE) if ledger is None else {**BASE, "ledger": ledger}
    path = tmp_path / "deploy.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def place(tmp_path: Path, ledger: Any) -> LedgerPlace:
    return resolve(load_project(_write(tmp_path, ledger)), "prod").ledger


def test_a_path_short_or_long_is_a_sqlite_file_next_to_deploy_yml(tmp_path: Path) -> None:
    assert place(tmp_path, None) == LedgerPlace(path=tmp_path / ".deployer" / "ledger.sqlite3")
    assert place(tmp_path, "state/l.db") == LedgerPlace(path=tmp_path / "state" / "l.db")
    assert place(tmp_path, {"path": "state/l.db"}) == LedgerPlace(path=tmp_path / "state/l.db")
    assert place(tmp_path, {}).path == tmp_path / ".deployer" / "ledger.sqlite3"


def test_a_url_with_a_password_reference_is_a_postgresql_ledger(tmp_path: Path) -> None:
    url = "postgresql://deployer@db.example.com:5432/ledger?sslmode=verify-full"
    found = place(tmp_path, {"url": url, "password": {"from_env": "LEDGER_PASSWORD"}})
    assert found == LedgerPlace(url=url, password=SecretRef(from_env="LEDGER_PASSWORD"))
    assert place(tmp_path, {"url": "postgres://deployer@db/ledger"}).password is None


REFUSED = {
    "both": ({"path": "l.db", "url": "postgresql://d@db/l"}, "ledger: set `path`"),
    "password without url": (
        {"path": "l.db", "password": {"from_env": "X"}},
        "ledger: `password` is the password of a PostgreSQL ledger",
    ),
    "not postgresql": ({"url": "mysql://d@db/l"}, "ledger.url: must be a postgresql:// URL"),
    "not a url": ({"url": "postgresql://db:port/l"}, "ledger.url: is not a URL"),
    "whitespace": ({"url": "postgresql://d@db/l x"}, "ledger.url: must not contain whitespace"),
    "unknown key": ({"url": "postgresql://d@db/l", "sslmode": "x"}, "ledger.sslmode: unknown"),
    "reference of no source": (
        {"url": "postgresql://d@db/l", "password": {}},
        "ledger.password: set exactly one of",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_ledger_that_is_neither_is_refused_naming_its_path(tmp_path: Path, name: str) -> None:
    ledger, problem = REFUSED[name]
    with pytest.raises(ConfigError) as info:
        load_project(_write(tmp_path, ledger))
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://deployer:{SECRET}@db.example.com/ledger",
        f"postgresql://db.example.com/ledger?user=deployer&password={SECRET}",
        f"postgresql://db.example.com/ledger?PASSWORD={SECRET}",
    ],
    ids=["userinfo", "query", "query-uppercase"],
)
def test_a_url_carrying_a_password_is_refused_and_never_shown(
    tmp_path: Path, url: str, cli: Callable[..., Result]
) -> None:
    path = _write(tmp_path, {"url": url})
    result = cli("-c", path, "validate", "--json")
    assert result.exit_code == 2, result.output
    assert "ledger.url: must not carry a password" in result.output
    assert SECRET not in result.output
    assert "db.example.com" not in result.output  # the URL is not quoted at all
