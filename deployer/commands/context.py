"""What every remote command shares: the target, the runner, the ledger, who is acting."""

from __future__ import annotations

import getpass
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from deployer.config.resolve import Target
from deployer.ledger import Deployment, Ledger
from deployer.plan.inventory import build_inventory
from deployer.runner import ProgressSink, Runner, RunResult
from deployer.secrets import Redactor

if TYPE_CHECKING:  # the notifier's imports (smtplib, ssl) load only when it sends
    from deployer.notify import Delivery


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

    @cached_property
    def state_dir(self) -> Any:
        path = self.target.project_dir / ".deployer"
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    @cached_property
    def runner(self) -> Runner:
        return Runner(self.state_dir, verbosity=self.verbosity, redact=self.redact)

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

    @cached_property
    def inventory(self) -> dict[str, Any]:
        return build_inventory(self.target)

    def run(
        self,
        playbook: str,
        extravars: Mapping[str, Any],
        *,
        hosts: Sequence[str] | None = None,
        secrets: bool = False,
        cancellable: bool = True,
        phases: Mapping[str, str] | None = None,
        on_phase: Callable[[str], None] | None = None,
    ) -> RunResult:
        count = len(hosts) if hosts is not None else len(self.target.hosts)
        cancel: Callable[[], bool] | None = self.interrupted.is_set if cancellable else None
        return self.runner.run(
            playbook,
            self.inventory,
            extravars,
            secret_vars=(
                {"deployer_secret_env": dict(self.secret_env)}
                if secrets and self.secret_env
                else None
            ),
            progress=self.progress,
            cancel=cancel,
            forks=max(1, min(count, 50)),
            phases=phases,
            on_phase=on_phase,
        )
