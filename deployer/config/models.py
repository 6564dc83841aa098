"""The `deploy.yml` schema: one pydantic model per section.

Defaults and descriptions live here and nowhere else: `deployer schema` prints the JSON Schema
generated from these models and `deployer init` writes a starter file generated from them.
Environments may override the project-level `service`, `health`, `strategy`, `rollback`,
`monitoring` and `keep_releases`; only the keys an environment sets replace the project's
(see `resolve.py`).

`health` and `resources` live in modules of their own (re-exported here) so that `swarm`,
which this module imports, uses them without importing this module back.
"""

from __future__ import annotations

import re
import shlex
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from deployer.config.base import SecretRef, Section
from deployer.config.ci import Ci
from deployer.config.health import CommandCheck as CommandCheck
from deployer.config.health import Health as Health
from deployer.config.health import HttpCheck as HttpCheck
from deployer.config.health import TcpCheck as TcpCheck
from deployer.config.ledger import DEFAULT_PATH, LedgerConfig, path_as_string, string_or_mapping
from deployer.config.names import (
    AbsPath,
    Address,
    EnvVarName,
    Ident,
    MetricName,
    Name,
    RelPath,
    SingleLine,
    UserName,
    single_line,
)
from deployer.config.notify import Notification
from deployer.config.resources import Resources as Resources
from deployer.config.resources import cpu_cores as cpu_cores
from deployer.config.swarm import SwarmSettings

LAB_HOSTS = "lab"
"""A component whose hosts are given as this string takes the hosts of `deployer lab up`;
`lab[i]` takes the i-th (from 0) and `lab[i:j]` a slice, as Python slices them."""
_LAB = re.compile(r"lab(?:\[(-?[0-9]{1,3})\]|\[(-?[0-9]{0,3}):(-?[0-9]{0,3})\])?")


def lab_selection(group: object) -> slice | None:
    """The lab hosts a component's `hosts` string selects, or None when it names none."""
    if not isinstance(group, str):
        return None
    match = _LAB.fullmatch(group)
    if match is None:
        return None
    index, start, stop = match.groups()
    if index is not None:
        i = int(index)
        return slice(i, i + 1 if i != -1 else None)
    return slice(int(start) if start else None, int(stop) if stop else None)


class App(Section):
    name: Name = Field(description="Application name: names the service, the unit and paths.")


