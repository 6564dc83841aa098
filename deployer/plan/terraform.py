"""The Terraform that creates an environment's hosts (`deployer generate terraform ENV`).

For provider `aws`: one EC2 instance per host (Debian 12, cloud-init creating the SSH user
with the operator's public key and passwordless sudo), tagged with the app, the environment
and its components; a security group every host is in (SSH from `var.ssh_cidr_blocks` only,
node exporter between the hosts with monitoring on) and one per component opening exactly the
ports deployer puts there: the edge proxy's HTTP and HTTPS to everyone, the services'
instances (to everyone without a proxy, else to the environment's hosts), the database, the
cache and their exporters to the environment's hosts; an A record for `domain` pointing at
the proxy hosts; and the output `deployer_hosts`, exactly the shape
`hosts: {from_terraform: ...}` reads (`deployer.config.terraform`).

The hosts are the environment's: one per host entry (named as in deploy.yml), or with
`hosts: {from_terraform: ..., components: {...}}` that many per component, named
`<component>-<n>`. Pure: a resolved environment in, HCL text out (`deployer.plan.hcl`).
"""

from __future__ import annotations

import math
from typing import Any

from deployer.config.loader import format_loc
from deployer.config.models import Environment, TerraformHosts
from deployer.config.resolve import Target
from deployer.config.terraform import OUTPUT, instance_names
from deployer.errors import BadRequest, ConfigError
from deployer.plan.generated import HEADER_MARK, Generated
from deployer.plan.hcl import BLANK, Block, Comment, Heredoc, Raw, render, string

PROVIDERS = ("aws",)
DEBIAN_OWNER = "136693071363"
"""The AWS account Debian publishes its cloud images from."""
ANYWHERE = ("0.0.0.0/0", "::/0")


def check_provider(provider: str) -> str:
    if provider not in PROVIDERS:
        raise BadRequest(
            f"--provider: {provider!r} is not a Terraform provider deployer writes for "
            f"({', '.join(PROVIDERS)})"
        )
    return provider


def problems(env: Environment, environment: str) -> list[str]:
    """What keeps the generator from creating this environment's hosts, each naming its
    path (the rest of the config was judged by `resolve`)."""
    base = ("environments", environment)
    out: list[str] = []
    if env.target != "ssh":
        out.append(
            f"{format_loc((*base, 'target'))}: generate terraform creates servers for target "
            f"ssh; {environment} is target {env.target!r}"
        )
    if not isinstance(env.hosts, TerraformHosts):
        for component, group in env.groups.items():
            loc = (*base, "hosts", component)
            if isinstance(group, str):
                out.append(
                    f"{format_loc(loc)}: {group!r} names the local lab's containers; give "
                    "host entries, or hosts: {from_terraform: ..., components: {...}}"
                )
                continue
            for index, host in enumerate(group):
                if host.port != 22:
                    out.append(
                        f"{format_loc((*loc, index, 'port'))}: {host.port}: the instances "
                        "Terraform creates run sshd on port 22"
                    )
    if env.domain is not None and ("." not in env.domain.strip(".") or env.domain[-1].isdigit()):
        out.append(
            f"{format_loc((*base, 'domain'))}: {env.domain!r} is not a DNS name a zone can "
            "hold a record for"
        )
    return out


def groups(env: Environment) -> dict[str, list[str]]:
    """Component -> the names of its hosts, as deploy.yml gives them (a host in several
    components is in each; the accessories' components included)."""
    if isinstance(env.hosts, TerraformHosts):
        return {c: list(instance_names(c, n)) for c, n in env.hosts.components.items()}
    return {
        c: [h.inventory_name for h in group]
        for c, group in env.groups.items()
        if not isinstance(group, str)  # lab hosts: refused by `problems`
    }


def _proxy_components(target: Target, env: Environment) -> set[str]:
    """The components whose hosts run the edge proxy: `proxy.component`, the static
    service's, or (neither given) every component of the app."""
    if target.proxy is None:
        return set()
    if env.proxy is not None and env.proxy.component is not None:
        return {env.proxy.component}
    static = [s.component for s in target.services if s.kind == "static"]
    return set(static) if static else {c for h in target.hosts for c in h.components}


