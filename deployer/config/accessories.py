"""The accessories of an environment (`database`, `cache`) and the deploy hooks, resolved:
which hosts run each, what the services that use them are given, and every reason a config
cannot be set up as written (each naming its path).

Pure: it sees host names per component, never a file or a host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from deployer.config.loader import format_loc
from deployer.config.models import ACCESSORY_VERSIONS, Environment, Hook, Project

ACCESSORY_ENV = {"database": "DATABASE_URL", "cache": "REDIS_URL"}
"""The variable through which each accessory reaches the services that use it."""
_SIZE = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
_BRAND = {"postgresql": "PostgreSQL", "redis": "Redis"}


@dataclass(frozen=True)
class ResolvedAccessory:
    """One accessory of one environment."""

    kind: str  # database | cache
    engine: str  # postgresql | redis
    version: str
    component: str
    hosts: tuple[str, ...]
    """The hosts that run it: the primary first, then standbys."""
    port: int
    name: str
    """Its instance's name on the hosts (`<app>-<environment>`): credentials, Redis unit."""
    database: str = ""
    """PostgreSQL: the app's database and role."""
    storage_bytes: int = 0
    backup_keep: int = 0
    """PostgreSQL: dumps kept on its host; 0 when deploys take none (backup.before_migrate)."""

    @property
    def primary(self) -> str:
        return self.hosts[0]

    @property
    def standbys(self) -> tuple[str, ...]:
        """PostgreSQL: the hosts that follow the primary (database.replicas - 1)."""
        return self.hosts[1:]

    @property
    def variable(self) -> str:
        return ACCESSORY_ENV[self.kind]

    @property
    def credentials(self) -> tuple[str, ...]:
        """The credentials it has: its password, and a database's replication password once
        it has standbys."""
        return ("password", "replication_password") if self.standbys else ("password",)

    def vault_key(self, credential: str) -> str:
        """The key under which the project's vault keeps `credential`
        (`deployer.<app>-<env>.<kind>.<credential>`)."""
        return f"deployer.{self.name}.{self.kind}.{credential}"


@dataclass(frozen=True)
class ResolvedHook:
    name: str  # before_switch | after_switch | after_rollback | after_failure
    argv: tuple[str, ...]
    service: str | None
    """The service it runs as (None: the app's one service)."""
    directory: str
    """Its working directory inside the release ('' for the release itself)."""
    host: str
    timeout: int
    uses: tuple[str, ...]


def storage_bytes(value: str) -> int:
    """`5Gi` -> bytes (the model's pattern guarantees the shape)."""
    match = re.fullmatch(r"([0-9]+)(Ki|Mi|Gi|Ti)", value)
    if match is None:
        raise ValueError(value)
    return int(match.group(1)) * _SIZE[match.group(2)]


def instance_name(app: str, environment: str) -> str:
    """A name the hosts' tools accept (`[a-z0-9][a-z0-9_-]*`) for the app's environment."""
    name = re.sub(r"[^a-z0-9_-]", "-", f"{app}-{environment}".lower()).strip("-_") or "app"
    return name[:63]


def accessory_components(env: Environment) -> dict[str, str]:
    """Accessory kind -> the component that runs it."""
    out = {}
    if env.database is not None:
        out["database"] = env.database.component
    if env.cache is not None:
        out["cache"] = env.cache.component
    return out


