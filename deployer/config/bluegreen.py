"""`strategy.kind: blue_green`: what it needs, checked before any host is touched.

A blue-green environment runs each web service in two slots per host, on two ports: the
live slot and the idle one. A deploy starts the new release in the idle slot while the live
one serves, health-checks it on the slot's own port, then flips the edge proxy's upstreams
on every proxy host at once; the previous slot keeps running `strategy.keep_warm` seconds,
so a rollback within them is a flip back.

The slots' ports are derived from `service.port` (P): `blue` listens on P, `green` on
P + 1 (`slot_ports`). Everything that cannot work that way is refused here with the path of
the key, and so is what is not built yet (an app of several services, ACME certificates):
refused, never accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from deployer.config.loader import format_loc
from deployer.config.models import Environment, Health, Project, Rollback, Service, Strategy

if TYPE_CHECKING:
    from deployer.config.accessories import ResolvedAccessory
    from deployer.config.resolve import ProxyTarget
    from deployer.config.services import ResolvedService

BLUE_GREEN = "blue_green"
CANARY = "canary"
SLOTTED = (BLUE_GREEN, CANARY)
"""The strategies that run each web service in two slots per host."""
SLOTS = ("blue", "green")
"""The two slots of a service on a host; `blue` on the service's port, `green` on the next."""

NOT_BUILT = (
    "blue_green is built for an app of one service (`service`) only, not for several "
    "(`services`) yet; use rolling or all_at_once behind the edge proxy, which also deploy "
    "without a failed request"
)


KEEP_WARM = 300
"""Seconds the old slot keeps running after the flip when `strategy.keep_warm` is not set."""


def keep_warm(strategy: Strategy) -> int:
    """The seconds the old slot keeps running after the flip."""
    return KEEP_WARM if strategy.keep_warm is None else strategy.keep_warm


def slot_units(app: str) -> list[str]:
    """The units of the slots on a host (the collection's module_utils/slots.py names them
    the same way)."""
    return [f"{app}:{slot}.service" for slot in SLOTS]


def slot_ports(port: int) -> dict[str, int]:
    """The port of each slot of a service that listens on `port`."""
    return {slot: port + offset for offset, slot in enumerate(SLOTS)}


def _loc(env: Environment, base: tuple[str, ...], section: str, key: str) -> str:
    """Where a key of a project-level section was set: the environment's override, or the
    top level."""
    override = getattr(env, section)
    in_env = override is not None and key in override.model_fields_set
    return format_loc((*base, section, key) if in_env else (section, key))


def strategy_problems(
    project: Project,
    env: Environment,
    base: tuple[str, ...],
    *,
    strategy: Strategy,
    rollback: Rollback,
    service: Service,
    health: Health,
    proxy: ProxyTarget | None,
    instances: Mapping[str, int],
    services: Sequence[ResolvedService],
    accessories: Sequence[ResolvedAccessory],
) -> list[str]:
    """Why the environment's strategy cannot run as configured ([] when it can)."""
    kind = _loc(env, base, "strategy", "kind")
    warm = _loc(env, base, "strategy", "keep_warm")
    set_here = set(project.strategy.model_fields_set) | (
        set(env.strategy.model_fields_set) if env.strategy is not None else set()
    )
    if strategy.kind == CANARY:
        from deployer.config.canary import canary_problems

        return canary_problems(
            project,
            env,
            base,
            strategy=strategy,
            rollback=rollback,
            service=service,
            health=health,
            proxy=proxy,
            instances=instances,
            services=services,
            accessories=accessories,
        )
    problems = _canary_keys(env, base, strategy)
    if strategy.kind != BLUE_GREEN:
        if strategy.keep_warm is not None:
            problems.append(
                f"{warm}: used only with strategy.kind blue_green or canary (the old slot "
                f"kept running after the flip); this strategy is {strategy.kind}: remove it"
            )
        return problems
    if env.target != "ssh":
        swarm = (
            " (on Swarm, strategy.kind rolling starts each new task before its old one stops, "
            "start-first, and puts the old spec back by itself on a failure)"
            if env.target == "swarm"
            else ""
        )
        problems.append(
            f"{kind}: blue_green flips the edge proxy, which runs on target ssh only; "
            f"environment {base[-1]} is target {env.target!r}{swarm}"
        )
    if proxy is None:
        problems.append(
            f"{kind}: blue_green flips the edge proxy from the old slot to the new one, and "
            f"this environment has none: set {format_loc((*base, 'domain'))} or "
            f"{format_loc((*base, 'proxy'))}"
        )
    if keep_warm(strategy) < rollback.watch:
        problems.append(
            f"{warm}: {keep_warm(strategy)} s is shorter than rollback.watch "
            f"({rollback.watch} s): a rollback in the watch window flips back to the old slot, "
            "which must still run; make it at least as long"
        )
    if not rollback.automatic:
        problems.append(
            f"{_loc(env, base, 'rollback', 'automatic')}: blue_green needs the automatic "
            "rollback: hosts left in their new slots while the proxy still uses the old ones "
            "would stop serving once keep_warm ran out"
        )
    if strategy.failure_budget:
        problems.append(
            f"{_loc(env, base, 'strategy', 'failure_budget')}: blue_green flips every host "
            "at once or none, so no host may fail; remove it (0)"
        )
    if "batch_size" in set_here:
        problems.append(
            f"{_loc(env, base, 'strategy', 'batch_size')}: blue_green starts the new slot on "
            "every host at once and flips them together; remove it"
        )
    if services:
        problems += _services_problems(services)
        problems.append(f"{kind}: {NOT_BUILT}")
    else:
        problems += _service_problems(env, base, service, health)
    if proxy is not None and proxy.acme is not None:
        problems.append(
            f"{format_loc((*base, 'tls', 'acme'))}: blue_green with an ACME certificate is not "
            "built (the plain site served while certbot answers would point at one slot); "
            "give the certificate with tls.certificate and tls.key"
        )
    if instances:
        problems.append(
            f"{format_loc((*base, 'replicas'))}: blue_green with several instances per host "
            "is not built (each host runs one instance per slot); remove it"
        )
    if env.features.monitoring:
        problems.append(
            f"{format_loc((*base, 'features', 'monitoring'))}: Prometheus would scrape one "
            "slot only; blue_green with monitoring is not built"
        )
    problems += _port_problems(env, base, service, services, proxy, accessories)
    return problems


