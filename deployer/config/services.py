"""The services of a full-stack app (`services:`), resolved for one environment: where each
runs, how many instances on which ports, in which order they switch, and every reason a
config cannot be deployed as written (each naming its path).

Pure: it sees host names per component, never a file or a host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from deployer.config.accessories import ACCESSORY_ENV, accessory_components
from deployer.config.loader import format_loc
from deployer.config.models import (
    FEATURE_ENV,
    Artifact,
    Environment,
    Health,
    Project,
    Resources,
    ServiceSpec,
)

MAX_INSTANCES_PER_HOST = 64
APP_WIDE = ("user", "deploy_to", "shared")
"""`service` keys that stay app-wide with `services:` (every other key is per service)."""


@dataclass(frozen=True)
class ResolvedService:
    """One service of the release in one environment."""

    name: str
    kind: str  # web | worker | static
    component: str
    unit: str
    """Base name of its systemd units: `<app>:<name>` (no app name holds a colon)."""
    hosts: tuple[str, ...]
    command: str | None
    port: int | None
    listen: str
    env: Mapping[str, str]
    health: Health | None
    resources: Resources | None
    artifact: Artifact
    depends_on: tuple[str, ...]
    route: str | None
    instances: Mapping[str, int] = field(default_factory=dict)
    root: str | None = None
    """A static service's directory (inside its own) that the proxy serves."""
    uses: tuple[str, ...] = ()
    """The accessories it connects to (database, cache)."""

    @property
    def directory(self) -> str:
        """Its directory inside a release (`releases/<version>/<name>/`)."""
        return self.name

    def count(self, host: str) -> int:
        return self.instances.get(host, 1) if host in self.hosts else 0

    def ports(self, host: str) -> tuple[int, ...]:
        """The ports of its instances on `host` (none for a worker or static service)."""
        if self.port is None or host not in self.hosts:
            return ()
        return tuple(range(self.port, self.port + self.count(host)))


def _loc(*path: str | int) -> str:
    return format_loc(path)


def switch_order(specs: Mapping[str, ServiceSpec], problems: list[str]) -> list[str]:
    """Services in switch order: every service after those it depends on, otherwise in the
    order deploy.yml lists them. A cycle or an unknown name is a problem."""
    for name, spec in specs.items():
        for other in spec.depends_on:
            if other == name or other not in specs:
                why = "itself" if other == name else f"no service {other!r}"
                problems.append(f"{_loc('services', name, 'depends_on')}: {why}")
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in visiting:
            cycle = " -> ".join((*path[path.index(name) :], name))
            problems.append(f"{_loc('services', name, 'depends_on')}: a cycle: {cycle}")
            return
        visiting.add(name)
        for other in specs[name].depends_on:
            if other in specs and other != name:
                visit(other, (*path, name))
        visiting.discard(name)
        order.append(name)

    for name in specs:
        visit(name, ())
    return order


def _spec_problems(name: str, spec: ServiceSpec) -> list[str]:
    """What a service of its kind cannot have, or must have."""
    problems = []
    loc = ("services", name)
    given = spec.model_fields_set
    if spec.kind == "static":
        for key in ("command", "port", "listen", "env", "health", "resources", "uses"):
            if key in given:
                problems.append(
                    f"{_loc(*loc, key)}: a static service is files the edge proxy serves; it "
                    "runs no process"
                )
        if spec.root is not None and spec.root.rstrip("/") in (".", ""):
            problems.append(f"{_loc(*loc, 'root')}: leave it out to serve the whole artifact")
        if spec.route not in (None, "/"):
            problems.append(f"{_loc(*loc, 'route')}: a static service serves '/'")
    else:
        if spec.command is None:
            problems.append(f"{_loc(*loc, 'command')}: required for a {spec.kind} service")
        for variable in ("PORT", *FEATURE_ENV.values(), *ACCESSORY_ENV.values()):
            if variable in spec.env:
                problems.append(
                    f"{_loc(*loc, 'env', variable)}: deployer sets {variable} itself; remove it"
                )
    if spec.kind != "static" and "root" in given:
        problems.append(f"{_loc(*loc, 'root')}: only a static service has files the proxy serves")
    if spec.kind == "web" and spec.port is None:
        problems.append(f"{_loc(*loc, 'port')}: required for a web service")
    if spec.kind == "worker":
        for key in ("port", "route"):
            if key in given:
                problems.append(f"{_loc(*loc, key)}: a worker serves no port")
        if spec.listen == "socket":
            problems.append(f"{_loc(*loc, 'listen')}: a worker has no socket to be handed")
        for kind in ("http", "tcp"):
            check = getattr(spec.health, kind) if spec.health else None
            if check is not None and check.port is None:
                problems.append(
                    f"{_loc(*loc, 'health', kind, 'port')}: a worker has no port of its own"
                )
    return problems


def _app_wide_problems(project: Project, env: Environment, environment: str) -> list[str]:
    """With `services:`, the single-service keys are refused where they are set."""
    problems = []
    if env.target != "ssh":
        problems.append(
            f"{_loc('environments', environment, 'target')}: an app of several services "
            f"deploys to target ssh only; target {env.target!r} would run none of them"
        )
    for key in sorted(project.service.model_fields_set - set(APP_WIDE)):
        problems.append(f"{_loc('service', key)}: with services, set it per service")
    if env.service is not None:
        for key in sorted(env.service.model_fields_set - set(APP_WIDE)):
            problems.append(
                f"{_loc('environments', environment, 'service', key)}: with services, set it "
                "per service"
            )
    if project.artifact.model_fields_set:
        problems.append(
            f"{_loc('artifact')}: with services, each has its own services.<name>.artifact"
        )
    if env.features.monitoring:
        problems.append(
            f"{_loc('environments', environment, 'features', 'monitoring')}: not built for "
            "an app of several services yet"
        )
    return problems


