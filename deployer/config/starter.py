"""The commented starter `deploy.yml` written by `deployer init`, generated from the models so
the documentation in it can never drift from what validation accepts."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import yaml
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from deployer.config.base import Section
from deployer.config.ledger import DEFAULT_PATH
from deployer.config.models import Project

_WIDTH = 96  # comment lines are wrapped to this many columns

HEADER = """\
# deploy.yml: how deployer builds, ships, checks and rolls back {app}.
# Every key is shown with its default; optional keys are commented out.
# JSON Schema for editors: `deployer schema > deploy.schema.json`.
"""

# Values for fields without a default (and a useful example environment).
EXAMPLES: dict[str, Any] = {
    "app.name": "{app}",
    "service.command": "/usr/bin/python3 app.py",
    "service.port": 8000,
    "health.http": {"path": "/healthz", "status": 200, "timeout": 2.0},
    "ledger": DEFAULT_PATH,  # the short form; the mapping is for a team's PostgreSQL ledger
    "environments": {
        "lab": {"hosts": {"web": "lab"}},
        "production": {
            "hosts": {"web": [{"address": "203.0.113.10"}, {"address": "203.0.113.11"}]},
            "resources": {"web": {"cpu": 0.5, "memory": "512Mi"}},
            "features": {"monitoring": True},
        },
    },
}


def _scalar(value: Any) -> str:
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return None if field.default is PydanticUndefined else field.default


def _lines(model: type[Section], prefix: str, indent: int, app: str) -> list[str]:
    pad = "  " * indent
    out: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        if field.description:
            width = _WIDTH - len(pad) - 2
            out += [f"{pad}# {line}" for line in textwrap.wrap(field.description, width)]
        if path in EXAMPLES:
            value = EXAMPLES[path]
            if isinstance(value, str):
                value = value.format(app=app)
            dumped = yaml.safe_dump({name: value}, sort_keys=False).rstrip().splitlines()
            out += [pad + line for line in dumped]
            continue
        default = _default(field)
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, Section):
            inner = _lines(nested, f"{path}.", indent + 1, app)
            silent = all(line.lstrip().startswith("#") for line in inner)
            out.append(f"{pad}{'# ' if silent else ''}{name}:")
            out += inner
        elif default is None or default == {} or default == ():
            out.append(f"{pad}# {name}: {_scalar(default)}")
        else:
            out.append(f"{pad}{name}: {_scalar(default)}")
    return out


def starter(app: str = "myapp") -> str:
    """A complete, valid, commented deploy.yml for `app`."""
    body = _lines(Project, "", 0, app)
    return HEADER.format(app=app) + "\n".join(body) + "\n"
