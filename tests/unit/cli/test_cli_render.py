"""Every result the CLI prints goes through deployer.render: rich text or --json, never a
Python repr, and cli.py itself prints nothing on stdout."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from rich.console import Console

import deployer.cli
from deployer import render
from deployer.lab import LabHost, LabState
from deployer.targets.swarm.build import BuildResult, BuiltImage

Cli = Callable[..., Result]
SWARM = Path(__file__).parents[2] / "golden" / "swarm" / "compose" / "hello" / "deploy.yml"

BUILT = BuildResult(
    environment="swarm",
    version="v7",
    images=(
        BuiltImage("web", "swarm-hello-web:v7", "sha256:" + "ab" * 32, "python", True, False),
        BuiltImage("site", "swarm-hello-site:v7", "sha256:" + "cd" * 32, "static", False, True),
    ),
    seconds=3.25,
)


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    from deployer.targets.swarm.target import SwarmTarget

    asked: list[str | None] = []

    def build(self: Any, version: str | None = None) -> BuildResult:
        asked.append(version)
        return BUILT

    monkeypatch.setattr(SwarmTarget, "build", build)
    return asked


def test_build_renders_a_table_not_a_repr(cli: Cli, fake_build: list[str | None]) -> None:
    result = cli("-c", SWARM, "build", "swarm", "--version", "v7")
    assert result.exit_code == 0, result.output
    assert fake_build == ["v7"]
    assert "BuildResult(" not in result.stdout
    assert "BuiltImage(" not in result.stdout
    assert "swarm-hello-web:v7" in result.stdout
    assert "ab" * 6 in result.stdout
    assert "2 image(s), 1 cached" in result.stdout
    assert "deployer deploy swarm --version v7" in result.stdout


def test_build_json_is_the_result_as_data(cli: Cli, fake_build: list[str | None]) -> None:
    result = cli("-c", SWARM, "build", "swarm", "--version", "v7", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["environment"], data["version"], data["seconds"]) == ("swarm", "v7", 3.25)
    assert [i["image"] for i in data["images"]] == ["swarm-hello-web:v7", "swarm-hello-site:v7"]
    assert data["images"][1]["cached"] is True


def test_lab_status_renders_hosts_not_a_repr(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import deployer.lab

    state = LabState(
        name="lab",
        directory=Path("/labs/lab"),
        private_key=Path("/labs/lab/id_ed25519"),
        known_hosts=Path("/labs/lab/known_hosts"),
        hosts_file=Path("/labs/lab/hosts.yml"),
        image="deployer-lab:bookworm",
        hosts=(LabHost("lab1", "deployer-lab-1", "127.0.0.1", 2201, "deploy", "running", "x"),),
    )
    monkeypatch.setattr(deployer.lab, "status", lambda name: state, raising=False)
    result = cli("lab", "status")
    assert result.exit_code == 0, result.output
    assert "LabState(" not in result.stdout
    assert "LabHost(" not in result.stdout
    assert "deploy@127.0.0.1:2201" in result.stdout
    assert "hosts file: /labs/lab/hosts.yml" in result.stdout
    assert json.loads(cli("lab", "status", "--json").stdout)["hosts"][0]["port"] == 2201


@dataclass(frozen=True)
class _Unknown:
    name: str
    count: int


def test_a_result_without_its_own_renderer_is_shown_field_by_field() -> None:
    console = Console(record=True, width=200)
    render.show(_Unknown("x", 2), console)
    text = console.export_text()
    assert "_Unknown(" not in text
    assert text.splitlines() == ["name: x", "count: 2"]


def _stdout_prints(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "print":
            found.append(f"line {node.lineno}: print()")
        elif isinstance(func, ast.Attribute):
            owner = func.value
            name = owner.id if isinstance(owner, ast.Name) else ""
            if (name, func.attr) in {("out", "print"), ("out", "out"), ("typer", "echo")}:
                found.append(f"line {node.lineno}: {name}.{func.attr}()")
            if (name, func.attr) == ("json", "dumps"):
                found.append(f"line {node.lineno}: json.dumps()")
    return found


def test_cli_prints_no_result_itself() -> None:
    """Results reach stdout through deployer.render only (stderr progress is the CLI's)."""
    source = Path(deployer.cli.__file__).read_text()
    assert _stdout_prints(ast.parse(source)) == []
    # the check sees what it looks for
    assert _stdout_prints(ast.parse("out.print(x)\nprint(y)\njson.dumps(z)")) != []
