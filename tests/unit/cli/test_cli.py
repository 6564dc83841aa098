"""The project commands of the CLI: init, validate, schema, inventory, history, --help."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import Result

from deployer.config.loader import load_project
from deployer.config.resolve import resolve
from deployer.exitcodes import ExitCode
from deployer.plan.inventory import build_inventory

FIXTURES = Path(__file__).parents[2] / "fixtures" / "configs"
Cli = Callable[..., Result]


def test_init_writes_a_file_that_validates(tmp_path: Path, cli: Cli) -> None:
    config = tmp_path / "deploy.yml"
    result = cli("-c", config, "init", "--app", "hello")
    assert result.exit_code == 0, result.output
    assert load_project(config).project.app.name == "hello"
    result = cli("-c", config, "validate", "production")
    assert result.exit_code == 0, result.output
    assert "is valid (production)" in result.output


def test_init_output_validates_entirely_with_a_lab_up(
    tmp_path: Path, no_lab: Path, cli: Cli
) -> None:
    (no_lab / "lab").mkdir()
    (no_lab / "lab" / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "lab": "lab",
                "known_hosts": str(no_lab / "lab" / "known_hosts"),
                "hosts": [
                    {
                        "name": "lab1",
                        "address": "127.0.0.1",
                        "port": 2201,
                        "user": "deploy",
                        "private_key": str(no_lab / "lab" / "id_ed25519"),
                    }
                ],
            }
        )
    )
    config = tmp_path / "deploy.yml"
    assert cli("-c", config, "init").exit_code == 0
    result = cli("-c", config, "validate")
    assert result.exit_code == 0, result.output
    inventory = json.loads(cli("-c", config, "inventory", "lab", "--json").stdout)
    host = inventory["all"]["children"]["env_lab"]["children"]["web"]["hosts"]["lab1"]
    assert (host["ansible_port"], host["ansible_ssh_private_key_file"]) == (
        2201,
        str(no_lab / "lab" / "id_ed25519"),
    )
    assert str(no_lab / "lab" / "known_hosts") in json.dumps(inventory)


def test_init_refuses_to_overwrite(tmp_path: Path, cli: Cli) -> None:
    config = tmp_path / "deploy.yml"
    config.write_text("# mine\n")
    result = cli("-c", config, "init")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "--force" in result.output
    assert config.read_text() == "# mine\n"
    assert cli("-c", config, "init", "--force", "--app", "other").exit_code == 0
    assert load_project(config).project.app.name == "other"


def test_init_refuses_an_unsafe_app_name(tmp_path: Path, cli: Cli) -> None:
    config = tmp_path / "deploy.yml"
    result = cli("-c", config, "init", "--app", "$(id)")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "--app" in result.output
    assert not config.exists()


def test_schema_prints_json_schema(cli: Cli) -> None:
    result = cli("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "environments" in schema["properties"]
    assert "environments" in schema["required"]


def test_inventory_json_matches_build_inventory(cli: Cli) -> None:
    config = FIXTURES / "good" / "full.yml"
    result = cli("-c", config, "inventory", "production", "--json")
    assert result.exit_code == 0, result.output
    expected = build_inventory(resolve(load_project(config), "production"))
    assert json.loads(result.stdout) == json.loads(json.dumps(expected))


def test_inventory_yaml_matches_build_inventory(cli: Cli) -> None:
    config = FIXTURES / "good" / "minimal.yml"
    result = cli("-c", config, "inventory", "staging")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout) == build_inventory(
        resolve(load_project(config), "staging")
    )


def test_validate_json_on_a_bad_config(cli: Cli) -> None:
    result = cli("-c", FIXTURES / "bad" / "keep_releases_one.yml", "validate", "--json")
    assert result.exit_code == ExitCode.BAD_INPUT
    data = json.loads(result.stdout)
    assert data["exit_code"] == 2
    assert "invalid configuration" in data["error"]
    assert [d.split(":")[0] for d in data["details"]] == ["keep_releases"]


def test_validate_json_on_a_good_config(cli: Cli) -> None:
    result = cli("-c", FIXTURES / "good" / "override.yml", "validate", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["valid"] is True
    assert data["environments"] == ["production", "staging"]


def test_validate_reports_problems_of_every_environment(tmp_path: Path, cli: Cli) -> None:
    config = tmp_path / "deploy.yml"
    config.write_text(
        "app: {name: myapp}\nhealth: {tcp: {port: 80}}\nenvironments:\n"
        "  a: {hosts: {web: [{address: 10.0.0.1}]}}\n"
        "  b: {hosts: {web: [{address: 10.0.0.2}]}, resources: {db: {cpu: 1}}}\n"
    )
    data = json.loads(cli("-c", config, "validate", "--json").stdout)
    paths = [d.split(":")[0] for d in data["details"]]
    assert set(paths) == {"service.command", "environments.b.resources.db"}
    assert len([d for d in data["details"] if d.startswith("service.command")]) == 1


def test_missing_config_file(tmp_path: Path, cli: Cli) -> None:
    result = cli("-c", tmp_path / "nope.yml", "validate")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "deployer init" in result.output


def test_history_on_a_fresh_project(tmp_path: Path, cli: Cli) -> None:
    config = tmp_path / "deploy.yml"
    config.write_text((FIXTURES / "good" / "minimal.yml").read_text())
    result = cli("-c", config, "history")
    assert result.exit_code == 0, result.output
    assert "no deployments" in result.output
    assert json.loads(cli("-c", config, "history", "--json").stdout) == []


def test_history_of_an_unknown_environment(tmp_path: Path, cli: Cli) -> None:
    config = tmp_path / "deploy.yml"
    config.write_text((FIXTURES / "good" / "minimal.yml").read_text())
    result = cli("-c", config, "history", "nope")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "environments.nope" in result.output


def test_history_id_shows_one_deployment_with_why_each_host_failed(
    tmp_path: Path, cli: Cli
) -> None:
    from deployer.ledger import Analysis, HostResult, HostStatus, Kind, Ledger, Status

    config = tmp_path / "deploy.yml"
    config.write_text((FIXTURES / "good" / "minimal.yml").read_text())
    with Ledger(tmp_path / ".deployer" / "ledger.sqlite3") as ledger:
        first = ledger.begin(
            environment="staging", kind=Kind.DEPLOY, version="v2", previous_version="v1",
            artifact_sha256=None, user="alice", control_host="ctl-1", pid=1,
        )  # fmt: skip
        why = Analysis(
            "oom", "killed by the kernel for memory (out of memory)", ("allocating 2 GiB",)
        )
        ledger.record_hosts(
            first,
            [
                HostResult("web1", HostStatus.ROLLED_BACK, "rollback", "v1", "v1", analysis=why),
                HostResult("web2", HostStatus.ROLLED_BACK, "rollback", "v1", "v1"),
            ],
        )
        ledger.finish(first, Status.ROLLED_BACK, reason="health check failed on web1")
    shown = cli("-c", config, "history", "staging", "--id", str(first))
    assert shown.exit_code == 0, shown.output
    assert f"deployment #{first} staging deploy v2: ROLLED_BACK" in shown.output
    assert "why web1 failed: killed by the kernel for memory (out of memory)" in shown.output
    assert "| allocating 2 GiB" in shown.output
    assert "why web2" not in shown.output
    data = json.loads(cli("-c", config, "history", "--id", str(first), "--json").stdout)
    assert data["hosts"][0]["analysis"]["cause"] == "oom"
    assert data["hosts"][1]["analysis"] is None
    missing = cli("-c", config, "history", "staging", "--id", "99")
    assert missing.exit_code == ExitCode.BAD_INPUT
    assert "--id: no deployment 99 of environment staging" in missing.output


COMMANDS = [
    [],
    ["init"],
    ["validate"],
    ["schema"],
    ["inventory"],
    ["plan"],
    ["deploy"],
    ["rollback"],
    ["status"],
    ["releases"],
    ["history"],
    ["lock"],
    ["lock", "status"],
    ["lock", "release"],
    ["lab"],
    ["lab", "up"],
    ["lab", "status"],
    ["lab", "down"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) or "deployer" for c in COMMANDS])
def test_help(command: list[str], cli: Cli) -> None:
    result = cli(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_a_tls_reference_that_is_not_pem_exits_2_with_its_path(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "deploy.yml"
    config.write_text(
        "app: {name: myapp}\nservice: {command: /bin/app, port: 8000}\n"
        "health: {tcp: {}}\nenvironments:\n"
        "  a:\n    hosts: {web: [{address: 10.0.0.1}]}\n    domain: a.example.com\n"
        "    features: {ssl: true}\n"
        "    tls: {certificate: {from_env: T_CERT}, key: {from_env: T_KEY}}\n"
    )
    monkeypatch.setenv("T_CERT", "-----BEGIN CERTIFICATE-----\nx\n")
    monkeypatch.setenv("T_KEY", "not a key")
    result = cli("-c", config, "deploy", "a", "--version", "v1")
    assert result.exit_code == 2, result.output
    assert "environments.a.tls.key: not PEM text" in result.output
    assert "not a key" not in result.output
