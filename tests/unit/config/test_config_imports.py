"""The config package stands alone: it imports neither the lab nor itself in a circle.

Each check runs in a fresh interpreter, so modules imported by other tests cannot hide an
import that the package makes (or fails to make) by itself.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import deployer.config

CONFIG = Path(deployer.config.__file__).parent
ROOT = CONFIG.parents[1]


def _fresh(code: str) -> dict[str, object]:
    """Run `code` in a new interpreter; it prints one JSON value, returned here."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_config_package_never_imports_the_lab() -> None:
    found = _fresh(
        "import importlib, json, pkgutil, sys\n"
        "import deployer.config as c\n"
        "names = [m.name for m in pkgutil.iter_modules(c.__path__, 'deployer.config.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "print(json.dumps({'modules': names,"
        " 'lab': sorted(m for m in sys.modules if m.split('.')[:2] == ['deployer', 'lab'])}))\n"
    )
    assert "deployer.config.models" in found["modules"]  # the walk found the package
    assert found["lab"] == []


def test_no_config_module_imports_the_lab_even_inside_a_function() -> None:
    for path in CONFIG.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert not name.startswith(("deployer.lab", "deployer.targets")), (
                    f"{path.name}:{node.lineno} imports {name}"
                )


def test_swarm_settings_import_first_without_the_models() -> None:
    found = _fresh(
        "import json, sys\n"
        "from deployer.config.swarm import SwarmSettings, settings_of\n"
        "print(json.dumps({'models': 'deployer.config.models' in sys.modules,"
        " 'default': settings_of(object()) == SwarmSettings()}))\n"
    )
    assert found == {"models": False, "default": True}


def test_every_config_module_imports_first() -> None:
    names = sorted(p.stem for p in CONFIG.glob("*.py") if p.stem != "__init__")
    for name in names:
        _fresh(f"import deployer.config.{name}; print('{{}}')")


def _config_imports(path: Path) -> set[str]:
    """The deployer.config modules `path` imports at module level (not inside functions)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m.removeprefix("deployer.config.") for m in found if m.startswith("deployer.config.")}


def test_config_modules_import_each_other_without_a_circle() -> None:
    graph = {p.stem: _config_imports(p) for p in CONFIG.glob("*.py")}
    assert "swarm" in graph["models"]  # the graph sees the import that used to close a circle
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "import circle: " + " -> ".join((*path, name))
        if name in done:
            return
        for other in graph.get(name, ()):
            visit(other, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())
