"""Restricted string types for everything that reaches a shell, a path or an inventory.

Names end up in file paths on hosts, in systemd unit names, in Ansible group names and in
command lines. They are checked here, once, so no later layer has to quote its way out of
`a;touch /tmp/pwned` or `../../etc`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_IDENT = re.compile(r"[a-z][a-z0-9_]{0,62}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_ADDRESS = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:%-]{0,252}")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_ABS_PATH = re.compile(r"/[A-Za-z0-9._/@+-]*")
_REL_PATH = re.compile(r"[A-Za-z0-9._@+-][A-Za-z0-9._/@+-]*")


def _matcher(pattern: re.Pattern[str], what: str, allowed: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not a safe {what} (allowed: {allowed})")
        if ".." in value:
            raise ValueError(f"{value!r} is not a safe {what}: '..' is not allowed")
        return value

    return check


def _segments_ok(value: str, shown: str | None = None) -> str:
    parts = value.split("/")
    if ".." in parts or "." in parts[1:]:
        raise ValueError(f"{shown or value!r}: '.' and '..' path segments are not allowed")
    if "//" in value or value.endswith("/"):
        raise ValueError(f"{shown or value!r}: empty path segments are not allowed")
    return value


def _abs_path(value: str) -> str:
    if not _ABS_PATH.fullmatch(value) or value == "/":
        raise ValueError(f"{value!r} is not a safe absolute path")
    return _segments_ok(value)


def _rel_path(value: str) -> str:
    if not _REL_PATH.fullmatch(value):
        raise ValueError(f"{value!r} is not a safe relative path")
    _segments_ok("/" + value, repr(value))
    return value


def single_line(value: str) -> str:
    if any(ch in value for ch in "\n\r\x00"):
        raise ValueError("must be a single line")
    return value


Name = Annotated[
    str, AfterValidator(_matcher(_NAME, "name", "letters, digits, '_', '.', '-'; 1-63 chars"))
]
"""App, host and environment names."""

Ident = Annotated[
    str,
    AfterValidator(
        _matcher(_IDENT, "identifier", "lowercase letters, digits and '_', starting with a letter")
    ),
]
"""Component names: they become Ansible group names."""

Version = Annotated[
    str, AfterValidator(_matcher(_VERSION, "version", "letters, digits, '.', '_', '+', '-'"))
]
Address = Annotated[
    str, AfterValidator(_matcher(_ADDRESS, "host address", "a hostname or an IP address"))
]
UserName = Annotated[
    str, AfterValidator(_matcher(_USER, "user name", "lowercase letters, digits, '_', '-'"))
]
EnvVarName = Annotated[
    str,
    AfterValidator(_matcher(_ENV_VAR, "environment variable name", "letters, digits and '_'")),
]
MetricName = Annotated[
    str,
    AfterValidator(
        _matcher(
            re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,199}"),
            "metric name",
            "letters, digits, '_' and ':', not starting with a digit",
        )
    ),
]
"""Prometheus metric and label names: they are spliced into PromQL."""
AbsPath = Annotated[str, AfterValidator(_abs_path)]
"""Absolute paths on hosts (deploy_to)."""
RelPath = Annotated[str, AfterValidator(_rel_path)]
"""Paths inside a release (shared dirs and files)."""
SingleLine = Annotated[str, AfterValidator(single_line)]

check_version = _matcher(_VERSION, "version", "letters, digits, '.', '_', '+', '-'")
"""The version rule, for values that arrive by flag rather than by config."""
