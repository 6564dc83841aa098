"""`deployer monitoring config|dashboard`: what they print is the generated configuration,
and an environment without monitoring is refused with exit 2 naming the setting."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml
from click.testing import Result

from deployer.config.loader import load_project
from deployer.config.resolve import resolve
from deployer.exitcodes import ExitCode
from deployer.plan.monitoring import dashboard, scrape_config

Cli = Callable[..., Result]
HELLO = Path(__file__).parents[2] / "golden" / "monitoring" / "hello" / "deploy.yml"


def test_config_prints_the_generated_prometheus_yml(cli: Cli) -> None:
    (env,) = load_project(HELLO).project.environments
    expected = scrape_config(resolve(load_project(HELLO), env))
    result = cli("-c", HELLO, "monitoring", "config", env)
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output) == expected
    as_json = cli("-c", HELLO, "monitoring", "config", env, "--json")
    assert json.loads(as_json.output) == expected


def test_dashboard_is_written_where_asked(cli: Cli, tmp_path: Path) -> None:
    (env,) = load_project(HELLO).project.environments
    out = tmp_path / "dash.json"
    result = cli("-c", HELLO, "monitoring", "dashboard", env, "-o", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == dashboard(resolve(load_project(HELLO), env))


def test_an_environment_without_monitoring_is_refused(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "deploy.yml"
    config.write_text(HELLO.read_text().replace("monitoring: true", "monitoring: false"))
    (env,) = load_project(config).project.environments
    for command in ("config", "dashboard", "setup"):
        result = cli("-c", config, "monitoring", command, env)
        assert result.exit_code == ExitCode.BAD_INPUT, (command, result.output)
        assert f"environments.{env}.features.monitoring" in result.output
