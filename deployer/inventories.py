"""`deployer inventory ENV --write`: the environment's inventory as files at the project root,
`inventories/<env>/`, for plain `ansible-playbook -i inventories/<env> playbooks/...`.

What the files hold is `deployer.plan.inventory_files`; this module only writes them. A file
there that deployer did not write is refused, never overwritten; each file is replaced
whole (written beside it, then renamed), so a reader never sees half of one.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deployer.config.resolve import Target
from deployer.errors import BadRequest
from deployer.plan.inventory_files import HEADER, render_files

INVENTORIES = "inventories"


@dataclass(frozen=True)
class WrittenInventory:
    environment: str
    directory: Path
    files: tuple[str, ...]  # relative to directory


def inventory_dir(target: Target) -> Path:
    return target.project_dir / INVENTORIES / target.environment


def _ours(path: Path, environment: str) -> bool:
    prefix = HEADER.split("{config}")[0].format(environment=environment)
    with path.open(encoding="utf-8", errors="replace") as file:
        return file.read(len(prefix)) == prefix


def write_inventory(target: Target, config_name: str) -> WrittenInventory:
    directory = inventory_dir(target)
    files = render_files(target, config_name)
    for name in files:
        path = directory / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise BadRequest(f"{path} is not a regular file: move it away to write the inventory")
        if path.exists() and not _ours(path, target.environment):
            raise BadRequest(
                f"{path} was not written by deployer: move it away to write the inventory"
            )
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
            os.chmod(temp, 0o644)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    return WrittenInventory(target.environment, directory, tuple(files))
