"""The one place that opens a Docker connection, so "dockerd is not running" reads the same
everywhere and names the fix."""

from __future__ import annotations

import docker
from docker.errors import DockerException

from .model import LabError


def client(pool_size: int = 10) -> docker.DockerClient:
    """A connected Docker client; `pool_size` covers the threads that start hosts at once."""
    try:
        connection = docker.from_env(max_pool_size=max(pool_size, 10))
        connection.ping()
    except DockerException as exc:
        raise LabError(
            f"cannot reach dockerd ({exc}); start it with `sudo scripts/setup-host` "
            "or check DOCKER_HOST"
        ) from exc
    return connection
