"""HCL written the way `terraform fmt` writes it, from a small tree of blocks and attributes.

terraform fmt indents by two spaces per level and aligns the `=` of consecutive one-line
attributes (a heredoc's first line counts as one line; a blank line, a comment, a block or a
value spread over lines ends the run). Everything here is written that way, so the generated
files come out of `terraform fmt` unchanged (the Terraform tests check it with the real
formatter). Strings are quoted and escaped here; `Raw` is an expression written as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Raw:
    """An HCL expression, on one line, written as it is (a reference, a function call)."""

    text: str


@dataclass(frozen=True)
class Heredoc:
    """`<<-EOT` text: its lines are written indented, and Terraform strips that indent."""

    lines: tuple[str, ...]


@dataclass(frozen=True)
class Block:
    type: str
    labels: tuple[str, ...] = ()
    body: Sequence[Any] = field(default_factory=tuple)
    """Attributes (`(name, value)` pairs), blocks, `BLANK` and `Comment` lines, in order."""


@dataclass(frozen=True)
class Comment:
    text: str


BLANK = Comment("")
"""An empty line."""


def string(value: str) -> str:
    """An HCL quoted string: JSON's escapes, and template sequences escaped as literal text."""
    quoted = json.dumps(value, ensure_ascii=False)
    return quoted.replace("${", "$${").replace("%{", "%%{")


def _key(name: str) -> str:
    return name if _IDENTIFIER.fullmatch(name) else string(name)


def _scalar(value: Any) -> str | None:
    """The one-line form of a value, or None when it takes several lines."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if value is None:
        return "null"
    if isinstance(value, str):
        return string(value)
    if isinstance(value, Mapping) and not value:
        return "{}"
    if isinstance(value, list | tuple):
        items = [_scalar(v) for v in value]
        if all(i is not None for i in items) and all(
            not isinstance(v, Mapping | list | tuple) for v in value
        ):
            return "[" + ", ".join(i for i in items if i is not None) + "]"
    return None


def _value(value: Any, indent: int) -> list[str]:
    """The lines of a value written after `name = ` at `indent` levels: the first line
    continues that line, the others are whole lines."""
    pad = "  " * indent
    one = _scalar(value)
    if one is not None:
        return [one]
    if isinstance(value, Heredoc):
        return ["<<-EOT", *(f"{pad}  {line}" if line else "" for line in value.lines), f"{pad}EOT"]
    if isinstance(value, Mapping):
        return ["{", *_attributes(list(value.items()), indent + 1), f"{pad}}}"]
    if isinstance(value, list | tuple):
        lines = ["["]
        for item in value:
            inner = _value(item, indent + 1)
            lines.append(f"{pad}  {inner[0]}")
            lines += inner[1:]
            lines[-1] += ","
        return [*lines, f"{pad}]"]
    raise TypeError(f"no HCL form for {value!r}")


def _attributes(items: Sequence[Any], indent: int) -> list[str]:
    """Body lines: attributes aligned in runs as terraform fmt aligns them, blocks, comments."""
    pad = "  " * indent
    out: list[str] = []
    run: list[tuple[str, list[str]]] = []

    def flush() -> None:
        width = max((len(k) for k, _ in run), default=0)
        for key, lines in run:
            out.append(f"{pad}{key.ljust(width)} = {lines[0]}")
            out.extend(lines[1:])
        run.clear()

    for item in items:
        if isinstance(item, tuple):
            name, value = item
            key, lines = _key(name), _value(value, indent)
            if len(lines) == 1 or isinstance(value, Heredoc):
                run.append((key, lines))
                continue
            flush()
            out.append(f"{pad}{key} = {lines[0]}")
            out.extend(lines[1:])
            continue
        flush()
        if isinstance(item, Comment):
            out.append(f"{pad}# {item.text}" if item.text else "")
        elif isinstance(item, Block):
            out += _block(item, indent)
        else:
            raise TypeError(f"not an HCL body item: {item!r}")
    flush()
    return out


def _block(block: Block, indent: int) -> list[str]:
    pad = "  " * indent
    head = " ".join([block.type, *(string(label) for label in block.labels)])
    return [f"{pad}{head} {{", *_attributes(block.body, indent + 1), f"{pad}}}"]


def render(items: Sequence[Any]) -> str:
    """A file: top-level blocks and comments, one blank line between blocks."""
    lines: list[str] = []
    for item in items:
        if isinstance(item, Block) and lines and lines[-1] != "":
            lines.append("")
        lines += _attributes([item], 0)
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"
