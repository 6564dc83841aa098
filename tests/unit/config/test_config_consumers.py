"""Every key of deploy.yml reaches a consumer, or is refused: none is accepted and ignored.

Each leaf of the schema (walked from the models, so a new key shows up here by itself) must
have a probe below. A probe changes that key in a base config; the result must be either a
refusal (exit 2 with a path) or a change in what the plan hands to the hosts: the
inventory, the extra vars of every playbook, the units, the strategy plan, the Prometheus
set-up, the tarball. Keys consumed outside planning (the ledger, notifications, the vault,
Swarm's settings) name the test that proves their consumer instead.
"""

from __future__ import annotations

import copy
import json
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from deployer.artifact import for_services, for_target
from deployer.config.loader import load_project
from deployer.config.models import (
    Environment,
    Host,
    Project,
    Section,
    ServiceSpec,
    TerraformHosts,
)
from deployer.config.resolve import Target, resolve
from deployer.errors import ConfigError
from deployer.plan import extravars, strategy
from deployer.plan.accessories import backup_vars, hook_vars
from deployer.plan.inventory import build_inventory
from deployer.plan.units import units_by_host

BASE: dict[str, Any] = {
    "app": {"name": "shop"},
    "service": {"command": "/usr/bin/python3 app.py", "port": 8000},
    "health": {"http": {"path": "/healthz"}},
    "rollback": {"watch": 60},
    "environments": {
        "production": {
            "hosts": {
                "web": [
                    {"address": "10.0.0.1", "name": "web1"},
                    {"address": "10.0.0.2", "name": "web2"},
                ],
                "edge": [{"address": "10.0.0.3", "name": "edge1"}],
            },
            "domain": "base.example.com",
            "features": {"monitoring": True},
        }
    },
}
ENV = ("environments", "production")
HOST = (*ENV, "hosts", "web", 0)

Data = dict[str, Any]


def _set(*path: str | int, value: Any) -> Callable[[Data], None]:
    def probe(data: Data) -> None:
        node: Any = data
        for key in path[:-1]:
            node = node[key] if isinstance(key, int) else node.setdefault(key, {})
        node[path[-1]] = value

    return probe


def _ssl(certificate: dict[str, str], key: dict[str, str]) -> Callable[[Data], None]:
    """HTTPS on, with the certificate and key from these references."""

    def probe(data: Data) -> None:
        _set(*ENV, "features", "ssl", value=True)(data)
        _set(*ENV, "tls", value={"certificate": certificate, "key": key})(data)

    return probe


def _acme(**settings: str) -> Callable[[Data], None]:
    """HTTPS on, with a certificate from an ACME CA (one proxy host). Each key's own effect,
    against the defaults, is tested in tests/unit/plan/test_edge.py."""

    def probe(data: Data) -> None:
        _set(*ENV, "features", "ssl", value=True)(data)
        _set(*ENV, "proxy", value={"component": "edge"})(data)
        _set(*ENV, "tls", value={"acme": settings})(data)

    return probe


def _db(**settings: Any) -> Callable[[Data], None]:
    return _set(*ENV, "database", value={"type": "postgresql", "component": "edge", **settings})


def _cache(**settings: Any) -> Callable[[Data], None]:
    return _set(*ENV, "cache", value={"type": "redis", "component": "edge", **settings})


def _both(*probes: Callable[[Data], None]) -> Callable[[Data], None]:
    def probe(data: Data) -> None:
        for one in probes:
            one(data)

    return probe