def _placement(
    name: str,
    spec: ServiceSpec,
    members: Sequence[str],
    replicas: Mapping[str, int],
    environment: str,
    problems: list[str],
) -> dict[str, int]:
    """Instances per host: `replicas.<component>` spread evenly over the component's hosts
    (the first hosts take one more when it does not divide)."""
    total = replicas.get(spec.component)
    if spec.kind == "static" or total is None or total == len(members):
        return {}
    loc = _loc("environments", environment, "replicas", spec.component)
    if total < len(members):
        problems.append(
            f"{loc}: {total} instance(s) of {name} cannot be spread over the {len(members)} "
            f"hosts of {spec.component}: every host runs at least one"
        )
        return {}
    out = {}
    for index, host in enumerate(members):
        count = total // len(members) + (1 if index < total % len(members) else 0)
        if count > MAX_INSTANCES_PER_HOST:
            problems.append(
                f"{loc}: {count} instances of {name} on {host}; at most {MAX_INSTANCES_PER_HOST}"
            )
        elif spec.port is not None and spec.port + count - 1 > 65535:
            problems.append(f"{loc}: {name}'s instances on {host} would pass port 65535")
        out[host] = count
    return out


def resolve_services(
    project: Project,
    env: Environment,
    environment: str,
    by_component: Mapping[str, Sequence[str]],
    feature_env: Mapping[str, str],
    health: Health,
    problems: list[str],
) -> tuple[ResolvedService, ...]:
    """The services of `project` in `environment`, in switch order; () for an app that is
    the one `service`."""
    specs = project.services
    if not specs:
        return ()
    problems += _app_wide_problems(project, env, environment)
    hosts_loc = _loc("environments", environment, "hosts")
    statics = [n for n, s in specs.items() if s.kind == "static"]
    for extra in statics[1:]:
        problems.append(
            f"{_loc('services', extra, 'kind')}: one static service serves '/'; "
            f"{statics[0]} already does"
        )
    webs = [n for n, s in specs.items() if s.kind == "web"]
    routes: dict[str, str] = {}
    if statics:
        routes["/"] = statics[0]
    resolved: dict[str, ResolvedService] = {}
    for name, spec in specs.items():
        problems += _spec_problems(name, spec)
        members = list(by_component.get(spec.component, ()))
        if spec.component not in env.groups:
            problems.append(
                f"{_loc('services', name, 'component')}: no component {spec.component!r} in "
                f"{hosts_loc} ({', '.join(env.groups)})"
            )
        elif not members:
            problems.append(
                f"{_loc('services', name, 'component')}: {spec.component} has no hosts in "
                f"environment {environment}"
            )
        route = spec.route if spec.kind == "web" else None
        if spec.kind == "web" and route is None and not statics and len(webs) == 1:
            route = "/"  # the one web service of an app without static files serves '/'
        if route is not None:
            if route in routes:
                problems.append(
                    f"{_loc('services', name, 'route')}: {route} is already {routes[route]}'s"
                )
            routes.setdefault(route, name)
        service_health = spec.health
        if spec.kind == "web" and service_health is None:
            service_health = health
        if (
            spec.kind == "web"
            and service_health is not None
            and not (service_health.http or service_health.tcp or service_health.command)
        ):
            problems.append(
                f"{_loc('services', name, 'health')}: configure at least one of http, tcp or "
                "command (or the project's health)"
            )
        artifact = spec.artifact or Artifact(path=name)
        resolved[name] = ResolvedService(
            name=name,
            kind=spec.kind,
            component=spec.component,
            unit=f"{project.app.name}:{name}",
            hosts=tuple(members),
            command=spec.command,
            port=spec.port,
            listen=spec.listen,
            env={**spec.env, **feature_env} if spec.kind != "static" else {},
            health=service_health,
            resources=spec.resources,
            artifact=artifact,
            depends_on=spec.depends_on,
            route=route,
            instances=_placement(name, spec, members, env.replicas, environment, problems),
            root=spec.root,
            uses=spec.uses,
        )
    problems += _port_problems(resolved)
    used = {s.component for s in specs.values()} | set(accessory_components(env).values())
    for component in env.groups:
        if component not in used:
            problems.append(
                f"{_loc('environments', environment, 'hosts', component)}: its hosts would run "
                "none of the services; give one of them this component, or remove it"
            )
    return tuple(resolved[n] for n in switch_order(specs, problems) if n in resolved)


def _port_problems(services: Mapping[str, ResolvedService]) -> list[str]:
    """Two services (or two instances) on one port of one host."""
    problems = []
    taken: dict[tuple[str, int], str] = {}
    for name, service in services.items():
        for host in service.hosts:
            for port in service.ports(host):
                other = taken.setdefault((host, port), name)
                if other != name:
                    problems.append(
                        f"{_loc('services', name, 'port')}: port {port} of {host} is already "
                        f"{other}'s"
                    )
                    break
    return problems
