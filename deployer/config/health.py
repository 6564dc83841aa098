"""Health checks (HTTP, TCP, command) and how often they are tried: a section of its own,
used by the project, its environments and the swarm settings alike."""

from __future__ import annotations

from pydantic import Field

from deployer.config.base import Section
from deployer.config.names import SingleLine, UserName


class HttpCheck(Section):
    path: str = Field(default="/", pattern=r"^/[A-Za-z0-9._~/?=&%+-]*$")
    port: int | None = Field(default=None, ge=1, le=65535, description="Default: service.port.")
    status: int = Field(default=200, ge=100, le=599)
    body: SingleLine | None = Field(
        default=None, description="Text the response body must contain."
    )
    timeout: float = Field(default=2.0, gt=0, le=60, description="Seconds per request.")


class TcpCheck(Section):
    port: int | None = Field(default=None, ge=1, le=65535, description="Default: service.port.")
    timeout: float = Field(default=2.0, gt=0, le=60)


class CommandCheck(Section):
    run: SingleLine = Field(description="Command run on the host; exit 0 means healthy.")
    timeout: float = Field(default=10.0, gt=0, le=300)
    user: UserName | None = Field(
        default=None,
        description="User the command runs as (default: the service user; `root` to run "
        "it as root).",
    )


class Health(Section):
    http: HttpCheck | None = Field(default=None, description="HTTP check on the host.")
    tcp: TcpCheck | None = None
    command: CommandCheck | None = None
    retries: int = Field(default=10, ge=1, le=1000, description="Attempts before failing.")
    interval: float = Field(default=1.0, ge=0, le=300, description="Seconds between attempts.")