PROBES: dict[str, Callable[[Data], None]] = {
    "app.name": _set("app", "name", value="store"),
    "artifact.path": _set("artifact", "path", value="sub"),
    "artifact.build": _set("artifact", "build", value="touch built.txt"),
    "artifact.exclude": _set("artifact", "exclude", value=["*.txt"]),
    "artifact.include": _set("artifact", "include", value=["secret.pem"]),
    "service.command": _set("service", "command", value="/bin/other"),
    "service.port": _set("service", "port", value=9000),
    "service.listen": _set("service", "listen", value="socket"),
    "service.user": _set("service", "user", value="someone"),
    "service.deploy_to": _set("service", "deploy_to", value="/opt/shop"),
    "service.env": _set("service", "env", value={"A": "b"}),
    "service.shared.dirs": _set("service", "shared", "dirs", value=["uploads"]),
    "service.shared.files": _set("service", "shared", "files", value=["local.ini"]),
    "service.resources.cpu": _set("service", "resources", "cpu", value=1),
    "service.resources.memory": _set("service", "resources", "memory", value="1Gi"),
    "health.http.path": _set("health", "http", "path", value="/ready"),
    "health.http.port": _set("health", "http", "port", value=8001),
    "health.http.status": _set("health", "http", "status", value=204),
    "health.http.body": _set("health", "http", "body", value="ok"),
    "health.http.timeout": _set("health", "http", "timeout", value=5),
    "health.tcp.port": _set("health", "tcp", "port", value=8001),
    "health.tcp.timeout": _set("health", "tcp", "timeout", value=5),
    "health.command.run": _set("health", "command", "run", value="/bin/true"),
    "health.command.timeout": _set("health", "command", value={"run": "/bin/true", "timeout": 3}),
    "health.command.user": _set("health", "command", value={"run": "/bin/true", "user": "root"}),
    "health.retries": _set("health", "retries", value=3),
    "health.interval": _set("health", "interval", value=3),
    "strategy.kind": _set("strategy", "kind", value="all_at_once"),
    "strategy.batch_size": _set("strategy", "batch_size", value=2),
    "strategy.failure_budget": _set("strategy", "failure_budget", value=1),
    "strategy.retries": _set("strategy", "retries", value=2),
    "strategy.retry_delay": _set("strategy", "retry_delay", value=5),
    "strategy.keep_warm": _set("strategy", "keep_warm", value=600),
    "strategy.steps": _set("strategy", "steps", value=[50, 100]),
    "strategy.analysis": _set("strategy", "analysis", value=30),
    "strategy.auto_promote": _set("strategy", "auto_promote", value=False),
    "strategy.decision_timeout": _set("strategy", "decision_timeout", value=60),
    "rollback.watch": _set("rollback", "watch", value=30),
    "rollback.health_checks.threshold": _set("rollback", "health_checks", "threshold", value=5),
    "rollback.health_checks.period": _set("rollback", "health_checks", "period", value=5),
    "rollback.health_checks.grace": _set("rollback", "health_checks", "grace", value=10),
    "rollback.error_rate.threshold": _set("rollback", "error_rate", "threshold", value=1),
    "rollback.error_rate.window": _set("rollback", "error_rate", "window", value=60),
    "rollback.response_time.threshold_ms": _set(
        "rollback", "response_time", "threshold_ms", value=100
    ),
    "rollback.response_time.window": _set("rollback", "response_time", "window", value=60),
    "keep_releases": _set("keep_releases", value=3),
    "monitoring.server": _set("monitoring", "server", value="web2"),
    "monitoring.metrics_path": _set("monitoring", "metrics_path", value="/m"),
    "monitoring.metrics.requests": _set("monitoring", "metrics", "requests", value="reqs"),
    "monitoring.metrics.status_label": _set("monitoring", "metrics", "status_label", value="s"),
    "monitoring.metrics.duration": _set("monitoring", "metrics", "duration", value="dur"),
    "monitoring.scrape_interval": _set("monitoring", "scrape_interval", value=10),
    "monitoring.retention": _set("monitoring", "retention", value="30d"),
    "monitoring.prometheus_port": _set("monitoring", "prometheus_port", value=9091),
    "monitoring.node_exporter_port": _set("monitoring", "node_exporter_port", value=9101),
    "monitoring.postgres_exporter_port": _both(
        _db(), _set("monitoring", "postgres_exporter_port", value=9188)
    ),
    "monitoring.redis_exporter_port": _both(
        _cache(), _set("monitoring", "redis_exporter_port", value=9122)
    ),
    "monitoring.min_requests": _set("monitoring", "min_requests", value=5),
    "lock_ttl": _set("lock_ttl", value=600),
    "environments.*.target": _set(*ENV, "target", value="nomad"),
    "environments.*.hosts.*[].address": _set(*HOST, "address", value="10.0.0.9"),
    "environments.*.hosts.*[].name": _set(*HOST, "name", value="edge1"),
    "environments.*.hosts.*[].port": _set(*HOST, "port", value=2222),
    "environments.*.hosts.*[].user": _set(*HOST, "user", value="ops"),
    "environments.*.hosts.*[].private_address": _set(*HOST, "private_address", value="10.1.0.1"),
    "environments.*.domain": _set(*ENV, "domain", value="shop.example.com"),
    "environments.*.proxy.component": _set(*ENV, "proxy", "component", value="edge"),
    "environments.*.proxy.http_port": _set(*ENV, "proxy", "http_port", value=8080),
    "environments.*.proxy.https_port": _set(*ENV, "proxy", "https_port", value=8443),
    "environments.*.tls.certificate.from_env": _ssl({"from_env": "C"}, {"from_env": "K"}),
    "environments.*.tls.certificate.vault": _ssl({"vault": "c"}, {"from_env": "K"}),
    "environments.*.tls.key.from_env": _ssl({"from_env": "C"}, {"from_env": "K"}),
    "environments.*.tls.key.vault": _ssl({"from_env": "C"}, {"vault": "k"}),
    "environments.*.tls.acme.server": _acme(server="https://acme.example.com/dir"),
    "environments.*.tls.acme.email": _acme(email="ops@example.com"),
    "environments.*.tls.acme.ca_bundle": _acme(ca_bundle="/etc/ssl/private-ca.pem"),
    "environments.*.replicas": _set(*ENV, "replicas", value={"web": 4}),
    "environments.*.resources": _set(*ENV, "resources", value={"web": {"cpu": 2}}),
    # the accessories run on edge1, which then runs no app (tests/unit/plan/test_accessories.py
    # pins each key's own effect against an environment that has the accessory already)
    "environments.*.database.type": _db(),
    "environments.*.database.version": _db(version="14"),
    "environments.*.database.storage": _db(storage="1Gi"),
    "environments.*.database.replicas": _db(replicas=2),
    "environments.*.database.component": _db(component="web"),
    "environments.*.database.port": _db(port=5433),
    "environments.*.database.name": _db(name="store"),
    "environments.*.database.backup.before_migrate": _both(
        _db(backup={"before_migrate": True}),
        _set("hooks", "before_switch", value={"command": "bin/migrate"}),
    ),
    "environments.*.database.backup.keep": _both(
        _db(backup={"before_migrate": True, "keep": 3}),
        _set("hooks", "before_switch", value={"command": "bin/migrate"}),
    ),
    "environments.*.cache.type": _cache(),
    "environments.*.cache.version": _cache(version="6"),
    "environments.*.cache.component": _cache(component="web"),
    "environments.*.cache.port": _cache(port=6380),
    "service.uses": _both(_db(), _set("service", "uses", value=["database"])),
    **{
        f"hooks.{name}.{key}": _set("hooks", name, value={"command": "bin/x", key: value})
        for name in ("before_switch", "after_switch", "after_rollback", "after_failure")
        for key, value in (("command", "bin/migrate"), ("timeout", 30))
    },
    "environments.*.features.debug": _set(*ENV, "features", "debug", value=True),
    "environments.*.features.monitoring": _set(*ENV, "features", "monitoring", value=False),
    "environments.*.features.logging": _set(*ENV, "features", "logging", value=False),
    "environments.*.features.cdn": _set(*ENV, "features", "cdn", value=True),
    "environments.*.features.ssl": _set(*ENV, "features", "ssl", value=True),
    "environments.*.ssh.user": _set(*ENV, "ssh", "user", value="ops"),
    "environments.*.ssh.private_key": _set(*ENV, "ssh", "private_key", value="id_deploy"),
    "environments.*.ssh.known_hosts": _set(*ENV, "ssh", "known_hosts", value="kh"),
    "environments.*.ssh.connect_timeout": _set(*ENV, "ssh", "connect_timeout", value=30),
    "environments.*.ssh.jump": _set(
        *ENV, "ssh", "jump", value=[{"address": "bastion.example.net", "user": "jumper"}]
    ),
    "environments.*.primary": _set(*ENV, "primary", value="web2"),
    "environments.*.keep_releases": _set(*ENV, "keep_releases", value=9),
}
"""Leaf path -> a change to BASE that must be refused or change the plan."""

