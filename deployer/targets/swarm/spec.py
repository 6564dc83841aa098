"""One environment's components as Swarm services: names, images, ports, health, sizes.

Pure: the caller says where each component's build context is and which stack it is
(`deployer.targets.swarm.build.locate` looks at the files); everything else follows from the target
and the swarm settings. Shared by build, compose, deliver and the lifecycle so that they
never disagree about a name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deployer.config.models import Health, Resources
from deployer.config.resolve import Target, overlay
from deployer.config.swarm import SwarmSettings
from deployer.errors import BadRequest
from deployer.plan.monitoring import SWARM_COMPONENT, SWARM_VERSION

NGINX_PORT = 80
LABEL_VERSION = SWARM_VERSION
LABEL_ENVIRONMENT = "io.deployer.environment"
LABEL_COMPONENT = SWARM_COMPONENT
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class Located:
    """Where a component is built from and how (python, node, static or dockerfile)."""

    context: Path
    stack: str


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    service: str  # <stack>_<component>, as `docker stack deploy` names it
    repository: str  # image repository, tagged with the version
    context: Path
    stack: str
    command: str | None  # None: the image's own CMD
    port: int | None
    publish: int | None
    health: Health
    replicas: int
    limits: Resources
    reservations: Resources

    def image(self, version: str) -> str:
        return f"{self.repository}:{image_tag(version)}"


def docker_name(text: str) -> str:
    """Stack and repository names: lowercase, and only [a-z0-9_-]."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower()).strip("-_") or "app"


def stack_name(target: Target, settings: SwarmSettings) -> str:
    return docker_name(settings.stack or target.app.name)


def image_tag(version: str) -> str:
    """Versions become image tags as they are; '+' (valid in a version) is not a tag char."""
    if not _TAG.fullmatch(version):
        raise BadRequest(f"version {version!r} cannot be an image tag: use [A-Za-z0-9_.-]")
    return version


def _health_for(health: Health, port: int | None, own_port: bool) -> Health:
    """The environment's checks aimed at this component's port when it has its own."""
    if not own_port or port is None:
        return health
    changes: dict[str, object] = {}
    if health.http is not None:
        changes["http"] = health.http.model_copy(update={"port": port})
    if health.tcp is not None:
        changes["tcp"] = health.tcp.model_copy(update={"port": port})
    return health.model_copy(update=changes)


def component_specs(
    target: Target, settings: SwarmSettings, located: Mapping[str, Located]
) -> tuple[ComponentSpec, ...]:
    """Every component of the environment, in the order its `hosts` lists them."""
    stack = stack_name(target, settings)
    specs = []
    for name in target.components:
        where = located[name]
        own = settings.component(name)
        frontend = where.stack in ("node", "static")
        default_port = NGINX_PORT if frontend else target.service.port
        port = own.port or default_port
        command = own.command or (None if where.stack != "python" else target.service.command)
        publish = port if own.publish is None else (own.publish or None)
        limits = overlay(target.service.resources, target.resources.get(name))
        health = own.health or _health_for(target.health, port, port != target.service.port)
        specs.append(
            ComponentSpec(
                name=name,
                service=f"{stack}_{name}",
                repository=f"{docker_name(target.app.name)}-{docker_name(name)}",
                context=where.context,
                stack=where.stack,
                command=command,
                port=port,
                publish=publish,
                health=health,
                replicas=target.replicas.get(name, 1),
                limits=limits,
                reservations=own.reservations or limits,
            )
        )
    return tuple(specs)
