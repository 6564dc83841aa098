"""What every command shares, whatever the target: the resolved environment, the ledger,
who is acting, notifications, redaction and the operator's interrupt. Target-specific
machinery (the Ansible runner, Docker connections) lives with each target."""

from __future__ import annotations

import getpass
import os
import re
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from deployer.config.ledger import LedgerPlace
from deployer.config.models import Secrets
from deployer.config.resolve import Target
from deployer.errors import BadRequest
from deployer.ledger import Deployment, Ledger, LedgerUnreachable, Postgres, check_readable
from deployer.secrets import Redactor, resolve_refs

if TYPE_CHECKING:  # the notifier's imports (smtplib, ssl) load only when it sends
    from deployer.notify import Delivery


class ProgressSink(Protocol):
    """Receives per-host (or per-service) events while a target works."""

    def task(self, host: str, task: str, state: str) -> None: ...


CONTROL_HOST_ENV = "DEPLOYER_CONTROL_HOST"
"""The name this control host goes by in locks and the ledger, when its host name is not
the one to use (control hosts sharing a ledger must have names of their own)."""
_CONTROL_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")


def control_host_name(environ: Mapping[str, str] | None = None) -> str:
    """$DEPLOYER_CONTROL_HOST, or the host name. BadRequest when the variable is not a
    host name."""
    given = (os.environ if environ is None else environ).get(CONTROL_HOST_ENV)
    if given is None:
        return socket.gethostname()
    if not _CONTROL_HOST.fullmatch(given):
        raise BadRequest(
            f"{CONTROL_HOST_ENV}: must be a host name (letters, digits, '.', '_', '-', at most 253)"
        )
    return given


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
        return Identity(user=user, control_host=control_host_name(), pid=os.getpid())

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
    ledger_password: str | None = field(default=None, repr=False)
    """The password of a PostgreSQL ledger, resolved from `ledger.password`."""

    @cached_property
    def state_dir(self) -> Any:
        path = self.target.project_dir / ".deployer"
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    @cached_property
    def ledger(self) -> Ledger:
        return open_ledger(self.target.ledger, self.ledger_password, self.redact)

    def check_ledger(self) -> None:
        """Refuse a ledger deployer cannot use (bad input) before any work: a SQLite file
        from its header alone (nothing is created), a PostgreSQL ledger by opening it."""
        if self.target.ledger.path is not None:
            check_readable(self.target.ledger.path)
        else:
            _ = self.ledger

    def announce(self, deployment: Deployment) -> tuple[Delivery, ...]:
        """Tell the environment's channels about a deployment's start or outcome. Never
        raises and never waits past the notification deadline."""
        if not self.target.notifications:
            return ()
        from deployer.notify import event_from_deployment, notify

        event = event_from_deployment(self.target.app.name, deployment)
        return tuple(notify(self.target.notifications, event, self.notify_secrets, self.redact))


def ledger_password(place: LedgerPlace, secrets: Secrets, base: Path) -> str | None:
    """The value of `ledger.password` (ConfigError naming it when it has none)."""
    if place.url is None or place.password is None:
        return None
    refs = {"password": place.password}
    return resolve_refs(refs, secrets, base, path_of=lambda _: "ledger.password")["password"]


def open_ledger(
    place: LedgerPlace,
    password: str | None,
    redact: Redactor | None = None,
    *,
    named: tuple[str, str] = ("ledger.url", "ledger.password"),
) -> Ledger:
    """The project's ledger. A PostgreSQL server that cannot be reached, or refuses the
    password, is bad input naming where the URL (`named[0]`) or the password came from."""
    if place.path is not None:
        return Ledger(place.path, redact=redact)
    assert place.url is not None
    try:
        return Ledger(Postgres(place.url, password), redact=redact)
    except LedgerUnreachable as exc:
        key = named[1] if exc.credentials else named[0]
        raise LedgerUnreachable(f"{key}: {exc.message}", credentials=exc.credentials) from None
