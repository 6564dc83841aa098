"""What the swarm runs now: one SSH round trip to the manager returns the stack's services,
their live tasks and the node names, as JSON that is parsed into small frozen views.

A service's version is the deployer label on its spec (what Swarm is asked to run); a task's
is the label on the task's own spec (what that container runs). A task is "current" when
its spec is the service's task template, which is how Swarm itself decides what to replace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deployer.errors import DeployerError
from deployer.targets.swarm.remote import Nodes
from deployer.targets.swarm.spec import LABEL_VERSION

_SCRIPT = """\
set -e
svc=$({docker} service ls -q --filter label=com.docker.stack.namespace={stack})
printf '{{"services":'
if [ -n "$svc" ]; then {docker} service inspect $svc; else printf '[]'; fi
printf ',"tasks":'
t=""
if [ -n "$svc" ]; then t=$({docker} service ps -q --filter desired-state=running $svc); fi
if [ -n "$t" ]; then {docker} inspect $t; else printf '[]'; fi
printf ',"nodes":'
{docker} node inspect $({docker} node ls -q)
printf '}}'
"""


@dataclass(frozen=True)
class TaskView:
    node: str
    state: str  # new, pending, preparing, starting, running, failed, ...
    version: str | None
    current: bool  # runs the service's current task template
    error: str


@dataclass(frozen=True)
class ServiceView:
    name: str
    version: str | None
    image: str
    replicas: int
    index: int  # spec version: changes with every update
    update_state: str | None  # updating, completed, paused, rollback_started, ...
    update_started: str | None
    update_message: str
    tasks: tuple[TaskView, ...]

    @property
    def running(self) -> tuple[TaskView, ...]:
        return tuple(t for t in self.tasks if t.state == "running")

    @property
    def converged(self) -> bool:
        """Every wanted task runs the current spec, and no update is under way."""
        current = [t for t in self.running if t.current]
        settled = self.update_state in (None, "completed", "rollback_completed")
        return settled and len(current) == self.replicas and len(self.running) == self.replicas

    def describe(self) -> str:
        nodes = ", ".join(sorted({t.node for t in self.running})) or "no node"
        text = f"{len(self.running)}/{self.replicas} tasks running ({nodes})"
        errors = sorted({t.error for t in self.tasks if t.error})
        if self.update_state not in (None, "completed"):
            text += f"; update {self.update_state}: {self.update_message}"
        return text + (f"; {'; '.join(errors)}" if errors else "")


def _normal(value: Any) -> Any:
    """A task spec without empty fields and defaults: the API echoes a service's template
    with `DNSConfig: {}` and `Runtime: container` that its tasks' copies leave out."""
    if isinstance(value, dict):
        out = {k: _normal(v) for k, v in value.items() if v not in ({}, [], None, "")}
        if out.get("Runtime") == "container":
            del out["Runtime"]
        return {k: v for k, v in out.items() if v not in ({}, [], None, "")}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _labels(spec: Mapping[str, Any]) -> Mapping[str, str]:
    return spec.get("Labels") or {}


def parse(data: Mapping[str, Any]) -> dict[str, ServiceView]:
    """Services by name, from the manager's JSON (see _SCRIPT)."""
    hostnames = {
        n["ID"]: n.get("Description", {}).get("Hostname", n["ID"]) for n in data.get("nodes", [])
    }
    tasks_by_service: dict[str, list[dict[str, Any]]] = {}
    for task in data.get("tasks", []):
        tasks_by_service.setdefault(task["ServiceID"], []).append(task)
    views: dict[str, ServiceView] = {}
    for service in data.get("services", []):
        spec = service["Spec"]
        template = spec.get("TaskTemplate", {})
        wanted = _normal(template)
        update = service.get("UpdateStatus") or {}
        tasks = tuple(
            TaskView(
                node=hostnames.get(t.get("NodeID", ""), t.get("NodeID", "") or "(unassigned)"),
                state=str(t.get("Status", {}).get("State", "")),
                version=_labels(t.get("Spec", {}).get("ContainerSpec", {})).get(LABEL_VERSION),
                current=_normal(t.get("Spec", {})) == wanted,
                error=str(t.get("Status", {}).get("Err", "")),
            )
            for t in tasks_by_service.get(service["ID"], [])
        )
        views[spec["Name"]] = ServiceView(
            name=spec["Name"],
            version=_labels(spec).get(LABEL_VERSION),
            image=str(template.get("ContainerSpec", {}).get("Image", "")),
            replicas=int(spec.get("Mode", {}).get("Replicated", {}).get("Replicas", 0)),
            index=int(service.get("Version", {}).get("Index", 0)),
            update_state=update.get("State"),
            update_started=update.get("StartedAt"),
            update_message=str(update.get("Message", "")),
            tasks=tasks,
        )
    return views


def read(nodes: Nodes, stack: str) -> dict[str, ServiceView]:
    """The stack's services now; UnreachableError when the manager cannot be reached."""
    script = _SCRIPT.format(docker=nodes.docker, stack=stack)
    out = nodes.manage_script(script)
    try:
        return parse(json.loads(out))
    except (ValueError, KeyError, TypeError) as exc:
        raise DeployerError(f"cannot read the swarm's state from {nodes.manager}: {exc}") from exc


def versions(views: Sequence[ServiceView]) -> dict[str, tuple[str, ...]]:
    """version -> services whose running tasks run it."""
    out: dict[str, list[str]] = {}
    for view in views:
        for version in sorted({t.version or "(none)" for t in view.running}):
            out.setdefault(version, []).append(view.name)
    return {v: tuple(s) for v, s in out.items()}
