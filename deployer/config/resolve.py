"""From a validated project to one environment's effective settings.

An environment overrides only the keys it sets (pydantic's `model_fields_set`), recursively;
`service.env` maps merge key by key. Lab hosts and the hosts Terraform created (read from its
outputs by `deployer.config.terraform`) are passed in by the caller, so this module stays
pure: no files, no network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from deployer.config.accessories import (
    ACCESSORY_ENV,
    ResolvedAccessory,
    ResolvedHook,
    accessory_components,
    resolve_accessories,
    resolve_hooks,
    uses_problems,
)
from deployer.config.base import SecretRef
from deployer.config.bluegreen import BLUE_GREEN, strategy_problems
from deployer.config.ledger import LedgerPlace, ledger_place
from deployer.config.loader import LoadedProject, format_loc
from deployer.config.models import (
    FEATURE_ENV,
    Acme,
    App,
    Artifact,
    Environment,
    Features,
    Health,
    Host,
    Monitoring,
    Project,
    Proxy,
    Resources,
    Rollback,
    Secrets,
    Service,
    Strategy,
    TerraformHosts,
    lab_selection,
)
from deployer.config.notify import Notification
from deployer.config.services import ResolvedService, resolve_services
from deployer.config.sites import JumpHop as JumpHop
from deployer.config.sites import Site, hops, resolve_sites, site_problems
from deployer.config.swarm import SwarmSettings, swarm_strategy_problems
from deployer.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

RESERVED_JOBS = ("node", "prometheus", "postgres", "redis")
"""Prometheus job names deployer uses itself; the app's job is named after the app."""


def overlay(base: M, override: M | None) -> M:
    """`base` with the keys that `override` explicitly sets, recursively."""
    if override is None:
        return base
    changes: dict[str, Any] = {}
    for name in override.model_fields_set:
        new = getattr(override, name)
        old = getattr(base, name)
        if isinstance(new, BaseModel) and isinstance(old, BaseModel):
            new = overlay(old, new)
        elif isinstance(new, dict) and isinstance(old, dict):
            new = {**old, **new}
        changes[name] = new
    return base.model_copy(update=changes)


@dataclass(frozen=True)
class LabInfo:
    """What `deployer lab up` recorded: hosts, their key and their known_hosts."""

    name: str
    hosts: tuple[Host, ...]
    private_key: Path
    known_hosts: Path


@dataclass(frozen=True)
class ResolvedHost:
    name: str
    address: str
    port: int
    user: str
    components: tuple[str, ...]
    private_key: Path | None
    resources: Resources
    private_address: str = ""
    """Where the other hosts reach this one (default: address)."""


@dataclass(frozen=True)
class ProxyTarget:
    """The edge proxy of an environment: the hosts that run it, its ports, its server name
    and, with `features.ssl`, the references of its certificate and key."""

    hosts: tuple[str, ...]
    http_port: int
    server_name: str | None
    https_port: int = 443
    tls: Mapping[str, SecretRef] = field(default_factory=dict)
    acme: Acme | None = None
    """With `tls.acme`: the CA certbot gets the certificate from (then `tls` is empty)."""

    @property
    def https(self) -> bool:
        """HTTPS is served (`features.ssl`), whatever the certificate's source."""
        return bool(self.tls) or self.acme is not None


