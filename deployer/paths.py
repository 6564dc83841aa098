"""Where the playbooks and the collection live: in a source checkout next to the package,
in an installed wheel under deployer/_data/."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import ModuleType

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


@cache
def host_code(kind: str, name: str) -> ModuleType:
    """A file of the collection's plugins (`kind`: module_utils, modules), loaded by its path
    so the controller applies the very rules the hosts apply. Only files that need nothing
    but the standard library (and, for modules, ansible-core) at import are loaded so."""
    import importlib.util

    path = collections_dir().joinpath(
        "ansible_collections", "deployer", "core", "plugins", kind, f"{name}.py"
    )
    spec = importlib.util.spec_from_file_location(f"deployer._host_{kind}_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def private_dir(path: Path) -> Path:
    """`path` as a directory only this user can use: created 0700 when missing, and refused
    when it is a symlink, is not a directory, belongs to another user or is open to others (a
    predictable name under a shared temp directory can be created first by anyone)."""
    import os
    import stat

    from deployer.errors import DeployerError

    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise DeployerError(f"cannot create the private directory {path}: {exc}") from None
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        problem = "is a symlink" if stat.S_ISLNK(info.st_mode) else "is not a directory"
    elif info.st_uid != os.getuid():
        problem = f"belongs to uid {info.st_uid}, not to this user (uid {os.getuid()})"
    elif info.st_mode & 0o077:
        problem = f"is open to other users (mode {stat.S_IMODE(info.st_mode):04o})"
    else:
        return path
    raise DeployerError(
        f"refusing to use {path}: it {problem}; another local user may have planted it. "
        "Remove it (or fix its owner and mode to 0700) and run again."
    )


def ssh_control_dir(project_dir: Path, kind: str) -> Path:
    """Where SSH master sockets of one project live: a private directory per user (the
    session's runtime directory when there is one, else the temp directory), one
    subdirectory per project, so a connection verified against one project's known_hosts is
    never reused by another. Short, for the 108-byte limit of socket paths."""
    import hashlib
    import os
    import tempfile

    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime and Path(runtime).is_dir() else Path(tempfile.gettempdir())
    digest = hashlib.sha256(str(project_dir.resolve()).encode()).hexdigest()[:12]
    return private_dir(private_dir(base / f"deployer-{kind}-{os.getuid()}") / digest)
