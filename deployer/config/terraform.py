"""The hosts of an environment that Terraform created: read from `terraform output -json`.

An environment with `hosts: {from_terraform: outputs.json, components: {web: 2}}` takes its
hosts from the `deployer_hosts` output of the Terraform that `deployer generate terraform`
writes (`deployer.plan.terraform` renders exactly this shape):

    {"deployer_hosts": {"sensitive": false, "type": [...], "value": {
        "app": "shop", "environment": "production",
        "hosts": {"web": [{"name": "web-1", "address": "203.0.113.10",
                           "private_address": "10.0.1.10"}, ...], ...}}}}

Each host is a host as `hosts.<component>[]` takes it (`name` required here; `port` and `user`
optional). The file is untrusted input, read within limits (`MAX_OUTPUTS_BYTES`, JSON, no
duplicate keys) and checked as strictly as deploy.yml: every address and name by the same
rules, the app and environment it was made for, exactly the configured components and counts.
Problems name the config path and the file. The CLI reads the file here and hands the hosts
to `resolve`, so that module stays pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deployer.config.base import Section
from deployer.config.loader import LoadedProject, Source, format_loc, validation_problems
from deployer.config.models import Host, TerraformHosts
from deployer.config.names import Ident, Name
from deployer.errors import ConfigError

OUTPUT = "deployer_hosts"
"""The name of the Terraform output that holds the hosts."""
MAX_OUTPUTS_BYTES = 1024 * 1024
"""Largest outputs file read (1 MiB): a hundred hosts take a few KiB."""
PLACEHOLDER_NETWORK = "192.0.2."
"""Addresses of the stand-in hosts (TEST-NET-1: never routed) while nothing is applied."""

Provisioned = Mapping[str, tuple[Host, ...]]


class ProvisionedHost(Host):
    name: Name = Field(description="Inventory name (Terraform names every host).")


class HostsValue(Section):
    app: Name
    environment: Name
    hosts: dict[Ident, Annotated[list[ProvisionedHost], Field(min_length=1, max_length=100)]]


class HostsOutput(Section):
    """One output as `terraform output -json` prints it."""

    sensitive: bool = False
    type: Any = None
    value: HostsValue


class Outputs(BaseModel):
    """The whole file: every output of the root module; deployer reads its own only."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    deployer_hosts: HostsOutput


def instance_names(component: str, count: int) -> tuple[str, ...]:
    """The inventory names of a component's hosts that Terraform creates: web-1, web-2, ..."""
    return tuple(f"{component}-{index}" for index in range(1, count + 1))


def terraform_hosts(loaded: LoadedProject, environment: str) -> TerraformHosts | None:
    env = loaded.project.environments.get(environment)
    if env is None or not isinstance(env.hosts, TerraformHosts):
        return None
    return env.hosts


def outputs_path(loaded: LoadedProject, hosts: TerraformHosts) -> Path:
    return (loaded.directory / hosts.from_terraform).absolute()


def placeholders(loaded: LoadedProject, environment: str) -> Provisioned | None:
    """Stand-ins for the hosts Terraform would create (their names, addresses that are never
    routed), for what judges or generates the config before `terraform apply`: `validate`
    while the outputs file is not there yet, `generate terraform`."""
    hosts = terraform_hosts(loaded, environment)
    if hosts is None:
        return None
    out: dict[str, tuple[Host, ...]] = {}
    number = 0
    for component, count in hosts.components.items():
        members = []
        for name in instance_names(component, count):
            number += 1
            address = f"{PLACEHOLDER_NETWORK}{number % 254 + 1}"
            members.append(Host(name=name, address=address))
        out[component] = tuple(members)
    return out