def resolve_accessories(
    project: Project,
    env: Environment,
    environment: str,
    by_component: Mapping[str, Sequence[str]],
    problems: list[str],
) -> tuple[ResolvedAccessory, ...]:
    base = ("environments", environment)
    out: list[ResolvedAccessory] = []
    for kind, spec in (("database", env.database), ("cache", env.cache)):
        if spec is None:
            continue
        loc = (*base, kind)
        if env.target != "ssh":
            problems.append(
                f"{format_loc(loc)}: accessories are set up on target ssh only; target "
                f"{env.target!r} would not run it"
            )
            continue
        available = ACCESSORY_VERSIONS[spec.type]
        if spec.version not in available:
            problems.append(
                f"{format_loc((*loc, 'version'))}: {_BRAND[spec.type]} {spec.version} cannot "
                f"be installed on the hosts (Debian 12 packages {', '.join(available)}); "
                f"give {available[0]}"
            )
        members = list(by_component.get(spec.component, ()))
        if spec.component not in env.groups:
            problems.append(
                f"{format_loc((*loc, 'component'))}: no component {spec.component!r} in "
                f"{format_loc((*base, 'hosts'))} ({', '.join(env.groups)})"
            )
            continue
        wanted = getattr(spec, "replicas", 1)
        if not members:
            continue  # the component's hosts did not resolve: reported where they are named
        if len(members) < wanted:
            problems.append(
                f"{format_loc((*loc, 'replicas'))}: {wanted} servers need {wanted} hosts in "
                f"{spec.component}, which has {len(members)}"
            )
            continue
        database = ""
        if kind == "database":
            database = getattr(spec, "name", None) or re.sub(
                r"[^a-z0-9_]", "_", project.app.name.lower()
            )
        storage = getattr(spec, "storage", None)
        backup = getattr(spec, "backup", None)
        keep = backup.keep if backup is not None and backup.before_migrate else 0
        if backup is not None and "keep" in backup.model_fields_set and not backup.before_migrate:
            problems.append(
                f"{format_loc((*loc, 'backup', 'keep'))}: counts the dumps that "
                "backup.before_migrate takes, which is off; turn it on or remove the key"
            )
        if keep and project.hooks.before_switch is None:
            problems.append(
                f"{format_loc((*loc, 'backup', 'before_migrate'))}: the dump is taken before "
                "hooks.before_switch (the migrations), and there is none; set the hook or "
                "turn it off"
            )
        out.append(
            ResolvedAccessory(
                kind=kind,
                engine=spec.type,
                version=spec.version,
                component=spec.component,
                hosts=tuple(members[:wanted]),
                port=spec.port,
                name=instance_name(project.app.name, environment),
                database=database,
                storage_bytes=storage_bytes(storage) if storage else 0,
                backup_keep=keep,
            )
        )
    return tuple(out)


def uses_problems(
    env: Environment, environment: str, uses: Mapping[str, tuple[str, ...]]
) -> list[str]:
    """Services that use an accessory the environment does not have."""
    problems = []
    for where, kinds in uses.items():
        for kind in kinds:
            if getattr(env, kind) is None:
                problems.append(
                    f"{where}: uses the {kind}, which environment {environment} does not "
                    f"have (set {format_loc(('environments', environment, kind))})"
                )
    return problems


def resolve_hooks(
    project: Project,
    services: Mapping[str, tuple[tuple[str, ...], str, tuple[str, ...]]],
    app_hosts: Sequence[str],
    app_uses: tuple[str, ...],
    problems: list[str],
) -> dict[str, ResolvedHook]:
    """The configured hooks. `services` maps each process service to (its hosts, its
    directory, what it uses); for an app that is the one `service`, it is empty."""
    out: dict[str, ResolvedHook] = {}
    for name in ("before_switch", "after_switch", "after_rollback", "after_failure"):
        hook: Hook | None = getattr(project.hooks, name)
        if hook is None:
            continue
        loc = ("hooks", name)
        if not project.services and hook.service is not None:
            problems.append(
                f"{format_loc((*loc, 'service'))}: the app has no services: section; remove "
                "it (the hook runs with the app's one service)"
            )
            continue
        if project.services:
            if hook.service is None:
                problems.append(
                    f"{format_loc((*loc, 'service'))}: required with services: name the "
                    f"service it runs as ({', '.join(services) or 'none runs a process'})"
                )
                continue
            if hook.service not in services:
                known = ", ".join(services) or "none"
                what = "static service" if hook.service in project.services else "unknown service"
                problems.append(
                    f"{format_loc((*loc, 'service'))}: {what} {hook.service!r} (services that "
                    f"run a process: {known})"
                )
                continue
            hosts, directory, uses = services[hook.service]
        else:
            hosts, directory, uses = tuple(app_hosts), "", app_uses
        if not hosts:
            continue  # reported where the service's component is checked
        out[name] = ResolvedHook(
            name=name,
            argv=tuple(hook.argv),
            service=hook.service,
            directory=directory,
            host=hosts[0],
            timeout=hook.timeout,
            uses=uses,
        )
    return out
