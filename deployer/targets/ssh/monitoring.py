"""`deployer monitoring setup|config|dashboard ENV`: Prometheus and node exporter on the
environment's hosts, the scrape configuration they get, and a Grafana dashboard to import.

`deploy` sets monitoring up by itself (before anything is switched) when the environment turns
`features.monitoring` on; `setup` does the same on its own, for a first look before a deploy.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployer.config.resolve import Target
from deployer.errors import BadRequest
from deployer.exitcodes import ExitCode
from deployer.plan.extravars import base_vars, monitoring_vars
from deployer.plan.monitoring import prometheus_url
from deployer.targets.ssh.context import SshSession as Session


@dataclass(frozen=True)
class MonitoringHost:
    host: str
    role: str  # "prometheus, node exporter" | "node exporter"
    status: str  # ok | changed | failed | unreachable
    message: str = ""


@dataclass(frozen=True)
class MonitoringResult:
    environment: str
    server: str
    prometheus: str  # where the hosts reach Prometheus
    hosts: tuple[MonitoringHost, ...]
    exit_code: ExitCode
    seconds: float


def monitored(target: Target) -> Target:
    """`target`, or BadRequest naming the setting when its monitoring is off."""
    if target.monitoring is None:
        raise BadRequest(
            f"environments.{target.environment}.features.monitoring: monitoring is off for "
            "this environment; set it to true"
        )
    return target


def setup(session: Session) -> MonitoringResult:
    target = monitored(session.target)
    server = target.monitoring_server or target.primary
    hosts = list(target.host_names)
    result = session.run(
        "monitoring.yml", {**base_vars(target, hosts), **monitoring_vars(target)}, hosts=hosts
    )
    rows = []
    for host in hosts:
        outcome = result.hosts.get(host)
        if outcome is None:
            status, message = "unreachable", "no result"
        elif outcome.unreachable:
            status, message = "unreachable", outcome.message
        elif outcome.failed:
            status, message = "failed", outcome.message
        else:
            status, message = ("changed" if outcome.changed else "ok"), ""
        role = "prometheus, node exporter" if host == server else "node exporter"
        rows.append(MonitoringHost(host, role, status, session.redact(message)))
    good = result.ok and all(r.status in {"ok", "changed"} for r in rows)
    return MonitoringResult(
        environment=target.environment,
        server=server,
        prometheus=prometheus_url(target),
        hosts=tuple(rows),
        exit_code=ExitCode.OK if good else ExitCode.DEPLOY_FAILED,
        seconds=result.seconds,
    )