def _duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _parse(path: Path) -> Any:
    """The file's JSON, within the limits; ValueError saying what is wrong."""
    try:
        with path.open("rb") as handle:
            blob = handle.read(MAX_OUTPUTS_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(
            "no such file: run `terraform apply`, then `terraform output -json > "
            f"{path.name}` in the directory of the generated Terraform"
        ) from None
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from None
    if len(blob) > MAX_OUTPUTS_BYTES:
        raise ValueError(f"larger than {MAX_OUTPUTS_BYTES} bytes, the limit for an outputs file")
    try:
        return json.loads(blob.decode("utf-8"), object_pairs_hook=_duplicate_keys)
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text: {exc.reason}") from None
    except RecursionError:
        raise ValueError("nested too deeply to be an outputs file") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None


def read_outputs(loaded: LoadedProject, environment: str) -> Provisioned | None:
    """The hosts per component that Terraform's outputs give `environment`, or None when its
    hosts are not Terraform's. Raises ConfigError (exit 2) naming the config path and the
    file for a file that is missing, malformed or out of step with deploy.yml."""
    hosts = terraform_hosts(loaded, environment)
    if hosts is None:
        return None
    path = outputs_path(loaded, hosts)
    loc = format_loc(("environments", environment, "hosts", "from_terraform"))

    def refused(problems: list[str]) -> ConfigError:
        return ConfigError([f"{loc}: {path}: {p}" for p in problems], source=str(loaded.path))

    try:
        data = _parse(path)
    except ValueError as exc:
        raise refused([str(exc)]) from None
    if not isinstance(data, dict):
        raise refused(["expected the object `terraform output -json` prints"])
    if OUTPUT not in data:
        found = ", ".join(sorted(data)) or "none"
        raise refused(
            [f"no output {OUTPUT!r} (outputs: {found}); is this the outputs file of the "
             "Terraform `deployer generate terraform` wrote?"]
        )  # fmt: skip
    try:
        value = Outputs.model_validate(data).deployer_hosts.value
    except ValidationError as exc:
        raise refused(validation_problems(exc, Outputs, Source(path, data, None))) from None
    problems = _out_of_step(value, loaded.project.app.name, environment, hosts)
    if problems:
        raise refused(problems)
    return {
        component: tuple(Host.model_validate(h.model_dump(exclude_unset=True)) for h in members)
        for component, members in value.hosts.items()
    }


def _out_of_step(value: HostsValue, app: str, environment: str, hosts: TerraformHosts) -> list[str]:
    """What makes these outputs another app's, another environment's, or not the hosts
    deploy.yml asks for; and hosts that contradict each other."""
    where = f"{OUTPUT}.value"
    problems: list[str] = []
    if value.app != app:
        problems.append(f"{where}.app: made for app {value.app!r}, not {app!r}")
    if value.environment != environment:
        problems.append(
            f"{where}.environment: made for environment {value.environment!r}, not {environment!r}"
        )
    wanted = f"environments.{environment}.hosts.components"
    for component in value.hosts.keys() - hosts.components.keys():
        problems.append(
            f"{where}.hosts.{component}: a component deploy.yml does not name ({wanted}: "
            f"{', '.join(hosts.components)}); run `terraform apply` with the Terraform "
            "generated from this deploy.yml"
        )
    for component, count in hosts.components.items():
        given = len(value.hosts.get(component, ()))
        if given != count:
            problems.append(
                f"{where}.hosts.{component}: {given} host(s), {wanted}.{component} asks for "
                f"{count}; regenerate the Terraform and run `terraform apply`"
            )
    by_name: dict[str, ProvisionedHost] = {}
    by_endpoint: dict[tuple[str, int], str] = {}
    for component, members in value.hosts.items():
        for index, host in enumerate(members):
            at = f"{where}.hosts.{component}[{index}]"
            other = by_name.setdefault(host.name, host)
            if other != host:
                problems.append(f"{at}.name: {host.name!r} is used for two different hosts")
                continue
            if other is not host:
                continue  # the same host in another component
            endpoint = (host.address, host.port)
            first = by_endpoint.setdefault(endpoint, host.name)
            if first != host.name:
                problems.append(
                    f"{at}.address: {host.address} port {host.port} is also host {first}"
                )
    return problems
