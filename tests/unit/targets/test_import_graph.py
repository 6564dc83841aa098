"""The import graph of deployer/, read with `ast` (nothing is imported to check it).

    cli -> engine -> targets.base <- targets.ssh | targets.swarm

Targets never reach up into the engine or the CLI, never into each other; only the CLI
imports the CLI; only the SSH target's runner imports ansible_runner; the engine knows the
protocol (targets.base) and no target. Every import counts: at module level, inside a
function (the lazy ones) and under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]
PACKAGE = ROOT / "deployer"
MODULES = sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or base.is_dir()


def _imports(source: str, module: str, *, is_package: bool = False) -> Iterator[str]:
    """Every module `module` (whose text is `source`) imports; `from pkg import mod` counts
    as pkg.mod; relative imports are resolved against the module's package."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            yield base
            for alias in node.names:
                if _is_module(f"{base}.{alias.name}"):
                    yield f"{base}.{alias.name}"


GRAPH = {
    _name(p): frozenset(_imports(p.read_text(), _name(p), is_package=p.name == "__init__.py"))
    for p in MODULES
}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _offenders(importers: str, imported: str) -> dict[str, list[str]]:
    return {
        module: sorted(i for i in deps if _within(i, imported))
        for module, deps in GRAPH.items()
        if _within(module, importers) and any(_within(i, imported) for i in deps)
    }


def test_the_graph_was_read() -> None:
    # guards the checks below against passing on an empty or misread graph
    assert "deployer.engine.lifecycle" in GRAPH
    assert "deployer.targets.ssh.runner" in GRAPH
    assert "deployer.targets.swarm.target" in GRAPH
    assert "deployer.plan.strategy" in GRAPH["deployer.engine.lifecycle"]
    assert "deployer.targets.base" in GRAPH["deployer.targets.swarm.target"]
    assert "deployer.targets.ssh.runner" in GRAPH["deployer.targets.ssh.context"]


def test_imports_are_resolved() -> None:
    # the package has no relative import today; one added must not slip past the checks
    source = """
from ..ssh import runner
from . import target
from .target import SwarmTarget
import ansible_runner.runner
def lazy():
    from deployer.engine import lifecycle
"""
    found = set(_imports(source, "deployer.targets.swarm.probe"))
    assert found == {
        "deployer.targets.ssh",
        "deployer.targets.ssh.runner",
        "deployer.targets.swarm",
        "deployer.targets.swarm.target",
        "ansible_runner.runner",
        "deployer.engine",
        "deployer.engine.lifecycle",
    }
    in_init = set(_imports("from .base import Target", "deployer.targets", is_package=True))
    assert in_init == {"deployer.targets.base"}


@pytest.mark.parametrize("upper", ["deployer.engine", "deployer.cli"])
def test_targets_never_import_the_layers_above(upper: str) -> None:
    assert _offenders("deployer.targets", upper) == {}


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("deployer.targets.ssh", "deployer.targets.swarm"),
        ("deployer.targets.swarm", "deployer.targets.ssh"),
    ],
)
def test_targets_never_import_each_other(one: str, other: str) -> None:
    assert _offenders(one, other) == {}


def test_only_the_entry_point_imports_the_cli() -> None:
    importers = {m for m, deps in GRAPH.items() if any(_within(i, "deployer.cli") for i in deps)}
    assert importers <= {"deployer.__main__"}


def test_only_the_ssh_runner_imports_ansible_runner() -> None:
    importers = {m for m, deps in GRAPH.items() if any(_within(i, "ansible_runner") for i in deps)}
    assert importers == {"deployer.targets.ssh.runner"}


ENGINE = sorted(m for m in GRAPH if _within(m, "deployer.engine"))


def _target_imports(module: str) -> set[str]:
    return {
        i
        for i in GRAPH[module]
        if _within(i, "deployer.targets") and not _within(i, "deployer.targets.base")
    }


@pytest.mark.parametrize("module", ENGINE)
def test_the_engine_imports_no_target_but_the_protocol(module: str) -> None:
    assert _target_imports(module) == set()
