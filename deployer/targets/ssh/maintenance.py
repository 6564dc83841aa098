"""`deployer maintenance on|off ENV`: the edge proxy answers every request with a
maintenance page (503, Retry-After) while it is on; the app's hosts, their health checks and
deploys go on as usual (deploys rewrite the site, never its maintenance file). One Ansible
run, one remote step per proxy host."""

from __future__ import annotations

from deployer.errors import BadRequest
from deployer.plan.edge import maintenance_vars
from deployer.targets.base import MaintenanceResult
from deployer.targets.ssh.context import SshSession


def run(
    session: SshSession, on: bool, retry_after: int = 300, message: str = ""
) -> MaintenanceResult:
    target = session.target
    if target.proxy is None:
        raise BadRequest(
            f"environments.{target.environment}: maintenance mode is the edge proxy's; this "
            "environment has none (see proxy: and features.ssl)"
        )
    try:
        extravars = maintenance_vars(target, on=on, retry_after=retry_after, message=message)
    except ValueError as exc:
        raise BadRequest(f"--{str(exc).split(':')[0].replace('_', '-')}: {exc}") from None
    hosts = list(target.proxy.hosts)
    result = session.run("maintenance.yml", extravars, hosts=hosts, cancellable=False)
    errors = {}
    for host in hosts:
        outcome = result.hosts.get(host)
        if outcome is None or not outcome.good:
            errors[host] = outcome.message if outcome else f"no result ({result.status})"
    return MaintenanceResult(
        target.environment, on, tuple(hosts), errors, retry_after if on else None
    )