@dataclass(frozen=True)
class Target:
    """Everything one command needs to know about one environment."""

    project_dir: Path
    config_path: Path
    environment: str
    kind: str  # ssh | swarm | nomad
    app: App
    artifact: Artifact
    service: Service
    health: Health
    strategy: Strategy
    rollback: Rollback
    keep_releases: int
    secrets: Secrets
    hosts: tuple[ResolvedHost, ...]
    components: Mapping[str, tuple[str, ...]]
    primary: str
    domain: str | None
    replicas: Mapping[str, int]
    resources: Mapping[str, Resources]
    features: Features
    known_hosts: tuple[Path, ...]
    connect_timeout: int
    ledger: LedgerPlace
    lock_ttl: int
    notifications: tuple[Notification, ...] = ()
    jump: tuple[JumpHop, ...] = ()
    """`ssh.jump`: the bastions every SSH connection to the hosts goes through, in order."""
    sites: tuple[Site, ...] = ()
    """`ssh.nodes`: the execution nodes and the hosts each runs Ansible for."""
    swarm: SwarmSettings | None = None
    monitoring: Monitoring | None = None
    """The effective monitoring settings when `features.monitoring` is on, else None."""
    proxy: ProxyTarget | None = None
    """The edge proxy, when `domain` or `proxy` turns it on."""
    services: tuple[ResolvedService, ...] = ()
    """The app's services in switch order (`services:`); () for the one `service`."""
    instances: Mapping[str, int] = field(default_factory=dict)
    """Hosts that run several instances of the app (target ssh), and how many."""
    accessories: tuple[ResolvedAccessory, ...] = ()
    """The environment's database and cache, where deployer sets them up."""
    accessory_hosts: tuple[ResolvedHost, ...] = ()
    """Hosts that run an accessory and none of the app."""
    hooks: Mapping[str, ResolvedHook] = field(default_factory=dict)

    def accessory(self, kind: str) -> ResolvedAccessory | None:
        return next((a for a in self.accessories if a.kind == kind), None)

    @property
    def every_host(self) -> tuple[ResolvedHost, ...]:
        """The app's hosts, then the hosts that run only accessories."""
        return (*self.hosts, *self.accessory_hosts)

    def uses(self, service: str | None = None) -> tuple[str, ...]:
        """The accessories a service (None: the app's one service) connects to."""
        if service is None:
            return tuple(self.service.uses)
        return next((s.uses for s in self.services if s.name == service), ())

    def ports(self, host: str) -> tuple[int, ...]:
        """The ports of the app's instances on `host` (one: service.port)."""
        if self.service.port is None:
            return ()
        return tuple(self.service.port + i for i in range(self.instances.get(host, 1)))

    @property
    def monitoring_server(self) -> str | None:
        """The inventory name of the host that runs Prometheus."""
        if self.monitoring is None:
            return None
        return self.monitoring.server or self.primary

    @property
    def deploy_to(self) -> str:
        return self.service.deploy_to or f"/srv/{self.app.name}"

    @property
    def service_user(self) -> str:
        return self.service.user or default_user(self.app.name)

    @property
    def host_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hosts)


def default_user(app: str) -> str:
    """A valid system user name from an app name: lowercase, '.' -> '-', must not start
    with a digit or '-'."""
    name = re.sub(r"[^a-z0-9_-]", "-", app.lower())
    if not re.match(r"[a-z_]", name):
        name = "_" + name
    return name[:32]


def environment_names(loaded: LoadedProject) -> list[str]:
    return list(loaded.project.environments)


def unknown_environment(loaded: LoadedProject, environment: str) -> ConfigError:
    known = ", ".join(loaded.project.environments) or "none"
    return ConfigError(
        [f"environments.{environment}: unknown environment (known: {known})"],
        source=str(loaded.path),
    )


def _service_loc(env: Environment, base: tuple[str, ...], *key: str) -> str:
    """Where a service key was set: the environment's override, or the top level."""
    in_env = env.service is not None and key[0] in env.service.model_fields_set
    return format_loc((*base, "service", *key) if in_env else ("service", *key))


def _listen_problems(
    project: Project, env: Environment, service: Service, base: tuple[str, ...]
) -> list[str]:
    """`service.listen` and the PORT the service is given must agree with `service.port`."""
    problems: list[str] = []
    if service.listen == "socket" and service.port is None:
        problems.append(
            f"{_service_loc(env, base, 'listen')}: socket activation needs service.port "
            "(the port systemd listens on for the app)"
        )
    if service.listen == "socket" and env.target != "ssh":
        problems.append(
            f"{_service_loc(env, base, 'listen')}: socket activation is for target ssh; "
            f"target {env.target!r} runs containers that bind their own port"
        )
    given = service.env.get("PORT")
    if given is not None and given != str(service.port):
        problems.append(
            f"{_service_loc(env, base, 'env', 'PORT')}: {given!r} disagrees with service.port "
            f"({service.port}); deployer passes service.port as PORT: remove it here"
        )
    if "PORT" in project.secrets.env:
        problems.append(
            "secrets.env.PORT: PORT is not a secret; deployer passes service.port as PORT"
        )
    return problems


