"""The lab's files on the controller: key pair, known_hosts, hosts.yml.

Rendering is pure (tested without docker); writes are atomic so a reader never
sees half a known_hosts while `lab up` rewrites it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import yaml

from .model import LabError, LabState

_PLAIN = re.compile(r"^[A-Za-z0-9_./@+-]+$")


def known_hosts_line(address: str, port: int, public_key: str) -> str:
    """One known_hosts line for a host key read from the host itself.

    `public_key` is the content of an ssh_host_*_key.pub file; its comment is dropped.
    Raises LabError when it is not a well-formed OpenSSH public key, so garbage
    never lands in known_hosts.
    """
    fields = public_key.split()
    if len(fields) < 2 or not fields[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise LabError(f"not an OpenSSH public key: {public_key.strip()[:60]!r}")
    key_type, blob = fields[0], fields[1]
    try:
        decoded = base64.b64decode(blob, validate=True)
    except binascii.Error as exc:
        raise LabError(f"bad base64 in {key_type} host key") from exc
    if key_type.encode() not in decoded[:64]:
        raise LabError(f"{key_type} host key blob does not name its own type")
    host = address if port == 22 else f"[{address}]:{port}"
    return f"{host} {key_type} {blob}"


def render_known_hosts(entries: Iterable[tuple[str, int, Sequence[str]]]) -> str:
    """known_hosts for (address, port, [public keys]) triples, one line per key."""
    lines = [
        known_hosts_line(address, port, key) for address, port, keys in entries for key in keys
    ]
    return "".join(f"{line}\n" for line in lines)


def _scalar(value: object) -> str:
    """A YAML flow scalar: plain when unambiguous, else a JSON (= YAML) quoted string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text)


def _flow(mapping: Mapping[str, object]) -> str:
    return "{" + ", ".join(f"{key}: {_scalar(value)}" for key, value in mapping.items()) + "}"


def render_hosts_yml(state: LabState) -> str:
    """hosts.yml: the contract between `lab up` and code that deploys to the lab."""
    lines = [
        "# Written by `deployer lab up`; do not edit.",
        f"lab: {_scalar(state.name)}",
        f"known_hosts: {_scalar(state.known_hosts)}",
    ]
    if not state.hosts:
        lines.append("hosts: []")
    else:
        lines.append("hosts:")
        for host in state.hosts:
            entry = {
                "name": host.name,
                "address": host.address,
                "port": host.port,
                "user": host.user,
                "private_address": host.ip,
                "private_key": state.private_key,
                "container": host.container,
            }
            lines.append(f"  - {_flow(entry)}")
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace `path` in one rename so readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _ssh_keygen(*args: str) -> str:
    try:
        return subprocess.run(
            ["ssh-keygen", *args], check=True, capture_output=True, text=True
        ).stdout
    except FileNotFoundError as exc:
        raise LabError("ssh-keygen not found: install openssh-client") from exc
    except subprocess.CalledProcessError as exc:
        raise LabError(f"ssh-keygen {' '.join(args)} failed: {exc.stderr.strip()}") from exc


def ensure_key(private_key: Path) -> str:
    """Generate the lab's login key once (ed25519, no passphrase); return the public key.

    The key outlives `lab down`, so a lab brought up again trusts the same key.
    """
    public = private_key.with_name(private_key.name + ".pub")
    if not private_key.exists():
        private_key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        public.unlink(missing_ok=True)
        _ssh_keygen("-q", "-t", "ed25519", "-N", "", "-C", "deployer-lab", "-f", str(private_key))
    private_key.chmod(0o600)
    if not public.exists():
        write_atomic(public, _ssh_keygen("-y", "-f", str(private_key)))
    return public.read_text(encoding="utf-8").strip()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` so two processes do not build or scale at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
