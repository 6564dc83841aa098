"""The CLI on a PostgreSQL ledger (a real server, tests/ledger_db.py): its password from the
vault or the environment and never shown; a server that cannot be used refused with exit 2
before any host is touched; `deployer ledger migrate`; and the control host's name."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from deployer.exitcodes import ExitCode
from deployer.ledger import HostResult, HostStatus, Kind, Ledger, Status

Cli = Callable[..., Result]
CANARY = "wrong-CANARY-7d3f0a9e"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_project(root: Path, ledger: Any = None, **extra: Any) -> Path:
    """A project whose only host is a closed port on this machine: a command that got as
    far as the hosts would fail there with exit 4, not 2."""
    data: dict[str, Any] = {
        "app": {"name": "shop"},
        "service": {"command": "/usr/bin/python3 app.py", "port": 8000},
        "health": {"tcp": {}},
        "environments": {
            "prod": {"hosts": {"web": [{"address": "127.0.0.1", "port": _closed_port()}]}}
        },
        **extra,
    }
    if ledger is not None:
        data["ledger"] = ledger
    root.mkdir(parents=True, exist_ok=True)
    (root / "deploy.yml").write_text(yaml.safe_dump(data))
    (root / "app").mkdir(exist_ok=True)
    (root / "app" / "app.py").write_text("print('hello')\n")
    return root / "deploy.yml"


def record(ledger: Ledger, version: str, status: Status, previous: str | None = None) -> int:
    deployment_id = ledger.begin(
        environment="prod",
        kind=Kind.DEPLOY,
        version=version,
        previous_version=previous,
        artifact_sha256=None,
        user="alice",
        control_host="laptop",
        pid=7,
    )
    ledger.record_hosts(deployment_id, [HostResult("web1", HostStatus.CHANGED, "switch")])
    ledger.finish(deployment_id, status, deploy_seconds=3.5)
    return deployment_id


def test_history_reads_the_ledger_with_its_password_from_the_vault(
    tmp_path: Path, postgres: Any, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(b"vault-pass"))])
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "vault.yml").write_bytes(
        vault.encrypt(f"ledger_password: {postgres.password}\n")
    )
    monkeypatch.setenv("VAULT_PASSWORD", "vault-pass")
    config = write_project(
        tmp_path / "p",
        {"url": postgres.url, "password": {"vault": "ledger_password"}},
        secrets={"vault_file": "vault.yml", "vault_password_env": "VAULT_PASSWORD"},
    )
    with postgres.ledger() as ledger:
        record(ledger, "v1", Status.SUCCEEDED)
    result = cli("-c", config, "history", "prod", "--json")
    assert result.exit_code == 0, result.output
    assert [(r["version"], r["control_host"]) for r in json.loads(result.stdout)] == [
        ("v1", "laptop")
    ]
    assert not (tmp_path / "p" / ".deployer" / "ledger.sqlite3").exists()


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_wrong_password_exits_2_naming_the_key_and_never_the_password(
    tmp_path: Path, postgres: Any, cli: Cli, monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    monkeypatch.setenv("LEDGER_PASSWORD", CANARY)
    config = write_project(
        tmp_path, {"url": postgres.url, "password": {"from_env": "LEDGER_PASSWORD"}}
    )
    for args in (["history"], ["deploy", "prod", "--version", "v1"], ["status", "prod"]):
        result = cli("-c", config, *args, *(["--json"] if as_json else []))
        assert result.exit_code == ExitCode.BAD_INPUT, (args, result.output)
        assert "ledger.password: cannot connect to ledger" in result.output
        assert postgres.url in result.output
        assert "password authentication failed" in result.output
        assert CANARY not in result.output
        if as_json:
            assert json.loads(result.stdout)["exit_code"] == 2
    assert not (tmp_path / ".deployer" / "runs").exists()  # no Ansible run: no host touched


def test_an_unreachable_server_exits_2_before_any_host_is_touched(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_PASSWORD", CANARY)
    url = f"postgresql://deployer@127.0.0.1:{_closed_port()}/ledger"
    config = write_project(tmp_path, {"url": url, "password": {"from_env": "LEDGER_PASSWORD"}})
    for args in (["deploy", "prod", "--version", "v1"], ["rollback", "prod"], ["plan", "prod"]):
        result = cli("-c", config, *args)
        assert result.exit_code == ExitCode.BAD_INPUT, (args, result.output)
        assert f"ledger.url: cannot connect to ledger {url}" in result.output
        assert "Connection refused" in result.output
        assert CANARY not in result.output
    assert not (tmp_path / ".deployer" / "runs").exists()


def test_a_password_reference_without_a_value_exits_2_naming_it(
    tmp_path: Path, postgres: Any, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_LEDGER_PASSWORD", raising=False)
    config = write_project(
        tmp_path, {"url": postgres.url, "password": {"from_env": "NO_SUCH_LEDGER_PASSWORD"}}
    )
    result = cli("-c", config, "deploy", "prod", "--version", "v1")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "ledger.password.from_env: environment variable NO_SUCH_LEDGER_PASSWORD" in result.output


def test_a_bad_control_host_name_exits_2(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOYER_CONTROL_HOST", "laptop; rm -rf /")
    result = cli("-c", write_project(tmp_path), "deploy", "prod", "--version", "v1")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "DEPLOYER_CONTROL_HOST: must be a host name" in result.output


# --- deployer ledger migrate ---------------------------------------------------------------


@pytest.fixture
def sqlite_project(tmp_path: Path) -> Path:
    """A project on its SQLite ledger, with a history: v1, v2, v3 rolled back and bad."""
    config = write_project(tmp_path / "team")
    with Ledger(tmp_path / "team" / ".deployer" / "ledger.sqlite3") as ledger:
        record(ledger, "v1", Status.SUCCEEDED)
        record(ledger, "v2", Status.SUCCEEDED, "v1")
        bad = record(ledger, "v3", Status.ROLLED_BACK, "v2")
        ledger.mark_bad("prod", "v3", deployment_id=bad, reason="health check failed")
    return config


def test_migrate_moves_the_history_into_postgresql_once(
    sqlite_project: Path, postgres: Any, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = cli("-c", sqlite_project, "history", "--json")
    monkeypatch.setenv("PGPASSWORD", postgres.password)  # libpq's: the URL is not ledger.url
    moved = cli("-c", sqlite_project, "ledger", "migrate", "--to", postgres.url, "--json")
    assert moved.exit_code == 0, moved.output
    report = json.loads(moved.stdout)
    assert report["copied"] is True
    assert report["target"] == postgres.url
    assert report["rows"]["deployments"] == 3
    assert report["rows"]["bad_versions"] == 1
    again = cli("-c", sqlite_project, "ledger", "migrate", "--to", postgres.url)
    assert again.exit_code == 0, again.output
    assert "already holds every row" in again.output

    # the project switched to the shared ledger reads the same history, ids and times kept
    monkeypatch.delenv("PGPASSWORD")
    monkeypatch.setenv("LEDGER_PASSWORD", postgres.password)
    data = yaml.safe_load(sqlite_project.read_text())
    data["ledger"] = {"url": postgres.url, "password": {"from_env": "LEDGER_PASSWORD"}}
    sqlite_project.write_text(yaml.safe_dump(data))
    after = cli("-c", sqlite_project, "history", "--json")
    assert after.exit_code == 0, after.output
    assert json.loads(after.stdout) == json.loads(before.stdout)
    # with the config on PostgreSQL, the SQLite file is named with --from
    old = sqlite_project.parent / ".deployer" / "ledger.sqlite3"
    third = cli("-c", sqlite_project, "ledger", "migrate", "--from", old, "--json")
    assert third.exit_code == 0, third.output
    assert json.loads(third.stdout)["copied"] is False
    refused = cli("-c", sqlite_project, "ledger", "migrate")
    assert refused.exit_code == ExitCode.BAD_INPUT
    assert "--from: the config's ledger is PostgreSQL" in refused.output


def test_migrate_refuses_a_database_holding_another_history(
    sqlite_project: Path, postgres: Any, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    with postgres.ledger() as other:
        record(other, "x1", Status.SUCCEEDED)
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    result = cli("-c", sqlite_project, "ledger", "migrate", "--to", postgres.url)
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "already holds rows (1 deployments, 1 deployment_hosts)" in result.output
    with postgres.ledger() as other:
        assert [d.version for d in other.history()] == ["x1"]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--to", f"postgresql://deployer:{CANARY}@127.0.0.1/ledger"], "--to: must not carry"),
        (["--to", f"postgresql://127.0.0.1/l?password={CANARY}"], "--to: must not carry"),
        (["--to", "sqlite:///x"], "--to: must be a postgresql:// URL"),
        ([], "--to: name the PostgreSQL ledger"),
        (["--to", "postgresql://d@127.0.0.1/l", "--from", "nowhere.sqlite3"], "--from: no ledger"),
    ],
    ids=["password", "query-password", "scheme", "no-target", "no-source"],
)
def test_migrate_refuses_bad_input_without_showing_a_password(
    sqlite_project: Path, cli: Cli, args: list[str], problem: str
) -> None:
    result = cli("-c", sqlite_project, "ledger", "migrate", *args)
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert problem in result.output
    assert CANARY not in result.output


def test_migrate_to_a_server_refusing_the_password_names_to(
    sqlite_project: Path, postgres: Any, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", CANARY)
    result = cli("-c", sqlite_project, "ledger", "migrate", "--to", postgres.url)
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "--to: cannot connect to ledger" in result.output
    assert CANARY not in result.output
