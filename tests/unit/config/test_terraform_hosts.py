"""`hosts: {from_terraform: outputs.json, components: {...}}`: an environment whose hosts
Terraform created, read from `terraform output -json` before anything else happens.

The file is untrusted input: every problem with it (missing, not JSON, another shape, another
app's or environment's, out of step with `components`, a hostile address or name) is exit 2
naming the config path and the file, and no host is contacted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from deployer.config.loader import load_project
from deployer.config.resolve import resolve
from deployer.config.terraform import MAX_OUTPUTS_BYTES, placeholders, read_outputs
from deployer.errors import ConfigError
from deployer.plan.inventory import build_inventory

CONFIG = """\
app: {name: shop}
service: {command: /usr/bin/python3 app.py, port: 8000}
health: {http: {path: /healthz}}
environments:
  production:
    hosts:
      from_terraform: infra/outputs.json
      components: {web: 2, data: 1}
    database: {type: postgresql, component: data}
    service: {uses: [database]}
"""
LOC = "environments.production.hosts.from_terraform"


def _outputs(**change: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "app": "shop",
        "environment": "production",
        "hosts": {
            "web": [
                {"name": "web-1", "address": "203.0.113.10", "private_address": "10.0.1.10"},
                {"name": "web-2", "address": "203.0.113.11", "private_address": "10.0.1.11"},
            ],
            "data": [{"name": "data-1", "address": "203.0.113.20", "private_address": "10.0.1.20"}],
        },
    }
    value.update(change)
    return {"deployer_hosts": {"sensitive": False, "type": ["object", {}], "value": value}}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "deploy.yml").write_text(CONFIG)
    (tmp_path / "infra").mkdir()
    return tmp_path


def _write(project: Path, data: Any) -> Path:
    path = project / "infra" / "outputs.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_the_environment_takes_the_hosts_the_outputs_name(project: Path) -> None:
    _write(project, _outputs())
    loaded = load_project(project / "deploy.yml")
    target = resolve(loaded, "production", None, read_outputs(loaded, "production"))
    assert [(h.name, h.address, h.private_address, h.port, h.user) for h in target.every_host] == [
        ("web-1", "203.0.113.10", "10.0.1.10", 22, "deploy"),
        ("web-2", "203.0.113.11", "10.0.1.11", 22, "deploy"),
        ("data-1", "203.0.113.20", "10.0.1.20", 22, "deploy"),
    ]
    assert target.components == {"web": ("web-1", "web-2")}
    assert target.accessory("database").hosts == ("data-1",)  # type: ignore[union-attr]
    groups = build_inventory(target)["all"]["children"]["env_production"]["children"]
    assert groups["web"]["hosts"]["web-2"]["ansible_host"] == "203.0.113.11"


def test_a_host_may_give_its_port_and_user_and_sit_in_two_components(project: Path) -> None:
    shared = {"name": "box", "address": "127.0.0.1", "port": 2201, "user": "ops"}
    other = {"name": "box2", "address": "127.0.0.1", "port": 2202}
    _write(project, _outputs(hosts={"web": [shared, other], "data": [shared]}))
    loaded = load_project(project / "deploy.yml")
    target = resolve(loaded, "production", None, read_outputs(loaded, "production"))
    box = next(h for h in target.every_host if h.name == "box")
    assert (box.port, box.user, box.components) == (2201, "ops", ("web",))
    assert target.accessory("database").hosts == ("box",)  # type: ignore[union-attr]


def test_before_apply_the_generator_sees_stand_ins_named_as_terraform_names_them(
    project: Path,
) -> None:
    loaded = load_project(project / "deploy.yml")
    stand_ins = placeholders(loaded, "production")
    assert stand_ins is not None
    assert {c: [h.name for h in hosts] for c, hosts in stand_ins.items()} == {
        "web": ["web-1", "web-2"],
        "data": ["data-1"],
    }
    target = resolve(loaded, "production", None, stand_ins)
    assert target.host_names == ("web-1", "web-2")


def _broken(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    data = _outputs()
    change(data)
    return data


def _value(data: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = data["deployer_hosts"]["value"]
    return value


BAD: dict[str, tuple[Any, str]] = {
    "not json": ("{nope", "not JSON"),
    "duplicate key": ('{"deployer_hosts": {}, "deployer_hosts": {}}', "duplicate key"),
    "a list": ("[]", "expected the object `terraform output -json` prints"),
    "no deployer output": ({"other": {"value": 1}}, "no output 'deployer_hosts' (outputs: other)"),
    "the bare value": (_outputs()["deployer_hosts"]["value"], "no output 'deployer_hosts'"),
    "another app": (_outputs(app="blog"), "deployer_hosts.value.app: made for app 'blog'"),
    "another environment": (
        _outputs(environment="staging"),
        "deployer_hosts.value.environment: made for environment 'staging'",
    ),
    "a host short": (
        _broken(lambda d: _value(d)["hosts"]["web"].pop()),
        "deployer_hosts.value.hosts.web: 1 host(s), environments.production.hosts.components.web "
        "asks for 2",
    ),
    "a component missing": (
        _broken(lambda d: _value(d)["hosts"].pop("data")),
        "deployer_hosts.value.hosts.data: 0 host(s)",
    ),
    "a component deploy.yml does not name": (
        _broken(lambda d: _value(d)["hosts"].update(cache=[{"name": "c", "address": "10.0.0.9"}])),
        "deployer_hosts.value.hosts.cache: a component deploy.yml does not name",
    ),
    "a shell in an address": (
        _broken(lambda d: _value(d)["hosts"]["web"][0].update(address="10.0.0.1;touch /tmp/x")),
        "deployer_hosts.value.hosts.web[0].address: '10.0.0.1;touch /tmp/x' is not a safe host "
        "address",
    ),
    "an empty address (no public IP)": (
        _broken(lambda d: _value(d)["hosts"]["web"][0].update(address="")),
        "deployer_hosts.value.hosts.web[0].address:",
    ),
    "a path in a name": (
        _broken(lambda d: _value(d)["hosts"]["web"][1].update(name="../../etc")),
        "deployer_hosts.value.hosts.web[1].name: '../../etc' is not a safe name",
    ),
    "a host without a name": (
        _broken(lambda d: _value(d)["hosts"]["web"][1].pop("name")),
        "deployer_hosts.value.hosts.web[1].name: required",
    ),
    "an unknown key": (
        _broken(lambda d: _value(d)["hosts"]["web"][1].update(adress="10.0.0.5")),
        "deployer_hosts.value.hosts.web[1].adress: unknown key (did you mean 'address'?)",
    ),
    "a port in the address": (
        _broken(lambda d: _value(d)["hosts"]["web"][1].update(address="10.0.0.5:2222")),
        "put the port in `port:`",
    ),
    "one name, two hosts": (
        _broken(lambda d: _value(d)["hosts"]["web"][1].update(name="web-1")),
        "deployer_hosts.value.hosts.web[1].name: 'web-1' is used for two different hosts",
    ),
    "two names, one endpoint": (
        _broken(lambda d: _value(d)["hosts"]["web"][1].update(address="203.0.113.10")),
        "deployer_hosts.value.hosts.web[1].address: 203.0.113.10 port 22 is also host web-1",
    ),
    "hosts not a mapping": (
        _broken(lambda d: _value(d).update(hosts=["web-1"])),
        "deployer_hosts.value.hosts:",
    ),
    "too deep": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(BAD), ids=sorted(BAD))
def test_an_outputs_file_of_the_wrong_shape_is_refused_naming_the_path(
    project: Path, case: str
) -> None:
    data, expected = BAD[case]
    path = _write(project, data)
    loaded = load_project(project / "deploy.yml")
    with pytest.raises(ConfigError) as raised:
        read_outputs(loaded, "production")
    problems = raised.value.problems
    assert all(p.startswith(f"{LOC}: {path}: ") for p in problems), problems
    assert any(expected in p for p in problems), problems


def test_a_missing_or_oversized_file_is_refused_naming_it(project: Path) -> None:
    loaded = load_project(project / "deploy.yml")
    with pytest.raises(ConfigError) as raised:
        read_outputs(loaded, "production")
    (problem,) = raised.value.problems
    assert problem.startswith(f"{LOC}: {project / 'infra' / 'outputs.json'}: no such file")
    assert "terraform output -json" in problem
    _write(project, " " * (MAX_OUTPUTS_BYTES + 1))
    with pytest.raises(ConfigError) as raised:
        read_outputs(loaded, "production")
    (problem,) = raised.value.problems
    assert problem.endswith(f"larger than {MAX_OUTPUTS_BYTES} bytes, the limit for an outputs file")


def test_resolve_refuses_an_environment_whose_outputs_were_not_read(project: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve(load_project(project / "deploy.yml"), "production")
    assert raised.value.problems == (f"{LOC}: its outputs were not read",)


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        ("{from_terraform: o.json, components: {web: 0}}", "hosts.components.web: Input should "
         "be greater than or equal to 1"),
        ("{from_terraform: o.json, components: {}}", "hosts.components: Dictionary should have "
         "at least 1 item"),
        ("{from_terraform: o.json}", "hosts.components: required"),
        ("{from_terraform: o.json, components: {web: 1}, extra: 1}", "hosts.extra: unknown key"),
        ("{from_terraform: o.json, components: {Web: 1}}", "hosts.components.Web: 'Web' is not a "
         "safe identifier"),
    ],
)  # fmt: skip
def test_the_section_itself_is_validated_with_its_path(
    tmp_path: Path, hosts: str, expected: str
) -> None:
    given = CONFIG[CONFIG.index("    hosts:") : CONFIG.index("    database:")].rstrip("\n")
    (tmp_path / "deploy.yml").write_text(CONFIG.replace(given, f"    hosts: {hosts}"))
    with pytest.raises(ConfigError) as raised:
        load_project(tmp_path / "deploy.yml")
    problems = raised.value.problems
    assert any(p.startswith(f"environments.production.{expected}") for p in problems), problems


# --- through the CLI -------------------------------------------------------------------------


def test_deploy_refuses_bad_outputs_before_anything_else(
    project: Path, cli: Callable[..., Result]
) -> None:
    path = _write(project, _broken(lambda d: _value(d)["hosts"]["web"][0].update(address="a b")))
    result = cli("-c", project / "deploy.yml", "deploy", "production", "--json")
    assert result.exit_code == 2, result.output
    error = json.loads(result.output)
    assert error["details"] == [
        f"{LOC}: {path}: deployer_hosts.value.hosts.web[0].address: 'a b' is not a safe host "
        "address (a hostname of letters, digits and '-', or an IP address)"
    ]
    assert not (project / ".deployer").exists()  # no ledger, no run: nothing was touched


def test_validate_notes_outputs_not_there_yet_and_judges_them_once_they_are(
    project: Path, cli: Callable[..., Result]
) -> None:
    before = cli("-c", project / "deploy.yml", "validate", "--json")
    assert before.exit_code == 0, before.output
    (note,) = json.loads(before.output)["notes"]
    assert note.startswith("production: its hosts come from Terraform, whose outputs")
    _write(project, _outputs(environment="staging"))
    after = cli("-c", project / "deploy.yml", "validate")
    assert after.exit_code == 2
    assert "made for environment 'staging'" in after.output
    _write(project, _outputs())
    assert cli("-c", project / "deploy.yml", "validate").exit_code == 0
