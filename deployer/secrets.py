"""Secret values: resolved from the vault file or the control host's environment at the last
moment, handed to the runner only, and scrubbed from every message deployer writes.

The config holds references only. A missing value is a config error (exit 2) raised before
any host is touched. The decrypted vault is parsed with the config's YAML rules and limits;
when it is not a mapping of names to values the error names the file and the line, never
its text (a YAML error quotes the document, and this one is secret).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deployer.config.accessories import ResolvedAccessory
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


# --- the accessories' credentials in the project's vault ---------------------------------

SEALED = ("password", "replication_password")
"""What a host's accessory step seals, each with its own SEAL_BYTES of the pad (in this
order): the contract with deployer_accessory's `seal`."""
SEAL_BYTES = 1024
_PRINTABLE = re.compile(r"[\x20-\x7e]{1,1024}")
_B64 = re.compile(r"[A-Za-z0-9+/]{0,1368}={0,2}")  # SEAL_BYTES at most


def new_pad() -> bytes:
    """A one-time pad for one run's accessory step: what the host seals with it is readable
    with this pad only, which never leaves the controller's memory except inside the run's
    vault-encrypted secret vars."""
    return secrets.token_bytes(SEAL_BYTES * len(SEALED))


def unseal(sealed: object, pad: bytes, credential: str) -> str | None:
    """The credential a host sealed with `pad`, or None when the reply is not one (a host
    is not trusted to send a password, only to be parsed safely)."""
    if not isinstance(sealed, str) or not _B64.fullmatch(sealed):
        return None
    data = base64.b64decode(sealed)
    start = SEALED.index(credential) * SEAL_BYTES
    if not 1 <= len(data) <= SEAL_BYTES:
        return None
    text = bytes(a ^ b for a, b in zip(data, pad[start : start + len(data)], strict=True))
    value = text.decode("ascii", "replace")
    return value if _PRINTABLE.fullmatch(value) else None


def accessory_credentials(
    accessories: Sequence[ResolvedAccessory],
    secrets_config: Secrets,
    base: Path,
    environ: Mapping[str, str] | None = None,
) -> dict[str, dict[str, str]]:
    """What the project's vault keeps of the accessories' credentials: {kind: {credential:
    value}} (empty without a vault). A value that is no password (1-1024 printable ASCII)
    is a config error naming its key, never its value."""
    if not secrets_config.vault_file or not accessories:
        return {}
    vault = _read_vault(secrets_config, base, os.environ if environ is None else environ)
    out: dict[str, dict[str, str]] = {}
    problems = []
    for accessory in accessories:
        for credential in accessory.credentials:
            key = accessory.vault_key(credential)
            if key not in vault:
                continue
            value = vault[key]
            if not isinstance(value, str) or not _PRINTABLE.fullmatch(value):
                problems.append(
                    f"secrets.vault_file: key {key!r} must be 1-1024 printable ASCII "
                    "characters (the value is not shown)"
                )
                continue
            out.setdefault(accessory.kind, {})[credential] = value
    if problems:
        raise ConfigError(problems)
    return out


def keep_in_vault(
    secrets_config: Secrets,
    base: Path,
    values: Mapping[str, str],
    lock: Path,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """Add `values` ({key: value}) to the project's vault, keys it already has left as they
    are; returns the keys added. The decrypted text keeps every byte it had (comments too):
    the new keys are appended as lines, and the whole is re-encrypted with the same password
    and vault id and swapped in atomically, under `lock` (two commands of one checkout never
    lose each other's keys). Only a vault whose text cannot take appended lines (a flow-style
    mapping) is written back as plain YAML. Raises ConfigError or OSError; the vault is then
    as it was."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    environ = os.environ if environ is None else environ
    assert secrets_config.vault_file is not None
    path = Path(os.path.realpath(base / secrets_config.vault_file))
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        data = _read_vault(secrets_config, base, environ)
        new = {k: v for k, v in values.items() if k not in data}
        if not new:
            return ()
        blob = path.read_bytes()
        header = blob.split(b"\n", 1)[0].decode("ascii", "replace").split(";")
        label = header[3].strip() if len(header) > 3 else None  # format 1.2 names its vault id
        secret = VaultSecret(_vault_password(secrets_config, base, environ).encode())
        vault = VaultLib([("default", secret)])
        plain = vault.decrypt(blob).decode("utf-8")
        text = plain if plain.endswith("\n") or not plain else plain + "\n"
        text += "".join(f"{json.dumps(k)}: {json.dumps(v)}\n" for k, v in new.items())
        try:
            appended, _ = parse_yaml(text)
        except yaml.YAMLError:
            appended = None
        if appended != {**data, **new}:
            text = yaml.safe_dump({**data, **new}, sort_keys=False, allow_unicode=True)
        cipher = vault.encrypt(text, secret, vault_id=label)
        mode = stat.S_IMODE(path.stat().st_mode)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), mode)
                handle.write(cipher)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return tuple(new)