class Artifact(Section):
    path: str = Field(
        default=".",
        description="Directory packed into the release tarball, relative to deploy.yml; "
        "or a prebuilt .tar.gz. The default, the project itself, is safe: the credentials "
        "listed under `include` are never packed.",
    )
    build: SingleLine | None = Field(
        default=None,
        description="Local command run in `path` before packing (for example `make dist`).",
    )
    exclude: tuple[str, ...] = Field(
        default=(".git", "__pycache__", "*.pyc"),
        description="Glob patterns left out of the tarball, on top of the credentials that "
        "are never packed.",
    )
    include: tuple[str, ...] = Field(
        default=(),
        description="Paths (relative to `path`, globs allowed) to pack although they are "
        "left out by default: deploy.yml, the vault and its password file, the SSH keys and "
        "known_hosts files the config names, `.env`, `.env.*`, `*.pem`, `*.key`, `id_rsa*`, "
        "`id_ed25519*`, and private keys or vault files by content. `.deployer/` is never "
        "packed. Name each path explicitly.",
        examples=[["certs/ca.pem"]],
    )

    @field_validator("include")
    @classmethod
    def _explicit(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            single_line(pattern)
            parts = pattern.split("/")
            if pattern.startswith("/") or ".." in parts:
                raise ValueError(f"{pattern!r}: give a path relative to artifact.path")
            if not pattern.strip("*?[]/.!"):
                raise ValueError(f"{pattern!r} names nothing explicitly: name the files to pack")
            if ".deployer" in parts:
                raise ValueError(f"{pattern!r}: .deployer/ holds deployer's state, never packed")
        return value


class SharedPaths(Section):
    dirs: tuple[RelPath, ...] = Field(
        default=(), description="Directories kept across releases, linked into each release."
    )
    files: tuple[RelPath, ...] = Field(
        default=(), description="Files kept across releases, linked into each release."
    )


# deploy_to may be none of these nor inside one: staging owns and resets the directory (and
# /proc, /tmp, ... are virtual, shared with every local user or wiped at boot).
SYSTEM_TREES = frozenset(
    """/bin /boot /dev /etc /lib /lib32 /lib64 /libx32 /lost+found /proc /root /run /sbin /sys
    /tmp /usr/bin /usr/include /usr/lib /usr/lib32 /usr/lib64 /usr/libexec /usr/libx32
    /usr/sbin /usr/share /usr/src /var/backups /var/cache /var/lib/deployer /var/lock
    /var/log /var/mail /var/run /var/spool /var/tmp""".split()  # noqa: SIM905
)
# ...nor one of these itself (a directory of the app's own inside them is fine).
SYSTEM_DIRS = frozenset(
    """/ /home /media /mnt /opt /snap /srv /usr /usr/games /usr/local /usr/local/bin
    /usr/local/etc /usr/local/games /usr/local/include /usr/local/lib /usr/local/man
    /usr/local/sbin /usr/local/share /usr/local/src /var /var/lib /var/local /var/opt
    /var/www""".split()  # noqa: SIM905
)


def system_directory(path: str) -> str | None:
    """Why `path` is a system directory (or inside one), or None when it is not."""
    if path in SYSTEM_DIRS:
        return "a system directory"
    parent, _, _ = path.rpartition("/")
    if parent == "/home":
        return "a home directory"
    for tree in SYSTEM_TREES:
        if path == tree or path.startswith(tree + "/"):
            return "a system directory" if path == tree else f"inside the system directory {tree}"
    return None


def no_continuation(value: str | None) -> str | None:
    """A start command may not end in a backslash (systemd would join the next unit line)."""
    if value is not None and value.rstrip().endswith("\\"):
        raise ValueError(
            "must not end with a backslash: systemd would join the next line of the unit "
            "to the command"
        )
    return value


class Service(Section):
    command: SingleLine | None = Field(
        default=None,
        description="Start command, run from the release directory. "
        "Required here or in every environment.",
        examples=["/usr/bin/python3 app.py"],
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="TCP port the service listens on."
    )
    listen: Literal["port", "socket"] = Field(
        default="port",
        description="How the service gets its port. `port`: the app binds `port` itself "
        "(deployer passes it as $PORT); a restart closes the port for as long as the old "
        "process takes to stop and the new one to bind. `socket`: systemd holds the port and "
        "hands it to the app as fd 3 (socket activation: the app must accept an inherited "
        "listening socket: gunicorn does by itself, uvicorn with --fd 3); requests wait in "
        "the socket's backlog across a restart. In the command, write ${PORT} inside a word "
        "(--bind 0.0.0.0:${PORT}); systemd expands $PORT only as a word of its own.",
    )
    user: UserName | None = Field(
        default=None, description="System user the service runs as (default: the app name)."
    )
    deploy_to: AbsPath | None = Field(
        default=None, description="Base directory on hosts (default: /srv/<app name>)."
    )
    env: dict[EnvVarName, SingleLine] = Field(
        default_factory=dict, description="Environment variables of the service (not secret)."
    )
    shared: SharedPaths = Field(default_factory=SharedPaths)
    resources: Resources = Field(
        default_factory=Resources, description="Default resource limits of the service."
    )
    uses: tuple[Accessory, ...] = Field(
        default=(),
        description="Accessories it connects to: `database` gives it DATABASE_URL, `cache` "
        "REDIS_URL, in its environment file.",
    )

    @field_validator("command")
    @classmethod
    def _no_continuation(cls, value: str | None) -> str | None:
        return no_continuation(value)

    @field_validator("deploy_to")
    @classmethod
    def _not_a_system_directory(cls, value: str | None) -> str | None:
        why = None if value is None else system_directory(value)
        if why is not None:
            raise ValueError(
                f"{value!r} is {why}: deployer owns and resets deploy_to; use a directory of "
                "the app's own, such as /srv/<app name>"
            )
        return value


_ROUTE = re.compile(r"/(?:[A-Za-z0-9._~-]+/?)*")


def _route(value: str | None) -> str | None:
    if value is None:
        return value
    if not _ROUTE.fullmatch(value) or "//" in value:
        raise ValueError(
            f"{value!r} is not a route prefix: '/' or '/segment[/segment...]' of letters, "
            "digits, '.', '_', '~', '-'"
        )
    if value.startswith(("/.well-known/acme-challenge", "/.deployer")):
        raise ValueError(f"{value!r} is reserved for ACME and deployer's own checks")
    return value


class ServiceSpec(Section):
    """One service of a full-stack app (`services.<name>`): its kind, the component whose
    hosts run it, its own artifact, and how it runs. Every service of a release is staged on
    every host of its component before anything switches."""

    kind: Literal["web", "worker", "static"] = Field(
        default="web",
        description="`web`: a process on `port`, behind the edge proxy; `worker`: a process "
        "without a port; `static`: files the edge proxy serves at `/`.",
    )
    component: Ident = Field(description="The component (host group) that runs it.")
    artifact: Artifact | None = Field(
        default=None,
        description="Its files: `path` (default: the directory named after the service, "
        "next to deploy.yml), `build`, `exclude`, `include`.",
    )
    command: SingleLine | None = Field(
        default=None, description="Start command (web and worker), run from its directory."
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Port of a web service (its first instance)."
    )
    listen: Literal["port", "socket"] = Field(
        default="port", description="As `service.listen`, for a web service."
    )
    env: dict[EnvVarName, SingleLine] = Field(
        default_factory=dict, description="Environment variables of this service (not secret)."
    )
    health: Health | None = Field(
        default=None,
        description="Its health checks (default for a web service: the project's `health`; "
        "a worker is healthy while its process runs).",
    )
    resources: Resources | None = Field(
        default=None,
        description="Its limits (default: `resources.<component>` of the environment).",
    )
    uses: tuple[Accessory, ...] = Field(
        default=(),
        description="Accessories it connects to: `database` gives it DATABASE_URL, `cache` "
        "REDIS_URL, in its environment file.",
    )
    depends_on: tuple[Ident, ...] = Field(
        default=(),
        description="Services switched (and healthy) before this one on every host.",
    )
    route: str | None = Field(
        default=None,
        description="URL prefix the edge proxy sends to a web service (for example `/api`); "
        "a static service always serves `/`.",
    )
    root: RelPath | None = Field(
        default=None,
        description="For a static service: the directory of its artifact the proxy serves "
        "(for example `dist`, where its build writes; default: the artifact itself).",
    )

    @field_validator("route")
    @classmethod
    def _route_prefix(cls, value: str | None) -> str | None:
        return _route(value)

    @field_validator("command")
    @classmethod
    def _no_continuation(cls, value: str | None) -> str | None:
        return no_continuation(value)


_PERCENT = re.compile(r"([1-9]\d?|100)%")


def _batch_size(value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and _PERCENT.fullmatch(value):
        return value
    raise ValueError(f"{value!r} is not a batch size: a count (1 or more) or a percentage ('25%')")


BatchSize = Annotated[int | str, BeforeValidator(_batch_size)]


def _share(value: object) -> int:
    """A canary step: the percent of requests the new release takes, as 10 or '10%'."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100:
        return value
    if isinstance(value, str) and _PERCENT.fullmatch(value):
        return int(value[:-1])
    raise ValueError(f"{value!r} is not a share of traffic: a percentage from 1 to 100 (10, '10%')")


Share = Annotated[int, BeforeValidator(_share)]


class Strategy(Section):
    kind: Literal["rolling", "all_at_once", "blue_green", "canary"] = Field(
        default="rolling",
        description="`rolling`: in batches of `batch_size`; `all_at_once`: every host in one "
        "batch; `blue_green`: the new release starts next to the live one on every host (two "
        "slots on two ports), and the edge proxy flips to it once every host is healthy; "
        "`canary`: the same two slots, the edge proxy's weighted upstreams giving the new "
        "slots each of `steps` in turn, each followed by an analysis.",
    )
    batch_size: BatchSize = Field(
        default="50%", description="Hosts switched at once: a count or a percentage."
    )
    failure_budget: int = Field(
        default=0,
        ge=0,
        description="Hosts that may fail their health check before the rollout is rolled back.",
    )
    retries: int = Field(
        default=0,
        ge=0,
        le=10,
        description="Times the preparation is tried again when hosts are unreachable (an SSH "
        "timeout, a host rebooting), before anything is switched; then the deploy gives up "
        "with exit 4.",
    )
    retry_delay: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Seconds before the first retry; each later one waits twice as long.",
    )
    keep_warm: int | None = Field(
        default=None,
        ge=0,
        le=86400,
        description="`blue_green` and `canary`: seconds the previous slot keeps running "
        "after the flip, so a rollback within them is a flip back; at least `rollback.watch` "
        "(default 300).",
    )
    steps: list[Share] | None = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="`canary` only: the percent of requests the new release takes at each "
        "step (10 or '10%'), strictly increasing, the last 100 (the flip); default "
        "[10, 50, 100].",
    )
    analysis: int | None = Field(
        default=None,
        ge=1,
        le=3600,
        description="`canary` only: seconds of the analysis after each step short of 100 % "
        "(the new release's error ratio and p95 latency against the stable one's, by "
        "Prometheus); default `rollback.watch`; at least two scrape intervals.",
    )
    auto_promote: bool | None = Field(
        default=None,
        description="`canary` only: go on to the next step once an analysis passed (default "
        "true); false waits for `deployer promote ENV` or `deployer abort ENV` after each.",
    )
    decision_timeout: int | None = Field(
        default=None,
        ge=10,
        le=86400,
        description="`canary` with `auto_promote: false` only: seconds a step waits for "
        "`deployer promote` or `deployer abort` before the canary is aborted (default 3600; "
        "at most `lock_ttl`).",
    )


class HealthRule(Section):
    """How the health checks judge the fleet during the watch window (`rollback.watch`)."""

    threshold: int = Field(default=3, ge=1, description="Consecutive failed checks.")
    period: int = Field(default=60, ge=1, description="Seconds between checks.")
    grace: int = Field(
        default=0,
        ge=0,
        description="Seconds at the start of the watch window whose failed checks are "
        "reported but not counted (the app warming up); shorter than `rollback.watch`.",
    )


class RateRule(Section):
    threshold: float = Field(default=5.0, gt=0, le=100, description="Percent of requests.")
    window: int = Field(default=300, ge=1, description="Seconds.")


class LatencyRule(Section):
    threshold_ms: int = Field(default=2000, ge=1)
    window: int = Field(default=300, ge=1, description="Seconds.")


class Rollback(Section):
    automatic: bool = Field(default=True, description="Roll back by itself on failure.")
    watch: int = Field(
        default=0,
        ge=0,
        le=3600,
        description="Seconds to watch the fleet after the rollout before declaring success.",
    )
    health_checks: HealthRule = Field(default_factory=HealthRule)
    error_rate: RateRule = Field(default_factory=RateRule)
    response_time: LatencyRule = Field(default_factory=LatencyRule)


class Secrets(Section):
    vault_file: str | None = Field(
        default=None, description="ansible-vault encrypted YAML, relative to deploy.yml."
    )
    vault_password_file: str | None = Field(default=None)
    vault_password_env: EnvVarName | None = Field(
        default=None, description="Variable holding the vault password."
    )
    env: dict[EnvVarName, SecretRef] = Field(
        default_factory=dict,
        description="Service environment variables whose values are secret: references only.",
    )

    @model_validator(mode="after")
    def _vault_complete(self) -> Secrets:
        uses_vault = any(ref.vault for ref in self.env.values())
        if uses_vault and not self.vault_file:
            raise ValueError("secrets refer to the vault but 'vault_file' is not set")
        if self.vault_file and not (self.vault_password_file or self.vault_password_env):
            raise ValueError("'vault_file' needs 'vault_password_file' or 'vault_password_env'")
        return self


class Host(Section):
    address: Address = Field(description="Hostname or IP address to connect to.")
    name: Name | None = Field(default=None, description="Inventory name (default: address).")
    port: int = Field(default=22, ge=1, le=65535)
    user: UserName | None = Field(default=None, description="SSH user (default: ssh.user).")
    private_address: Address | None = Field(
        default=None,
        description="Address the environment's other hosts (Prometheus) reach this host at "
        "(default: address).",
    )

    @property
    def inventory_name(self) -> str:
        return self.name or self.address


class JumpHost(Section):
    """One hop on the way to the environment's hosts (a bastion), reached through the hops
    listed before it; its host key is checked like every host's."""

    address: Address = Field(description="Hostname or IP address, as the previous hop sees it.")
    port: int = Field(default=22, ge=1, le=65535)
    user: UserName | None = Field(default=None, description="SSH user (default: ssh.user).")
    private_key: str | None = Field(
        default=None, description="Private key file (default: ssh.private_key)."
    )
    known_hosts: str | None = Field(
        default=None,
        description="known_hosts file with this hop's key (default: ssh.known_hosts).",
    )


class ExecNode(Section):
    """An execution node at a site: a host deployer installs ansible-runner on, streams each
    run to over SSH (ansible-runner's transmit/worker/process), and that fans out to the
    site's hosts itself. Its host key is checked like every host's."""

    address: Address = Field(description="Hostname or IP address the control host reaches.")
    port: int = Field(default=22, ge=1, le=65535)
    user: UserName | None = Field(default=None, description="SSH user (default: ssh.user).")
    private_key: str | None = Field(
        default=None, description="Private key file (default: ssh.private_key)."
    )
    known_hosts: str | None = Field(
        default=None,
        description="known_hosts file with this node's key (default: ssh.known_hosts).",
    )
    groups: list[Ident] = Field(
        min_length=1,
        description="The environment's host groups (components) at this site: their hosts "
        "are reached from this node, never from the control host.",
    )
    jump: list[JumpHost] = Field(
        default_factory=list,
        max_length=8,
        description="Bastions between the control host and this node, in order.",
    )

    @field_validator("jump")
    @classmethod
    def _no_loop(cls, hops: list[JumpHost]) -> list[JumpHost]:
        return _chain_without_loop(hops)


def _chain_without_loop(hops: list[JumpHost]) -> list[JumpHost]:
    seen: set[tuple[str, int]] = set()
    for index, hop in enumerate(hops):
        key = (hop.address.lower(), hop.port)
        if key in seen:
            raise ValueError(
                f"hop {index} ({hop.address}:{hop.port}) is already a hop of this chain "
                "(a chain that loops never arrives)"
            )
        seen.add(key)
    return hops


class Ssh(Section):
    user: UserName = Field(default="deploy", description="Default SSH user.")
    private_key: str | None = Field(default=None, description="Private key file.")
    known_hosts: str = Field(
        default=".deployer/known_hosts",
        description="known_hosts file deployer checks host keys against (relative to "
        "deploy.yml). Host key checking is never turned off.",
    )
    connect_timeout: int = Field(default=10, ge=1, le=300)
    jump: list[JumpHost] = Field(
        default_factory=list,
        max_length=8,
        description="Bastions between the control host and every host, in order: the "
        "first is reached directly, each next one through those before it.",
    )

    nodes: dict[Name, ExecNode] = Field(
        default_factory=dict,
        max_length=16,
        description="Execution nodes by site name: each runs Ansible for the hosts of its "
        "groups (target ssh). Hosts of the other groups are reached from the control host.",
    )

    @field_validator("jump")
    @classmethod
    def _no_loop(cls, hops: list[JumpHost]) -> list[JumpHost]:
        return _chain_without_loop(hops)


ACCESSORY_VERSIONS = {"postgresql": ("15",), "redis": ("7",)}
"""The major versions Debian 12 (the hosts' release) packages, per accessory."""

Accessory = Literal["database", "cache"]
StorageSize = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,8}(Ki|Mi|Gi|Ti)$")]


class Backup(Section):
    """Dumps of the app's database that deployer takes itself (pg_dump, kept on its host)."""

    before_migrate: bool = Field(
        default=False,
        description="Take a dump before hooks.before_switch runs (the migrations) in every "
        "deploy, recorded in the ledger: `deployer db backups ENV` lists them, `deployer db "
        "restore ENV ID` restores one.",
    )
    keep: int = Field(default=7, ge=1, le=1000, description="Dumps kept on the host.")


class Database(Section):
    """The environment's PostgreSQL, set up by deployer from Debian's packages on the hosts
    of `component`, bound to their private address (target ssh)."""

    type: Literal["postgresql"] = Field(description="The database server (postgresql).")
    version: SingleLine = Field(
        default="15", description="Major version; Debian 12 hosts install 15 only."
    )
    storage: StorageSize | None = Field(
        default=None,
        description="Space the data needs (for example 5Gi): preflight checks that the data "
        "directory's filesystem has it free before anything is set up.",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Servers: the primary and replicas - 1 streaming-replication standbys, on "
        "the component's further hosts.",
    )
    component: Ident = Field(
        default="database", description="The component (host group) whose hosts run it."
    )
    port: int = Field(default=5432, ge=1, le=65535)
    name: Ident | None = Field(
        default=None,
        description="Name of the app's database and role (default: the app name with '_' "
        "for '-' and '.').",
    )
    backup: Backup = Field(default_factory=Backup)


class Cache(Section):
    """The environment's Redis, set up by deployer from Debian's package on the host of
    `component`, bound to its private address, with a password (target ssh)."""

    type: Literal["redis"] = Field(description="The cache server (redis).")
    version: SingleLine = Field(
        default="7", description="Major version; Debian 12 hosts install 7 only."
    )
    component: Ident = Field(
        default="cache", description="The component (host group) whose host runs it."
    )
    port: int = Field(default=6379, ge=1, le=65535)


HookName = Literal["before_switch", "after_switch", "after_rollback", "after_failure"]


class Hook(Section):
    """A command run once per deploy on one host of its service's component, in the new
    release, as the service user, with the service's environment (secrets and accessories'
    URLs included). Never through a shell: the command is split into words like a shell
    would, without expansions."""

    command: SingleLine = Field(examples=["alembic upgrade head"])
    service: Ident | None = Field(
        default=None,
        description="The service whose directory, environment and hosts it runs with (needed "
        "with `services:`).",
    )
    timeout: int = Field(default=300, ge=1, le=86400, description="Seconds before it is killed.")

    @field_validator("command")
    @classmethod
    def _words(cls, value: str) -> str:
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot be split into words: {exc}") from None
        if not words:
            raise ValueError("is empty")
        return value

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.command)


