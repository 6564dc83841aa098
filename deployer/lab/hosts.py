"""The hosts of the local lab, as `deployer lab up` recorded them in its hosts.yml.

An environment whose component lists its hosts as `lab` gets these: the CLI loads them here
and passes them to `deployer.config.resolve`, so the config package never imports the lab.
The lab is chosen by $DEPLOYER_LAB_NAME (default `lab`), so a test suite can run its own lab
beside a user's. Free of docker, like `model`: every command on a lab environment reads this.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from deployer.config.loader import LoadedProject
from deployer.config.models import Host, TerraformHosts, lab_selection
from deployer.config.resolve import LabInfo
from deployer.errors import ConfigError
from deployer.lab.model import lab_dir


def lab_name() -> str:
    return os.environ.get("DEPLOYER_LAB_NAME", "lab")


def uses_lab(loaded: LoadedProject, environment: str) -> bool:
    env = loaded.project.environments.get(environment)
    if env is None or isinstance(env.hosts, TerraformHosts):
        return False
    return any(lab_selection(g) is not None for g in env.groups.values())


def load_lab(name: str | None = None) -> LabInfo | None:
    """The lab's hosts, or None when that lab is not up."""
    name = name or lab_name()
    path: Path = lab_dir(name) / "hosts.yml"
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        return None
    try:
        hosts = tuple(
            Host(
                name=h["name"],
                address=h["address"],
                port=h["port"],
                user=h["user"],
                private_address=h.get("private_address") or None,
            )
            for h in data["hosts"]
        )
        key = Path(data["hosts"][0]["private_key"]) if hosts else Path()
        return LabInfo(
            name=name, hosts=hosts, private_key=key, known_hosts=Path(data["known_hosts"])
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            [f"{path}: not a lab hosts file ({exc}); run `deployer lab up`"]
        ) from None


def placeholder_lab() -> LabInfo:
    """A one-host stand-in, so `validate` can judge a lab environment while the lab is down."""
    return LabInfo(
        name=lab_name(),
        hosts=(Host(name="lab1", address="127.0.0.1"),),
        private_key=Path("id_ed25519"),
        known_hosts=Path("known_hosts"),
    )
