"""`deployer inventory ENV --write`: inventories/<env>/ next to deploy.yml, what the plan gives,
reported through render (text or --json); without --write nothing is written."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from deployer.config.loader import load_project
from deployer.config.resolve import resolve
from deployer.exitcodes import ExitCode
from deployer.plan.inventory_files import render_files

Cli = Callable[..., Result]
CASE = Path(__file__).parents[2] / "golden" / "inventory" / "service_env"
ENV = "prod-eu"


def _project(tmp_path: Path) -> Path:
    shutil.copy(CASE / "deploy.yml", tmp_path / "deploy.yml")
    return tmp_path / "deploy.yml"


def test_write_puts_hosts_and_group_vars_next_to_deploy_yml(tmp_path: Path, cli: Cli) -> None:
    config = _project(tmp_path)
    result = cli("-c", config, "inventory", ENV, "--write")
    assert result.exit_code == 0, result.output
    directory = tmp_path / "inventories" / ENV
    expected = render_files(resolve(load_project(config), ENV), "deploy.yml")
    written = {
        str(p.relative_to(directory)): p.read_text() for p in directory.rglob("*") if p.is_file()
    }
    assert written == expected
    assert set(written) == {"hosts.yml", "group_vars/env_prod_eu.yml"}
    assert f"written to {directory}" in result.stdout
    assert "hosts.yml, group_vars/env_prod_eu.yml" in result.stdout


def test_write_json_says_what_was_written(tmp_path: Path, cli: Cli) -> None:
    config = _project(tmp_path)
    result = cli("-c", config, "inventory", ENV, "--write", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "environment": ENV,
        "directory": str(tmp_path / "inventories" / ENV),
        "files": ["hosts.yml", "group_vars/env_prod_eu.yml"],
    }


def test_writing_again_replaces_deployers_own_files(tmp_path: Path, cli: Cli) -> None:
    config = _project(tmp_path)
    assert cli("-c", config, "inventory", ENV, "--write").exit_code == 0
    config.write_text(config.read_text().replace("keep_releases: 3", "keep_releases: 4"))
    assert cli("-c", config, "inventory", ENV, "--write").exit_code == 0
    group_vars = tmp_path / "inventories" / ENV / "group_vars" / "env_prod_eu.yml"
    assert "deployer_keep_releases: 4\n" in group_vars.read_text()


def test_a_file_deployer_did_not_write_is_refused_and_kept(tmp_path: Path, cli: Cli) -> None:
    config = _project(tmp_path)
    hosts = tmp_path / "inventories" / ENV / "hosts.yml"
    hosts.parent.mkdir(parents=True)
    hosts.write_text("all: {hosts: {mine: {}}}\n")
    result = cli("-c", config, "inventory", ENV, "--write")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "not written by deployer" in result.output
    assert hosts.read_text() == "all: {hosts: {mine: {}}}\n"
    assert not (hosts.parent / "group_vars").exists()  # nothing written when one is refused


def test_without_write_nothing_is_written(tmp_path: Path, cli: Cli) -> None:
    config = _project(tmp_path)
    assert cli("-c", config, "inventory", ENV).exit_code == 0
    assert cli("-c", config, "inventory", ENV, "--json").exit_code == 0
    assert not (tmp_path / "inventories").exists()