class Hooks(Section):
    """Commands run at points of a deploy. `before_switch` (migrations) runs after every
    host is staged and before any is switched: when it fails nothing is switched.
    `after_switch` runs once the whole fleet is on the new version, `after_rollback` after
    an automatic rollback, `after_failure` after any failed deploy; a failure of those three
    is reported and changes nothing else."""

    before_switch: Hook | None = None
    after_switch: Hook | None = None
    after_rollback: Hook | None = None
    after_failure: Hook | None = None


class AppMetrics(Section):
    """Names of the app's own Prometheus metrics, spliced into PromQL."""

    requests: MetricName = Field(
        default="http_requests_total",
        description="Counter of HTTP requests served, labelled by status code.",
    )
    status_label: MetricName = Field(
        default="code", description="Label of `requests` holding the HTTP status code."
    )
    duration: MetricName = Field(
        default="http_request_duration_seconds",
        description="Histogram of request durations in seconds (its base name, without _bucket).",
    )


class Monitoring(Section):
    """Prometheus and node exporter, set up by deployer when `features.monitoring` is on."""

    server: Name | None = Field(
        default=None,
        description="Inventory name of the host that runs Prometheus (default: the primary).",
    )
    metrics_path: str = Field(
        default="/metrics",
        pattern=r"^/[A-Za-z0-9._~/-]*$",
        description="Path of the app's metrics endpoint on service.port.",
    )
    metrics: AppMetrics = Field(default_factory=AppMetrics)
    scrape_interval: int = Field(default=5, ge=1, le=300, description="Seconds.")
    retention: str = Field(
        default="15d", pattern=r"^\d+[smhdwy]$", description="How long Prometheus keeps data."
    )
    prometheus_port: int = Field(default=9090, ge=1, le=65535)
    node_exporter_port: int = Field(default=9100, ge=1, le=65535)
    postgres_exporter_port: int = Field(
        default=9187,
        ge=1,
        le=65535,
        description="PostgreSQL exporter's port, on the database hosts.",
    )
    redis_exporter_port: int = Field(
        default=9121, ge=1, le=65535, description="Redis exporter's port, on the cache's host."
    )
    min_requests: int = Field(
        default=20,
        ge=0,
        description="A watch-window evaluation over fewer requests than this is not judged.",
    )


