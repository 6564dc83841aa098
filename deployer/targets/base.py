"""What every target speaks: the `Target` protocol the engine drives, and the typed replies
and results it returns. Targets import this module and never each other.

A target's "hosts" are the units it rolls out to: servers for the SSH target, the stack's
services for Swarm. Every reply names the stage a failure happened in as a field (`stage`);
nothing above a target ever parses a task name or a log line.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from deployer.ledger import (
    Analysis,
    Backup,
    Deployment,
    HookResult,
    HostResult,
    HostStatus,
    Ledger,
    ServiceResult,
    Status,
    pid_is_alive,
)
from deployer.plan.strategy import waiting_share

if TYPE_CHECKING:
    from deployer.config.models import Strategy
    from deployer.exitcodes import ExitCode
    from deployer.notify import Delivery
    from deployer.plan.strategy import HostFacts
    from deployer.session import Session


MAX_TEXT = 2000
"""Characters kept of one free-text value a host sends (a message, a reason, a body)."""


def cap(text: str, limit: int = MAX_TEXT) -> str:
    """At most `limit` characters, marked when cut."""
    return text if len(text) <= limit else text[: limit - 15] + " ...[truncated]"


# --- typed replies --------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupTaken:
    """A dump a host took of the app's database in this step."""

    file: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class HostReply:
    """What one host (or service) said back from one step."""

    host: str
    ok: bool = True
    unreachable: bool = False
    changed: bool = False
    message: str = ""
    stage: str = ""
    """Where it failed: lock | preflight | upload | stage | monitoring | switch | health |
    watch | rollback. Empty when it did not fail."""
    current: str | None = None
    previous_good: str | None = None
    switched: bool = False
    """A switch reached the new version here (its health check may still have failed)."""
    services: tuple[ServiceResult, ...] = ()
    """For an app of several services: how each came out on this host."""
    hook: HookResult | None = None
    """A deploy hook that ran here in this step."""
    backup: BackupTaken | None = None
    analysis: Analysis | None = None
    """Why the switch or health check failed here (what systemd and the journal said)."""
    slot: str | None = None
    """With two slots per host: the live one after this step."""
    started: str | None = None
    """A canary's switch: the slot now running the new release next to the live one."""

    @property
    def good(self) -> bool:
        return self.ok and not self.unreachable


@dataclass(frozen=True)
class LockInfo:
    environment: str
    host: str
    held: bool
    holder: Mapping[str, Any]
    age_seconds: float
    stale: bool
    stale_reason: str
    token: str = ""
    """The token the lock is held with (not a secret): what `release` breaks it by."""
    mine: bool = False

    def describe(self) -> str:
        if not self.held:
            return f"{self.environment}: not locked"
        h = self.holder
        who = f"{h.get('user', '?')}@{h.get('control_host', '?')} (pid {h.get('pid', '?')})"
        text = f"locked by {who} since {h.get('started_at', '?')}"
        if h.get("deployment"):
            text += f", deployment #{h['deployment']}"
        if self.stale:
            text += f"; STALE: {self.stale_reason} (clear it with `deployer lock release "
            text += f"{self.environment}`)"
        return text


def new_token() -> str:
    return secrets.token_hex(16)


def lock_info(session: Session, report: Mapping[str, Any]) -> LockInfo:
    """A lock as a target read it (held, holder, age, stale by TTL, token), plus the rule
    only the controller can apply: a holder on this control host whose process is gone."""
    holder: Mapping[str, Any] = report.get("holder") or {}
    reason = ""
    if report.get("stale"):
        reason = f"older than the lock TTL ({session.target.lock_ttl} s)"
    pid = holder.get("pid")
    if (
        holder.get("control_host") == session.identity.control_host
        and isinstance(pid, int)
        and pid != session.identity.pid
        and not pid_is_alive(pid)
    ):
        reason = f"holder process {pid} is gone"
    return LockInfo(
        environment=session.target.environment,
        host=session.target.primary,
        held=bool(report.get("held")),
        holder=holder,
        age_seconds=float(report.get("age_seconds") or 0.0),
        stale=bool(reason),
        stale_reason=reason,
        token=str(report.get("token") or ""),
        mine=bool(report.get("mine")),
    )


