"""deploy.yml is untrusted input: parsed within limits (size, depth, alias expansion),
scalar keys only, merge keys honoured, every refusal a ConfigError naming the file and the
line, never a traceback."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from deployer.config.loader import MAX_CONFIG_BYTES, MAX_DEPTH, MAX_NODES, load_project
from deployer.errors import ConfigError
from deployer.exitcodes import ExitCode

pytestmark = pytest.mark.hostile

SERVICE = "service: {command: /bin/true, port: 8000}\nhealth: {tcp: {}}\n"
HOSTS = "environments:\n  staging:\n    hosts:\n      web:\n        - address: 10.0.0.1\n"
VALID = "app:\n  name: myapp\n" + SERVICE + HOSTS


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deploy.yml"
    path.write_text(text)
    return path


def problems(path: Path) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        load_project(path)
    assert info.value.message.startswith(str(path.resolve()))
    return info.value.problems


def test_a_file_past_the_size_cap_is_refused_before_parsing(tmp_path: Path) -> None:
    # 50 MB of valid YAML: parsing it took 41 s; the cap refuses it at once
    padding = "# " + "x" * 98 + "\n"
    path = write(tmp_path, VALID + padding * (50 * 1024 * 1024 // len(padding)))
    started = time.monotonic()
    (problem,) = problems(path)
    assert time.monotonic() - started < 2
    assert f"larger than {MAX_CONFIG_BYTES} bytes" in problem


def test_a_file_just_under_the_cap_is_read(tmp_path: Path) -> None:
    padding = "#" * 99 + "\n"
    text = VALID + padding * ((MAX_CONFIG_BYTES - len(VALID)) // 100)
    assert len(text.encode()) <= MAX_CONFIG_BYTES
    assert load_project(write(tmp_path, text)).project.app.name == "myapp"


@pytest.mark.parametrize(
    "nested",
    [
        "[" * 5000 + "]" * 5000,
        "{a: " * 5000 + "1" + "}" * 5000,
        "\n" + "".join(f"{' ' * i}-\n" for i in range(2, 2 * 600, 2)) + " " * 1200 + "- 1\n",
    ],
    ids=["flow lists", "flow mappings", "block lists"],
)
def test_5000_levels_of_nesting_are_refused_with_the_line(tmp_path: Path, nested: str) -> None:
    path = write(tmp_path, VALID + "deep: " + nested + "\n")
    (problem,) = problems(path)
    assert f"nested deeper than {MAX_DEPTH} levels" in problem
    assert problem.startswith("line ")


def test_nesting_within_the_cap_reaches_the_models(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "deep: " + "[" * 50 + "]" * 50 + "\n")
    assert problems(path) == ("deep: unknown key (line 10)",)


def test_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = write(tmp_path, VALID + "\n".join(bomb) + "\n")
    started = time.monotonic()
    (problem,) = problems(path)
    assert time.monotonic() - started < 5
    assert f"more than {MAX_NODES} values once aliases are expanded" in problem


def test_a_chain_of_aliases_deeper_than_the_cap_is_refused(tmp_path: Path) -> None:
    chain = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 5000)]
    path = write(tmp_path, VALID + "\n".join(chain) + "\n")
    (problem,) = problems(path)
    assert "nested deeper than 64 levels through aliases" in problem


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "loop: &loop [*loop]\n")
    (problem,) = problems(path)
    assert "nested deeper than" in problem


@pytest.mark.parametrize(
    ("key", "line"),
    [("? [a, b]\n: 1\n", 10), ("? {a: 1}\n: 1\n", 10), ("[a, b]: 1\n", 10)],
    ids=["explicit list", "explicit mapping", "flow list"],
)
def test_a_complex_key_is_refused_with_its_line(tmp_path: Path, key: str, line: int) -> None:
    path = write(tmp_path, VALID + key)
    (problem,) = problems(path)
    assert problem.startswith(f"line {line}, ")
    assert problem.endswith(": a list or a mapping cannot be a key")


def test_a_complex_key_exits_2_through_the_cli(tmp_path: Path, cli: Callable[..., Result]) -> None:
    result = cli("-c", write(tmp_path, VALID + "? [a, b]\n: 1\n"), "validate")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "line 10, column 3: a list or a mapping cannot be a key" in result.output
    assert "Traceback" not in result.output


MERGED = """\
app: {name: myapp}
health: {tcp: {}}
service:
  <<: &base {command: /usr/bin/python3 app.py, port: 8000, env: {LOG_LEVEL: info}}
  port: 9000
environments:
  staging:
    service:
      <<: *base
    hosts:
      web:
        - &web {address: 10.0.0.1, port: 2222}
        - <<: *web
          address: 10.0.0.2
"""


def test_merge_keys_work_and_written_keys_win(tmp_path: Path) -> None:
    project = load_project(write(tmp_path, MERGED)).project
    assert project.service.command == "/usr/bin/python3 app.py"
    assert project.service.port == 9000
    assert project.service.env == {"LOG_LEVEL": "info"}
    staging = project.environments["staging"]
    assert staging.service is not None
    assert staging.service.port == 8000
    hosts = staging.hosts["web"]
    assert isinstance(hosts, list)
    assert [(h.address, h.port) for h in hosts] == [("10.0.0.1", 2222), ("10.0.0.2", 2222)]


def test_of_a_list_of_merges_the_earlier_mapping_wins(tmp_path: Path) -> None:
    text = VALID.replace(
        SERVICE,
        "health: {tcp: {}}\nservice:\n  <<: [{port: 8000}, {port: 9000, command: /bin/true}]\n",
    )
    project = load_project(write(tmp_path, text)).project
    assert (project.service.port, project.service.command) == (8000, "/bin/true")


def test_a_real_duplicate_next_to_a_merge_is_still_refused(tmp_path: Path) -> None:
    text = VALID.replace(
        SERVICE,
        "health: {tcp: {}}\nservice:\n  <<: {command: /bin/true}\n  port: 1\n  port: 2\n",
    )
    (problem,) = problems(write(tmp_path, text))
    assert problem == "line 7, column 3: duplicate key 'port'"


def test_problems_in_merged_values_carry_a_line(tmp_path: Path) -> None:
    text = VALID.replace(
        SERVICE,
        "health: {tcp: {}}\nservice:\n  <<: {command: /bin/true, port: eighty}\n  user: web\n",
    )
    (problem,) = problems(write(tmp_path, text))
    assert problem.startswith("service.port: ")
    assert problem.endswith("(line 5)")