# Environment overrides of project sections are probed through the project-level key
# (resolve.overlay gives both one code path; test_good_configs pins the override).
OVERRIDES = ("monitoring", "service", "health", "strategy", "rollback")

ELSEWHERE: dict[str, str] = {
    "ledger.path": "tests/unit/config/test_good_configs.py",
    "ledger.url": "tests/integration/test_team_ledger.py",
    "ledger.password.from_env": "tests/integration/test_team_ledger.py",
    "ledger.password.vault": "tests/unit/cli/test_cli_ledger.py",
    "secrets.vault_file": "tests/integration/test_lifecycle.py",
    "secrets.vault_password_file": "tests/unit/config/test_vault_content.py",
    "secrets.vault_password_env": "tests/integration/test_lifecycle.py",
    "secrets.env": "tests/integration/test_lifecycle.py",
    "rollback.automatic": "tests/unit/engine/test_engine_lifecycle.py",
    "environments.*.notifications": "tests/unit/notify",
    "environments.*.swarm": "tests/golden/swarm",
    # the runs split by site, each site's part streamed to its node
    "environments.*.ssh.nodes": "tests/unit/plan/test_sites.py",
    # the hosts Terraform created, read from its outputs before resolution
    "environments.*.hosts.from_terraform": "tests/unit/config/test_terraform_hosts.py",
    "environments.*.hosts.components": "tests/unit/config/test_terraform_hosts.py",
    # the pipeline `deployer generate ci` writes
    **{f"ci.{key}": "tests/unit/plan/test_ci_plan.py" for key in (
        "install", "python", "directory", "branches", "ssh_key", "known_hosts", "vault_password",
    )},
}  # fmt: skip
"""Leaf path -> where the test of its consumer lives (consumed outside planning)."""