FEATURE_ENV = {"debug": "DEPLOYER_DEBUG", "logging": "DEPLOYER_LOGGING"}
"""The environment variable through which each of these features reaches the services."""


class Features(Section):
    debug: bool = Field(
        default=False,
        description="Passed to the services as DEPLOYER_DEBUG=1 (or 0): the app turns its "
        "debug mode on with it. Never on in production.",
    )
    monitoring: bool = Field(
        default=False,
        description="Prometheus and node exporter set up by deployer, and the watch window's "
        "error-rate and response-time rules (targets ssh and swarm).",
    )
    logging: bool = Field(
        default=True,
        description="Passed to the services as DEPLOYER_LOGGING=1 (or 0): the app writes its "
        "request log with it.",
    )
    cdn: bool = Field(
        default=False,
        description="Long-lived cache headers for fingerprinted static assets (needs the "
        "edge proxy; refused until it exists).",
    )
    ssl: bool = Field(
        default=False,
        description="HTTPS at the edge proxy with the certificate of `tls`; HTTP redirects.",
    )


class Proxy(Section):
    """The edge proxy: nginx from Debian in front of the app's instances (target ssh)."""

    component: Ident | None = Field(
        default=None,
        description="Component whose hosts run the proxy (default: every host). Each proxy "
        "balances over the app on every host, at their private addresses, and a host being "
        "switched or rolled back is drained from it first.",
    )
    http_port: int = Field(default=80, ge=1, le=65535, description="Port the proxy serves.")
    https_port: int = Field(
        default=443, ge=1, le=65535, description="Port the proxy serves HTTPS on (features.ssl)."
    )


LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


class Acme(Section):
    """A certificate from an ACME CA, got and renewed by certbot (Debian's package) on the
    proxy host: http-01 challenges answered from nginx's webroot, renewals by certbot's
    timer, nginx reloaded by its deploy hook."""

    server: str = Field(
        default=LETS_ENCRYPT,
        pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$",
        description="The CA's ACME directory URL (default: Let's Encrypt).",
    )
    email: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$",
        description="Contact address registered with the CA (expiry notices); without it the "
        "account is registered without one.",
    )
    ca_bundle: AbsPath | None = Field(
        default=None,
        description="PEM bundle on the proxy host that signs the CA's own HTTPS, for a private "
        "ACME server; certbot trusts it when it gets and renews the certificate.",
    )


class Tls(Section):
    """Where the edge proxy's certificate comes from, when `features.ssl` is on: secret
    references to a certificate and key, or `acme`."""

    certificate: SecretRef | None = Field(
        default=None,
        description="The PEM certificate chain (the server's certificate first): a reference.",
    )
    key: SecretRef | None = Field(
        default=None, description="Its PEM private key: a reference, never the value."
    )
    acme: Acme | None = Field(
        default=None, description="Get the certificate from an ACME CA instead (needs `domain`)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> Tls:
        given = [name for name in ("certificate", "key") if getattr(self, name) is not None]
        if self.acme is not None and given:
            raise ValueError(
                f"give either acme or certificate and key, not both ({', '.join(given)} set)"
            )
        if self.acme is None and len(given) != 2:
            missing = "key" if given == ["certificate"] else "certificate"
            raise ValueError(f"{missing} is missing: give certificate and key references, or acme")
        return self


LabHosts = Annotated[str, Field(pattern=r"^lab(\[-?[0-9]{1,3}\]|\[-?[0-9]{0,3}:-?[0-9]{0,3}\])?$")]
ComponentHosts = Annotated[list[Host], Field(min_length=1)] | LabHosts


class TerraformHosts(Section):
    """Hosts that Terraform creates (`deployer generate terraform ENV` writes the
    Terraform), read from what `terraform output -json` wrote: resolved before any host is
    touched, and refused (exit 2, naming this path and the file) when that file does not hold
    exactly these components and counts."""

    from_terraform: SingleLine = Field(
        description="The file `terraform output -json` wrote, relative to deploy.yml: its "
        "`deployer_hosts` output gives each component's hosts (name, address, "
        "private_address).",
        examples=["infra/production/outputs.json"],
    )
    components: dict[Ident, Annotated[int, Field(ge=1, le=100)]] = Field(
        min_length=1,
        description="Hosts per component: the generated Terraform creates this many, named "
        "<component>-1, <component>-2, ..., and the outputs file must hold exactly these.",
        examples=[{"web": 2, "data": 1}],
    )


def _hosts_kind(value: Any) -> str:
    """Which form an environment's `hosts` takes: Terraform's outputs, or groups of hosts."""
    is_terraform = isinstance(value, TerraformHosts) or (
        isinstance(value, dict) and "from_terraform" in value
    )
    return "hosts[from_terraform]" if is_terraform else "hosts[components]"


# The tags carry brackets so that error paths drop them, as they drop pydantic's own labels.
EnvironmentHosts = Annotated[
    Annotated[dict[Ident, ComponentHosts], Tag("hosts[components]")]
    | Annotated[TerraformHosts, Tag("hosts[from_terraform]")],
    Discriminator(_hosts_kind),
]


class Environment(Section):
    target: Literal["ssh", "swarm", "nomad"] = Field(
        default="ssh", description="Where releases run."
    )
    hosts: EnvironmentHosts = Field(
        description="Hosts per component group. The string 'lab' takes the hosts of "
        "`deployer lab up`; 'lab[0]' the first of them, 'lab[1:3]' the second and third. Or "
        "`{from_terraform: outputs.json, components: {web: 2}}`: the hosts Terraform created."
    )
    domain: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9.-]+$",
        description="The app's public name: the edge proxy's server name (turns the proxy on).",
    )
    proxy: Proxy | None = Field(
        default=None,
        description="Edge proxy settings; the proxy runs when `domain` or this is set.",
    )
    tls: Tls | None = Field(
        default=None, description="The edge proxy's certificate, for `features.ssl`."
    )
    replicas: dict[Ident, int] = Field(default_factory=dict, description="Replicas per component.")
    resources: dict[Ident, Resources] = Field(
        default_factory=dict, description="Resource limits per component."
    )
    database: Database | None = Field(
        default=None, description="PostgreSQL for the app, set up by deployer (target ssh)."
    )
    cache: Cache | None = Field(
        default=None, description="Redis for the app, set up by deployer (target ssh)."
    )
    features: Features = Field(default_factory=Features)
    ssh: Ssh = Field(default_factory=Ssh)
    primary: Name | None = Field(
        default=None, description="Host that holds the deployment lock (default: the first)."
    )
    swarm: SwarmSettings | None = Field(
        default=None, description="Docker Swarm settings, for `target: swarm`."
    )
    notifications: list[Notification] = Field(
        default_factory=list,
        description="Where deploy starts and outcomes are reported (webhook, slack, email, "
        "pagerduty); secrets are references.",
    )
    # Project-level sections this environment overrides (only the keys it sets).
    monitoring: Monitoring | None = None
    service: Service | None = None
    health: Health | None = None
    strategy: Strategy | None = None
    rollback: Rollback | None = None
    keep_releases: int | None = Field(default=None, ge=2, le=100)

    @field_validator("hosts")
    @classmethod
    def _hosts_not_empty(
        cls, value: TerraformHosts | dict[str, ComponentHosts]
    ) -> TerraformHosts | dict[str, ComponentHosts]:
        if isinstance(value, TerraformHosts):
            return value
        if not value:
            raise ValueError("name at least one component with hosts")
        seen: dict[str, Host] = {}
        for group in value.values():
            for host in group if isinstance(group, list) else ():
                other = seen.setdefault(host.inventory_name, host)
                if other != host:
                    raise ValueError(
                        f"host name {host.inventory_name!r} is used for two different hosts"
                    )
        return value

    @property
    def groups(self) -> dict[str, ComponentHosts]:
        """The hosts per component. An environment whose hosts come from Terraform has them
        only once its outputs were read into it (`resolve` does that first)."""
        if isinstance(self.hosts, TerraformHosts):
            raise TypeError("the Terraform outputs of this environment were not read")
        return self.hosts