@dataclass(frozen=True)
class Release:
    """One version ready to go out: what the ledger records and what the target ships."""

    version: str
    digest: str
    payload: Any = None  # the target's own: a tarball for SSH, built images for Swarm


@dataclass(frozen=True)
class StageReply:
    """Lock (when asked), preflight and staging on every host, and the first batch's switch
    when the target fused it into the same run."""

    hosts: Mapping[str, HostReply]
    lock: LockInfo | None = None
    """Set when the lock was asked for and someone else holds it: nothing ran."""
    lock_error: str = ""
    """Set when the lock could not be taken for another reason: nothing ran."""
    switched: Mapping[str, HostReply] | None = None
    """The fused first batch's replies; None when no switch ran."""
    switch_started: float | None = None  # epoch seconds
    complete: bool = True
    """False when the run stopped before every host reported (the reason is `detail`)."""
    lock_taken: bool = True
    """False when the lock was asked for and surely not taken (the lock host went away)."""
    detail: str = ""
    released: bool = False
    interrupted: bool = False


@dataclass(frozen=True)
class BatchReply:
    hosts: Mapping[str, HostReply]
    released: bool = False
    interrupted: bool = False


@dataclass(frozen=True)
class WatchReply:
    hosts: Mapping[str, HostReply]
    judge: HostReply | None = None
    """The monitoring server's verdict on the PromQL rules, when monitoring is on."""
    judge_host: str = ""
    breach: bool = False
    measured: Mapping[str, float] = field(default_factory=dict)
    released: bool = False
    interrupted: bool = False


# --- what the hosts store and run -----------------------------------------------------------


@dataclass(frozen=True)
class ReleaseOnHost:
    version: str
    state: str  # staged | good | bad
    staged_at: str | None
    switched_at: str | None


@dataclass(frozen=True)
class Certificate:
    """The edge proxy's certificate as a proxy host reads it (`status`)."""

    host: str
    path: str
    not_after: str | None  # ISO 8601, UTC
    days_left: float | None
    issuer: str | None
    error: str = ""


@dataclass(frozen=True)
class AccessoryState:
    """An accessory as its host reports it (`status`, `deployer accessory`)."""

    kind: str  # database | cache
    engine: str  # postgresql | redis
    host: str
    reachable: bool
    running: bool | None = None
    version: str | None = None
    """The installed package's version."""
    port: int | None = None
    connections: int | None = None
    used_memory: int | None = None
    free_bytes: int | None = None
    message: str = ""
    role: str = "primary"
    """PostgreSQL: `primary`, or `standby` (streaming from the primary)."""
    in_recovery: bool | None = None
    """A standby replaying the primary's WAL, as it reports it."""
    lag_bytes: int | None = None
    """A standby's WAL received but not yet replayed."""


@dataclass(frozen=True)
class HostState:
    host: str
    reachable: bool
    current: str | None
    previous_good: str | None
    healthy: bool | None
    message: str
    releases: tuple[ReleaseOnHost, ...]
    certificate: Certificate | None = None
    """The edge proxy's certificate, on a proxy host when HTTPS is on (`status`)."""
    services: tuple[ServiceResult, ...] = ()
    """For an app of several services: each one's health sample on this host (`status`)."""
    slot: str | None = None
    """Blue-green: the live slot (`blue` or `green`), whose release `current` is."""

    def has(self, version: str) -> bool:
        return any(r.version == version for r in self.releases)

    def state_of(self, version: str) -> str | None:
        return next((r.state for r in self.releases if r.version == version), None)


@dataclass(frozen=True)
class StatusResult:
    environment: str
    hosts: tuple[HostState, ...]
    versions: Mapping[str, tuple[str, ...]]  # version -> hosts running it
    expected: str | None  # what the ledger says should be live
    drift: bool
    healthy: bool
    problems: tuple[str, ...]
    last: Deployment | None
    certificates: tuple[Certificate, ...] = ()
    """The edge proxy's certificate on each proxy host, when HTTPS is on."""
    accessories: tuple[AccessoryState, ...] = ()