def _feature_env(
    project: Project, env: Environment, service: Service, base: tuple[str, ...]
) -> tuple[dict[str, str], list[str]]:
    """The variables through which `features.debug` and `features.logging` reach the
    services, and the problems of a service or secret that sets them itself."""
    problems: list[str] = []
    out: dict[str, str] = {}
    for feature, variable in FEATURE_ENV.items():
        out[variable] = "1" if getattr(env.features, feature) else "0"
        if variable in service.env:
            problems.append(
                f"{_service_loc(env, base, 'env', variable)}: set by "
                f"{format_loc((*base, 'features', feature))}; remove it here"
            )
        if variable in project.secrets.env:
            problems.append(
                f"secrets.env.{variable}: set by {format_loc((*base, 'features', feature))}; "
                "it is not a secret"
            )
    return out, problems


def _not_built(env: Environment, base: tuple[str, ...], rollback: Rollback) -> list[str]:
    """Keys of the environment model that deployer does not act on yet: refused, never
    accepted and ignored."""
    problems: list[str] = []
    rule = rollback.health_checks
    if rule.grace and rule.grace >= rollback.watch:
        in_env = (
            env.rollback is not None
            and "health_checks" in env.rollback.model_fields_set
            and "grace" in env.rollback.health_checks.model_fields_set
        )
        loc = (*base, "rollback") if in_env else ("rollback",)
        problems.append(
            f"{format_loc((*loc, 'health_checks', 'grace'))}: {rule.grace} s is not shorter "
            f"than rollback.watch ({rollback.watch} s), so no failed check would ever count"
        )
    return problems


MAX_INSTANCES_PER_HOST = 64


def _instances(
    env: Environment,
    base: tuple[str, ...],
    service: Service,
    hosts: Sequence[ResolvedHost],
    problems: list[str],
) -> dict[str, int]:
    """Instances of the app per host (target ssh): `replicas.<component>` counts the
    component's instances in total, spread evenly over its hosts in order (the first hosts
    take one more when the count does not divide); every other host runs one."""
    out: dict[str, int] = {}
    if env.target != "ssh":
        return out
    by_component: dict[str, list[ResolvedHost]] = {}
    for host in hosts:
        for component in host.components:
            by_component.setdefault(component, []).append(host)
    counted: dict[str, str] = {}
    for component, total in env.replicas.items():
        members = by_component.get(component, [])
        loc = format_loc((*base, "replicas", component))
        if not members:
            continue  # reported as an unknown component
        if total < len(members):
            problems.append(
                f"{loc}: {total} instance(s) cannot be spread over the {len(members)} hosts of "
                f"{component}: every host runs at least one (raise the count or remove hosts)"
            )
            continue
        if service.port is None and total > len(members):
            problems.append(
                f"{loc}: several instances per host need service.port (theirs "
                "are service.port, service.port + 1, ...)"
            )
            continue
        for index, host in enumerate(members):
            if host.name in counted:
                problems.append(
                    f"{loc}: host {host.name} is also in {counted[host.name]}, whose replicas "
                    "count it too; give replicas for one of the two components"
                )
                continue
            counted[host.name] = component
            count = total // len(members) + (1 if index < total % len(members) else 0)
            if count > MAX_INSTANCES_PER_HOST:
                problems.append(
                    f"{loc}: {count} instances on {host.name}; at most "
                    f"{MAX_INSTANCES_PER_HOST} per host"
                )
            elif service.port is not None and service.port + count - 1 > 65535:
                problems.append(
                    f"{loc}: the ports of {count} instances from {service.port} run past 65535"
                )
            out[host.name] = count
    return {name: count for name, count in out.items() if count > 1}


def _instance_port_problems(
    env: Environment,
    base: tuple[str, ...],
    service: Service,
    health: Health,
    instances: Mapping[str, int],
    proxy: ProxyTarget | None,
) -> list[str]:
    """Ports that several instances per host would collide with or make ambiguous."""
    if not instances or service.port is None:
        return []
    problems: list[str] = []
    loc = format_loc((*base, "replicas"))
    top = service.port + max(instances.values()) - 1
    taken = [proxy.http_port, *([proxy.https_port] if proxy.https else [])] if proxy else []
    for port in taken:
        if service.port <= port <= top:
            problems.append(
                f"{loc}: the instances' ports {service.port}-{top} take the proxy's port {port}"
            )
    if "PORT" in service.env:
        problems.append(
            f"{_service_loc(env, base, 'env', 'PORT')}: each instance gets its own port as "
            "PORT; remove it here"
        )
    for kind in ("http", "tcp"):
        check = getattr(health, kind)
        if check is not None and check.port not in (None, service.port):
            problems.append(
                f"health.{kind}.port: {check.port} is not service.port; with several "
                "instances per host each is checked on its own port, so leave it unset"
            )
    return problems


