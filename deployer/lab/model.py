"""The lab's data: what a lab host and a lab look like to the rest of deployer.

Kept free of docker and subprocess so that anything may import it cheaply.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Progress = Callable[[str], None]

LABEL = "io.deployer.lab"
"""Container/network label holding the lab name: how status and down find a lab."""

USER = "deploy"
ADDRESS = "127.0.0.1"

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


class LabError(Exception):
    """A problem the user can act on; the message says what happened and what to do."""


@dataclass(frozen=True)
class LabHost:
    """One lab host as docker reports it now."""

    name: str
    container: str
    address: str
    port: int
    user: str
    state: str
    ip: str


@dataclass(frozen=True)
class LabState:
    """A lab: where its files are and which hosts it has."""

    name: str
    directory: Path
    private_key: Path
    known_hosts: Path
    hosts_file: Path
    image: str
    hosts: tuple[LabHost, ...]


def check_name(name: str) -> str:
    """Lab names end up in container names and paths, so keep them boring."""
    if not _NAME.fullmatch(name):
        raise LabError(
            f"invalid lab name {name!r}: use 1-31 lowercase letters, digits or '-', "
            "starting with a letter or digit"
        )
    return name


def lab_dir(name: str = "lab") -> Path:
    """State directory of a lab: $DEPLOYER_LAB_DIR/<name>, else under ~/.local/share."""
    check_name(name)
    root = os.environ.get("DEPLOYER_LAB_DIR")
    base = Path(root) if root else Path.home() / ".local" / "share" / "deployer" / "labs"
    return base.expanduser().absolute() / name


def container_name(lab: str, index: int) -> str:
    return f"deployer-{lab}-{index}"


def host_name(index: int) -> str:
    return f"lab{index}"


def network_name(lab: str) -> str:
    return f"deployer-{lab}"


def empty_state(name: str, image: str) -> LabState:
    directory = lab_dir(name)
    return LabState(
        name=name,
        directory=directory,
        private_key=directory / "id_ed25519",
        known_hosts=directory / "known_hosts",
        hosts_file=directory / "hosts.yml",
        image=image,
        hosts=(),
    )
