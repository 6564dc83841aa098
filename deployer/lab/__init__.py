"""The local lab: N Debian containers that behave like servers, for tests and demos.

Each host runs systemd as PID 1, sshd and python3, and has a `deploy` user with key
authentication and passwordless sudo. SSH is published on a random 127.0.0.1 port,
and each host's own host keys (generated at its first boot, read through docker) are
written to the lab's known_hosts, so clients can keep strict host key checking on.

    state = up(4)            # idempotent; seconds once the image exists
    status(), down()
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .model import LabError, LabHost, LabState, lab_dir

if TYPE_CHECKING:
    from .image import ensure_image
    from .lifecycle import down, ssh_argv, status, up

# The docker SDK is imported only when a lab operation runs: reading a lab's hosts file
# (every `deployer` command on a lab environment) must stay cheap.
_LAZY = {
    "ensure_image": ".image",
    "down": ".lifecycle",
    "ssh_argv": ".lifecycle",
    "status": ".lifecycle",
    "up": ".lifecycle",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LabError",
    "LabHost",
    "LabState",
    "down",
    "ensure_image",
    "lab_dir",
    "ssh_argv",
    "status",
    "up",
]
