"""Extra variables for each playbook: the contract between the orchestrator and the roles.

Pure functions of the resolved target; secret values never pass through here (they go to the
runner separately, inside a vault-encrypted file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from deployer.config.models import Health
from deployer.config.resolve import Target
from deployer.plan import edge
from deployer.plan.accessories import accessory_vars, backup_vars, hook_vars
from deployer.plan.units import units_by_host

LOCK_DIR = "/var/lib/deployer/locks"
MAX_REASON = 4000
"""Characters of a failure reason recorded on the hosts with the version it marks bad."""
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
"""Debian's directory for node exporter's textfile collector."""


def lock_path(target: Target) -> str:
    return f"{LOCK_DIR}/{target.app.name}/{target.environment}.lock"


def health_vars(target: Target) -> dict[str, Any]:
    return _health_spec(target.health, target.service.port, target.service_user)


def _health_spec(health: Health | None, port: int | None, user: str) -> dict[str, Any]:
    """A service's checks as deployer_switch and deployer_health take them ({} for none:
    the service is healthy while its process runs)."""
    if health is None:
        return {}
    out: dict[str, Any] = {
        "http": None,
        "tcp": None,
        "command": None,
        "retries": health.retries,
        "interval": health.interval,
    }
    if health.http is not None:
        out["http"] = {**health.http.model_dump(), "port": health.http.port or port}
    if health.tcp is not None:
        out["tcp"] = {**health.tcp.model_dump(), "port": health.tcp.port or port}
    if health.command is not None:
        command = health.command
        out["command"] = {**command.model_dump(), "user": command.user or user}
    return out


def services_vars(target: Target, hosts: Sequence[str]) -> dict[str, Any]:
    """For an app of several services: each host's services in switch order, with the base
    name of their units and their checks (a static service has no units: `current` alone
    switches it)."""
    if not target.services:
        return {}
    return {
        "deployer_services": {
            host: [
                {
                    "name": s.name,
                    "unit": s.unit,
                    "health": _health_spec(s.health, s.port, target.service_user),
                }
                for s in target.services
                if host in s.hosts
            ]
            for host in hosts
        }
    }


def lock_vars(target: Target, token: str, holder: Mapping[str, Any], ttl: int) -> dict[str, Any]:
    return {"path": lock_path(target), "token": token, "holder": dict(holder), "ttl": ttl}


def lock_release_vars(target: Target, token: str) -> dict[str, Any]:
    """Asks the last run of a deployment to release the lock itself (saves a run)."""
    return {"deployer_lock_release": {"path": lock_path(target), "token": token}}


def base_vars(target: Target, hosts: Sequence[str]) -> dict[str, Any]:
    return {
        "deployer_hosts": list(hosts),
        "deployer_deploy_to": target.deploy_to,
    }


def prepare_vars(
    target: Target,
    hosts: Sequence[str],
    *,
    version: str,
    artifact: str,
    sha256: str,
    required_bytes: int,
    lock: Mapping[str, Any],
) -> dict[str, Any]:
    service = target.service
    return {
        **base_vars(target, hosts),
        "deployer_version": version,
        "deployer_artifact": artifact,
        "deployer_artifact_sha256": sha256,
        "deployer_required_bytes": required_bytes,
        "deployer_service_user": target.service_user,
        "deployer_service": {"env": dict(service.env)},
        "deployer_shared": {"dirs": list(service.shared.dirs), "files": list(service.shared.files)},
        "deployer_units": units_by_host(target, hosts),
        "deployer_keep_releases": target.keep_releases,
        "deployer_lock": dict(lock),
        **edge.setup_vars(target),
        **edge.bluegreen_vars(target),
        **accessory_vars(target),
        **backup_vars(target, version),
        **hook_vars(target, ["before_switch"]),
    }


def release_info_vars(target: Target) -> dict[str, Any]:
    """Where switches record the current version for Prometheus (monitoring on only)."""
    if target.monitoring is None:
        return {}
    name = f"deployer-{target.app.name}-{target.environment}.prom"
    return {
        "deployer_release_info": {
            "path": f"{TEXTFILE_DIR}/{name}",
            "environment": target.environment,
        }
    }


def monitoring_vars(target: Target) -> dict[str, Any]:
    """Node exporter everywhere and Prometheus on the monitoring server (monitoring on only)."""
    from deployer.plan.monitoring import exporters, scrape_config

    settings = target.monitoring
    if settings is None:
        return {}
    return {
        "deployer_monitoring": {
            "server": target.monitoring_server,
            "prometheus_config": scrape_config(target),
            "prometheus_port": settings.prometheus_port,
            "retention": settings.retention,
            "node_exporter_port": settings.node_exporter_port,
            "textfile_dir": TEXTFILE_DIR,
            "exporters": exporters(target),
        }
    }


def switch_vars(target: Target, hosts: Sequence[str], version: str) -> dict[str, Any]:
    return {
        **base_vars(target, hosts),
        "deployer_version": version,
        "deployer_health": health_vars(target),
        **services_vars(target, hosts),
        **release_info_vars(target),
        **edge.drain_vars(target, hosts),
        **edge.bluegreen_vars(target),
    }


def first_batch_vars(target: Target, batch: Sequence[str]) -> dict[str, Any]:
    """What the prepare run needs, on top of prepare_vars, to switch the first batch too."""
    return {
        "deployer_batch": list(batch),
        "deployer_health": health_vars(target),
        **services_vars(target, batch),
        **release_info_vars(target),
        **edge.drain_vars(target, batch),
    }


def rollback_vars(
    target: Target, to: Mapping[str, str | None], mark_bad: str | None, reason: str
) -> dict[str, Any]:
    """Each host of `to` back to its version; a host mapped to None stops the app."""
    return {
        **base_vars(target, list(to)),
        "deployer_rollback_to": dict(to),
        "deployer_mark_bad": mark_bad,
        "deployer_reason": reason[:MAX_REASON],
        "deployer_health": health_vars(target),
        **services_vars(target, list(to)),
        **release_info_vars(target),
        **edge.drain_vars(target, list(to)),
        **edge.bluegreen_vars(target),
    }


def facts_vars(
    target: Target,
    hosts: Sequence[str],
    *,
    health: bool,
    lock: Mapping[str, Any] | None = None,
    accessories: bool = False,
) -> dict[str, Any]:
    """Read the hosts; with `lock`, take the environment lock first in the same run; with
    `accessories`, read those too (their hosts are then part of the run)."""
    return {
        **base_vars(target, hosts),
        "deployer_health": health_vars(target) if health else None,
        **services_vars(target, hosts),
        **edge.certificate_vars(target),
        **edge.bluegreen_vars(target),
        **(accessory_vars(target, "status") if accessories else {}),
        **({"deployer_lock": dict(lock), "deployer_lock_host": target.primary} if lock else {}),
    }


def watch_vars(target: Target, hosts: Sequence[str], *, since: float) -> dict[str, Any]:
    """Sample health on `hosts` for the watch window; with monitoring on, also evaluate the
    error-rate and response-time rules in PromQL on the monitoring server, over the time
    since the rollout went live (`since`, epoch seconds)."""
    from deployer.plan.monitoring import watch_checks

    rule = target.rollback.health_checks
    period = min(rule.period, max(1, target.rollback.watch))
    out: dict[str, Any] = {
        **base_vars(target, hosts),
        "deployer_health": health_vars(target),
        **services_vars(target, hosts),
        **edge.bluegreen_vars(target),
        "deployer_watch": {
            "duration": target.rollback.watch,
            "period": period,
            "threshold": rule.threshold,
            "grace": rule.grace,
        },
    }
    settings = target.monitoring
    if settings is not None:
        out["deployer_promql"] = {
            "server": target.monitoring_server,
            "url": f"http://127.0.0.1:{settings.prometheus_port}",
            "checks": watch_checks(target),
            "duration": target.rollback.watch,
            "period": min(period, max(settings.scrape_interval, 1)),
            "threshold": rule.threshold,
            "since": since,
            "min_window": 2 * settings.scrape_interval + 1,
        }
    return out


# -- canary ---------------------------------------------------------------------------------


def canary_switch_vars(target: Target, share: int) -> dict[str, Any]:
    """On top of the switch's vars, a canary's first switch: each host starts the new
    release in its other slot (not live: `start_only`), and once every host passed the edge
    proxies send it `share` % of requests (the texts of `edge.canary_vars`, picked by the
    hosts' live slot)."""
    return {"deployer_canary_share": share, **edge.canary_vars(target)}


def canary_shift_vars(target: Target, live: str, share: int) -> dict[str, Any]:
    """A later step: every edge proxy sends `share` % of requests to the slots that are not
    `live` (0: none, the abort)."""
    assert target.proxy is not None
    return {
        **base_vars(target, list(target.proxy.hosts)),
        "deployer_canary_upstreams": {
            "hosts": list(target.proxy.hosts),
            "path": edge.upstreams_path(target),
            "text": edge.weighted_upstreams(target, live, share),
        },
    }


def canary_abort_vars(target: Target, live: str, hosts: Sequence[str]) -> dict[str, Any]:
    """The abort: every request back to the `live` slots, then the other slot stopped on
    `hosts` (those that started it)."""
    from deployer.config.bluegreen import SLOTS

    new = next(s for s in SLOTS if s != live)
    return {
        **canary_shift_vars(target, live, 0),
        "deployer_canary_stop": {"hosts": list(hosts), "unit": f"{target.app.name}:{new}.service"},
    }


def canary_analysis_vars(
    target: Target, checks: Sequence[dict[str, Any]], *, since: float
) -> dict[str, Any]:
    """The analysis after a step: deployer_promql on the monitoring server over the
    analysis's seconds since the step's shift (`since`, epoch seconds)."""
    from deployer.config.canary import analysis
    from deployer.plan.monitoring import analysis_checks

    settings = target.monitoring
    assert settings is not None
    seconds = analysis(target.strategy, target.rollback)
    server = target.monitoring_server
    assert server is not None
    return {
        **base_vars(target, [server]),
        "deployer_canary_analysis": {
            "server": server,
            "url": f"http://127.0.0.1:{settings.prometheus_port}",
            "checks": analysis_checks(target, list(checks)),
            "duration": seconds,
            "period": max(settings.scrape_interval, 1),
            "threshold": target.rollback.health_checks.threshold,
            "since": since,
            "min_window": 2 * settings.scrape_interval + 1,
        },
    }
