"""`target: nomad` validates, but no Nomad target exists yet: every command on such an
environment exits 2 naming the config path, before any host is contacted or file written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from deployer.exitcodes import ExitCode

Cli = Callable[..., Result]
CONFIG = """\
app:
  name: myapp
service:
  command: /usr/bin/python3 app.py
  port: 8000
health:
  tcp: {}
environments:
  jobs:
    target: nomad
    hosts:
      web:
        - address: 10.0.0.1
"""

COMMANDS = [
    ["plan", "jobs"],
    ["deploy", "jobs", "--version", "v1"],
    ["build", "jobs"],
    ["rollback", "jobs"],
    ["status", "jobs"],
    ["releases", "jobs"],
    ["inventory", "jobs"],
    ["inventory", "jobs", "--write"],
    ["lock", "status", "jobs"],
    ["lock", "release", "jobs"],
    ["monitoring", "setup", "jobs"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_refuses_nomad_with_exit_2(
    command: list[str], tmp_path: Path, cli: Cli
) -> None:
    config = tmp_path / "deploy.yml"
    config.write_text(CONFIG)
    result = cli("-c", str(config), *command, "--json")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    error = json.loads(result.stdout)
    assert error["exit_code"] == 2
    assert error["error"].startswith("environments.jobs.target: 'nomad' cannot be used")
    assert "Nomad is not implemented" in error["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deploy.yml"]  # nothing written


def test_validate_accepts_nomad_settings(tmp_path: Path, cli: Cli) -> None:
    config = tmp_path / "deploy.yml"
    config.write_text(CONFIG)
    assert cli("-c", str(config), "validate").exit_code == 0