class Project(Section):
    """A whole `deploy.yml`."""

    app: App
    artifact: Artifact = Field(default_factory=Artifact)
    service: Service = Field(default_factory=Service)
    services: dict[Ident, ServiceSpec] = Field(
        default_factory=dict,
        description="The app's services (web, worker, static), one release for all of them; "
        "without it the app is the one `service`.",
    )
    health: Health = Field(default_factory=Health)
    strategy: Strategy = Field(default_factory=Strategy)
    rollback: Rollback = Field(default_factory=Rollback)
    hooks: Hooks = Field(default_factory=Hooks, description="Commands run at points of a deploy.")
    keep_releases: int = Field(
        default=5, ge=2, le=100, description="Releases kept on each host (current included)."
    )
    secrets: Secrets = Field(default_factory=Secrets)
    monitoring: Monitoring = Field(
        default_factory=Monitoring,
        description="Prometheus settings, used where an environment turns features.monitoring on.",
    )
    ledger: Annotated[LedgerConfig, BeforeValidator(path_as_string)] = Field(
        default_factory=LedgerConfig,
        description="Release ledger: a SQLite file of this checkout (`ledger: PATH`, relative "
        f"to deploy.yml, default {DEFAULT_PATH}), or the team's PostgreSQL database "
        "(`{url, password}`), which every control host deploying the app shares.",
        json_schema_extra=string_or_mapping,
    )
    lock_ttl: int = Field(
        default=3600,
        ge=60,
        description="Seconds after which a deployment lock is reported stale.",
    )
    ci: Ci = Field(
        default_factory=Ci,
        description="The CI/CD pipeline `deployer generate ci` writes from this file.",
    )
    environments: dict[Name, Environment] = Field(description="Where the app is deployed.")

    @field_validator("environments")
    @classmethod
    def _some_environment(cls, value: dict[str, Environment]) -> dict[str, Environment]:
        if not value:
            raise ValueError("define at least one environment")
        return value

    @model_validator(mode="after")
    def _vault_for_notifications(self) -> Project:
        from deployer.config.notify import secret_refs

        for name, env in self.environments.items():
            if any(r.vault for r in secret_refs(env.notifications).values()) and not (
                self.secrets.vault_file
            ):
                raise ValueError(
                    f"environments.{name}.notifications refer to the vault but "
                    "secrets.vault_file is not set"
                )
        return self
