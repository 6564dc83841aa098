"""Read-only commands: what is on the hosts (`status`, `releases`) and what the ledger says
(`history`). Hosts are the truth for what runs; the ledger for what was meant to run; `status`
puts both side by side and says when they disagree."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from deployer.config.bluegreen import SLOTS
from deployer.errors import UnreachableError
from deployer.ledger import pid_is_alive
from deployer.plan.extravars import facts_vars
from deployer.targets.base import (
    AccessoryState,
    Certificate,
    HostState,
    ReleaseOnHost,
    ReleasesResult,
    StatusResult,
    compare_with_ledger,
    release_rows,
)
from deployer.targets.ssh.context import SshSession as Session
from deployer.targets.ssh.lock import lock_info, locked_error
from deployer.targets.ssh.replies import rejected, service_results
from deployer.targets.ssh.runner import HostOutcome


def _releases(data: Mapping[str, Any]) -> tuple[ReleaseOnHost, ...]:
    return tuple(
        ReleaseOnHost(
            version=str(r.get("version")),
            state=str(r.get("state") or "staged"),
            staged_at=r.get("staged_at"),
            switched_at=r.get("switched_at"),
        )
        for r in data.get("releases") or ()
    )


EXPIRY_WARNING_DAYS = 14
"""`status` reports a certificate that expires sooner as a problem (certbot renews at 30)."""
_ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def _text(value: object, limit: int = 200) -> str:
    """Host-reported text, shown but never trusted: printable characters only, bounded."""
    return "".join(c for c in str(value) if c.isprintable())[:limit]


def certificate(host: str, data: Mapping[str, Any], now: datetime) -> Certificate | None:
    """The certificate a proxy host reported, checked: a date that is not one is an error."""
    reported = data.get("certificate")
    if not isinstance(reported, Mapping):
        return None
    path = _text(reported.get("path") or "")
    error = _text(reported.get("error") or "")
    not_after = reported.get("not_after")
    if error or not isinstance(not_after, str) or not _ISO_UTC.match(not_after):
        return Certificate(host, path, None, None, None, error or "no expiry date reported")
    expires = datetime.strptime(not_after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    days = round((expires - now).total_seconds() / 86400, 1)
    issuer = _text(reported["issuer"]) if reported.get("issuer") else None
    return Certificate(host, path, not_after, days, issuer)


def certificate_problems(certificates: tuple[Certificate, ...]) -> list[str]:
    out = []
    for cert in certificates:
        if cert.error:
            out.append(f"{cert.host}: the proxy's certificate: {cert.error}")
        elif cert.days_left is not None and cert.days_left <= 0:
            out.append(f"{cert.host}: the proxy's certificate expired on {cert.not_after}")
        elif cert.days_left is not None and cert.days_left < EXPIRY_WARNING_DAYS:
            out.append(
                f"{cert.host}: the proxy's certificate expires in {cert.days_left:g} days "
                f"({cert.not_after})"
            )
    return out


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def accessory_states(
    target: Any, outcomes: Mapping[str, HostOutcome]
) -> tuple[AccessoryState, ...]:
    """Each accessory as its host reported it (`deployer.accessories.<engine>`), checked."""
    out = []
    servers = [
        (accessory, host, "primary" if host == accessory.primary else "standby")
        for accessory in target.accessories
        for host in accessory.hosts
    ]
    for accessory, host, role in servers:
        outcome = outcomes.get(host)
        reachable = outcome is not None and not outcome.unreachable
        reports = outcome.data.get("accessories") if outcome is not None else None
        report = reports.get(accessory.engine) if isinstance(reports, Mapping) else None
        report = report if isinstance(report, Mapping) else {}
        message = "" if outcome is None or outcome.good else outcome.message
        if not reachable:
            message = outcome.message if outcome is not None else "no result"
        running = report.get("running")
        out.append(
            AccessoryState(
                kind=accessory.kind,
                engine=accessory.engine,
                host=host,
                role=role,
                in_recovery=None
                if report.get("in_recovery") is None
                else bool(report["in_recovery"]),
                lag_bytes=_count(report.get("lag_bytes")),
                reachable=reachable,
                running=None if running is None else bool(running),
                version=_text(report["version"], 80) if report.get("version") else None,
                port=_count(report.get("port")),
                connections=_count(report.get("connections")),
                used_memory=_count(report.get("used_memory")),
                free_bytes=_count(report.get("free_bytes")),
                message=_text(message, 500),
            )
        )
    return tuple(out)


def accessory_problems(accessories: tuple[AccessoryState, ...]) -> list[str]:
    out = []
    for a in accessories:
        if not a.reachable:
            out.append(f"{a.host}: the {a.kind} ({a.engine}) is unreachable: {a.message}")
        elif not a.running:
            why = f": {a.message}" if a.message else ""
            out.append(f"{a.host}: the {a.kind} ({a.engine}) is not running{why}")
        elif a.role == "standby" and a.in_recovery is False:
            out.append(f"{a.host}: the {a.kind}'s standby is not following its primary")
    return out


def read_hosts(
    session: Session,
    *,
    health: bool,
    lock: Mapping[str, Any] | None = None,
    accessories: list[AccessoryState] | None = None,
) -> dict[str, HostState]:
    """One Ansible run: current version, stored releases and (optionally) health; with
    `lock`, the environment lock is taken first in the same run (LockedError when held);
    given `accessories` (a list), the accessories are read too and appended to it."""
    target = session.target
    hosts = list(target.host_names)
    reading = accessories is not None and bool(target.accessories)
    extravars = facts_vars(target, hosts, health=health, lock=lock, accessories=reading)
    every = [*hosts, *(h.name for h in target.accessory_hosts)] if reading else hosts
    result = session.run("facts.yml", extravars, hosts=every)
    if accessories is not None and reading:
        accessories += accessory_states(target, result.hosts)
    if lock is not None:
        primary = result.hosts.get(target.primary)
        if primary is not None and primary.failed and primary.data.get("held"):
            raise locked_error(lock_info(session, primary.data))
        if primary is None or primary.unreachable:
            why = primary.message if primary else f"no result ({result.status})"
            raise UnreachableError(f"lock host {target.primary} unreachable: {why}")
    states: dict[str, HostState] = {}
    for host in hosts:
        outcome = result.hosts.get(host)
        data: Mapping[str, Any] = outcome.data if outcome else {}
        reachable = outcome is not None and not outcome.unreachable
        healthy = data.get("healthy") if health and reachable else None
        message = outcome.message if outcome and not outcome.good else ""
        message = message or str(data.get("message") or data.get("health_message") or "")
        if bad := rejected(data):
            refused = f"refused what the host reported as versions: {', '.join(bad)}"
            message = f"{message}; {refused}" if message else refused
        states[host] = HostState(
            host=host,
            reachable=reachable,
            current=data.get("current"),
            previous_good=data.get("previous_good"),
            healthy=None if healthy is None else bool(healthy),
            message=message if reachable else (outcome.message if outcome else "no result"),
            releases=_releases(data),
            certificate=certificate(host, data, datetime.now(UTC)) if reachable else None,
            services=service_results(data.get("services")) if health and reachable else (),
            slot=data.get("slot") if data.get("slot") in SLOTS else None,
        )
    return states


def status(session: Session) -> StatusResult:
    target, ledger = session.target, session.ledger
    ledger.reconcile_orphans(session.identity.control_host, pid_is_alive)
    accessories: list[AccessoryState] = []
    states = read_hosts(session, health=True, accessories=accessories)
    versions: dict[str, list[str]] = {}
    problems: list[str] = []
    for state in states.values():
        ledger.record_observation(target.environment, state.host, state.current, state.healthy)
        if not state.reachable:
            problems.append(f"{state.host}: unreachable ({state.message})")
            continue
        versions.setdefault(state.current or "(none)", []).append(state.host)
        if state.healthy is False:
            problems.append(f"{state.host}: unhealthy: {state.message}")
        if state.current and state.state_of(state.current) == "bad":
            problems.append(f"{state.host}: runs {state.current}, which is marked bad")
    expected, more, last = compare_with_ledger(ledger, target.environment, versions, "hosts")
    problems += more
    certificates = tuple(s.certificate for s in states.values() if s.certificate is not None)
    problems += certificate_problems(certificates)
    problems += accessory_problems(tuple(accessories))
    return StatusResult(
        environment=target.environment,
        hosts=tuple(states.values()),
        versions={v: tuple(h) for v, h in versions.items()},
        expected=expected,
        drift=len(versions) > 1 or any(not s.reachable for s in states.values()),
        healthy=all(s.healthy for s in states.values()),
        problems=tuple(problems),
        last=last,
        certificates=certificates,
        accessories=tuple(accessories),
    )


def releases(session: Session) -> ReleasesResult:
    target = session.target
    states = read_hosts(session, health=False)
    bad = session.ledger.bad_versions(target.environment)
    return ReleasesResult(target.environment, release_rows(states, bad))