@dataclass(frozen=True)
class AccessoryResult:
    """What `deployer accessory ACTION` did."""

    environment: str
    action: str
    accessories: tuple[AccessoryState, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(a.reachable and a.running for a in self.accessories)


@dataclass(frozen=True)
class BackupsResult:
    environment: str
    backups: tuple[Backup, ...]


@dataclass(frozen=True)
class RestoreResult:
    environment: str
    backup: Backup
    ok: bool
    seconds: float
    message: str = ""


@dataclass(frozen=True)
class ReleaseRow:
    version: str
    marks: tuple[str, ...]  # current, good, bad, staged, partial
    hosts: tuple[str, ...]  # hosts that store it
    missing: tuple[str, ...]  # hosts that do not


@dataclass(frozen=True)
class ReleasesResult:
    environment: str
    releases: tuple[ReleaseRow, ...]


@dataclass(frozen=True)
class HostReport:
    host: str
    status: HostStatus
    stage: str
    before: str | None
    after: str | None
    message: str = ""
    services: tuple[ServiceResult, ...] = ()
    analysis: Analysis | None = None

    def result(self) -> HostResult:
        """The ledger's row for this host."""
        return HostResult(
            self.host,
            self.status,
            self.stage,
            self.before,
            self.after,
            self.message,
            services=self.services,
            analysis=self.analysis,
        )


@dataclass(frozen=True)
class RollbackResult:
    deployment_id: int
    environment: str
    version: str
    status: Status
    exit_code: ExitCode
    reason: str
    hosts: tuple[HostReport, ...]
    seconds: float
    notifications: tuple[Delivery, ...] = ()


def compare_with_ledger(
    ledger: Ledger, environment: str, running: Mapping[str, Sequence[str]], what: str
) -> tuple[str | None, list[str], Deployment | None]:
    """What the ledger expects, the problems of a fleet that disagrees with it or with
    itself, and the last deployment (flagged when it was interrupted or never finished)."""
    problems: list[str] = []
    expected = ledger.current(environment)
    if len(running) > 1:
        split = "; ".join(f"{v} on {', '.join(h)}" for v, h in running.items())
        problems.append(f"{what} disagree: {split}")
    elif expected is not None and running and expected not in running:
        problems.append(f"the ledger expects {expected}, {what} run {', '.join(running)}")
    history = ledger.history(environment, limit=1)
    last = history[0] if history else None
    share = None if last is None else waiting_share(last.stage)
    if last is not None and last.status.value == "RUNNING" and share is not None:
        problems.append(
            f"deployment #{last.id} is a canary of {last.version} waiting at {share} % of "
            f"requests: `deployer promote {environment}` goes on, `deployer abort "
            f"{environment}` takes every request back"
        )
    elif last is not None and last.status.value in {"INTERRUPTED", "RUNNING"}:
        problems.append(f"last deployment #{last.id} is {last.status.value}: {last.reason}")
    return expected, problems, last


def release_rows(
    states: Mapping[str, HostState], bad: frozenset[str] | set[str]
) -> tuple[ReleaseRow, ...]:
    """The releases the hosts store, newest first, each marked current/good/bad/staged and
    partial when some reachable host lacks it."""
    order: dict[str, str] = {}
    for state in states.values():
        for rel in state.releases:
            stamp = rel.switched_at or rel.staged_at or ""
            order[rel.version] = max(order.get(rel.version, ""), stamp)
    rows: list[ReleaseRow] = []
    reachable = [s for s in states.values() if s.reachable]
    for version in sorted(order, key=lambda v: order[v], reverse=True):
        holders = tuple(s.host for s in reachable if s.has(version))
        host_states = {s.state_of(version) for s in reachable if s.has(version)}
        marks: list[str] = []
        if any(s.current == version for s in reachable):
            marks.append("current")
        if version in bad or "bad" in host_states:
            marks.append("bad")
        elif "good" in host_states:
            marks.append("good")
        else:
            marks.append("staged")
        missing = tuple(s.host for s in reachable if not s.has(version))
        if missing:
            marks.append("partial")
        rows.append(ReleaseRow(version, tuple(marks), holders, missing))
    return tuple(rows)


# --- the protocol ---------------------------------------------------------------------------


class Target(Protocol):
    """One way of running releases. The engine owns the lifecycle; a target owns how each
    step is done remotely, and whether several steps can share one remote run (`fuse`)."""

    kind: ClassVar[str]

    @property
    def fuse(self) -> bool:
        """Lock, staging and the first batch in one run; the lock given back by the last run."""

    session: Session

    def hosts(self) -> tuple[str, ...]:
        """The units a rollout goes to, in rollout order."""

    def strategy(self) -> Strategy:
        """The strategy the plan is made with (the environment's, or what the target can
        honour: one batch where the platform paces the update itself)."""

    def prepare(self, version: str | None, artifact: Path | None, *, build: bool = True) -> Release:
        """Build (or take) what ships; the version defaults to a digest of it. `build`
        False: skip the config's build command where the target can (`plan`)."""

    def facts(self) -> Mapping[str, HostFacts]:
        """What each host runs and stores now (one cheap read)."""

    def lock(self, action: str, token: str = "", deployment: int | None = None) -> LockInfo:
        """acquire | release | status | break the environment lock (LockedError when held
        by someone else; UnreachableError when the lock host cannot be reached)."""

    def stage(
        self,
        release: Release,
        hosts: Sequence[str],
        *,
        lock: tuple[str, int] | None,
        switch: Sequence[str] | None,
        unlock: str | None,
        on_switch: Callable[[], None] | None = None,
    ) -> StageReply:
        """Preflight and stage `release` on `hosts` (nothing switches), taking the lock
        first when `lock` = (token, deployment id) is given, then switching `switch` when
        given and every host got through; `unlock`: the token to give the lock back with
        at the end when everything succeeded."""

    def activate(self, release: Release, batch: Sequence[str], *, unlock: str | None) -> BatchReply:
        """Switch `batch` to `release` and check each host's health there."""

    def watch(
        self, release: Release, hosts: Sequence[str], since: float, *, unlock: str | None
    ) -> WatchReply:
        """Watch the live hosts for the watch window (and judge the PromQL rules)."""

    def roll_back(
        self,
        to: Mapping[str, str | None],
        *,
        mark_bad: str | None,
        reason: str,
        unlock: str | None,
    ) -> BatchReply:
        """Put each host back on its version (None: stop the app; it ran nothing before)."""

    def run_hook(self, name: str, version: str) -> HostReply | None:
        """Run the configured hook `name` (after_switch, after_rollback, after_failure) on
        its host, in release `version`; None when the target runs no hooks."""

    def status(self) -> StatusResult: ...

    def releases(self) -> ReleasesResult: ...

    def rollback(self, to: str | None) -> RollbackResult:
        """The operator's rollback to a stored, good version (`deployer rollback`)."""


@dataclass(frozen=True)
class LogLine:
    """One line an app's process wrote, as its host's journal keeps it."""

    host: str
    time: datetime
    unit: str
    message: str
    """Masked, control characters removed: the app's text, never markup or code."""


@dataclass(frozen=True)
class LogsResult:
    """`deployer logs`: the lines of every host chosen, merged by time, and the hosts that
    could not be read (host -> why)."""

    environment: str
    lines: tuple[LogLine, ...]
    errors: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class ExecResult:
    """`deployer exec`: what the command did on each host (its output masked there), and
    the hosts where it could not run (host -> why)."""

    environment: str
    command: tuple[str, ...]
    results: tuple[HookResult, ...]
    errors: Mapping[str, str] = field(default_factory=dict)
    unreachable: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors and all(r.ok for r in self.results)


@dataclass(frozen=True)
class MaintenanceResult:
    """`deployer maintenance on|off`: what each proxy host did (host -> why it failed)."""

    environment: str
    on: bool
    hosts: tuple[str, ...]
    errors: Mapping[str, str] = field(default_factory=dict)
    retry_after: int | None = None

    @property
    def ok(self) -> bool:
        return not self.errors
