"""Swarm-only settings: what `deploy.yml` cannot say yet for a `target: swarm` environment.

Meant to hang off an environment as `swarm: SwarmSettings | None`. Every field has a default
that works on the local lab, so an environment without a `swarm` section still deploys:
each component builds from `<artifact.path>/<component>/` when that folder exists (else from
`artifact.path`), its stack is detected, and it listens on `service.port` (Python) or 80
(nginx-served frontends), published on the same port of every node that runs a task.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from deployer.config.health import Health
from deployer.config.names import Ident, Name, SingleLine
from deployer.config.resources import Resources

DEFAULT_PYTHON_BASE = "deployer-base-python:bookworm"
DEFAULT_NODE_BASE = "deployer-base-node:bookworm"
DEFAULT_NGINX_BASE = "deployer-base-nginx:bookworm"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class BaseImages(_Section):
    """Base images of generated Dockerfiles. Nothing is pulled: they must exist locally.
    The defaults are built from Debian packages by `deployer.targets.swarm.bases` when missing."""

    python: SingleLine = Field(default=DEFAULT_PYTHON_BASE, description="python3 + venv.")
    node: SingleLine = Field(default=DEFAULT_NODE_BASE, description="nodejs + npm (build stage).")
    nginx: SingleLine = Field(default=DEFAULT_NGINX_BASE, description="nginx (frontends).")


class SwarmComponent(_Section):
    """How one component (a key of the environment's `hosts`) becomes a Swarm service."""

    path: str | None = Field(
        default=None,
        description="Build context relative to deploy.yml (default: <artifact.path>/<component> "
        "when it exists, else artifact.path).",
    )
    stack: Literal["auto", "python", "node", "static", "dockerfile"] = Field(
        default="auto", description="How to build: detected from the files unless set."
    )
    command: SingleLine | None = Field(
        default=None,
        description="Start command (default: service.command for Python, nginx for frontends).",
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Container port (default: see module doc)."
    )
    publish: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Node port published in host mode (default: the container port; 0: none).",
    )
    output: SingleLine = Field(
        default="dist", description="Node builds: folder `npm run build` writes, served by nginx."
    )
    health: Health | None = Field(
        default=None, description="Replaces the environment's health section for this component."
    )
    reservations: Resources | None = Field(
        default=None, description="Reserved resources (default: the same as the limits)."
    )


class UpdatePolicy(_Section):
    """Swarm's update_config. Order is start-first unless host-mode publishing leaves no free
    node for the new task (replicas >= nodes): then stop-first, or the update would hang."""

    parallelism: int = Field(default=1, ge=0, description="Tasks replaced at once (0: all).")
    delay: float = Field(default=0.0, ge=0, le=3600, description="Seconds between batches.")
    monitor: float = Field(
        default=5.0, gt=0, le=3600, description="Seconds a new task is watched for failure."
    )


class SwarmSettings(_Section):
    stack: Name | None = Field(default=None, description="Stack name (default: the app name).")
    docker: SingleLine = Field(
        default="docker",
        description="Docker CLI on the nodes; the SSH user must be allowed to use it "
        "(docker group), or set 'sudo docker'.",
    )
    bases: BaseImages = Field(default_factory=BaseImages)
    components: dict[Ident, SwarmComponent] = Field(default_factory=dict)
    update: UpdatePolicy = Field(default_factory=UpdatePolicy)
    endpoint_mode: Literal["vip", "dnsrr"] = Field(
        default="vip",
        description="How tasks find a service: a virtual IP (needs IPVS on the nodes) or DNS "
        "round robin over task addresses (what works in the nested lab).",
    )
    stop_grace_period: float = Field(
        default=10.0, ge=0, le=3600, description="Seconds a stopping task may drain."
    )
    timeout: float = Field(
        default=300.0, gt=0, le=7200, description="Seconds a rollout may take to converge."
    )

    def component(self, name: str) -> SwarmComponent:
        return self.components.get(name) or SwarmComponent()


def settings_of(target: object) -> SwarmSettings:
    """The target's swarm settings, or the defaults while `Target` has no `swarm` field."""
    found = getattr(target, "swarm", None)
    return found if isinstance(found, SwarmSettings) else SwarmSettings()


def swarm_strategy_problems(
    project_strategy: BaseModel, env_strategy: BaseModel | None, base: tuple[str, ...]
) -> list[str]:
    """What of `strategy` a Swarm environment cannot honour (Swarm paces each service's
    update itself): `batch_size` is the nodes' `swarm.update.parallelism` there. `kind`
    maps (rolling: `parallelism` tasks at a time; all_at_once: every task at once), and
    `failure_budget` becomes each service's max_failure_ratio."""
    from deployer.config.loader import format_loc

    problems = []
    for where, section in ((("strategy",), project_strategy), ((*base, "strategy"), env_strategy)):
        if section is not None and "batch_size" in section.model_fields_set:
            problems.append(
                f"{format_loc((*where, 'batch_size'))}: not used by target swarm, where Swarm "
                f"replaces each service's tasks itself: set "
                f"{format_loc((*base, 'swarm', 'update', 'parallelism'))} (tasks at once)"
            )
    return problems
