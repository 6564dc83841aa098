"""`deployer accessory` and `deployer db`: bad requests exit 2 with a clear message before
any host is contacted (the hosts here do not exist: reaching for one would fail otherwise)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from deployer.exitcodes import ExitCode
from deployer.ledger import Ledger

Cli = Callable[..., Result]
CONFIG = """\
app:
  name: shop
service:
  command: /usr/bin/python3 app.py
  port: 8000
health:
  tcp: {}
hooks:
  before_switch: {command: bin/migrate}
environments:
  plain:
    hosts:
      web: [{address: 192.0.2.1, name: web1}]
  prod:
    hosts:
      web: [{address: 192.0.2.1, name: web1}]
      database: [{address: 192.0.2.2, name: db1}]
    database: {type: postgresql, backup: {before_migrate: true}}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "deploy.yml").write_text(CONFIG)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["accessory", "status", "plain"], "no accessories (set database or cache)"),
        (["accessory", "status", "prod", "cache"], "accessory 'cache' is not one of"),
        (["db", "restore", "prod", "1"], "pass --yes"),
        (["db", "restore", "prod", "7", "--yes"], "no backup 7 of prod (known: none)"),
        (["db", "restore", "plain", "1", "--yes"], "no database to restore"),
    ],
)
def test_bad_requests_exit_2_before_any_host(
    args: list[str], words: str, project: Path, cli: Cli
) -> None:
    result = cli("-c", project / "deploy.yml", *args)
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert words in result.output


def test_db_backups_lists_what_the_ledger_recorded(project: Path, cli: Cli) -> None:
    with Ledger(project / ".deployer" / "ledger.sqlite3") as ledger:
        ledger.record_backup(
            environment="prod", deployment_id=None, host="db1",
            file="20261204T014500Z-v2.dump", size=2048, sha256="ab" * 32, label="v2",
        )  # fmt: skip
    result = cli("-c", project / "deploy.yml", "db", "backups", "prod")
    assert result.exit_code == 0, result.output
    assert "20261204T014500Z-v2.dump" in result.output
    assert "2.0 KiB" in result.output
    empty = cli("-c", project / "deploy.yml", "db", "backups", "plain")
    assert "no backups of plain recorded" in empty.output