CANARY_KEYS = ("steps", "analysis", "auto_promote", "decision_timeout")


def _canary_keys(env: Environment, base: tuple[str, ...], strategy: Strategy) -> list[str]:
    """The canary's own keys, refused with any other kind."""
    return [
        f"{_loc(env, base, 'strategy', key)}: used only with strategy.kind canary; this "
        f"strategy is {strategy.kind}: remove it"
        for key in CANARY_KEYS
        if getattr(strategy, key) is not None
    ]


def _service_problems(
    env: Environment,
    base: tuple[str, ...],
    service: Service,
    health: Health,
    kind: str = BLUE_GREEN,
) -> list[str]:
    problems: list[str] = []
    port = _loc(env, base, "service", "port")
    if service.port is None:
        problems.append(
            f"{port}: required by {kind} (its two slots listen on service.port and the "
            "port after it)"
        )
    if service.listen == "socket":
        problems.append(
            f"{_loc(env, base, 'service', 'listen')}: {kind} runs both slots side by "
            "side, each binding its own port; socket activation holds one port: use port"
        )
    if "PORT" in service.env:
        problems.append(
            f"{_loc(env, base, 'service', 'env')}.PORT: each slot gets its own port as $PORT "
            "(blue service.port, green the next); remove it"
        )
    for check in ("http", "tcp"):
        spec = getattr(health, check)
        if spec is not None and spec.port is not None and spec.port != service.port:
            problems.append(
                f"{_loc(env, base, 'health', check)}.port: {kind} checks each slot on its "
                f"own port; a check on the fixed port {spec.port} would not see the new slot"
            )
    return problems


def _services_problems(services: Sequence[ResolvedService]) -> list[str]:
    problems: list[str] = []
    for svc in services:
        loc = f"services.{svc.name}"
        if svc.kind == "worker":
            problems.append(
                f"{loc}.kind: a worker has no port the proxy could flip, and two slots of it "
                "would both do its work; blue_green needs every process service to be web"
            )
        elif svc.kind == "web" and svc.listen == "socket":
            problems.append(
                f"{loc}.listen: blue_green runs both slots side by side, each binding its own "
                "port; socket activation holds one port: use port"
            )
    return problems


def _port_problems(
    env: Environment,
    base: tuple[str, ...],
    service: Service,
    services: Sequence[ResolvedService],
    proxy: ProxyTarget | None,
    accessories: Sequence[ResolvedAccessory],
) -> list[str]:
    """The green slot's port (the service's port + 1) must be free for it on its hosts."""
    webs: list[tuple[str, int, set[str] | None]]
    if services:
        webs = [(f"services.{s.name}.port", s.port, set(s.hosts)) for s in services if s.port]
    elif service.port is not None:
        webs = [(_loc(env, base, "service", "port"), service.port, None)]
    else:
        webs = []
    taken: list[tuple[str, int, set[str] | None]] = list(webs)
    if proxy is not None:
        edge = set(proxy.hosts)
        taken.append((format_loc((*base, "proxy", "http_port")), proxy.http_port, edge))
        if proxy.https:
            taken.append((format_loc((*base, "proxy", "https_port")), proxy.https_port, edge))
    for accessory in accessories:
        taken.append(
            (format_loc((*base, accessory.kind, "port")), accessory.port, set(accessory.hosts))
        )
    problems: list[str] = []
    for loc, port, hosts in webs:
        green = slot_ports(port)["green"]
        if green > 65535:
            problems.append(f"{loc}: {port} leaves no port for the green slot ({green})")
            continue
        for other, used, where in taken:
            if used != green or other == loc:
                continue
            if hosts is not None and where is not None and not hosts & where:
                continue
            problems.append(
                f"{loc}: the green slot listens on {green} (the port after it), which "
                f"{other} takes; move one of them"
            )
    return problems
