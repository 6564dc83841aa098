"""`deployer plan ENV`: what a deploy would do, host by host. Reads hosts; changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deployer import artifact as artifacts
from deployer.config.names import check_version
from deployer.errors import BadRequest
from deployer.plan.strategy import batches
from deployer.targets.ssh.context import SshSession as Session
from deployer.targets.ssh.state import read_hosts


@dataclass(frozen=True)
class PlannedHost:
    host: str
    batch: int
    current: str | None
    new: str
    action: str  # deploy | unchanged | unreachable


@dataclass(frozen=True)
class PlanResult:
    environment: str
    version: str
    version_is_bad: bool
    hosts: tuple[PlannedHost, ...]
    batches: int


def plan(session: Session, *, version: str | None, artifact_path: Path | None) -> PlanResult:
    target = session.target
    if version is None:
        source = artifact_path or (target.project_dir / target.artifact.path)
        version = artifacts.for_target(
            target, source, session.state_dir / "artifacts"
        ).default_version
    try:
        check_version(version)
    except ValueError as exc:
        raise BadRequest(f"--version: {exc}") from None
    states = read_hosts(session, health=False)
    rows: list[PlannedHost] = []
    groups = batches(target.strategy, target.host_names)
    for number, group in enumerate(groups, start=1):
        for host in group:
            state = states[host]
            if not state.reachable:
                action = "unreachable"
            elif state.current == version:
                action = "unchanged"
            else:
                action = "deploy"
            rows.append(PlannedHost(host, number, state.current, version, action))
    bad = version in session.ledger.bad_versions(target.environment) or any(
        s.state_of(version) == "bad" for s in states.values()
    )
    return PlanResult(target.environment, version, bad, tuple(rows), len(groups))