def _proxy(
    env: Environment,
    base: tuple[str, ...],
    service: Service,
    hosts: Sequence[ResolvedHost],
    problems: list[str],
    services: Sequence[ResolvedService] = (),
) -> ProxyTarget | None:
    """Where the edge proxy runs, when `domain` or `proxy` turns it on."""
    if env.domain is None and env.proxy is None:
        return None
    settings = env.proxy or Proxy()
    loc = (*base, "proxy") if env.proxy is not None else (*base, "domain")
    if env.target != "ssh":
        problems.append(
            f"{format_loc(loc)}: the edge proxy is for target ssh; target {env.target!r} "
            "publishes its services itself"
        )
        return None
    static = next((s for s in services if s.kind == "static"), None)
    if services and not any(s.route for s in services) and static is None:
        problems.append(
            f"{format_loc(loc)}: the edge proxy needs a static service or a web service with a "
            "route"
        )
    elif not services and service.port is None:
        problems.append(f"{format_loc(loc)}: the edge proxy needs service.port to reach the app")
    component = settings.component
    if component is None and static is not None:
        component = static.component  # nginx serves the static files where they are staged
    elif component is not None and static is not None and component != static.component:
        problems.append(
            f"{format_loc((*base, 'proxy', 'component'))}: the proxy serves the static "
            f"service {static.name} from its own hosts: give {static.component} (its component)"
        )
    if component is not None and component not in env.groups:
        problems.append(
            f"{format_loc((*base, 'proxy', 'component'))}: no such component in "
            f"{format_loc((*base, 'hosts'))} ({', '.join(env.groups)})"
        )
    names = tuple(h.name for h in hosts if component is None or component in h.components)
    if not services and service.port == settings.http_port:
        where = "http_port" if env.proxy and "http_port" in env.proxy.model_fields_set else None
        problems.append(
            f"{format_loc((*base, 'proxy', where) if where else (*base, 'domain'))}: the proxy "
            f"and the app would both listen on port {service.port} of "
            f"{'every host' if component is None else 'the hosts of ' + component}"
        )
    tls: dict[str, SecretRef] = {}
    acme = None
    if env.features.ssl and env.tls is None:
        problems.append(
            f"{format_loc((*base, 'features', 'ssl'))}: HTTPS needs a certificate: set "
            f"{format_loc((*base, 'tls'))} (certificate and key references, or acme)"
        )
    elif env.features.ssl and env.tls is not None:
        if env.tls.acme is not None:
            acme = env.tls.acme
            problems += _acme_problems(env, (*base, "tls", "acme"), names)
        elif env.tls.certificate is not None and env.tls.key is not None:
            tls = {"certificate": env.tls.certificate, "key": env.tls.key}
        if settings.https_port == settings.http_port or (
            not services and settings.https_port == service.port
        ):
            problems.append(
                f"{format_loc((*base, 'proxy', 'https_port'))}: {settings.https_port} is "
                "already the proxy's HTTP port or the app's"
            )
    return ProxyTarget(
        hosts=names,
        http_port=settings.http_port,
        server_name=env.domain,
        https_port=settings.https_port,
        tls=tls,
        acme=acme,
    )


_IP = re.compile(r"^[0-9.]+$")


def _acme_problems(env: Environment, loc: tuple[str, ...], proxies: Sequence[str]) -> list[str]:
    """What http-01 through the proxy cannot get a certificate for."""
    problems = []
    if env.domain is None:
        problems.append(
            f"{format_loc(loc)}: an ACME certificate is issued for a name: set "
            f"{format_loc((*loc[:-2], 'domain'))}"
        )
    elif env.domain.startswith("*") or _IP.match(env.domain):
        problems.append(
            f"{format_loc((*loc[:-2], 'domain'))}: {env.domain!r}: http-01 issues certificates "
            "for host names only (no wildcard, no IP address)"
        )
    if len(proxies) > 1:
        problems.append(
            f"{format_loc(loc)}: the CA checks http-01 on whichever of the {len(proxies)} proxy "
            "hosts the domain resolves to, and each would get a certificate of its own; give "
            "one proxy host (proxy.component) or tls.certificate and tls.key"
        )
    return problems