def _port_rules(
    target: Target, env: Environment, members: dict[str, list[str]]
) -> dict[str, list[dict[str, Any]]]:
    """Per component, the ports its hosts serve: description, from, to, public."""
    rules: dict[str, list[dict[str, Any]]] = {c: [] for c in members}
    proxy = target.proxy
    proxies = _proxy_components(target, env)

    def add(component: str, description: str, first: int, last: int, public: bool) -> None:
        rules[component].append(
            {"description": description, "from_port": first, "to_port": last, "public": public}
        )

    for component, names in members.items():
        if proxy is not None and component in proxies:
            add(component, "edge proxy: HTTP", proxy.http_port, proxy.http_port, True)
            if proxy.https:
                add(component, "edge proxy: HTTPS", proxy.https_port, proxy.https_port, True)
        for service in target.services:
            if service.port is None or service.component != component:
                continue
            count = max(service.count(h) for h in service.hosts)
            last = service.port + count - 1
            add(component, f"service {service.name}", service.port, last, proxy is None)
        port = target.service.port
        app = [h for h in target.hosts if h.name in names and component in h.components]
        if not target.services and port is not None and app:
            count = max(target.instances.get(h.name, 1) for h in app)
            add(component, f"app {target.app.name}", port, port + count - 1, proxy is None)
    for accessory in target.accessories:
        brand = "PostgreSQL" if accessory.engine == "postgresql" else "Redis"
        add(accessory.component, brand, accessory.port, accessory.port, False)
    if target.monitoring is not None:
        settings = target.monitoring
        for accessory in target.accessories:
            port = (
                settings.postgres_exporter_port
                if accessory.kind == "database"
                else settings.redis_exporter_port
            )
            add(accessory.component, f"{accessory.kind} exporter", port, port, False)
    return rules


