"""Reading `deploy.yml`: YAML with no duplicate keys, then the models, with errors that name
the config path and the line of every problem.

The file is untrusted input, parsed within limits: at most `MAX_CONFIG_BYTES`, checked
before parsing; nesting at most `MAX_DEPTH` levels and at most `MAX_NODES` values once YAML
aliases are expanded (a recursive alias is too deep); keys are scalars (a YAML complex key,
`? [a, b]`, is refused with its line). Merge keys (`<<: *base`) work, keys written in the
mapping winning over merged ones; a key written twice in one mapping is refused.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from deployer.config.models import Project
from deployer.errors import ConfigError

Loc = tuple[str | int, ...]

MAX_CONFIG_BYTES = 1024 * 1024
"""Largest deploy.yml read (1 MiB): a real one is a few KiB; checked before parsing."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists accepted (a real config nests under 10 levels)."""
MAX_NODES = 100_000
"""Most values a document may hold with its aliases expanded (a "billion laughs" refusal)."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


class LimitError(yaml.MarkedYAMLError):
    """The document is past one of the limits above."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate and complex keys and nesting past `MAX_DEPTH`: a
    silently overwritten key is a silent bug, and deep nesting exhausts the stack."""

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self._depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise LimitError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Merge keys as the YAML merge-key spec says, which PyYAML 6.0.4 gets wrong for a
        list: of the merged mappings the earlier wins, and the mapping's own keys win over
        all of them. The merged pairs go first, so the constructed dict keeps the winners."""
        merged: dict[tuple[str, Any], tuple[yaml.Node, yaml.Node]] = {}
        own: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                own.append((key_node, value_node))
                continue
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    raise yaml.constructor.ConstructorError(
                        None, None, "`<<` merges a mapping or a list of mappings", source.start_mark
                    )
                self.flatten_mapping(source)
                for pair in source.value:
                    merged.setdefault(_key_of(pair[0]), pair)
        node.value = [*merged.values(), *own]


def _key_of(node: yaml.Node) -> tuple[str, Any]:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, "a list or a mapping cannot be a key", node.start_mark
        )
    return node.tag, node.value


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        _key_of(key_node)
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", mark)
        seen.add(key)
    return loader.construct_mapping(node)  # merges `<<` first, so written keys win


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _check_expansion(root: yaml.Node) -> None:
    """Walk the node graph as the constructed data will be, aliases expanded, and stop at
    `MAX_DEPTH` levels or `MAX_NODES` values. Iterative, and bounded by MAX_NODES steps."""
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise LimitError(
                None,
                None,
                f"more than {MAX_NODES} values once aliases are expanded",
                node.start_mark,
            )
        if depth > MAX_DEPTH:
            raise LimitError(
                None,
                None,
                f"nested deeper than {MAX_DEPTH} levels through aliases",
                node.start_mark,
            )
        if isinstance(node, yaml.MappingNode):
            stack.extend((value, depth + 1) for _, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)


def parse_yaml(text: str | bytes) -> tuple[Any, yaml.Node | None]:
    """One YAML document within the limits: (data, its root node). Raises yaml.YAMLError
    (marked with the line where it can be)."""
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_expansion(root)
        return loader.construct_document(root), root
    finally:
        loader.dispose()


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
                # the last one: merged keys come first, the mapping's own keys win
                matches = [kv for kv in node.value if kv[0].value == part]
                match = matches[-1] if matches else None
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


def _read_capped(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            blob = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            [f"{path}: no such file (create one with `deployer init`)"], source=str(path)
        ) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"], source=str(path)) from None
    if len(blob) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [f"{path}: larger than {MAX_CONFIG_BYTES} bytes, the limit for a config file"],
            source=str(path),
        )
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"], source=str(path)) from None


def yaml_problem(exc: yaml.YAMLError) -> tuple[str, str]:
    """(where, problem): 'line 3, column 5: ' (or '') and what PyYAML found."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return where, getattr(exc, "problem", None) or str(exc)


def read_yaml(path: Path) -> Source:
    text = _read_capped(path)
    try:
        data, root = parse_yaml(text)
    except yaml.YAMLError as exc:
        where, problem = yaml_problem(exc)
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
            mapping_key_next = field is not None and _mapping(field.annotation)
        else:
            current = None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _mapping(annotation: Any) -> bool:
    """A dict field, or a union whose first form is one (an environment's `hosts`)."""
    if get_origin(annotation) is dict:
        return True
    if get_origin(annotation) in (Annotated, Union, UnionType):
        return _mapping(get_args(annotation)[0])
    return False


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
        if isinstance(part, str) and ("[" in part or part in ("function-after", "constrained-str")):
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
        if error["type"] == "literal_error" or "constrained-str" in error["loc"]:
            branches.add(path)  # the 'lab' branch of a component's hosts
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
