"""Secret values: resolved from the vault file or the control host's environment at the last
moment, handed to the runner only, and scrubbed from every message deployer writes.

The config holds references only. A missing value is a config error (exit 2) raised before
any host is touched. The decrypted vault is parsed with the config's YAML rules and limits;
when it is not a mapping of names to values the error names the file and the line, never
its text (a YAML error quotes the document, and this one is secret).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deployer.config.base import SecretRef
from deployer.config.loader import parse_yaml
from deployer.config.models import Secrets
from deployer.errors import ConfigError

MASK = "********"
_MIN_LEN = 4  # shorter values would mask ordinary words; the config rejects nothing for it


@dataclass(frozen=True)
class Redactor:
    """Replaces every known secret value in a text with a mask.

    For free text only (reasons, messages, output). Identifiers (versions, host and
    environment names, sha256s, paths deployer chose) never pass through it: masking part of
    one (secret `2024` in `v2024.1`) corrupts what deployer looks up again. So a secret whose
    value equals an identifier shows where that identifier is shown, and stays masked in
    free text."""

    values: tuple[str, ...] = ()

    def __call__(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, MASK)
        return text


def _vault_password(secrets: Secrets, base: Path, environ: Mapping[str, str]) -> str:
    if secrets.vault_password_env:
        value = environ.get(secrets.vault_password_env)
        if not value:
            raise ConfigError(
                [
                    f"secrets.vault_password_env: environment variable "
                    f"{secrets.vault_password_env} is not set"
                ]
            )
        return value
    assert secrets.vault_password_file is not None  # guaranteed by the model
    path = base / Path(secrets.vault_password_file).expanduser()
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError([f"secrets.vault_password_file: cannot read {path}: {exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"secrets.vault_password_file: {path} is not UTF-8 text"]) from None


def _read_vault(secrets: Secrets, base: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    from ansible.errors import AnsibleError
    from ansible.parsing.vault import VaultLib, VaultSecret

    if secrets.vault_file is None:
        raise ConfigError(["secrets.vault_file: required by a `vault:` secret reference"])
    path = base / secrets.vault_file
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"secrets.vault_file: cannot read {path}: {exc}"]) from None
    password = _vault_password(secrets, base, environ)
    try:
        plain = VaultLib([("default", VaultSecret(password.encode()))]).decrypt(blob)
    except AnsibleError:
        raise ConfigError(
            [f"secrets.vault_file: cannot decrypt {path} (wrong password or not a vault file)"]
        ) from None
    not_a_mapping = f"secrets.vault_file: {path}: the decrypted content is not a YAML mapping"
    try:
        data, _ = parse_yaml(plain)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError([f"{not_a_mapping}{where}; its text is not shown"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{not_a_mapping} of names to values"])
    return data


def resolve_refs(
    refs: Mapping[str, SecretRef],
    secrets: Secrets,
    base: Path,
    environ: Mapping[str, str] | None = None,
    *,
    path_of: Callable[[str], str] = lambda name: name,
    multiline: bool = False,
) -> dict[str, str]:
    """Resolve named references to their values. Raises ConfigError naming the config path
    (`path_of(name)`) of every reference that has no value. Values are single lines (they
    go into environment files) unless `multiline` (PEM text)."""
    environ = os.environ if environ is None else environ
    if not refs:
        return {}
    uses_vault = any(ref.vault for ref in refs.values())
    vault = _read_vault(secrets, base, environ) if uses_vault else {}
    values: dict[str, str] = {}
    problems: list[str] = []
    for name, ref in refs.items():
        if ref.from_env is not None:
            value = environ.get(ref.from_env)
            if value is None:
                problems.append(
                    f"{path_of(name)}.from_env: environment variable {ref.from_env} is not set"
                )
                continue
        else:
            found = vault.get(ref.vault or "")
            if found is None:
                problems.append(f"{path_of(name)}.vault: key {ref.vault!r} is not in the vault")
                continue
            value = str(found)
        if "\x00" in value or (not multiline and any(ch in value for ch in "\n\r")):
            problems.append(f"{path_of(name)}: the value must be a single line")
            continue
        values[name] = value
    if problems:
        raise ConfigError(problems)
    return values


def resolve(
    secrets: Secrets, base: Path, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The secret service environment: {VARIABLE: value}."""
    return resolve_refs(
        secrets.env, secrets, base, environ, path_of=lambda name: f"secrets.env.{name}"
    )


def redactor_for(values: Mapping[str, str]) -> Redactor:
    """Masks every value, and each line of a multi-line one (a PEM key quoted in part)."""
    pieces = {v for v in values.values()} | {
        line.strip() for v in values.values() if "\n" in v for line in v.splitlines()
    }
    usable = sorted({v for v in pieces if len(v) >= _MIN_LEN}, key=len, reverse=True)
    return Redactor(tuple(usable))
