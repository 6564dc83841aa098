"""What the lifecycle returns and how it stops: one result type for every target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from deployer.exitcodes import ExitCode
from deployer.ledger import HookResult, Status
from deployer.targets.base import HostReport

if TYPE_CHECKING:  # the notifier's imports (smtplib, ssl) load only when it sends
    from deployer.notify import Delivery


@dataclass(frozen=True)
class DeployResult:
    deployment_id: int
    environment: str
    version: str
    artifact_sha256: str
    status: Status
    exit_code: ExitCode
    stage: str
    reason: str
    noop: bool
    batches: tuple[tuple[str, ...], ...]
    hosts: tuple[HostReport, ...]
    deploy_seconds: float
    rollback_seconds: float | None
    notifications: tuple[Delivery, ...] = ()
    hooks: tuple[HookResult, ...] = ()
    notes: tuple[str, ...] = ()
    """What the deploy did besides its outcome (e.g. credentials added to the vault)."""


class RolloutStop(Exception):
    """The rollout cannot go on; carries the ledger status and the exit code."""

    def __init__(self, status: Status, code: ExitCode, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.code, self.stage, self.reason = status, code, stage, reason