def _service_proxy_problems(
    base: tuple[str, ...], services: Sequence[ResolvedService], proxy: ProxyTarget | None
) -> list[str]:
    """Service ports that take the proxy's on a proxy host; routes without a proxy."""
    problems: list[str] = []
    if proxy is None:
        for svc in services:
            if (svc.route is not None and svc.route != "/") or svc.kind == "static":
                what = "a static service" if svc.kind == "static" else f"route {svc.route}"
                problems.append(
                    f"services.{svc.name}: {what} is served by the edge proxy; set "
                    f"{format_loc((*base, 'domain'))} or {format_loc((*base, 'proxy'))}"
                )
        return problems
    taken = [proxy.http_port, *([proxy.https_port] if proxy.https else [])]
    for svc in services:
        for host in set(svc.hosts) & set(proxy.hosts):
            clash = sorted(set(svc.ports(host)) & set(taken))
            if clash:
                problems.append(
                    f"services.{svc.name}.port: port {clash[0]} of {host} is the edge proxy's"
                )
    return problems


def _accessory_port_problems(
    base: tuple[str, ...],
    accessories: Sequence[ResolvedAccessory],
    services: Sequence[ResolvedService],
    service: Service,
    instances: Mapping[str, int],
    hosts: Sequence[ResolvedHost],
    proxy: ProxyTarget | None,
) -> list[str]:
    """An accessory's port taken on one of its hosts by the app, the proxy or the other
    accessory."""
    problems: list[str] = []
    app_hosts = {h.name for h in hosts}
    taken: dict[tuple[str, int], str] = {}
    for accessory in accessories:
        loc = format_loc((*base, accessory.kind, "port"))
        for host in accessory.hosts:
            users: list[tuple[str, tuple[int, ...]]] = []
            if services:
                users += [(f"service {s.name}", s.ports(host)) for s in services]
            elif host in app_hosts and service.port is not None:
                count = instances.get(host, 1)
                users.append(("the app", tuple(range(service.port, service.port + count))))
            if proxy is not None and host in proxy.hosts:
                ports = (proxy.http_port, *([proxy.https_port] if proxy.https else []))
                users.append(("the edge proxy", ports))
            other = taken.setdefault((host, accessory.port), accessory.kind)
            if other != accessory.kind:
                users.append((f"the {other}", (accessory.port,)))
            for who, ports in users:
                if accessory.port in ports:
                    problems.append(
                        f"{loc}: {accessory.port} on {host} is taken by {who}; give it another port"
                    )
    return problems


