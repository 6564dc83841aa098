"""`strategy.kind: canary`: what it needs, checked before any host is touched.

A canary runs each host's new release in blue-green's other slot, next to the live one, and
moves the edge proxy's weighted upstreams through `strategy.steps` (the percent of requests
the new slots take, the last 100: the flip). After each step short of 100 an analysis of
`strategy.analysis` seconds (default `rollback.watch`) compares, in Prometheus, the new
version's error ratio and p95 latency with the stable one's; a breach aborts: the weights go
back to the stable slots and the new slots stop.

It therefore needs all that blue-green needs (a port per slot, one edge proxy, target ssh)
and monitoring. Everything that cannot work that way is refused here with the path of the
key; so is what is not built (several services, several instances per host, ACME).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from deployer.config.bluegreen import (
    CANARY,
    _loc,
    _port_problems,
    _service_problems,
    _services_problems,
    keep_warm,
    slot_ports,
)
from deployer.config.loader import format_loc
from deployer.config.models import Environment, Health, Project, Rollback, Service, Strategy

if TYPE_CHECKING:
    from deployer.config.accessories import ResolvedAccessory
    from deployer.config.resolve import ProxyTarget
    from deployer.config.services import ResolvedService

STEPS = (10, 50, 100)
"""The shares of requests the new release takes when `strategy.steps` is not set."""
SCRAPES = 2
"""Scrape intervals an analysis window spans at least: a rate needs two samples."""
NOT_BUILT = (
    "canary is built for an app of one service (`service`) only, not for several (`services`) yet"
)


def steps(strategy: Strategy) -> tuple[int, ...]:
    """The canary's shares of requests, in percent, the last 100."""
    return STEPS if strategy.steps is None else tuple(strategy.steps)


def analysis(strategy: Strategy, rollback: Rollback) -> int:
    """Seconds of the analysis after each step short of 100 %."""
    return rollback.watch if strategy.analysis is None else strategy.analysis


def auto_promote(strategy: Strategy) -> bool:
    return True if strategy.auto_promote is None else strategy.auto_promote


DECISION_TIMEOUT = 3600


def decision_timeout(strategy: Strategy) -> int:
    """Seconds a step waits for `deployer promote` or `deployer abort`."""
    return DECISION_TIMEOUT if strategy.decision_timeout is None else strategy.decision_timeout


def weights(share: int) -> tuple[int, int]:
    """(stable, canary) weights of nginx's upstream servers for `share` percent: every
    stable slot gets the first, every canary slot the second. Both slots run on every host,
    so the same number of each: the canary's part of requests is `share` % whatever the
    number of hosts. 0 is no weight (nginx's weights start at 1): that slot is left out."""
    if not 0 <= share <= 100:
        raise ValueError(f"{share} is not a percentage")
    return 100 - share, share