def _model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


NOT_CONTAINERS = (None, types.UnionType, typing.Union)


def _leaves(model: type[BaseModel], prefix: str) -> list[str]:
    out: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        if model is Environment and name in OVERRIDES:
            continue
        annotation = field.annotation
        args = typing.get_args(annotation)
        inner = _model(annotation) or next((m for a in args if (m := _model(a))), None)
        origin = typing.get_origin(annotation)
        if model is Project and name == "environments":
            out += _leaves(Environment, "environments.*.")
        elif model is Environment and name == "hosts":
            out += _leaves(Host, "environments.*.hosts.*[].")
            out += _leaves(TerraformHosts, "environments.*.hosts.")
        elif model is Project and name == "services":
            out += _leaves(ServiceSpec, "services.*.")
        elif inner is not None and issubclass(inner, Section) and origin in NOT_CONTAINERS:
            out += _leaves(inner, f"{path}.")
        else:
            out.append(path)
    return out


LEAVES = _leaves(Project, "")


def test_every_key_has_a_probe_or_a_named_consumer() -> None:
    probed = {*PROBES, *SERVICE_PROBES, *ELSEWHERE}
    unprobed = [p for p in LEAVES if p not in probed]
    assert unprobed == [], "give each new key a probe here (or refuse it in resolve)"
    assert sorted(probed) == sorted(LEAVES), "stale probes"


@pytest.mark.parametrize("path", sorted(ELSEWHERE))
def test_keys_consumed_outside_planning_name_an_existing_test(path: str) -> None:
    where = Path(__file__).parents[3] / ELSEWHERE[path]
    assert where.exists(), f"{path}: {where} does not exist"
    text = "".join(p.read_text() for p in ([where] if where.is_file() else where.rglob("*.*")))
    assert path.rsplit(".", 1)[-1] in text, f"{path}: not mentioned in {ELSEWHERE[path]}"


