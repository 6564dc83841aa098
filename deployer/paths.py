"""Where the playbooks and the collection live: in a source checkout next to the package,
in an installed wheel under deployer/_data/."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def _data_root() -> Path:
    bundled = _PACKAGE / "_data"
    if (bundled / "playbooks").is_dir():
        return bundled
    return _PACKAGE.parent


def playbooks_dir() -> Path:
    return _data_root() / "playbooks"


def collections_dir() -> Path:
    return _data_root() / "collections"
