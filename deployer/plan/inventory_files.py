"""The files of `inventories/<env>/`, for plain `ansible-playbook -i inventories/<env>`.

`hosts.yml` holds the groups and the hosts with their connection vars (what `build_inventory`
gives), `group_vars/env_<env>.yml` the environment's vars: the inventory's own plus the
settings from deploy.yml that the playbooks' tasks read (deploy_to, the service and its
shared paths, keep_releases). What changes from run to run (`deployer_hosts`, the version,
the artifact, the lock) is not here: Ansible templates a play's `hosts:` before any
inventory var is known, so it has to come with `-e`, as deployer itself passes it.

Secret values are never part of these files: the inventory has none and the secrets of
deploy.yml are references, resolved only for a deploy. Every string that could be a
template (Jinja's `{{`, `{%` and `{#` all start with `{`) is written `!unsafe`, so Ansible
takes it as data: a `{{ ... }}` in a config value is never templated. Other strings are not
tagged, because Ansible re-resolves an `!unsafe` scalar as if it were plain YAML (`!unsafe '16'`
loads as the int 16); without a tag, the dumper quotes them and they stay strings.
"""

from __future__ import annotations

from typing import Any

import yaml

from deployer.config.resolve import Target
from deployer.plan.extravars import base_vars
from deployer.plan.inventory import build_inventory, environment_group

HOSTS = "hosts.yml"
HEADER = "# Written by `deployer inventory {environment} --write` from {config}.\n"
NOTE = (
    "# Change deploy.yml and write again: this file is replaced. Strings marked !unsafe are\n"
    "# data that Ansible never templates.\n"
)


def settings_vars(target: Target) -> dict[str, Any]:
    """deploy.yml's settings the playbooks' tasks read, the same for every run."""
    service = target.service
    base = base_vars(target, target.host_names)
    del base["deployer_hosts"]  # a play's `hosts:` cannot see inventory vars: -e only
    return {
        **base,
        "deployer_service_user": target.service_user,
        "deployer_service": {
            "command": service.command,
            "port": service.port,
            "listen": service.listen,
            "env": dict(service.env),
        },
        "deployer_shared": {"dirs": list(service.shared.dirs), "files": list(service.shared.files)},
        "deployer_keep_releases": target.keep_releases,
    }


def inventory_files(target: Target) -> dict[str, dict[str, Any]]:
    """Path (relative to `inventories/<env>/`) -> the data written there."""
    group = environment_group(target.environment)
    env_group = build_inventory(target)["all"]["children"][group]
    return {
        HOSTS: {"all": {"children": {group: {"children": env_group["children"]}}}},
        f"group_vars/{group}.yml": {**env_group["vars"], **settings_vars(target)},
    }


class _UnsafeDumper(yaml.SafeDumper):
    """String values that could be templates tagged `!unsafe`; mapping keys (variable and
    host names) stay plain."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # lists indented under their key, as yamllint wants

    def represent_unsafe(self, value: str) -> yaml.ScalarNode:
        if "{" in value:
            return self.represent_scalar("!unsafe", value)
        return self.represent_str(value)

    def represent_plain_keys(self, value: dict[Any, Any]) -> yaml.MappingNode:
        pairs = [
            (
                self.represent_str(str(key)),
                self.represent_data(item),
            )
            for key, item in value.items()
        ]
        return yaml.MappingNode("tag:yaml.org,2002:map", pairs, flow_style=False)


_UnsafeDumper.add_representer(str, _UnsafeDumper.represent_unsafe)
_UnsafeDumper.add_representer(dict, _UnsafeDumper.represent_plain_keys)


def unsafe_yaml(data: dict[str, Any]) -> str:
    return yaml.dump(
        data,
        Dumper=_UnsafeDumper,
        sort_keys=False,
        allow_unicode=True,
        explicit_start=True,
        width=float("inf"),  # never folded: a fold would depend on the project path
    )


def render_files(target: Target, config: str) -> dict[str, str]:
    """Path -> text of every file of `inventories/<env>/`."""
    header = HEADER.format(environment=target.environment, config=config) + NOTE
    return {path: header + unsafe_yaml(data) for path, data in inventory_files(target).items()}
