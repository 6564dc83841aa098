"""The local lab: N Debian containers that behave like servers, for tests and demos.

Each host runs systemd as PID 1, sshd and python3, and has a `deploy` user with key
authentication and passwordless sudo. SSH is published on a random 127.0.0.1 port,
and each host's own host keys (generated at its first boot, read through docker) are
written to the lab's known_hosts, so clients can keep strict host key checking on.

    state = up(4)            # idempotent; seconds once the image exists
    status(), down()
"""

from __future__ import annotations

from .image import ensure_image
from .lifecycle import down, ssh_argv, status, up
from .model import LabError, LabHost, LabState, lab_dir

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
