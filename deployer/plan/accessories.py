"""What the accessories and the deploy hooks hand to the hosts: pure functions of the
resolved target.

Credentials never pass through here. Each accessory's host generates its password once and
keeps it (root, 0600); its URL travels from that host's set-up step to the release's env
files inside the same Ansible run, under no_log, and never reaches the controller's Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deployer.config.accessories import ResolvedAccessory, ResolvedHook
from deployer.config.resolve import Target

ENV_FILE = "env"
"""The release's own env file (`.deployer/env`: secrets.env); accessories add `env.<kind>`."""


def _address(target: Target, host: str) -> str:
    found = next(h for h in target.every_host if h.name == host)
    return found.private_address or found.address


def clients(target: Target, accessory: ResolvedAccessory) -> list[str]:
    """The private addresses of the hosts whose services use `accessory`."""
    names = users(target, accessory.kind)
    return sorted({_address(target, h) for h in names})


def users(target: Target, kind: str) -> list[str]:
    """The app's hosts that run a service using the accessory `kind`."""
    if target.services:
        return [
            h.name
            for h in target.hosts
            if any(kind in s.uses and h.name in s.hosts for s in target.services)
        ]
    return list(target.host_names) if kind in target.uses() else []


def accessory_spec(target: Target, accessory: ResolvedAccessory, state: str) -> dict[str, Any]:
    """The arguments of deployer_accessory for the host that runs `accessory`."""
    spec: dict[str, Any] = {
        "kind": accessory.engine,
        "state": state,
        "name": accessory.name,
        "version": accessory.version,
        "address": _address(target, accessory.primary),
        "port": accessory.port,
        "clients": clients(target, accessory),
        "storage_bytes": accessory.storage_bytes,
    }
    if accessory.database:
        spec["database"] = accessory.database
        spec["user"] = accessory.database
    if accessory.standbys:
        spec["role"] = "primary"
        spec["standbys"] = [_address(target, h) for h in accessory.standbys]
    return spec


def standby_specs(target: Target, state: str) -> list[dict[str, Any]]:
    """{host, args} for each PostgreSQL standby: it replicates from the primary's private
    address, with the replication password the primary's step registers in the same run."""
    database = target.accessory("database")
    if database is None:
        return []
    out = []
    for host in database.standbys:
        args = accessory_spec(target, database, state)
        args |= {
            "role": "standby",
            "address": _address(target, host),
            "standbys": [],
            "primary_address": _address(target, database.primary),
            "primary_port": database.port,
        }
        out.append({"host": host, "args": args})
    return out


def accessory_vars(target: Target, state: str = "present") -> dict[str, Any]:
    """`deployer_accessories` {kind: {host, args}}, `deployer_standbys` [{host, args}] (the
    database's standbys, set up after its primary) and `deployer_accessory_users` {app host:
    [kind, ...]} (the env files each app host's release gets), or {} without accessories."""
    if not target.accessories:
        return {}
    standbys = standby_specs(target, state)
    return {
        "deployer_accessories": {
            a.kind: {"host": a.primary, "args": accessory_spec(target, a, state)}
            for a in target.accessories
        },
        **({"deployer_standbys": standbys} if standbys else {}),
        "deployer_accessory_users": {
            host: [a.kind for a in target.accessories if host in users(target, a.kind)]
            for host in target.host_names
        },
    }


def backup_vars(target: Target, label: str) -> dict[str, Any]:
    """`deployer_backup` {host, args}: the dump taken before the before_switch hook, when
    the database asks for one (`backup.before_migrate`)."""
    database = target.accessory("database")
    if database is None or not database.backup_keep or "before_switch" not in target.hooks:
        return {}
    args = accessory_spec(target, database, "backup")
    args |= {"backup_label": label, "backup_keep": database.backup_keep}
    return {"deployer_backup": {"host": database.primary, "args": args}}


def restore_vars(target: Target, file: str, sha256: str) -> dict[str, Any]:
    """`deployer_accessories` asking the database's host to restore one of its dumps."""
    database = target.accessory("database")
    if database is None:
        return {}
    args = accessory_spec(target, database, "restore")
    args |= {"backup_file": file, "backup_sha256": sha256}
    return {"deployer_accessories": {"database": {"host": database.primary, "args": args}}}


def hook_spec(target: Target, hook: ResolvedHook) -> dict[str, Any]:
    """The arguments of deployer_hook (without the release it runs in)."""
    if hook.service is None:
        env = dict(target.service.env)
    else:
        env = dict(next(s for s in target.services if s.name == hook.service).env)
    return {
        "host": hook.host,
        "name": hook.name,
        "directory": hook.directory,
        "user": target.service_user,
        "command": list(hook.argv),
        "env": env,
        "env_files": [ENV_FILE, *(f"{ENV_FILE}.{kind}" for kind in hook.uses)],
        "timeout": hook.timeout,
    }


def hook_vars(target: Target, names: Sequence[str]) -> dict[str, Any]:
    """`deployer_hooks` {name: spec} for the configured hooks among `names`."""
    wanted = {n: hook_spec(target, target.hooks[n]) for n in names if n in target.hooks}
    return {"deployer_hooks": wanted} if wanted else {}


def exec_spec(
    target: Target, service: str | None, argv: Sequence[str], timeout: int
) -> dict[str, Any]:
    """`deployer_exec` {directory, user, command, env, env_files, timeout}: an operator's
    command run like a hook of `service` (None: the app's one service), in the current
    release, with that service's env and env files."""
    if service is None:
        env, directory, uses = dict(target.service.env), "", target.uses()
    else:
        found = next(s for s in target.services if s.name == service)
        env, directory, uses = dict(found.env), found.directory, found.uses
    return {
        "directory": directory,
        "user": target.service_user,
        "command": list(argv),
        "env": env,
        "env_files": [ENV_FILE, *(f"{ENV_FILE}.{kind}" for kind in uses)],
        "timeout": timeout,
    }
