"""The deployer.core roles document every input, and their docs agree with the code.

For every role: meta/argument_specs.yml describes each option (type, description, and a
default or `required`); the role README carries the options table generated from it
(every option with its type and default, choices in the description); defaults/main.yml
holds exactly the role-prefixed options that have a default, with the same values.

Regenerate the README tables after editing an argument spec:

    .venv/bin/python tests/collection/test_role_docs.py --write
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

COLLECTION = Path(__file__).resolve().parents[2] / "collections/ansible_collections/deployer/core"
ROLES = sorted(p.name for p in (COLLECTION / "roles").iterdir() if (p / "tasks").is_dir())
BEGIN = (
    "<!-- options: generated from meta/argument_specs.yml by "
    "`python tests/collection/test_role_docs.py --write`; do not edit by hand -->"
)
END = "<!-- end of options -->"
HEADER = ["| Variable | Type | Default | Description |", "| --- | --- | --- | --- |"]
ROW = re.compile(
    r"^\| `(?P<name>[a-z0-9_.]+)` \| `(?P<type>[^`]+)` \| "
    r"(?:`(?P<default>[^`]*)`|(?P<required>\*required\*)) \| (?P<description>.*) \|$"
)
NO_DEFAULT = object()


# --- reading the role -------------------------------------------------------------------


def load(role: str, relative: str) -> Any:
    return yaml.safe_load((COLLECTION / "roles" / role / relative).read_text())


def entry_point(role: str) -> dict[str, Any]:
    spec: dict[str, Any] = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]
    return spec


def flatten(options: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Options by dotted name, suboptions (`options` of a dict option) included."""
    flat: dict[str, dict[str, Any]] = {}
    for name, spec in options.items():
        flat[prefix + name] = spec
        flat.update(flatten(spec.get("options") or {}, f"{prefix}{name}."))
    return flat


def type_of(spec: dict[str, Any]) -> str:
    kind = str(spec.get("type", "str"))
    return f"{kind}[{spec['elements']}]" if spec.get("elements") else kind


def default_of(spec: dict[str, Any]) -> Any:
    """The default Ansible applies: the spec's, else null; NO_DEFAULT when required."""
    return NO_DEFAULT if spec.get("required") else spec.get("default")


def plain(text: str | list[str]) -> str:
    """Ansible doc markup (C(), O(), V(), I()) as Markdown, paragraphs joined."""
    joined = " ".join(text) if isinstance(text, list) else text
    return re.sub(r"\b[COVI]\(([^)]*)\)", r"`\1`", joined).replace("|", "\\|")


# --- the README table -------------------------------------------------------------------


def render_table(role: str) -> str:
    rows = []
    for name, spec in flatten(entry_point(role)["options"]).items():
        default = default_of(spec)
        cell = "*required*" if default is NO_DEFAULT else f"`{json.dumps(default)}`"
        description = plain(spec.get("description", ""))
        if spec.get("choices"):
            description += " Choices: " + ", ".join(f"`{c}`" for c in spec["choices"]) + "."
        rows.append(f"| `{name}` | `{type_of(spec)}` | {cell} | {description} |")
    return "\n".join([BEGIN, *HEADER, *rows, END])


def table_of(readme: str) -> str | None:
    start, end = readme.find(BEGIN), readme.find(END)
    return readme[start : end + len(END)] if 0 <= start < end else None


def documented(readme: str) -> dict[str, dict[str, Any]]:
    """Rows of the README's options table: name -> {type, default, description}."""
    rows: dict[str, dict[str, Any]] = {}
    for line in (table_of(readme) or "").splitlines():
        match = ROW.match(line)
        if match:
            default = NO_DEFAULT if match["required"] else json.loads(match["default"] or "null")
            rows[match["name"]] = {
                "type": match["type"],
                "default": default,
                "description": match["description"],
            }
    return rows


# --- the checks (functions, so that the tests below can prove they catch breakage) -----


def readme_problems(role: str, readme: str) -> list[str]:
    """How the README disagrees with the argument spec (empty when it agrees)."""
    options = flatten(entry_point(role)["options"])
    rows = documented(readme)
    problems = []
    for name, spec in options.items():
        row = rows.get(name)
        if row is None:
            problems.append(f"{name}: not in the README's options table")
            continue
        if row["type"] != type_of(spec):
            problems.append(f"{name}: README type {row['type']}, spec {type_of(spec)}")
        if row["default"] != default_of(spec) or type(row["default"]) is not type(default_of(spec)):
            problems.append(f"{name}: README default {row['default']!r}, spec {default_of(spec)!r}")
        for choice in spec.get("choices") or []:
            if f"`{choice}`" not in row["description"]:
                problems.append(f"{name}: README does not list the choice {choice!r}")
    problems += [f"{name}: in the README but not in the spec" for name in rows.keys() - options]
    return problems