def resolve(
    loaded: LoadedProject,
    environment: str,
    lab: LabInfo | None = None,
    provisioned: Mapping[str, Sequence[Host]] | None = None,
) -> Target:
    """The effective settings of `environment`. Raises ConfigError naming the bad path.
    `provisioned`: the hosts per component of an environment whose hosts come from
    Terraform (`deployer.config.terraform.read_outputs`)."""
    project = loaded.project
    env = project.environments.get(environment)
    if env is None:
        raise unknown_environment(loaded, environment)
    base = ("environments", environment)
    if isinstance(env.hosts, TerraformHosts):
        if provisioned is None:
            raise ConfigError(
                [f"{format_loc((*base, 'hosts', 'from_terraform'))}: its outputs were not read"],
                source=str(loaded.path),
            )
        given = {component: list(members) for component, members in provisioned.items()}
        env = env.model_copy(update={"hosts": given})
    problems: list[str] = []
    service = overlay(project.service, env.service)
    several = bool(project.services)
    if not service.command and not several:
        problems.append(
            "service.command: required (set it at the top level or in every environment's service)"
        )
    problems += _listen_problems(project, env, service, base)
    feature_env, feature_problems = _feature_env(project, env, service, base)
    problems += feature_problems
    service = service.model_copy(update={"env": {**service.env, **feature_env}})
    rollback = overlay(project.rollback, env.rollback)
    problems += _not_built(env, base, rollback)
    if env.tls is not None and not env.features.ssl:
        problems.append(
            f"{format_loc((*base, 'tls'))}: used only with features.ssl, which is off; turn "
            "it on or remove the key"
        )
    https_set = env.proxy is not None and "https_port" in env.proxy.model_fields_set
    if https_set and not env.features.ssl:
        problems.append(
            f"{format_loc((*base, 'proxy', 'https_port'))}: used only with features.ssl, "
            "which is off"
        )
    if env.features.ssl and env.domain is None and env.proxy is None:
        problems.append(
            f"{format_loc((*base, 'features', 'ssl'))}: HTTPS is served by the edge proxy; "
            f"set {format_loc((*base, 'domain'))}"
        )
    health = overlay(project.health, env.health)
    no_check = health.http is None and health.tcp is None and health.command is None
    if no_check and not several:
        problems.append("health: configure at least one of http, tcp or command")
    for kind in ("http", "tcp"):
        check = getattr(health, kind)
        if check is not None and check.port is None and service.port is None and not several:
            problems.append(f"health.{kind}.port: required when service.port is not set")
    for component in env.replicas.keys() | env.resources.keys():
        if component not in env.groups:
            where = "replicas" if component in env.replicas else "resources"
            problems.append(
                f"{format_loc((*base, where, component))}: no such component in "
                f"{format_loc((*base, 'hosts'))} ({', '.join(env.groups)})"
            )
    every_host = _hosts(env, environment, service, lab, loaded.directory, problems)
    by_component: dict[str, list[str]] = {}
    for host in every_host:
        for component in host.components:
            by_component.setdefault(component, []).append(host.name)
    accessories = resolve_accessories(project, env, environment, by_component, problems)
    services = resolve_services(
        project, env, environment, by_component, feature_env, health, problems
    )
    hosts, accessory_hosts = _app_hosts(project, env, every_host)
    if every_host and not hosts:
        problems.append(
            f"{format_loc((*base, 'hosts'))}: every component runs an accessory only; give "
            "the app a component of its own"
        )
    problems += _uses_problems(project, env, environment, service, base)
    serving = {h for a in accessories for h in a.hosts}
    for host in accessory_hosts:
        if host.name not in serving:
            problems.append(
                f"{format_loc((*base, 'hosts', host.components[0]))}: {host.name} would run "
                "nothing (the cache runs on the first host only, the database on as many as "
                "its replicas); remove it"
            )
    app_components = {c for h in hosts for c in h.components}
    for where in ("replicas", "resources"):
        for component in getattr(env, where):
            if by_component.get(component) and component not in app_components:
                problems.append(
                    f"{format_loc((*base, where, component))}: {component} runs accessories "
                    "only, which take no app instances or limits; remove it"
                )
    if env.target != "ssh":
        for name in sorted(project.hooks.model_fields_set):
            if getattr(project.hooks, name) is not None:
                problems.append(
                    f"hooks.{name}: hooks run on target ssh only; environment {environment} "
                    f"is target {env.target!r}, which would not run it"
                )
    hooks = (
        {}
        if env.target != "ssh"
        else resolve_hooks(
            project,
            {s.name: (s.hosts, s.directory, s.uses) for s in services if s.kind != "static"},
            [h.name for h in hosts],
            tuple(service.uses),
            problems,
        )
    )
    proxy = _proxy(env, base, service, hosts, problems, services)
    vault_refs = proxy is not None and any(r.vault for r in proxy.tls.values())
    if vault_refs and not project.secrets.vault_file:
        problems.append(
            f"{format_loc((*base, 'tls'))}: refers to the vault but secrets.vault_file is not set"
        )
    instances = {} if several else _instances(env, base, service, hosts, problems)
    problems += _instance_port_problems(env, base, service, health, instances, proxy)
    problems += _service_proxy_problems(base, services, proxy)
    problems += _accessory_port_problems(
        base, accessories, services, service, instances, hosts, proxy
    )
    strategy = overlay(project.strategy, env.strategy)
    problems += strategy_problems(
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
    if env.features.cdn and not any(s.kind == "static" for s in services):
        problems.append(
            f"{format_loc((*base, 'features', 'cdn'))}: cache headers are for the files of a "
            "static service (services.<name>.kind: static), and there is none; turn it off"
        )
    if env.primary is not None and env.primary not in {h.name for h in hosts}:
        problems.append(f"{format_loc((*base, 'primary'))}: {env.primary!r} is not a host here")
    monitoring = overlay(project.monitoring, env.monitoring)
    if env.target == "swarm":
        problems += swarm_strategy_problems(project.strategy, env.strategy, base)
    if env.features.monitoring and env.target not in ("ssh", "swarm"):
        problems.append(
            f"{format_loc((*base, 'features', 'monitoring'))}: not available for target "
            f"{env.target!r} yet (Prometheus set-up and the PromQL watch window are built "
            "for targets ssh and swarm)"
        )
    if env.features.monitoring and service.port is None:
        problems.append(
            f"{format_loc((*base, 'features', 'monitoring'))}: needs service.port, where "
            f"Prometheus scrapes {monitoring.metrics_path}"
        )
    if env.features.monitoring and project.app.name in RESERVED_JOBS:
        problems.append(
            f"{format_loc((*base, 'features', 'monitoring'))}: the app name "
            f"{project.app.name!r} is taken by a built-in Prometheus job; rename the app"
        )
    names = [h.name for h in hosts]
    if env.features.monitoring and names and monitoring.server not in (None, *names):
        in_env = env.monitoring is not None and "server" in env.monitoring.model_fields_set
        loc = (*base, "monitoring", "server") if in_env else ("monitoring", "server")
        problems.append(
            f"{format_loc(loc)}: {monitoring.server!r} is not a host of "
            f"environment {environment} ({', '.join(names)})"
        )
    problems += site_problems(
        env,
        base,
        hooks=bool(hooks),
        accessories=bool(accessories),
        blue_green=strategy.kind == BLUE_GREEN,
    )
    problems += _split_host_problems(env, base, every_host)
    problems += _ssh_path_problems(env, environment, loaded.directory)
    if problems:
        raise ConfigError(problems, source=str(loaded.path))
    components: dict[str, list[str]] = {}
    for host in hosts:
        for component in host.components:
            components.setdefault(component, []).append(host.name)
    known_hosts = [loaded.directory / env.ssh.known_hosts]
    if lab is not None and any(lab_selection(g) is not None for g in env.groups.values()):
        known_hosts.append(lab.known_hosts)
    return Target(
        project_dir=loaded.directory,
        config_path=loaded.path,
        environment=environment,
        kind=env.target,
        app=project.app,
        artifact=project.artifact,
        service=service,
        health=health,
        strategy=strategy,
        rollback=rollback,
        keep_releases=env.keep_releases or project.keep_releases,
        secrets=project.secrets,
        hosts=tuple(hosts),
        components={k: tuple(v) for k, v in components.items()},
        primary=env.primary or hosts[0].name,
        domain=env.domain,
        replicas=dict(env.replicas),
        resources=dict(env.resources),
        features=env.features,
        known_hosts=tuple(known_hosts),
        connect_timeout=env.ssh.connect_timeout,
        ledger=ledger_place(project.ledger, loaded.directory),
        lock_ttl=project.lock_ttl,
        notifications=tuple(env.notifications),
        jump=hops(env.ssh.jump, env.ssh, loaded.directory, tuple(known_hosts)),
        sites=resolve_sites(env, base, loaded.directory, tuple(known_hosts), by_component),
        swarm=env.swarm,
        monitoring=monitoring if env.features.monitoring else None,
        proxy=proxy,
        instances=instances,
        services=services,
        accessories=accessories,
        accessory_hosts=tuple(accessory_hosts),
        hooks=hooks,
    )


def _app_hosts(
    project: Project, env: Environment, every_host: Sequence[ResolvedHost]
) -> tuple[list[ResolvedHost], list[ResolvedHost]]:
    """The hosts of the app (with the components it runs there), and the hosts that run
    only accessories: a component that an accessory names and no service does."""
    named = set(accessory_components(env).values())
    if project.services:
        named -= {spec.component for spec in project.services.values()}
    app, only = [], []
    for host in every_host:
        components = tuple(c for c in host.components if c not in named)
        if components:
            app.append(replace(host, components=components))
        else:
            only.append(host)
    return app, only


def _uses_problems(
    project: Project, env: Environment, environment: str, service: Service, base: tuple[str, ...]
) -> list[str]:
    uses = {f"services.{n}.uses": s.uses for n, s in project.services.items()}
    if not project.services:
        uses[_service_loc(env, base, "uses")] = tuple(service.uses)
    problems = uses_problems(env, environment, uses)
    if env.target != "ssh":
        return problems
    for kind, variable in ACCESSORY_ENV.items():
        if getattr(env, kind) is None:
            continue
        if variable in service.env and not project.services:
            problems.append(
                f"{_service_loc(env, base, 'env', variable)}: deployer gives it to the "
                f"services that use the {kind}; remove it here"
            )
        if variable in project.secrets.env:
            problems.append(
                f"secrets.env.{variable}: deployer gives it to the services that use the "
                f"{kind}; remove it here"
            )
    return problems


def _split_host_problems(
    env: Environment, base: tuple[str, ...], every_host: Sequence[ResolvedHost]
) -> list[str]:
    """A host whose groups sit at different sites (or one at a site, one direct) would be
    reached from two places in one run: refused."""
    site_of = {g: site for site, node in env.ssh.nodes.items() for g in node.groups}
    problems = []
    for host in every_host:
        places = {site_of.get(c, "(direct)") for c in host.components}
        if len(places) > 1:
            problems.append(
                f"{format_loc((*base, 'ssh', 'nodes'))}: host {host.name} is in groups "
                f"{', '.join(host.components)}, which sit at {', '.join(sorted(places))}; "
                "a host is reached from one place only"
            )
    return problems


_SSH_PATH_REFUSED = re.compile(r'["\\\x00-\x1f\x7f]|\$\{')
"""What ssh's option parser would not keep as part of a file name: a double quote or a
backslash (its quoting), `${` (it expands environment variables), control characters."""


def _ssh_path_problems(env: Environment, environment: str, base: Path) -> list[str]:
    """The SSH files the environment names, as ssh gets them (under the project's
    directory): each must reach ssh as the one file it names."""
    settings: dict[tuple[str | int, ...], str | None] = {
        ("private_key",): env.ssh.private_key,
        ("known_hosts",): env.ssh.known_hosts,
    }
    for index, hop in enumerate(env.ssh.jump):
        settings[("jump", index, "private_key")] = hop.private_key
        settings[("jump", index, "known_hosts")] = hop.known_hosts
    for site, node in env.ssh.nodes.items():
        settings[("nodes", site, "private_key")] = node.private_key
        settings[("nodes", site, "known_hosts")] = node.known_hosts
        for index, hop in enumerate(node.jump):
            settings[("nodes", site, "jump", index, "private_key")] = hop.private_key
            settings[("nodes", site, "jump", index, "known_hosts")] = hop.known_hosts
    problems = []
    for where, setting in settings.items():
        if setting is None:
            continue
        path = str(base / Path(setting).expanduser())
        if _SSH_PATH_REFUSED.search(path):
            problems.append(
                f"{format_loc(('environments', environment, 'ssh', *where))}: {path!r} holds a "
                "double quote, a backslash, `${` or a control character, which ssh would not "
                "read as part of the file's name; move or rename the file"
            )
    return problems


def _hosts(
    env: Environment,
    environment: str,
    service: Service,
    lab: LabInfo | None,
    project_dir: Path,
    problems: list[str],
) -> list[ResolvedHost]:
    by_name: dict[str, ResolvedHost] = {}
    key_setting = env.ssh.private_key
    default_key = project_dir / Path(key_setting).expanduser() if key_setting else None
    for component, group in env.groups.items():
        members: Sequence[Host]
        key = default_key
        selection = lab_selection(group)
        if selection is not None:
            path = format_loc(("environments", environment, "hosts", component))
            if lab is None or not lab.hosts:
                problems.append(
                    f"{path}: refers to the local lab, which is not up (run `deployer lab up`)"
                )
                continue
            members, key = lab.hosts[selection], lab.private_key
            if not members:
                problems.append(f"{path}: {group} selects none of the lab's {len(lab.hosts)} hosts")
                continue
        else:
            members = group  # type: ignore[assignment]
        resources = overlay(service.resources, env.resources.get(component))
        for host in members:
            name = host.inventory_name
            existing = by_name.get(name)
            if existing is not None:
                by_name[name] = replace(existing, components=(*existing.components, component))
                continue
            by_name[name] = ResolvedHost(
                name=name,
                address=host.address,
                port=host.port,
                user=host.user or env.ssh.user,
                components=(component,),
                private_key=key,
                resources=resources,
                private_address=host.private_address or host.address,
            )
    return list(by_name.values())
