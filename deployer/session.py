"""What every command shares, whatever the target: the resolved environment, the ledger,
who is acting, notifications, redaction and the operator's interrupt. Target-specific
machinery (the Ansible runner, Docker connections) lives with each target."""

from __future__ import annotations

import getpass
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from deployer.config.resolve import Target
from deployer.ledger import Deployment, Ledger
from deployer.secrets import Redactor

if TYPE_CHECKING:  # the notifier's imports (smtplib, ssl) load only when it sends
    from deployer.notify import Delivery


class ProgressSink(Protocol):
    """Receives per-host (or per-service) events while a target works."""

    def task(self, host: str, task: str, state: str) -> None: ...


@dataclass(frozen=True)
class Identity:
    user: str
    control_host: str
    pid: int

    @staticmethod
    def current() -> Identity:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        return Identity(user=user, control_host=socket.gethostname(), pid=os.getpid())

    def holder(self, deployment: int | None = None) -> dict[str, Any]:
        return {
            "user": self.user,
            "control_host": self.control_host,
            "pid": self.pid,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "deployment": deployment,
        }


@dataclass
class Session:
    """One command's view of one environment."""

    target: Target
    verbosity: int = 0
    redact: Redactor = field(default_factory=Redactor)
    progress: ProgressSink | None = None
    identity: Identity = field(default_factory=Identity.current)
    interrupted: threading.Event = field(default_factory=threading.Event)
    secret_env: Mapping[str, str] = field(default_factory=dict)
    notify_secrets: Mapping[str, str] = field(default_factory=dict)
    tls: Mapping[str, str] = field(default_factory=dict)
    """The edge proxy's certificate and key (PEM), resolved for runs that install them."""
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    """The accessories' credentials the project's vault holds: {kind: {credential: value}}."""
    keeps_credentials: bool = False
    """A vault is configured: credentials it lacks are read back (sealed) from the
    accessories' hosts and added to it."""
    notes: list[str] = field(default_factory=list)
    """What the command did besides its result, for the operator (e.g. keys added to the
    vault); shared by every view of the session."""

    @cached_property
    def state_dir(self) -> Any:
        path = self.target.project_dir / ".deployer"
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.target.ledger_path, redact=self.redact)

    def announce(self, deployment: Deployment) -> tuple[Delivery, ...]:
        """Tell the environment's channels about a deployment's start or outcome. Never
        raises and never waits past the notification deadline."""
        if not self.target.notifications:
            return ()
        from deployer.notify import event_from_deployment, notify

        event = event_from_deployment(self.target.app.name, deployment)
        return tuple(notify(self.target.notifications, event, self.notify_secrets, self.redact))