def defaults_problems(role: str, defaults: dict[str, Any]) -> list[str]:
    """How defaults/main.yml disagrees with the argument spec (empty when it agrees)."""
    options = entry_point(role)["options"]
    problems = [
        f"{name}: not prefixed with {role}_" for name in options if not name.startswith(f"{role}_")
    ]
    for name, value in defaults.items():
        if not name.startswith(f"{role}_"):
            problems.append(f"{name}: default not prefixed with {role}_")
        if name not in options:
            problems.append(f"{name}: default not documented in meta/argument_specs.yml")
        elif not options[name].get("required") and value != default_of(options[name]):
            problems.append(
                f"{name}: defaults/main.yml {value!r}, spec {default_of(options[name])!r}"
            )
    for name, spec in options.items():
        if not spec.get("required") and name not in defaults:
            problems.append(f"{name}: optional but missing from defaults/main.yml")
    return problems


# --- tests ------------------------------------------------------------------------------


def test_every_role_is_checked() -> None:
    assert ROLES == [
        "healthcheck",
        "hook",
        "lock",
        "monitoring",
        "postgresql",
        "preflight",
        "proxy",
        "redis",
        "release",
        "rollback",
        "service",
        "switch",
    ]


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_describes_every_option(role: str) -> None:
    spec = entry_point(role)
    assert spec.get("short_description"), f"{role}: no short_description"
    for name, option in flatten(spec["options"]).items():
        assert option.get("description"), f"{role}: {name} has no description"
        assert option.get("type"), f"{role}: {name} has no type"
        assert not (option.get("required") and "default" in option), (
            f"{role}: {name} is required and has a default"
        )


@pytest.mark.parametrize("role", ROLES)
def test_readme_documents_every_option_with_type_and_default(role: str) -> None:
    readme = (COLLECTION / "roles" / role / "README.md").read_text()
    assert readme_problems(role, readme) == []


@pytest.mark.parametrize("role", ROLES)
def test_readme_table_is_generated_from_the_spec(role: str) -> None:
    readme = (COLLECTION / "roles" / role / "README.md").read_text()
    assert table_of(readme) == render_table(role), (
        f"{role}/README.md is stale: run `python tests/collection/test_role_docs.py --write`"
    )


@pytest.mark.parametrize("role", ROLES)
def test_defaults_are_the_documented_role_prefixed_options(role: str) -> None:
    assert defaults_problems(role, load(role, "defaults/main.yml") or {}) == []


def test_readme_check_catches_a_missing_option_and_a_wrong_type_or_default() -> None:
    readme = (COLLECTION / "roles/lock/README.md").read_text()
    missing = "\n".join(x for x in readme.splitlines() if not x.startswith("| `lock_ttl`"))
    assert readme_problems("lock", missing) == ["lock_ttl: not in the README's options table"]
    wrong = readme.replace("| `lock_ttl` | `int` | `3600` |", "| `lock_ttl` | `str` | `60` |")
    assert readme_problems("lock", wrong) == [
        "lock_ttl: README type str, spec int",
        "lock_ttl: README default 60, spec 3600",
    ]
    no_choice = readme.replace(", `break`.", ".")
    assert readme_problems("lock", no_choice) == [
        "lock_action: README does not list the choice 'break'"
    ]
    assert readme_problems("lock", readme.replace(BEGIN, "")) != []


def test_defaults_check_catches_undocumented_unprefixed_and_drifted_defaults() -> None:
    defaults = load("lock", "defaults/main.yml")
    assert defaults_problems("lock", {**defaults, "lock_extra": 1}) == [
        "lock_extra: default not documented in meta/argument_specs.yml"
    ]
    assert defaults_problems("lock", {**defaults, "ttl": 1}) == [
        "ttl: default not prefixed with lock_",
        "ttl: default not documented in meta/argument_specs.yml",
    ]
    assert defaults_problems("lock", {**defaults, "lock_ttl": 60}) == [
        "lock_ttl: defaults/main.yml 60, spec 3600"
    ]
    without = {k: v for k, v in defaults.items() if k != "lock_action"}
    assert defaults_problems("lock", without) == [
        "lock_action: optional but missing from defaults/main.yml"
    ]


def write_tables() -> None:
    """Replace the options table of every role README with the one rendered from its spec."""
    for role in ROLES:
        path = COLLECTION / "roles" / role / "README.md"
        readme = path.read_text()
        current = table_of(readme)
        if current is None:
            raise SystemExit(f"{path}: no options table markers ({BEGIN} ... {END})")
        path.write_text(readme.replace(current, render_table(role)))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit(f"usage: {sys.argv[0]} --write")
    write_tables()
