"""Monitoring artefacts of one environment: PromQL, prometheus.yml and a Grafana dashboard.

Pure functions of the resolved target (no I/O). Every query is built here once and shared by
the dashboard (with Grafana's `$__rate_interval`) and by the watch window after a rollout
(with the placeholder `$window`, which the watcher replaces by a duration such as `300s`).

Scrape layout: job `<app>` scrapes the app's metrics endpoint on `service.port`, job `node`
scrapes node exporter, job `prometheus` scrapes Prometheus itself; every target carries the
labels `host` (inventory name), `environment` and `component`, and is addressed by the host's
`private_address` (where Prometheus reaches it). The `node` job honours the labels of the
scraped series, so the `environment` label of `deployer_release_info` (written by the switch
step for node exporter's textfile collector) stays the environment that wrote it even when
two environments share a host.

Grafana itself is not installed by deployer: `dashboard_json` is imported by users (it needs
only a Prometheus data source, picked through the `datasource` variable), and the tests check
its structure and its queries rather than rendering it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

import yaml

from deployer.config.bluegreen import CANARY, slot_ports
from deployer.config.canary import analysis
from deployer.config.models import Monitoring
from deployer.config.resolve import RESERVED_JOBS, ResolvedHost, Target

RELEASE_INFO_METRIC = "deployer_release_info"
"""Gauge (always 1) labelled app, environment, version; one series per app and host."""
WINDOW_PLACEHOLDER = "$window"
"""Range placeholder in the `watch_checks` queries."""
RATE_INTERVAL = "$__rate_interval"
NODE_JOB, PROMETHEUS_JOB, POSTGRES_JOB, REDIS_JOB = RESERVED_JOBS
SWARM_VERSION = "io.deployer.version"
SWARM_COMPONENT = "io.deployer.component"
"""The labels the Swarm target puts on each service and task (its spec module's names)."""
SCHEMA_VERSION = 39
SLOT_LABEL = "slot"
"""With a canary, the label of the app's targets naming the slot that answered."""
FIGURE_THRESHOLD = 1e300
"""The threshold of the analysis's figures that only report (never breached)."""

_WINDOW = re.compile(r"\$[A-Za-z_]\w*|(\d+(ms|[smhdwy]))+")
_UID_CHARS = re.compile(r"[^A-Za-z0-9_-]")


# -- PromQL ---------------------------------------------------------------------------------


def _settings(target: Target) -> Monitoring:
    if target.monitoring is None:
        raise ValueError(
            f"features.monitoring is off for environment {target.environment}: "
            "there is nothing to monitor"
        )
    return target.monitoring


def _label_value(value: str) -> str:
    """A double-quoted label value, escaped as PromQL and the text format both expect."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _selector(*pairs: tuple[str, str], match: str = "") -> str:
    parts = [f"{name}={_label_value(value)}" for name, value in pairs]
    return "{" + ", ".join(parts + ([match] if match else [])) + "}"


def _range(window: str) -> str:
    if not _WINDOW.fullmatch(window):
        raise ValueError(f"{window!r} is not a PromQL range (a duration like 5m or a $variable)")
    return f"[{window}]"


def _app(target: Target, match: str = "") -> str:
    """The selector of the app's own series in this environment."""
    return _selector(("job", target.app.name), ("environment", target.environment), match=match)


def _node(target: Target, match: str = "") -> str:
    return _selector(("job", NODE_JOB), ("environment", target.environment), match=match)


def request_rate_query(target: Target, window: str) -> str:
    """Requests per second, by HTTP status code."""
    metrics = _settings(target).metrics
    return (
        f"sum by ({metrics.status_label}) (rate({metrics.requests}{_app(target)}{_range(window)}))"
    )


def error_ratio_query(target: Target, window: str, match: str = "") -> str:
    """Share of requests answered with a 5xx status, in percent. A service that never
    answered 5xx has no such series: `or vector(0)` makes that 0 %, not "no data"; with no
    requests at all the ratio stays empty (nothing to judge)."""
    metrics = _settings(target).metrics
    status = f'{metrics.status_label}=~"5.."'
    errors = _app(target, f"{match}, {status}" if match else status)
    return (
        f"100 * (sum(rate({metrics.requests}{errors}{_range(window)})) or vector(0)) "
        f"/ sum(rate({metrics.requests}{_app(target, match)}{_range(window)}))"
    )


def latency_query(target: Target, window: str, quantile: float, match: str = "") -> str:
    """The `quantile` (0.5, 0.95) of request durations over all hosts, in milliseconds."""
    if not 0 <= quantile <= 1:
        raise ValueError(f"quantile {quantile} is not between 0 and 1")
    metrics = _settings(target).metrics
    return (
        f"1000 * histogram_quantile({quantile:g}, sum by (le) "
        f"(rate({metrics.duration}_bucket{_app(target, match)}{_range(window)})))"
    )


def request_volume_query(target: Target, window: str, match: str = "") -> str:
    """Number of requests served over the window."""
    metrics = _settings(target).metrics
    return f"sum(increase({metrics.requests}{_app(target, match)}{_range(window)}))"


def release_info_query(target: Target) -> str:
    """The release of this app and environment on each host (labels `host`, `version`)."""
    _settings(target)
    selector = _selector(
        ("job", NODE_JOB), ("app", target.app.name), ("environment", target.environment)
    )
    return f"{RELEASE_INFO_METRIC}{selector}"


def node_cpu_busy_query(target: Target, window: str) -> str:
    """CPU time not idle, in percent of all cores, per host."""
    _settings(target)
    idle = _node(target, 'mode="idle"')
    return f"100 * (1 - avg by (host) (rate(node_cpu_seconds_total{idle}{_range(window)})))"


def node_memory_available_query(target: Target) -> str:
    """Memory available to new processes, in bytes, per host."""
    _settings(target)
    return f"max by (host) (node_memory_MemAvailable_bytes{_node(target)})"


def database_connections_query(target: Target) -> str:
    """Connections to the app's database per host and state (PostgreSQL's exporter)."""
    database = target.accessory("database")
    name = database.database if database is not None else ""
    selector = _selector(
        ("job", POSTGRES_JOB), ("environment", target.environment), ("datname", name)
    )
    return f"sum by (host, state) (pg_stat_activity_count{selector})"


def redis_memory_query(target: Target) -> str:
    """Memory the app's Redis uses (its exporter)."""
    selector = _selector(("job", REDIS_JOB), ("environment", target.environment))
    return f"redis_memory_used_bytes{selector}"


def watch_checks(target: Target) -> list[dict[str, Any]]:
    """What the watch window judges after a rollout, as plain JSON values (Ansible extra vars).

    Each check fails when `query` (over `window` seconds, substituted for `$window`) exceeds
    `threshold`; it is not judged while `volume_query` is below `min_volume`.
    """
    settings = _settings(target)
    rollback = target.rollback
    volume = request_volume_query(target, WINDOW_PLACEHOLDER)
    return [
        {
            "name": "error_rate",
            "query": error_ratio_query(target, WINDOW_PLACEHOLDER),
            "threshold": float(rollback.error_rate.threshold),
            "unit": "%",
            "window": rollback.error_rate.window,
            "volume_query": volume,
            "min_volume": settings.min_requests,
        },
        {
            "name": "p95_latency",
            "query": latency_query(target, WINDOW_PLACEHOLDER, 0.95),
            "threshold": rollback.response_time.threshold_ms,
            "unit": "ms",
            "window": rollback.response_time.window,
            "volume_query": volume,
            "min_volume": settings.min_requests,
        },
    ]


def canary_checks(target: Target, canary: str, stable: str) -> list[dict[str, Any]]:
    """What a canary's analysis judges after a step: per figure the new slot's query and
    the stable slot's (the app's series carry the `slot` of their target), over the
    analysis's seconds (`$window`), with the thresholds of rollback.error_rate and
    rollback.response_time. `judge_canary` decides; `analysis_checks` hands them to
    deployer_promql."""
    settings = _settings(target)
    rollback = target.rollback

    def of(slot: str) -> str:
        return f"{SLOT_LABEL}={_label_value(slot)}"

    window = WINDOW_PLACEHOLDER
    return [
        {
            "name": "error_rate",
            "canary_query": error_ratio_query(target, window, of(canary)),
            "stable_query": error_ratio_query(target, window, of(stable)),
            "threshold": float(rollback.error_rate.threshold),
            "unit": "%",
            "volume_query": request_volume_query(target, window, of(canary)),
            "min_volume": settings.min_requests,
        },
        {
            "name": "p95_latency",
            "canary_query": latency_query(target, window, 0.95, of(canary)),
            "stable_query": latency_query(target, window, 0.95, of(stable)),
            "threshold": float(rollback.response_time.threshold_ms),
            "unit": "ms",
            "volume_query": request_volume_query(target, window, of(canary)),
            "min_volume": settings.min_requests,
        },
    ]


def analysis_checks(target: Target, checks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """`canary_checks` as deployer_promql's checks: each figure judged in PromQL as the new
    slot's value where it is above the stable one's (so the module stops the analysis
    early on a breach), and each side reported (`<name>:canary`, `<name>:stable`,
    `requests:canary`) for `judge_canary` and the ledger."""
    seconds = analysis(target.strategy, target.rollback)
    out: list[dict[str, Any]] = []
    for check in checks:
        out.append(
            {
                "name": check["name"],
                "query": f"({check['canary_query']}) > ({check['stable_query']} or vector(0))",
                "threshold": check["threshold"],
                "unit": check["unit"],
                "window": seconds,
                "volume_query": check["volume_query"],
                "min_volume": float(check["min_volume"]),
            }
        )
    for check in checks:
        for side in ("canary", "stable"):
            out.append(
                {
                    "name": f"{check['name']}:{side}",
                    "query": check[f"{side}_query"],
                    "threshold": FIGURE_THRESHOLD,
                    "unit": check["unit"],
                    "window": seconds,
                }
            )
    out.append(
        {
            "name": "requests:canary",
            "query": checks[0]["volume_query"],
            "threshold": FIGURE_THRESHOLD,
            "window": seconds,
        }
    )
    return out


def analysis_figures(last: dict[str, float]) -> dict[str, dict[str, float | None]]:
    """deployer_promql's `last` values of `analysis_checks` as `judge_canary` reads them."""
    volume = last.get("requests:canary")
    return {
        name: {
            "canary": last.get(f"{name}:canary"),
            "stable": last.get(f"{name}:stable"),
            "volume": volume,
        }
        for name in ("error_rate", "p95_latency")
    }


def judge_canary(
    checks: Sequence[dict[str, Any]], values: dict[str, dict[str, float | None]]
) -> tuple[bool, list[str]]:
    """(breached, why) of an analysis: a figure is breached when the new version's value is
    above its threshold and above the stable version's (a fault both versions share is not
    the canary's). `values[name]` holds `canary`, `stable` and `volume` (None: no data).
    Too few of the new version's requests to judge is a breach too: an analysis that saw
    nothing must not promote."""
    why = []
    for check in checks:
        got = values.get(check["name"], {})
        canary, stable, volume = got.get("canary"), got.get("stable"), got.get("volume")
        if volume is None:
            why.append(
                f"{check['name']}: Prometheus counted no request of the new version (are "
                "monitoring.metrics the app's metric names?): nothing to judge it by"
            )
            continue
        if volume < check["min_volume"]:
            why.append(
                f"{check['name']}: {volume:g} requests of the new version, fewer than "
                f"{check['min_volume']}: nothing to judge it by"
            )
            continue
        if canary is None:
            why.append(f"{check['name']}: no value for the new version")
            continue
        if canary > check["threshold"] and (stable is None or canary > stable):
            shown = "no value" if stable is None else f"{stable:g} {check['unit']}"
            why.append(
                f"{check['name']}: {canary:g} {check['unit']} for the new version, above "
                f"{check['threshold']:g} {check['unit']} (the stable version: {shown})"
            )
    return bool(why), why


# -- prometheus.yml -------------------------------------------------------------------------


def monitoring_problems(target: Target) -> list[str]:
    """Why this environment cannot be scraped as configured (empty when it can)."""
    if target.monitoring is None:
        return [f"features.monitoring is off for environment {target.environment}"]
    problems = []
    if target.service.port is None:
        problems.append(
            "service.port: required when features.monitoring is on "
            f"(Prometheus scrapes {target.monitoring.metrics_path} on it)"
        )
    if target.app.name in (NODE_JOB, PROMETHEUS_JOB):
        problems.append(
            f"app.name: {target.app.name!r} is also the name of a built-in scrape job; "
            "rename the app to turn features.monitoring on"
        )
    return problems


def _address(host: ResolvedHost, port: int) -> str:
    address = host.private_address or host.address
    if ":" in address:
        address = f"[{address}]"
    return f"{address}:{port}"


def prometheus_url(target: Target) -> str:
    """Where the environment's hosts reach its Prometheus."""
    settings = _settings(target)
    server = next(h for h in target.hosts if h.name == target.monitoring_server)
    return f"http://{_address(server, settings.prometheus_port)}"


def _static_configs(
    target: Target, port: int | None, hosts: Sequence[ResolvedHost] | None = None
) -> list[dict[str, Any]]:
    """One entry per host (default: the app's): `port` there, or (None) every instance of
    the app there."""
    return [
        {
            "targets": [_address(host, p) for p in ((port,) if port else target.ports(host.name))],
            "labels": {
                "host": host.name,
                "environment": target.environment,
                "component": ",".join(host.components),
            },
        }
        for host in (target.hosts if hosts is None else hosts)
    ]


def _app_targets(target: Target) -> list[dict[str, Any]]:
    """The app's scrape targets: every instance; with a canary, both slots of every host,
    each labelled `slot` (blue on the service's port, green on the next), which is how the
    analysis tells the new release's requests from the stable one's."""
    port = target.service.port
    if target.strategy.kind != CANARY or port is None:
        return _static_configs(target, None)
    return [
        {**entry, "labels": {**entry["labels"], SLOT_LABEL: slot}}
        for slot, slot_port in slot_ports(port).items()
        for entry in _static_configs(target, slot_port)
    ]


def _accessory_hosts(target: Target, kind: str) -> list[ResolvedHost]:
    accessory = target.accessory(kind)
    names = accessory.hosts if accessory is not None else ()
    return [h for h in target.every_host if h.name in names]


def exporters(target: Target) -> dict[str, dict[str, Any]]:
    """{host: {postgres: {port}, redis: {port, name, redis_port}}}: the accessories'
    exporters, on the hosts that run them (monitoring on only)."""
    settings = _settings(target)
    out: dict[str, dict[str, Any]] = {}
    for host in _accessory_hosts(target, "database"):
        out.setdefault(host.name, {})["postgres"] = {"port": settings.postgres_exporter_port}
    cache = target.accessory("cache")
    if cache is not None:
        out.setdefault(cache.primary, {})["redis"] = {
            "port": settings.redis_exporter_port,
            "name": cache.name,
            "redis_port": cache.port,
        }
    return out


def scrape_config(target: Target) -> dict[str, Any]:
    """prometheus.yml for the monitoring server. Raises ValueError (see
    `monitoring_problems`) when monitoring is off or the app has no port to scrape."""
    problems = monitoring_problems(target)
    if problems:
        raise ValueError("; ".join(problems))
    settings = _settings(target)
    assert target.service.port is not None  # checked by monitoring_problems
    interval = f"{settings.scrape_interval}s"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": target.app.name,
                "metrics_path": settings.metrics_path,
                "static_configs": _app_targets(target),
            },
            {
                "job_name": NODE_JOB,
                "honor_labels": True,
                "static_configs": _static_configs(
                    target, settings.node_exporter_port, target.every_host
                ),
            },
            *(
                {
                    "job_name": job,
                    "static_configs": _static_configs(target, port, _accessory_hosts(target, kind)),
                }
                for job, kind, port in (
                    (POSTGRES_JOB, "database", settings.postgres_exporter_port),
                    (REDIS_JOB, "cache", settings.redis_exporter_port),
                )
                if target.accessory(kind) is not None
            ),
            {
                "job_name": PROMETHEUS_JOB,
                "static_configs": [
                    {
                        "targets": [f"localhost:{settings.prometheus_port}"],
                        "labels": {
                            "host": target.monitoring_server,
                            "environment": target.environment,
                        },
                    }
                ],
            },
        ],
    }


