"""Reading `deploy.yml`: YAML with no duplicate keys, then the models, with errors that name
the config path and the line of every problem."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from deployer.config.models import Project
from deployer.errors import ConfigError

Loc = tuple[str | int, ...]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: a silently overwritten key is a silent bug."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", mark)
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def format_loc(loc: Loc) -> str:
    """('environments', 'staging', 'hosts', 'backend', 0, 'port') ->
    environments.staging.hosts.backend[0].port"""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


@dataclass(frozen=True)
class Source:
    """A parsed YAML document and where each value came from, for messages."""

    path: Path
    data: Any
    root: yaml.Node | None

    def line_of(self, loc: Loc) -> int | None:
        node = self.root
        line = None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                match = next((kv for kv in node.value if kv[0].value == part), None)
                if match is None:
                    break
                line = match[0].start_mark.line + 1
                node = match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    break
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line


def read_yaml(path: Path) -> Source:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [f"{path}: no such file (create one with `deployer init`)"], source=str(path)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"], source=str(path)) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}{problem}"], source=str(path)) from None
    return Source(path=path, data=data, root=root)


def _message(error: ErrorDetails, model: type[BaseModel], loc: Loc) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_keys(model, loc[:-1])
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "required"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def _known_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the model accepts at `loc`, for 'did you mean' hints."""
    current: Any = model
    mapping_key_next = False  # after a dict[str, Model] field, the next part is a user key
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        if mapping_key_next:
            mapping_key_next = False
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = _model_in(field.annotation) if field else None
            mapping_key_next = field is not None and get_origin(field.annotation) is dict
        else:
            current = None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


_UNION_TAGS = {"webhook", "slack", "email", "pagerduty"}  # discriminators of notifications


def _clean_loc(loc: Loc) -> Loc:
    """Drop pydantic's union branch labels ('list[Host]', 'literal[...]', a tag after an
    index)."""
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part == "function-after"):
            continue
        if part in _UNION_TAGS and out and isinstance(out[-1], int):
            continue
        out.append(part)
    return tuple(out)


def validation_problems(exc: ValidationError, model: type[BaseModel], source: Source) -> list[str]:
    problems: dict[str, str] = {}
    branches: set[str] = set()  # paths reported by a union's literal branch ('lab')
    for error in exc.errors():
        loc = _clean_loc(tuple(error["loc"]))
        path = format_loc(loc)
        if error["type"] == "literal_error":
            branches.add(path)
        line = source.line_of(loc)
        where = f" (line {line})" if line else ""
        problems.setdefault(path, f"{path}: {_message(error, model, loc)}{where}")
    # A union reports every branch; when the other branch explains more deeply, keep that one.
    return [
        text
        for path, text in problems.items()
        if path not in branches
        or not any(other.startswith((path + ".", path + "[")) for other in problems)
    ]


@dataclass(frozen=True)
class LoadedProject:
    project: Project
    path: Path  # the deploy.yml
    source: Source

    @property
    def directory(self) -> Path:
        return self.path.parent


def load_project(path: Path) -> LoadedProject:
    """Parse and validate a deploy.yml. Raises ConfigError (exit 2) naming every bad path."""
    path = path.resolve()
    source = read_yaml(path)
    if not isinstance(source.data, dict):
        raise ConfigError(["(top level): expected a mapping of sections"], source=str(path))
    try:
        project = Project.model_validate(source.data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, Project, source), source=str(path)) from None
    return LoadedProject(project=project, path=path, source=source)