def _hosts(target: Target, members: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    storage: dict[str, int] = {}
    for accessory in target.accessories:
        for host in accessory.hosts:
            storage[host] = storage.get(host, 0) + accessory.storage_bytes
    resolved = {h.name: h for h in target.every_host}
    out: dict[str, dict[str, Any]] = {}
    for component, names in members.items():
        for name in names:
            if name in out:
                out[name]["components"].append(component)
                continue
            extra = math.ceil(storage.get(name, 0) / 1024**3)
            size = Raw(f"var.volume_size + {extra}") if extra else Raw("var.volume_size")
            out[name] = {
                "components": [component],
                "user": resolved[name].user,
                "volume_size": size,
            }
    return out


def _prefix(target: Target) -> str:
    return f"{target.app.name}-{target.environment}"


def versions() -> list[Any]:
    return [
        Block(
            "terraform",
            body=(
                ("required_version", ">= 1.5.0"),
                BLANK,
                Block(
                    "required_providers",
                    body=(("aws", {"source": "hashicorp/aws", "version": "~> 5.0"}),),
                ),
            ),
        ),
        Block("provider", ("aws",), body=(("region", Raw("var.region")),)),
    ]


def variables(target: Target) -> list[Any]:
    def variable(name: str, kind: str, description: str, *default: Any) -> Block:
        body: list[Any] = [("description", description), ("type", Raw(kind))]
        if default:
            body.append(("default", default[0]))
        return Block("variable", (name,), body=tuple(body))

    out = [
        variable("region", "string", "The AWS region the hosts run in."),
        variable(
            "subnet_id",
            "string",
            "The subnet the hosts run in (its VPC holds the security groups); it must give "
            "them public addresses, which deployer connects to.",
        ),
        variable(
            "ssh_public_key",
            "string",
            "The public key of the SSH key deployer connects with (one OpenSSH line).",
        ),
        variable(
            "ssh_cidr_blocks",
            "list(string)",
            "Where deployer connects from (the control host, the CI runners): SSH is open to "
            "these networks only.",
        ),
        variable("instance_type", "string", "The instance type of every host.", "t3.small"),
        variable(
            "instance_types",
            "map(string)",
            "Instance types per component, instead of instance_type.",
            {},
        ),
        variable(
            "ami_id",
            "string",
            "The image of the hosts (default: the newest Debian 12 image Debian publishes).",
            None,
        ),
        variable(
            "volume_size",
            "number",
            "GiB of disk per host; the database's hosts get its storage on top.",
            20,
        ),
    ]
    if target.domain:
        out.append(
            variable(
                "dns_zone_id",
                "string",
                f"The Route 53 hosted zone that holds {target.domain}.",
            )
        )
    return out


def _cloud_config() -> Heredoc:
    return Heredoc(
        (
            "#cloud-config",
            "users:",
            "  - default",
            "  - name: ${each.value.user}",
            '    sudo: "ALL=(ALL) NOPASSWD:ALL"',
            "    shell: /bin/bash",
            "    ssh_authorized_keys:",
            "      - ${jsonencode(var.ssh_public_key)}",
            "package_update: true",
            "packages: [python3]",
        )
    )


def main(target: Target, env: Environment, members: dict[str, list[str]]) -> list[Any]:
    prefix = _prefix(target)
    each = f'"{prefix}-${{each.key}}"'
    tags = {"app": Raw("local.app"), "environment": Raw("local.environment")}
    rules = _port_rules(target, env, members)
    ingress = Block(
        "dynamic",
        ("ingress",),
        body=(
            ("for_each", Raw("each.value")),
            BLANK,
            Block(
                "content",
                body=(
                    ("description", Raw("ingress.value.description")),
                    ("from_port", Raw("ingress.value.from_port")),
                    ("to_port", Raw("ingress.value.to_port")),
                    ("protocol", "tcp"),
                    ("cidr_blocks", Raw('ingress.value.public ? ["0.0.0.0/0"] : []')),
                    ("ipv6_cidr_blocks", Raw('ingress.value.public ? ["::/0"] : []')),
                    (
                        "security_groups",
                        Raw("ingress.value.public ? [] : [aws_security_group.hosts.id]"),
                    ),
                ),
            ),
        ),
    )
    hosts_group: list[Any] = [
        ("name", f"{prefix}-hosts"),
        ("description", f"Every host of {target.app.name} {target.environment}"),
        ("vpc_id", Raw("data.aws_subnet.hosts.vpc_id")),
        BLANK,
        Block(
            "ingress",
            body=(
                ("description", "SSH, from where deployer connects"),
                ("from_port", 22),
                ("to_port", 22),
                ("protocol", "tcp"),
                ("cidr_blocks", Raw("var.ssh_cidr_blocks")),
            ),
        ),
        BLANK,
    ]
    if target.monitoring is not None:
        port = target.monitoring.node_exporter_port
        hosts_group += [
            Block(
                "ingress",
                body=(
                    ("description", "node exporter, scraped by Prometheus"),
                    ("from_port", port),
                    ("to_port", port),
                    ("protocol", "tcp"),
                    ("self", True),
                ),
            ),
            BLANK,
        ]
    hosts_group += [
        Block(
            "egress",
            body=(
                ("description", "Everything out: packages, certificates, the app's own calls"),
                ("from_port", 0),
                ("to_port", 0),
                ("protocol", "-1"),
                ("cidr_blocks", [ANYWHERE[0]]),
                ("ipv6_cidr_blocks", [ANYWHERE[1]]),
            ),
        ),
        BLANK,
        ("tags", {"Name": f"{prefix}-hosts", **tags}),
    ]
    items: list[Any] = [
        Block(
            "locals",
            body=(
                ("app", target.app.name),
                ("environment", target.environment),
                BLANK,
                Comment("Every host: its components, its SSH user, its disk."),
                ("hosts", _hosts(target, members)),
                BLANK,
                Comment("The ports each component's hosts serve (public: to everyone, else"),
                Comment("to the environment's hosts only)."),
                ("ports", rules),
            ),
        ),
        Block("data", ("aws_subnet", "hosts"), body=(("id", Raw("var.subnet_id")),)),
        Block(
            "data",
            ("aws_ami", "debian"),
            body=(
                ("most_recent", True),
                ("owners", [DEBIAN_OWNER]),
                BLANK,
                Block("filter", body=(("name", "name"), ("values", ["debian-12-amd64-*"]))),
            ),
        ),
        Block("resource", ("aws_security_group", "hosts"), body=tuple(hosts_group)),
        Block(
            "resource",
            ("aws_security_group", "component"),
            body=(
                ("for_each", Raw("local.ports")),
                BLANK,
                ("name", Raw(each)),
                (
                    "description",
                    Raw(f'"Component ${{each.key}} of {target.app.name} {target.environment}"'),
                ),
                ("vpc_id", Raw("data.aws_subnet.hosts.vpc_id")),
                BLANK,
                ingress,
                BLANK,
                ("tags", {"Name": Raw(each), **tags, "component": Raw("each.key")}),
            ),
        ),
        Block(
            "resource",
            ("aws_instance", "host"),
            body=(
                ("for_each", Raw("local.hosts")),
                BLANK,
                ("ami", Raw("coalesce(var.ami_id, data.aws_ami.debian.id)")),
                (
                    "instance_type",
                    Raw("lookup(var.instance_types, each.value.components[0], var.instance_type)"),
                ),
                ("subnet_id", Raw("var.subnet_id")),
                ("associate_public_ip_address", True),
                (
                    "vpc_security_group_ids",
                    Raw(
                        "concat([aws_security_group.hosts.id], [for component in "
                        "each.value.components : aws_security_group.component[component].id])"
                    ),
                ),
                ("user_data", _cloud_config()),
                BLANK,
                Block(
                    "root_block_device",
                    body=(("volume_size", Raw("each.value.volume_size")), ("encrypted", True)),
                ),
                BLANK,
                Block("metadata_options", body=(("http_tokens", "required"),)),
                BLANK,
                (
                    "tags",
                    {
                        "Name": Raw(each),
                        **tags,
                        "component": Raw('join(" ", each.value.components)'),
                    },
                ),
            ),
        ),
    ]
    if target.domain and target.proxy is not None:
        records = [Raw(f"aws_instance.host[{string(h)}].public_ip") for h in target.proxy.hosts]
        items.append(
            Block(
                "resource",
                ("aws_route53_record", "domain"),
                body=(
                    ("zone_id", Raw("var.dns_zone_id")),
                    ("name", target.domain),
                    ("type", "A"),
                    ("ttl", 60),
                    ("records", records),
                ),
            )
        )
    return items


def outputs(members: dict[str, list[str]]) -> list[Any]:
    def host(name: str) -> dict[str, Any]:
        instance = f"aws_instance.host[{string(name)}]"
        return {
            "name": name,
            "address": Raw(f"{instance}.public_ip"),
            "private_address": Raw(f"{instance}.private_ip"),
        }

    value = {
        "app": Raw("local.app"),
        "environment": Raw("local.environment"),
        "hosts": {c: [host(n) for n in names] for c, names in members.items()},
    }
    return [
        Block(
            "output",
            (OUTPUT,),
            body=(
                (
                    "description",
                    "The hosts per component, as an environment's hosts: {from_terraform: "
                    "outputs.json} reads them (terraform output -json > outputs.json).",
                ),
                ("value", value),
            ),
        )
    ]


def generate(target: Target, env: Environment, provider: str = "aws") -> Generated:
    """The Terraform files of `target`'s hosts. Raises ConfigError (exit 2) naming the path
    of what keeps them from being generated."""
    check_provider(provider)
    found = problems(env, target.environment)
    if found:
        raise ConfigError(found, source=str(target.config_path))
    members = groups(env)
    notes: list[str] = []
    if target.proxy is not None and not target.domain:
        notes.append(
            f"environments.{target.environment}.domain is not set: no DNS record (the proxy "
            "answers at its hosts' addresses)"
        )
    header = [
        Comment(
            f"{HEADER_MARK} from {target.config_path.name}: the hosts of "
            f"{target.app.name} {target.environment}."
        ),
        Comment(
            f"Regenerate with `deployer generate terraform {target.environment}`; edits here "
            "are overwritten."
        ),
        BLANK,
    ]
    files = {
        "versions.tf": render([*header, *versions()]),
        "variables.tf": render([*header, *variables(target)]),
        "main.tf": render([*header, *main(target, env, members)]),
        "outputs.tf": render([*header, *outputs(members)]),
    }
    return Generated(
        kind="terraform",
        provider=provider,
        files=files,
        environment=target.environment,
        notes=tuple(notes),
    )