def _project(tmp_path: Path, data: Data) -> Target:
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump(data))
    return resolve(load_project(tmp_path / "deploy.yml"), "production")


def _fingerprint(target: Target, tmp_path: Path) -> str:
    hosts = list(target.host_names)
    lock = extravars.lock_vars(target, "token", {}, target.lock_ttl)
    if target.services:
        for service in target.services:
            source = tmp_path / service.artifact.path
            source.mkdir(parents=True, exist_ok=True)
            for name in ("app.py", "notes.txt", "secret.pem"):
                (source / name).write_text(name)
        packed = for_services(target, tmp_path / "dist")
    else:
        source = tmp_path / target.artifact.path
        source.mkdir(exist_ok=True)
        for name in ("app.py", "notes.txt", "secret.pem"):
            (source / name).write_text(name)
        packed = for_target(target, source, tmp_path / "dist", target.artifact.build)
    outputs = {
        "inventory": build_inventory(target),
        "prepare": extravars.prepare_vars(
            target,
            hosts,
            version="v1",
            artifact="a.tgz",
            sha256="0" * 64,
            required_bytes=1,
            lock=lock,
        ),
        "switch": extravars.switch_vars(target, hosts, "v1"),
        "watch": extravars.watch_vars(target, hosts, since=0.0),
        "rollback": extravars.rollback_vars(target, dict.fromkeys(hosts, "v0"), "v1", "why"),
        "facts": extravars.facts_vars(target, hosts, health=True),
        "monitoring": extravars.monitoring_vars(target),
        "hooks": hook_vars(target, list(target.hooks)),
        "backup": backup_vars(target, "v1"),
        "units": units_by_host(target, hosts),
        "plan": strategy.plan(
            target.strategy, hosts, "v1", watch=target.rollback.watch, fuse=True
        ).to_dict(),
        "artifact": packed.sha256,
    }
    return json.dumps(outputs, sort_keys=True, default=str)


@pytest.mark.parametrize("path", sorted(PROBES))
def test_a_key_changes_the_plan_or_is_refused(path: str, tmp_path: Path) -> None:
    base_dir, probe_dir = tmp_path / "base", tmp_path / "probe"
    base_dir.mkdir()
    probe_dir.mkdir()
    baseline = _fingerprint(_project(base_dir, BASE), base_dir)
    data = copy.deepcopy(BASE)
    PROBES[path](data)
    refused: tuple[str, ...] = ()
    try:
        target = _project(probe_dir, data)
    except ConfigError as error:
        refused = error.problems
    if refused:
        assert all(": " in problem for problem in refused), refused  # each names its path
        return
    assert _fingerprint(target, probe_dir) != baseline, f"{path} reaches no consumer"


# --- an app of several services -------------------------------------------------------------

SERVICES_BASE: dict[str, Any] = {
    "app": {"name": "shop"},
    "health": {"http": {"path": "/healthz"}},
    "services": {
        "front": {"kind": "static", "component": "edge", "artifact": {"path": "front"}},
        "api": {
            "component": "web",
            "artifact": {"path": "api"},
            "command": "/usr/bin/python3 api.py",
            "port": 8000,
            "route": "/api",
        },
        "work": {"kind": "worker", "component": "web", "command": "/usr/bin/python3 w.py"},
    },
    "environments": {
        "production": {
            "hosts": {
                "web": [
                    {"address": "10.0.0.1", "name": "web1"},
                    {"address": "10.0.0.2", "name": "web2"},
                ],
                "edge": [{"address": "10.0.0.3", "name": "edge1"}],
            },
            "domain": "base.example.com",
        }
    },
}


def _svc(name: str, *path: str, value: Any) -> Callable[[Data], None]:
    return _set("services", name, *path, value=value)


def _unset(*path: str) -> Callable[[Data], None]:
    def probe(data: Data) -> None:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return probe


