"""The stack file for one version: pure data from the target, the settings and the specs.

What each setting becomes, and why:
- replicas and resources come from the environment (limits; reservations = limits unless the
  component says otherwise, so the scheduler never packs a node past what tasks may use);
- update_config replaces `swarm.update.parallelism` tasks at a time (every task at once with
  `strategy.kind: all_at_once`), start-first (a new task is healthy before an old one stops),
  failure_action rollback (Swarm puts the old spec back by itself; deployer reports that as
  a failed deployment), monitor from the settings, max_failure_ratio from the strategy's
  failure budget. A component published in host mode with replicas >= nodes has no free
  node for the extra task, so it updates stop-first instead of hanging;
- the healthcheck is the health section as one bash script (bash's /dev/tcp speaks HTTP and
  TCP), so it needs neither curl nor python in the image; Swarm counts a task as running
  only once it is healthy, which is what makes start-first safe;
- ports are published in host mode: the ingress routing mesh does not work everywhere
  (it did not in the nested lab) and host mode has no extra hop;
- the service's secrets are Docker secrets the release's record names (see `secrets`),
  mounted in the components that run the app's code (not in nginx-served frontends), with
  `<VARIABLE>_FILE` pointing at each; their values are never in this file.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from deployer.config.models import Health, Resources, cpu_cores
from deployer.config.resolve import Target
from deployer.config.swarm import SwarmSettings
from deployer.plan.inventory import systemd_memory
from deployer.targets.swarm.secrets import compose_entries
from deployer.targets.swarm.spec import (
    LABEL_COMPONENT,
    LABEL_ENVIRONMENT,
    LABEL_VERSION,
    ComponentSpec,
)

COMPOSE_VERSION = "3.8"


def seconds(value: float) -> str:
    """A Go duration for the stack file: 0.5 -> '500ms', 10 -> '10s'."""
    millis = round(value * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def probe_script(health: Health, default_port: int | None) -> str | None:
    """The health section as a bash script that exits 0 when every configured check passes."""
    lines: list[str] = []
    if health.http is not None:
        http = health.http
        port = http.port or default_port
        request = "GET %s HTTP/1.0\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n"
        lines += [
            f"exec 3<>/dev/tcp/127.0.0.1/{port} || exit 1",
            f"printf {shlex.quote(request)} {shlex.quote(http.path)} >&3 || exit 1",
            f"r=$(timeout {http.timeout:g} cat <&3) || exit 1",
            "exec 3<&-",
            f"[[ ${{r%%$'\\r'*}} =~ ^HTTP/1\\.[01]\\ {http.status}( |$) ]] || exit 1",
        ]
        if http.body:
            lines.append(f"[[ ${{r#*$'\\r\\n\\r\\n'}} == *{shlex.quote(http.body)}* ]] || exit 1")
    if health.tcp is not None:
        port = health.tcp.port or default_port
        lines += [f"exec 4<>/dev/tcp/127.0.0.1/{port} || exit 1", "exec 4<&-"]
    if health.command is not None:
        lines.append(f"{health.command.run} || exit 1")
    return "\n".join(lines) if lines else None


def _timeout(health: Health) -> float:
    parts = [c.timeout for c in (health.http, health.tcp, health.command) if c is not None]
    return sum(parts) + 1.0


def healthcheck(spec: ComponentSpec) -> dict[str, Any]:
    script = probe_script(spec.health, spec.port)
    if script is None:
        return {"disable": True}
    return {
        "test": ["CMD", "bash", "-c", script],
        "interval": seconds(spec.health.interval or 1.0),
        "timeout": seconds(_timeout(spec.health)),
        "retries": spec.health.retries,
        "start_period": "0s",
    }


def _resources(resources: Resources) -> dict[str, str]:
    out: dict[str, str] = {}
    if resources.cpu is not None:
        out["cpus"] = f"{cpu_cores(resources.cpu):g}"
    if resources.memory is not None:
        out["memory"] = systemd_memory(resources.memory)
    return out


def _order(spec: ComponentSpec, nodes: int) -> str:
    return "stop-first" if spec.publish and spec.replicas >= nodes else "start-first"


def _policy(
    spec: ComponentSpec, target: Target, settings: SwarmSettings, *, rollback: bool
) -> dict[str, Any]:
    update = settings.update
    ratio = min(1.0, target.strategy.failure_budget / max(spec.replicas, 1))
    action = "pause" if rollback else "rollback" if target.rollback.automatic else "pause"
    # all_at_once: every task of the service at once (Swarm's parallelism 0)
    parallelism = 0 if target.strategy.kind == "all_at_once" else update.parallelism
    return {
        "parallelism": parallelism,
        "delay": seconds(update.delay),
        "order": _order(spec, len(target.hosts)),
        "failure_action": action,
        "monitor": seconds(update.monitor),
        "max_failure_ratio": round(ratio, 3),
    }


SECRET_STACKS = ("python", "dockerfile")
"""The stacks whose containers run the app's own code, and so get its secrets."""


