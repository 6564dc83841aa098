"""The service's systemd units, rendered once per host on the controller.

The templates are those of the `deployer.core.service` role, so users of the role and
deployer's own runs get the same units from one source; rendering them here instead of in a
playbook task saves a task round per deploy and hands Ansible finished text (marked unsafe
by the runner like every other value), never a template. Values reach the units escaped for
systemd: a `%` in the command is written `%%`, so a specifier such as `%h` stays literal.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from deployer.config.bluegreen import SLOTTED, slot_ports, slot_units
from deployer.config.resolve import ResolvedHost, Target
from deployer.config.services import ResolvedService
from deployer.paths import collections_dir
from deployer.plan.inventory import systemd_limits

_ROLE = ("ansible_collections", "deployer", "core", "roles", "service")


def _role_dir() -> Any:
    return collections_dir().joinpath(*_ROLE)


@cache
def _templates() -> Environment:
    # Ansible's template settings: blocks trimmed, no autoescape (these are not HTML).
    return Environment(  # noqa: S701 - systemd units, not markup
        loader=FileSystemLoader(str(_role_dir() / "templates")),
        undefined=StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
    )


@cache
def _defaults() -> dict[str, Any]:
    loaded = yaml.safe_load((_role_dir() / "defaults" / "main.yml").read_text())
    return dict(loaded or {})


def unit_vars(target: Target, host: ResolvedHost) -> dict[str, Any]:
    """The role's variables for one host (its defaults, then the resolved config)."""
    return {
        **_defaults(),
        "service_app": target.app.name,
        "service_deploy_to": target.deploy_to,
        "service_user": target.service_user,
        "service_command": target.service.command,
        "service_port": target.service.port,
        "service_listen": target.service.listen,
        "service_resources": systemd_limits(host.resources),
        "service_instances": list(target.ports(host.name)) if host.name in target.instances else [],
        "service_env_files": list(target.uses()),
    }


def service_unit_vars(
    target: Target, service: ResolvedService, host: ResolvedHost
) -> dict[str, Any]:
    """The role's variables for one service of an app of several, on one host."""
    count = service.count(host.name)
    ports = service.ports(host.name)
    return {
        **_defaults(),
        "service_app": service.unit,
        "service_deploy_to": target.deploy_to,
        "service_user": target.service_user,
        "service_command": service.command,
        "service_port": service.port,
        "service_listen": service.listen,
        "service_resources": systemd_limits(service.resources or host.resources),
        # a worker's instances are numbered; a web service's are its ports
        "service_instances": list(ports) if ports else list(range(1, count + 1)),
        "service_workdir": service.directory,
        "service_env": dict(service.env),
        "service_env_files": list(service.uses),
    }


def _render(values: dict[str, Any], base: str, listen: str) -> dict[str, str]:
    render = _templates().get_template
    if len(values["service_instances"]) > 1:  # templates, one instance per port
        units = {
            f"{base}@.service": render("app.service.j2").render(values),
            f"{base}.target": render("app.target.j2").render(values),
        }
        if listen == "socket":
            units[f"{base}@.socket"] = render("app.socket.j2").render(values)
        return units
    units = {f"{base}.service": render("app.service.j2").render(values)}
    if listen == "socket":
        units[f"{base}.socket"] = render("app.socket.j2").render(values)
    return units


def render_units(target: Target, host: ResolvedHost) -> dict[str, str]:
    """Unit file name -> content for one host: the one service's, or those of every
    service of the app that runs on the host (a static service has none)."""
    if target.services:
        units: dict[str, str] = {}
        for service in target.services:
            if service.kind != "static" and host.name in service.hosts:
                values = service_unit_vars(target, service, host)
                units.update(_render(values, service.unit, service.listen))
        return units
    values = unit_vars(target, host)
    app = target.app.name
    render = _templates().get_template
    if target.strategy.kind in SLOTTED and target.service.port is not None:
        # one unit per slot, each running the release its slot links to, on its own port
        return {
            unit: render("app.service.j2").render(
                {
                    **values,
                    "service_app": f"{app}:{slot}",
                    "service_port": port,
                    "service_link": f"slots/{slot}",
                }
            )
            for unit, (slot, port) in zip(
                slot_units(app), slot_ports(target.service.port).items(), strict=True
            )
        }
    if len(values["service_instances"]) > 1:  # templates, one instance per port
        units = {
            f"{app}@.service": render("app.service.j2").render(values),
            f"{app}.target": render("app.target.j2").render(values),
        }
        if target.service.listen == "socket":
            units[f"{app}@.socket"] = render("app.socket.j2").render(values)
        return units
    units = {f"{app}.service": render("app.service.j2").render(values)}
    if target.service.listen == "socket":
        units[f"{app}.socket"] = render("app.socket.j2").render(values)
    return units


def units_by_host(target: Target, hosts: Iterable[str]) -> dict[str, dict[str, str]]:
    """{inventory host: {unit file name: content}} for the hosts of one run."""
    wanted = set(hosts)
    return {h.name: render_units(target, h) for h in target.hosts if h.name in wanted}