SERVICE_PROBES: dict[str, Callable[[Data], None]] = {
    "services.*.kind": _both(
        _svc("api", "kind", value="worker"), _unset("services", "api", "port"),
        _unset("services", "api", "route"),
    ),
    "services.*.component": _both(
        _svc("work", "component", value="edge"), _set(*ENV, "hosts", "web", value=[
            {"address": "10.0.0.1", "name": "web1"}, {"address": "10.0.0.2", "name": "web2"},
            {"address": "10.0.0.3", "name": "edge1"},
        ]),
    ),
    "services.*.artifact.path": _svc("api", "artifact", "path", value="api2"),
    "services.*.artifact.build": _svc("api", "artifact", "build", value="touch built.txt"),
    "services.*.artifact.exclude": _svc("api", "artifact", "exclude", value=["*.txt"]),
    "services.*.artifact.include": _svc("api", "artifact", "include", value=["secret.pem"]),
    "services.*.command": _svc("api", "command", value="/usr/bin/python3 other.py"),
    "services.*.port": _svc("api", "port", value=8500),
    "services.*.listen": _svc("api", "listen", value="socket"),
    "services.*.env": _svc("api", "env", value={"MODE": "x"}),
    "services.*.health.http.path": _svc("api", "health", value={"http": {"path": "/h"}}),
    "services.*.health.http.port": _svc("work", "health", value={"http": {"port": 9001}}),
    "services.*.health.http.status": _svc(
        "api", "health", value={"http": {"path": "/healthz", "status": 204}}
    ),
    "services.*.health.http.body": _svc("api", "health", value={"http": {"body": "ok"}}),
    "services.*.health.http.timeout": _svc("api", "health", value={"http": {"timeout": 5}}),
    "services.*.health.tcp.port": _svc("work", "health", value={"tcp": {"port": 9001}}),
    "services.*.health.tcp.timeout": _svc("api", "health", value={"tcp": {"timeout": 5}}),
    "services.*.health.command.run": _svc("work", "health", value={"command": {"run": "true"}}),
    "services.*.health.command.timeout": _svc(
        "work", "health", value={"command": {"run": "true", "timeout": 3}}
    ),
    "services.*.health.command.user": _svc(
        "work", "health", value={"command": {"run": "true", "user": "root"}}
    ),
    "services.*.health.retries": _svc("work", "health", value={"retries": 3}),
    "services.*.health.interval": _svc("work", "health", value={"interval": 3}),
    "services.*.resources.cpu": _svc("api", "resources", value={"cpu": 2}),
    "services.*.resources.memory": _svc("api", "resources", value={"memory": "1Gi"}),
    "services.*.depends_on": _svc("api", "depends_on", value=["work"]),
    "services.*.route": _svc("api", "route", value="/v1"),
    "services.*.root": _svc("front", "root", value="dist"),
    "services.*.uses": _both(
        _set(*ENV, "hosts", "db", value=[{"address": "10.0.0.9", "name": "db1"}]),
        _set(*ENV, "database", value={"type": "postgresql", "component": "db"}),
        _svc("api", "uses", value=["database"]),
    ),
    **{
        f"hooks.{name}.service": _set(
            "hooks", name, value={"command": "bin/x", "service": "work"}
        )
        for name in ("before_switch", "after_switch", "after_rollback", "after_failure")
    },
}  # fmt: skip


@pytest.mark.parametrize("path", sorted(SERVICE_PROBES))
def test_a_service_key_changes_the_plan(path: str, tmp_path: Path) -> None:
    """Against an app of several services: every key must change what the hosts are
    handed (never merely be refused)."""
    base_dir, probe_dir = tmp_path / "base", tmp_path / "probe"
    base_dir.mkdir()
    probe_dir.mkdir()
    baseline = _fingerprint(_project(base_dir, SERVICES_BASE), base_dir)
    data = copy.deepcopy(SERVICES_BASE)
    SERVICE_PROBES[path](data)
    target = _project(probe_dir, data)
    assert _fingerprint(target, probe_dir) != baseline, f"{path} reaches no consumer"
