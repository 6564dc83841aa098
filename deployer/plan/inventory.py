"""Ansible inventory for one environment, as plain data (YAML/JSON-ready).

Layout: `all` > one group for the environment (its vars: app, environment, domain, features,
SSH host-key settings) > one group per component with its hosts. A host that serves two
components sits in both groups; its host vars are written once.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from deployer.config.models import Resources, cpu_cores
from deployer.config.resolve import ResolvedHost, Target
from deployer.plan.remote import known_hosts_files, proxy_command

_MEM = re.compile(r"(\d+)(Ki|Mi|Gi|Ti|K|M|G|T)?")
_BINARY = {"Ki": "K", "Mi": "M", "Gi": "G", "Ti": "T"}
_DECIMAL = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def environment_group(environment: str) -> str:
    """Ansible group names must be identifiers: 'prod-eu' -> 'env_prod_eu'."""
    return "env_" + re.sub(r"[^A-Za-z0-9_]", "_", environment)


def systemd_memory(value: str) -> str:
    """Kubernetes-style sizes to systemd's (base-1024 suffixes, or bytes): 512Mi -> 512M."""
    match = _MEM.fullmatch(value)
    if match is None:  # the model validated it; this is a programming error
        raise ValueError(value)
    number, unit = match.groups()
    if unit is None:
        return number
    if unit in _BINARY:
        return number + _BINARY[unit]
    return str(int(number) * _DECIMAL[unit])


def systemd_limits(resources: Resources) -> dict[str, str]:
    limits: dict[str, str] = {}
    if resources.cpu is not None:
        limits["cpu_quota"] = f"{round(cpu_cores(resources.cpu) * 100)}%"
    if resources.memory is not None:
        limits["memory_max"] = systemd_memory(resources.memory)
    return limits


def ssh_common_args(target: Target) -> str:
    """Host keys are always checked, against the project's known_hosts files only; behind
    `ssh.jump`, every connection goes through the bastions (their keys checked too)."""
    files = known_hosts_files(target.known_hosts)
    proxy = proxy_command(target)
    return " ".join(
        [
            "-o StrictHostKeyChecking=yes",
            "-o " + shlex.quote(f"UserKnownHostsFile={files}"),
            "-o " + shlex.quote(f"GlobalKnownHostsFile={files}"),
            f"-o ConnectTimeout={target.connect_timeout}",
            *([] if proxy is None else ["-o " + shlex.quote(f"ProxyCommand={proxy}")]),
        ]
    )


def host_vars(host: ResolvedHost) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ansible_host": host.address,
        "ansible_port": host.port,
        "ansible_user": host.user,
    }
    if host.private_key is not None:
        # Ansible passes it as IdentityFile="...", where ssh expands %-tokens
        out["ansible_ssh_private_key_file"] = str(host.private_key).replace("%", "%%")
    limits = systemd_limits(host.resources)
    if limits:
        out["deployer_resources"] = limits
    return out


def environment_vars(target: Target) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ansible_connection": "ssh",
        "ansible_ssh_common_args": ssh_common_args(target),
        "ansible_python_interpreter": "/usr/bin/python3",
        "deployer_app": target.app.name,
        "deployer_environment": target.environment,
        "deployer_features": target.features.model_dump(),
        "deployer_primary": target.primary,
    }
    if target.domain:
        out["deployer_domain"] = target.domain
    if target.replicas:
        out["deployer_replicas"] = dict(target.replicas)
    return out


def build_inventory(target: Target) -> dict[str, Any]:
    """The inventory of `target` as a dict in Ansible's YAML inventory shape."""
    by_name = {h.name: h for h in target.every_host}
    written: set[str] = set()
    children: dict[str, Any] = {}
    groups = {k: list(v) for k, v in target.components.items()}
    for accessory in target.accessories:  # its group: the hosts that run it
        members = groups.setdefault(accessory.component, [])
        members += [h for h in accessory.hosts if h not in members]
    for component, names in groups.items():
        hosts: dict[str, Any] = {}
        for name in names:
            hosts[name] = {} if name in written else host_vars(by_name[name])
            written.add(name)
        children[component] = {"hosts": hosts}
    return {
        "all": {
            "children": {
                environment_group(target.environment): {
                    "vars": environment_vars(target),
                    "children": children,
                }
            }
        }
    }
