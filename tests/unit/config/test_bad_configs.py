"""Every bad config in tests/fixtures/configs/bad/ is refused with exit 2, naming its path.

Each fixture starts with `# expect: <config path>`, optionally followed by
`# expect-text: <part of the message>`, `# env: <environment given on the command line>` and
`# command: <the command to run instead of validate>`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result

from deployer.config.loader import load_project
from deployer.config.resolve import resolve
from deployer.errors import ConfigError
from deployer.exitcodes import ExitCode
from deployer.lab.hosts import load_lab, uses_lab

BAD = Path(__file__).parents[2] / "fixtures" / "configs" / "bad"


@dataclass(frozen=True)
class Case:
    path: Path
    expect: str
    text: str | None
    env: str | None
    command: str = "validate"


def _case(path: Path) -> Case:
    headers: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(": ")
        headers[key] = value
    return Case(
        path,
        headers["expect"],
        headers.get("expect-text"),
        headers.get("env"),
        headers.get("command", "validate"),
    )


CASES = [_case(p) for p in sorted(BAD.glob("*.yml"))]
IDS = [c.path.stem for c in CASES]
# secrets resolve when a deploy starts, not when the config loads
LOAD_CASES = [c for c in CASES if c.command != "deploy"]
LOAD_IDS = [c.path.stem for c in LOAD_CASES]


def test_there_are_fixtures() -> None:
    assert len(CASES) >= 35


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_validate_exits_2_naming_the_path(case: Case, cli: Callable[..., Result]) -> None:
    result = cli("-c", case.path, case.command, *([case.env] if case.env else []))
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert case.expect in result.output
    if case.text:
        assert case.text in result.output


def _load_and_resolve(case: Case) -> None:
    loaded = load_project(case.path)
    for env in [case.env] if case.env else list(loaded.project.environments):
        resolve(loaded, env, load_lab() if uses_lab(loaded, env) else None)


def _problems(case: Case) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        _load_and_resolve(case)
    return info.value.problems


@pytest.mark.parametrize("case", LOAD_CASES, ids=LOAD_IDS)
def test_config_error_names_the_path(case: Case, no_lab: Path) -> None:
    matching = [p for p in _problems(case) if p.startswith(case.expect)]
    assert matching, _problems(case)
    if case.text:
        assert any(case.text in p for p in matching)


# --- shell injection: nothing named in the config is ever run ----------------------------

INJECTIONS = {
    "host address": "hosts:\n      web:\n        - address: a;touch {marker}\n",
    "host address subshell": "hosts:\n      web:\n        - address: $(touch {marker})\n",
    "host name": "hosts:\n      web:\n        - {{address: 10.0.0.1, name: 'a;touch {marker}'}}\n",
    "component": "hosts:\n      'x;touch {marker}':\n        - address: 10.0.0.1\n",
    "domain": "domain: a;touch {marker}\n    hosts:\n      web:\n        - address: 10.0.0.1\n",
}


@pytest.mark.parametrize("where", INJECTIONS)
def test_injected_commands_are_refused_and_never_run(
    where: str, tmp_path: Path, cli: Callable[..., Result]
) -> None:
    marker = tmp_path / "pwned"
    config = tmp_path / "deploy.yml"
    config.write_text(
        "app:\n  name: myapp\nservice:\n  command: /bin/true\n  port: 8000\n"
        "health:\n  tcp: {}\nenvironments:\n  staging:\n    "
        + INJECTIONS[where].format(marker=marker)
    )
    for args in (["validate"], ["inventory", "staging"], ["inventory", "staging", "--json"]):
        result = cli("-c", config, *args)
        assert result.exit_code == ExitCode.BAD_INPUT, result.output
        assert "environments.staging" in result.output
        assert not marker.exists()


def test_inventory_of_unknown_environment(cli: Callable[..., Result]) -> None:
    result = cli("-c", BAD / "unknown_environment.yml", "inventory", "nope")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "environments.nope: unknown environment" in result.output


def test_every_problem_is_reported_at_once(tmp_path: Path, no_lab: Path) -> None:
    config = tmp_path / "deploy.yml"
    config.write_text(
        "app:\n  name: $(id)\nkeep_releases: 1\nenvironments:\n  staging:\n    hosts: {}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_project(config)
    paths = [p.split(":")[0] for p in info.value.problems]
    assert paths == ["app.name", "keep_releases", "environments.staging.hosts"]


def test_problems_carry_the_line(no_lab: Path) -> None:
    case = _case(BAD / "port_string.yml")
    (problem,) = _problems(case)
    assert problem.endswith("(line 16)")
    assert case.path.read_text().splitlines()[15].strip() == "port: twenty-two"


@pytest.mark.parametrize(
    ("fixture", "hint"),
    [("typo_nested_environment", "'domain'"), ("typo_host_key", "'address'")],
)
def test_did_you_mean_inside_an_environment(fixture: str, hint: str, no_lab: Path) -> None:
    case = _case(BAD / f"{fixture}.yml")
    (problem,) = [p for p in _problems(case) if p.startswith(case.expect)]
    assert f"did you mean {hint}?" in problem


def test_bad_environment_name_is_reported_with_errors_below_it(
    tmp_path: Path, no_lab: Path
) -> None:
    config = tmp_path / "deploy.yml"
    config.write_text(
        "app:\n  name: myapp\nenvironments:\n  prod/eu:\n    hosts:\n"
        "      web:\n        - address: a;b\n"
    )
    with pytest.raises(ConfigError) as info:
        load_project(config)
    paths = [p.split(": ")[0] for p in info.value.problems]
    assert "environments.prod/eu.hosts.web[0].address" in paths
    assert "environments.prod/eu" in paths


def _with_resources(tmp_path: Path, resources: str) -> Path:
    config = tmp_path / "deploy.yml"
    config.write_text(
        f"app: {{name: myapp}}\nservice: {{command: /bin/true, port: 80, resources: {resources}}}\n"
        "health: {tcp: {}}\nenvironments: {staging: {hosts: {web: [{address: 10.0.0.1}]}}}\n"
    )
    return config


@pytest.mark.parametrize("cpu", [".inf", ".nan"])
def test_non_finite_cpu_is_refused(cpu: str, tmp_path: Path, cli: Callable[..., Result]) -> None:
    config = _with_resources(tmp_path, f"{{cpu: {cpu}}}")
    for args in (["validate"], ["inventory", "staging"]):
        result = cli("-c", config, *args)
        assert result.exit_code == ExitCode.BAD_INPUT, result.output
        assert "service.resources.cpu" in result.output


@pytest.mark.parametrize("memory", ["0", "0Mi"])
def test_zero_memory_is_refused(memory: str, tmp_path: Path, no_lab: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_project(_with_resources(tmp_path, f"{{memory: '{memory}'}}"))
    assert info.value.problems[0].startswith("service.resources.memory")


def test_zero_cpu_is_refused(tmp_path: Path, no_lab: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_project(_with_resources(tmp_path, "{cpu: 0m}"))
    assert info.value.problems == ("service.resources.cpu: must be more than 0 (line 2)",)
