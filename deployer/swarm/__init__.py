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
    from deployer.config.swarm import SwarmSettings

    from .build import BuildResult, BuiltImage, build
    from .lifecycle import deploy
    from .manage import rollback, status

_LAZY = {
    "BuildResult": ".build",
    "BuiltImage": ".build",
    "build": ".build",
    "deploy": ".lifecycle",
    "rollback": ".manage",
    "status": ".manage",
}
_ABSOLUTE = {"SwarmSettings": "deployer.config.swarm"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    if name in _ABSOLUTE:
        return getattr(import_module(_ABSOLUTE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BuildResult", "BuiltImage", "SwarmSettings", "build", "deploy", "rollback", "status"]
