"""Apply one version's stack file and follow Swarm until it has settled, one way or the other.

Swarm runs the update itself (start-first, health-gated, failure_action rollback); deployer's
job is to tell what happened. Per service, the update status counts only when it is newer
than the one read before the deploy (a status left by an earlier rollout says nothing about
this one). A service is done when it converged on the new version, when Swarm finished
rolling it back by itself, or when its update paused. A rollback by Swarm is a failure of the
deployment, never a success: that is the whole point of reading it here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deployer.targets.swarm import observe
from deployer.targets.swarm.compose import to_yaml
from deployer.targets.swarm.observe import ServiceView
from deployer.targets.swarm.remote import Nodes

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Settled:
    """How each service ended: converged | rolled_back | paused | pending (timeout)."""

    outcome: Mapping[str, str]
    views: Mapping[str, ServiceView]
    seconds: float
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(v == "converged" for v in self.outcome.values())

    @property
    def swarm_rolled_back(self) -> tuple[str, ...]:
        return tuple(s for s, v in self.outcome.items() if v == "rolled_back")

    def reason(self) -> str:
        if self.interrupted:
            return "interrupted by the operator"
        parts = []
        for service, result in self.outcome.items():
            if result == "converged":
                continue
            view = self.views.get(service)
            detail = view.describe() if view else "not found"
            what = {
                "rolled_back": "Swarm rolled the update back",
                "paused": "the update paused",
                "pending": f"not converged after {self.seconds:.0f} s",
            }.get(result, result)
            parts.append(f"{service}: {what} ({detail})")
        return "; ".join(parts)


def apply(nodes: Nodes, stack: str, compose: Mapping[str, Any]) -> None:
    """`docker stack deploy` on the manager; images are never resolved against a registry."""
    text = to_yaml(dict(compose)).encode()
    nodes.manage(
        "stack", "deploy", "--prune", "--resolve-image", "never", "--compose-file", "-", stack,
        stdin=text,
    )  # fmt: skip


def _state(view: ServiceView | None, before: ServiceView | None, version: str) -> str:
    if view is None:
        return "pending"
    fresh = before is None or view.update_started != before.update_started
    update = view.update_state if fresh else None
    if update == "rollback_completed":
        return "rolled_back"
    if update in ("paused", "rollback_paused"):
        return "paused"
    if update in ("rollback_started", "updating"):
        return "pending"
    tasks_ok = all(t.version == version for t in view.running)
    if view.version == version and tasks_ok and view.converged:
        return "converged"
    return "pending"


def wait(
    nodes: Nodes,
    stack: str,
    services: tuple[str, ...],
    version: str,
    before: Mapping[str, ServiceView],
    *,
    timeout: float,
    interrupted: threading.Event | None = None,
) -> Settled:
    """Poll until every service is converged, rolled back or paused, or `timeout` passes."""
    started = time.monotonic()
    outcome: dict[str, str] = {}
    views: dict[str, ServiceView] = {}
    while True:
        views = observe.read(nodes, stack)
        outcome = {s: _state(views.get(s), before.get(s), version) for s in services}
        elapsed = time.monotonic() - started
        if all(v != "pending" for v in outcome.values()):
            return Settled(outcome, views, elapsed)
        if interrupted is not None and interrupted.is_set():
            return Settled(outcome, views, elapsed, interrupted=True)
        if elapsed > timeout:
            return Settled(outcome, views, elapsed)
        time.sleep(POLL_SECONDS)


def watch(
    nodes: Nodes, stack: str, services: tuple[str, ...], version: str, seconds: float
) -> Settled:
    """After convergence: the stack must stay converged on `version` for `seconds`."""
    started = time.monotonic()
    while True:
        views = observe.read(nodes, stack)
        outcome = {
            s: "converged" if _state(views.get(s), None, version) == "converged" else "unstable"
            for s in services
        }
        elapsed = time.monotonic() - started
        if any(v != "converged" for v in outcome.values()) or elapsed >= seconds:
            return Settled(outcome, views, elapsed)
        time.sleep(POLL_SECONDS)
