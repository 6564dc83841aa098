"""The Docker Swarm target: images instead of tarballs, a stack instead of systemd units.

    build(session, version)          -> BuildResult     (`deployer build ENV`)
    deploy(session, version=, wait=) -> DeployResult    (same result as the SSH deploy)
    rollback(session, to=)           -> RollbackResult
    status(session)                  -> StatusResult

Layers: settings/spec/compose/dockerfiles are pure; build, deliver, observe and rollout
touch docker or SSH; lifecycle and manage put them together under the environment lock
and the ledger. Imports are lazy so that loading the package costs nothing for SSH targets.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .build import BuildResult, BuiltImage, build
    from .lifecycle import deploy
    from .manage import rollback, status
    from .settings import SwarmSettings

_LAZY = {
    "BuildResult": ".build",
    "BuiltImage": ".build",
    "build": ".build",
    "deploy": ".lifecycle",
    "rollback": ".manage",
    "status": ".manage",
    "SwarmSettings": ".settings",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BuildResult", "BuiltImage", "SwarmSettings", "build", "deploy", "rollback", "status"]