def canary_problems(
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
    """Why the environment's canary cannot run as configured ([] when it can)."""
    kind = _loc(env, base, "strategy", "kind")
    set_here = set(project.strategy.model_fields_set) | (
        set(env.strategy.model_fields_set) if env.strategy is not None else set()
    )
    problems: list[str] = []
    if env.target == "swarm":
        problems.append(
            f"{kind}: Swarm replaces a service's tasks itself (start-first, with monitor and "
            "failure_action rollback: what strategy.kind rolling does there) and its routing "
            "mesh cannot weight requests between two versions; canary is for target ssh"
        )
    elif env.target != "ssh":
        problems.append(
            f"{kind}: canary weights the edge proxy, which runs on target ssh only; "
            f"environment {base[-1]} is target {env.target!r}"
        )
    if proxy is None:
        problems.append(
            f"{kind}: canary moves requests through the edge proxy's weighted upstreams, and "
            f"this environment has none: set {format_loc((*base, 'domain'))} or "
            f"{format_loc((*base, 'proxy'))}"
        )
    problems += _step_problems(env, base, strategy)
    if not env.features.monitoring:
        problems.append(
            f"{format_loc((*base, 'features', 'monitoring'))}: canary judges each step by "
            "Prometheus (the new version's error ratio and p95 latency against the stable "
            "one's); turn monitoring on"
        )
    else:
        problems += _analysis_problems(project, env, base, strategy, rollback)
    timeout = _loc(env, base, "strategy", "decision_timeout")
    if strategy.decision_timeout is not None and auto_promote(strategy):
        problems.append(
            f"{timeout}: used only with strategy.auto_promote false (a wait for `deployer "
            "promote` or `deployer abort`); remove it"
        )
    elif not auto_promote(strategy) and decision_timeout(strategy) > project.lock_ttl:
        problems.append(
            f"{timeout}: {decision_timeout(strategy)} s is longer than lock_ttl "
            f"({project.lock_ttl} s): the lock of a deploy still waiting would be reported "
            "stale; make it shorter or lock_ttl longer"
        )
    if keep_warm(strategy) < rollback.watch:
        problems.append(
            f"{_loc(env, base, 'strategy', 'keep_warm')}: {keep_warm(strategy)} s is shorter "
            f"than rollback.watch ({rollback.watch} s): a rollback in the watch window flips "
            "back to the old slot, which must still run; make it at least as long"
        )
    if not rollback.automatic:
        problems.append(
            f"{_loc(env, base, 'rollback', 'automatic')}: canary needs the automatic rollback: "
            "a breached step takes the requests back from the new slots and stops them"
        )
    for key, why in (
        (
            "failure_budget",
            "starts the new slot on every host and weights them together, so "
            "no host may fail; remove it (0)",
        ),
        (
            "batch_size",
            "starts the new slot on every host at once and moves requests by "
            "strategy.steps; remove it",
        ),
    ):
        if key in set_here and (key != "failure_budget" or strategy.failure_budget):
            problems.append(f"{_loc(env, base, 'strategy', key)}: canary {why}")
    if services:
        problems += _services_problems(services)
        problems.append(f"{kind}: {NOT_BUILT}")
    else:
        problems += _service_problems(env, base, service, health, CANARY)
    if proxy is not None and proxy.acme is not None:
        problems.append(
            f"{format_loc((*base, 'tls', 'acme'))}: canary with an ACME certificate is not "
            "built; give the certificate with tls.certificate and tls.key"
        )
    if instances:
        problems.append(
            f"{format_loc((*base, 'replicas'))}: canary with several instances per host is "
            "not built (each host runs one instance per slot); remove it"
        )
    problems += _port_problems(env, base, service, services, proxy, accessories)
    if env.features.monitoring and service.port is not None and not services:
        problems += _monitoring_port_problems(project, env, base, service.port)
    return problems


def _monitoring_port_problems(
    project: Project, env: Environment, base: tuple[str, ...], port: int
) -> list[str]:
    """The green slot (the port after the service's) must not take a port of monitoring's:
    node exporter runs on every host, Prometheus on the monitoring server (a host too)."""
    from deployer.config.resolve import overlay

    monitoring = overlay(project.monitoring, env.monitoring)
    green = slot_ports(port)["green"]
    in_env = env.monitoring is not None
    problems = []
    for key in ("prometheus_port", "node_exporter_port"):
        if getattr(monitoring, key) == green:
            set_in_env = in_env and key in env.monitoring.model_fields_set  # type: ignore[union-attr]
            loc = format_loc((*base, "monitoring", key) if set_in_env else ("monitoring", key))
            problems.append(
                f"{_loc(env, base, 'service', 'port')}: the green slot listens on {green} (the "
                f"port after it), which {loc} takes; move one of them"
            )
    return problems


def _step_problems(env: Environment, base: tuple[str, ...], strategy: Strategy) -> list[str]:
    where = _loc(env, base, "strategy", "steps")
    shares = steps(strategy)
    problems = [
        f"{where}[{i}]: {share} % does not follow {shares[i - 1]} %: the steps must "
        "strictly increase"
        for i, share in enumerate(shares)
        if i and share <= shares[i - 1]
    ]
    if shares[-1] != 100:
        problems.append(
            f"{where}: the last step is {shares[-1]} %; it must be 100 (the flip to the new "
            "release)"
        )
    return problems


def _analysis_problems(
    project: Project,
    env: Environment,
    base: tuple[str, ...],
    strategy: Strategy,
    rollback: Rollback,
) -> list[str]:
    from deployer.config.resolve import overlay

    monitoring = overlay(project.monitoring, env.monitoring)
    seconds = analysis(strategy, rollback)
    least = SCRAPES * monitoring.scrape_interval
    if seconds >= least:
        return []
    if strategy.analysis is None:
        return [
            f"{_loc(env, base, 'strategy', 'analysis')}: not set, and rollback.watch "
            f"({rollback.watch} s) is shorter than {SCRAPES} scrape intervals ({least} s): "
            "set the seconds of the analysis after each canary step"
        ]
    return [
        f"{_loc(env, base, 'strategy', 'analysis')}: {seconds} s is shorter than {SCRAPES} "
        f"scrape intervals of monitoring.scrape_interval ({least} s): Prometheus could not "
        "rate the new version's requests; make it longer"
    ]