SWARM_SOCKET = "unix:///var/run/docker.sock"
_SWARM = "__meta_dockerswarm_"


def _swarm_label(name: str) -> str:
    """A Docker label as Prometheus's Swarm discovery names it (every non-word char `_`)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def swarm_scrape_config(target: Target, stack: str, components: Sequence[str]) -> dict[str, Any]:
    """prometheus.yml for a Swarm stack, on the manager: the app's job finds the stack's
    running tasks of `components` through the manager's Docker API (the tasks role of
    `dockerswarm_sd_configs`) at the port each publishes in host mode on its node, and labels
    them as the SSH layout does (`host`: the node, `environment`, `component`) plus
    `service` and `version` (the task's own version label). Node exporter and Prometheus
    itself are scraped as on SSH, so the queries, the watch and the dashboard are the same."""
    problems = monitoring_problems(target)
    if problems:
        raise ValueError("; ".join(problems))
    if not components:
        raise ValueError("no component publishes a metrics endpoint")
    settings = _settings(target)
    config = scrape_config(target)
    keep = "|".join(re.escape(c) for c in components)
    app_job = {
        "job_name": target.app.name,
        "metrics_path": settings.metrics_path,
        "dockerswarm_sd_configs": [
            {
                "host": SWARM_SOCKET,
                "role": "tasks",
                "refresh_interval": f"{settings.scrape_interval}s",
            }
        ],
        "relabel_configs": [
            {
                "source_labels": [f"{_SWARM}service_label_com_docker_stack_namespace"],
                "regex": re.escape(stack),
                "action": "keep",
            },
            {
                "source_labels": [f"{_SWARM}task_desired_state"],
                "regex": "running",
                "action": "keep",
            },
            # a task's port published on its node (no overlay network: Prometheus runs on
            # the manager host, outside every overlay)
            {
                "source_labels": [f"{_SWARM}task_port_publish_mode"],
                "regex": "host",
                "action": "keep",
            },
            {"source_labels": [f"{_SWARM}network_id"], "regex": ".+", "action": "drop"},
            {
                "source_labels": [f"{_SWARM}service_label_{_swarm_label(SWARM_COMPONENT)}"],
                "regex": keep,
                "action": "keep",
            },
            {"source_labels": [f"{_SWARM}node_hostname"], "target_label": "host"},
            {
                "source_labels": [f"{_SWARM}service_label_{_swarm_label(SWARM_COMPONENT)}"],
                "target_label": "component",
            },
            {"source_labels": [f"{_SWARM}service_name"], "target_label": "service"},
            {
                "source_labels": [f"{_SWARM}container_label_{_swarm_label(SWARM_VERSION)}"],
                "target_label": "version",
            },
            {"target_label": "environment", "replacement": target.environment},
        ],
    }
    jobs = [app_job, *config["scrape_configs"][1:]]
    return {**config, "scrape_configs": jobs}


def scrape_config_yaml(target: Target) -> str:
    config = scrape_config(target)
    header = (
        f"# Generated by deployer for app {target.app.name}, "
        f"environment {target.environment}.\n"
        "# Rewritten on every deploy: change deploy.yml, not this file.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


# -- Grafana dashboard ----------------------------------------------------------------------

_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_WIDTH, _HEIGHT = 12, 8


def dashboard_uid(app: str, environment: str) -> str:
    """A stable uid (at most 40 of [A-Za-z0-9_-]): readable prefix plus a hash of both names."""
    digest = hashlib.sha256(f"{app}\0{environment}".encode()).hexdigest()[:8]
    slug = _UID_CHARS.sub("-", f"{app}-{environment}")[:31]
    return f"{slug}-{digest}"


def _panel(
    index: int,
    title: str,
    targets: list[tuple[str, str]],
    unit: str,
    *,
    kind: str = "timeseries",
    description: str = "",
) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": dict(_DATASOURCE),
        "gridPos": {
            "x": (index % 2) * _WIDTH,
            "y": (index // 2) * _HEIGHT,
            "w": _WIDTH,
            "h": _HEIGHT,
        },
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [
            {
                "refId": chr(ord("A") + n),
                "datasource": dict(_DATASOURCE),
                "expr": expr,
                "legendFormat": legend,
            }
            for n, (expr, legend) in enumerate(targets)
        ],
    }


def _panels(target: Target) -> list[dict[str, Any]]:
    settings = _settings(target)
    window = RATE_INTERVAL
    threshold = float(target.rollback.error_rate.threshold)
    status = settings.metrics.status_label
    requests = _panel(
        0,
        "Requests per second by status",
        [(request_rate_query(target, window), f"{{{{{status}}}}}")],
        "reqps",
    )
    errors = _panel(
        1,
        "Error rate (5xx)",
        [(error_ratio_query(target, window), "errors")],
        "percent",
        description=f"Automatic rollback threshold: {threshold:g}%.",
    )
    errors["fieldConfig"]["defaults"].update(
        min=0,
        thresholds={
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": "red", "value": threshold}],
        },
        custom={"thresholdsStyle": {"mode": "line+area"}},
    )
    latency = _panel(
        2,
        "Response time",
        [(latency_query(target, window, q), f"p{round(q * 100)}") for q in (0.5, 0.95)],
        "ms",
    )
    versions = _panel(
        3,
        "Version per host",
        [(f"max by (host, version) ({release_info_query(target)})", "{{version}}")],
        "none",
        kind="table",
    )
    for query in versions["targets"]:
        query.update(instant=True, range=False, format="table")
    versions["transformations"] = [
        {
            "id": "organize",
            "options": {
                "excludeByName": {"Time": True, "Value": True},
                "indexByName": {"host": 0, "version": 1},
            },
        }
    ]
    cpu = _panel(4, "CPU busy", [(node_cpu_busy_query(target, window), "{{host}}")], "percent")
    memory = _panel(
        5, "Memory available", [(node_memory_available_query(target), "{{host}}")], "bytes"
    )
    panels = [requests, errors, latency, versions, cpu, memory]
    if target.accessory("database") is not None:
        panels.append(
            _panel(
                len(panels),
                "Database connections",
                [(database_connections_query(target), "{{host}} {{state}}")],
                "none",
            )
        )
    if target.accessory("cache") is not None:
        panels.append(
            _panel(len(panels), "Redis memory", [(redis_memory_query(target), "{{host}}")], "bytes")
        )
    return panels


def dashboard(target: Target) -> dict[str, Any]:
    """A Grafana dashboard of this environment, importable as-is (no `__inputs`)."""
    app, environment = target.app.name, target.environment
    return {
        "id": None,
        "uid": dashboard_uid(app, environment),
        "title": f"{app} · {environment}",
        "description": f"Generated by deployer for app {app}, environment {environment}.",
        "tags": ["deployer", app, environment],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "timezone": "browser",
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "options": [],
                    "refresh": 1,
                    "regex": "",
                }
            ]
        },
        "panels": _panels(target),
    }


def dashboard_json(target: Target) -> str:
    return json.dumps(dashboard(target), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
