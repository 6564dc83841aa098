"""`deployer plan ENV`: what a deploy would do, for every target: the hosts' facts read once,
then the same pure plan the deploy walks (batches, steps, remote runs, where each host
would go back to). Changes nothing on the hosts."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer.config.names import check_version
from deployer.errors import BadRequest
from deployer.plan import edge
from deployer.plan.strategy import plan as make_plan
from deployer.session import Session
from deployer.targets.base import Target


@dataclass(frozen=True)
class PlannedHost:
    host: str
    batch: int
    current: str | None
    new: str
    action: str  # deploy | unchanged | unreachable
    rollback_to: str | None = None
    ports: tuple[int, ...] = ()
    """The ports of the host's instances, when it runs several (`replicas`)."""
    services: tuple[str, ...] = ()
    """For an app of several services: what the host runs of each, in switch order."""


@dataclass(frozen=True)
class PlanResult:
    environment: str
    version: str
    version_is_bad: bool
    hosts: tuple[PlannedHost, ...]
    batches: int
    runs: int = 0
    """Remote runs the deploy costs when it succeeds."""
    steps: tuple[dict[str, Any], ...] = ()
    proxy: PlannedProxy | None = None
    """The edge proxy, when the environment has one."""
    accessories: tuple[str, ...] = ()
    """`database: postgresql 15 on db1:5432`, set up before anything is switched."""
    hooks: tuple[str, ...] = ()
    """`before_switch on api1 as api: alembic upgrade head`."""


@dataclass(frozen=True)
class PlannedProxy:
    """Where the edge proxy runs and what it balances over (drained batch by batch)."""

    hosts: tuple[str, ...]
    server_name: str | None
    port: int
    backends: tuple[str, ...]
    """`host=address:port` of every instance behind it."""


def _proxy(session: Session) -> PlannedProxy | None:
    site = edge.site(session.target)
    proxy = session.target.proxy
    if site is None or proxy is None:
        return None
    backends = tuple(
        f"{b.host}={b.address}:{b.port}" for upstream in site.upstreams for b in upstream.backends
    )
    return PlannedProxy(proxy.hosts, proxy.server_name, proxy.http_port, backends)


def _placement(env: Any, host: str) -> tuple[str, ...]:
    """`api: 2 on 8100-8101`, `worker: 2`, `frontend: static` for the services on `host`."""
    out = []
    for service in env.services:
        if host not in service.hosts:
            continue
        ports, count = service.ports(host), service.count(host)
        if service.kind == "static":
            out.append(f"{service.name}: static")
        elif ports:
            where = f"{ports[0]}" if len(ports) == 1 else f"{ports[0]}-{ports[-1]}"
            out.append(f"{service.name}: {len(ports)} on {where}")
        else:
            out.append(f"{service.name}: {count}")
    return tuple(out)


def plan(
    session: Session, driver: Target, *, version: str | None, artifact_path: Path | None
) -> PlanResult:
    env = session.target
    if version is not None:
        try:
            check_version(version)
        except ValueError as exc:
            raise BadRequest(f"--version: {exc}") from None
    else:  # the version the artifact would get, without its build command
        version = driver.prepare(None, artifact_path, build=False).version
    facts = driver.facts()
    steps = make_plan(
        driver.strategy(),
        driver.hosts(),
        version,
        watch=env.rollback.watch,
        facts=facts,
        fuse=driver.fuse,
        proxies=env.proxy.hosts if env.proxy is not None else (),
        analyser=env.monitoring_server,
    )
    rows: list[PlannedHost] = []
    for number, group in enumerate(steps.batches, start=1):
        for host in group:
            fact = facts.get(host)
            ports = env.ports(host) if host in env.instances else ()
            placed = _placement(env, host)
            if fact is None or not fact.reachable:
                rows.append(
                    PlannedHost(
                        host, number, None, version, "unreachable", ports=ports, services=placed
                    )
                )
                continue
            action = "unchanged" if fact.current == version else "deploy"
            back = steps.rollback_to.get(host)
            rows.append(
                PlannedHost(host, number, fact.current, version, action, back, ports, placed)
            )
    bad = version in session.ledger.bad_versions(env.environment) or any(
        version in f.bad for f in facts.values()
    )
    return PlanResult(
        env.environment,
        version,
        bad,
        tuple(rows),
        len(steps.batches),
        steps.runs,
        tuple(steps.to_dict()["steps"]),
        _proxy(session),
        tuple(f"{a.kind}: {a.engine} {a.version} on {a.primary}:{a.port}" for a in env.accessories),
        tuple(
            f"{h.name} on {h.host}" + (f" as {h.service}" if h.service else "") + f": "
            f"{shlex.join(h.argv)}"
            for h in env.hooks.values()
        ),
    )