def service(
    spec: ComponentSpec,
    target: Target,
    settings: SwarmSettings,
    version: str,
    mounts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    labels = {
        LABEL_VERSION: version,
        LABEL_ENVIRONMENT: target.environment,
        LABEL_COMPONENT: spec.name,
    }
    environment = dict(target.service.env)
    environment.setdefault("APP_VERSION", version)
    if spec.port is not None:
        environment.setdefault("PORT", str(spec.port))
    secrets, _top, files = compose_entries(mounts or {})
    environment.update(files)
    resources: dict[str, Any] = {"limits": _resources(spec.limits)}
    resources["reservations"] = _resources(spec.reservations)
    out: dict[str, Any] = {"image": spec.image(version)}
    if spec.stack == "dockerfile" and spec.command:
        out["command"] = shlex.split(spec.command)
    out["environment"] = dict(sorted(environment.items()))
    out["labels"] = labels
    if spec.publish:
        out["ports"] = [
            {"target": spec.port, "published": spec.publish, "protocol": "tcp", "mode": "host"}
        ]
    if secrets:
        out["secrets"] = secrets
    out["healthcheck"] = healthcheck(spec)
    out["stop_grace_period"] = seconds(settings.stop_grace_period)
    out["deploy"] = {
        "mode": "replicated",
        "replicas": spec.replicas,
        "endpoint_mode": settings.endpoint_mode,
        "labels": labels,
        "resources": {k: v for k, v in resources.items() if v},
        "restart_policy": {"condition": "any", "delay": "1s"},
        "update_config": _policy(spec, target, settings, rollback=False),
        "rollback_config": _policy(spec, target, settings, rollback=True),
    }
    return out


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (health scripts) as literal blocks, so the file reads like code."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(stack: dict[str, Any]) -> str:
    """The stack file as `docker stack deploy` reads it (and as the golden files hold it)."""
    return yaml.dump(stack, Dumper=_Dumper, sort_keys=False)


def escape(value: Any) -> Any:
    """Every string with `$` doubled: the stack file is interpolated, our values are not."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {key: escape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [escape(item) for item in value]
    return value


def render(
    target: Target,
    settings: SwarmSettings,
    specs: Sequence[ComponentSpec],
    version: str,
    mounts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The compose dict `docker stack deploy -c -` reads (as YAML) for `version`, with the
    Docker secrets of its record (`mounts`, {VARIABLE: object name})."""
    services = {
        spec.name: service(
            spec, target, settings, version, mounts if spec.stack in SECRET_STACKS else None
        )
        for spec in specs
    }
    out: dict[str, Any] = {"version": COMPOSE_VERSION, "services": escape(services)}
    _service, top, _files = compose_entries(mounts or {})
    if top and any(spec.stack in SECRET_STACKS for spec in specs):
        out["secrets"] = top
    return out
