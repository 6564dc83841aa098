"""`ledger`: where the release ledger lives.

* ``ledger: PATH`` (or ``{path: PATH}``): a SQLite file of this checkout, relative to
  deploy.yml (the default, ``.deployer/ledger.sqlite3``).
* ``ledger: {url: postgresql://USER@HOST:PORT/DATABASE, password: {from_env: VAR}}``: a
  PostgreSQL database the team's control hosts share. The URL never carries the
  password (it is shown in messages and may end up on a command line); `password` is a
  secret reference, like every secret in the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, field_validator, model_validator

from deployer.config.base import SecretRef, Section

DEFAULT_PATH = ".deployer/ledger.sqlite3"
SCHEMES = ("postgresql", "postgres")


_FROM_CONFIG = "give it as `ledger.password`, {from_env: VAR} or {vault: key}"


def url_problem(url: str, password_hint: str = _FROM_CONFIG) -> str | None:
    """What is wrong with a PostgreSQL ledger URL, or None. The URL is never quoted back:
    it may carry the password it must not carry."""
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        return "must not contain whitespace or control characters"
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        return "is not a URL (postgresql://USER@HOST[:PORT]/DATABASE)"
    if parts.scheme not in SCHEMES:
        return (
            "must be a postgresql:// URL (postgresql://USER@HOST[:PORT]/DATABASE); "
            "a SQLite ledger is `ledger: PATH`"
        )
    carries = parts.password is not None or any(
        key.lower() == "password" for key, _ in parse_qsl(parts.query, keep_blank_values=True)
    )
    if carries:
        return f"must not carry a password (the URL is shown in messages): {password_hint}"
    return None


class LedgerConfig(Section):
    """Where the release ledger lives."""

    path: str | None = Field(
        default=None,
        description=f"SQLite file, relative to deploy.yml (default {DEFAULT_PATH}).",
    )
    url: str | None = Field(
        default=None,
        description="PostgreSQL database shared by the team's control hosts: "
        "postgresql://USER@HOST[:PORT]/DATABASE, libpq options as query parameters "
        "(?sslmode=verify-full). Never with a password in it: see `password`.",
    )
    password: SecretRef | None = Field(
        default=None,
        description="The password of the URL's user: a reference ({from_env: VAR} or "
        "{vault: key}). Without it, libpq's own sources apply (PGPASSWORD, ~/.pgpass).",
    )

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and (problem := url_problem(value)):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _one_place(self) -> LedgerConfig:
        if self.path is not None and self.url is not None:
            raise ValueError("set `path` (a SQLite file) or `url` (PostgreSQL), not both")
        if self.password is not None and self.url is None:
            raise ValueError("`password` is the password of a PostgreSQL ledger: set `url`")
        return self


def path_as_string(value: Any) -> Any:
    """`ledger: PATH`, the short form of `ledger: {path: PATH}`."""
    return {"path": value} if isinstance(value, str) else value


def string_or_mapping(schema: dict[str, Any]) -> None:
    """The JSON Schema of `ledger`: a path, or the mapping."""
    mapping = {k: schema.pop(k) for k in ("$ref", "allOf") if k in schema}
    schema["anyOf"] = [{"type": "string", "description": "SQLite file (short for path)"}, mapping]


@dataclass(frozen=True)
class LedgerPlace:
    """The ledger of a project, resolved: a SQLite file (`path`) or a PostgreSQL `url`."""

    path: Path | None = None
    url: str | None = None
    password: SecretRef | None = None

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else str(self.url)


def ledger_place(config: LedgerConfig, directory: Path) -> LedgerPlace:
    if config.url is not None:
        return LedgerPlace(url=config.url, password=config.password)
    return LedgerPlace(path=directory / (config.path or DEFAULT_PATH))
