"""Components that split the local lab's hosts: `lab` takes them all, `lab[i]` one,
`lab[i:j]` a slice (so one lab can hold an edge host and backend hosts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.config.loader import load_project
from deployer.config.models import Host, lab_selection
from deployer.config.resolve import LabInfo, resolve
from deployer.errors import ConfigError

CONFIG = """
app: {name: shop}
service: {command: /bin/true, port: 8000}
health: {tcp: {}}
environments:
  lab:
    hosts:
      edge: EDGE
      backend: BACKEND
"""


def _lab(tmp_path: Path, count: int) -> LabInfo:
    hosts = tuple(
        Host(address="127.0.0.1", port=2200 + i, name=f"lab-{i + 1}", user="deploy")
        for i in range(count)
    )
    return LabInfo("lab", hosts, tmp_path / "key", tmp_path / "known_hosts")


def _resolve(tmp_path: Path, edge: str, backend: str, count: int = 3):  # type: ignore[no-untyped-def]
    (tmp_path / "deploy.yml").write_text(CONFIG.replace("EDGE", edge).replace("BACKEND", backend))
    return resolve(load_project(tmp_path / "deploy.yml"), "lab", _lab(tmp_path, count))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lab", slice(None, None)),
        ("lab[0]", slice(0, 1)),
        ("lab[-1]", slice(-1, None)),
        ("lab[1:3]", slice(1, 3)),
        ("lab[1:]", slice(1, None)),
        ("web", None),
        (["x"], None),
    ],
)
def test_what_a_hosts_string_selects(text: object, expected: slice | None) -> None:
    assert lab_selection(text) == expected


def test_an_edge_host_and_two_backends_from_one_lab(tmp_path: Path) -> None:
    target = _resolve(tmp_path, "'lab[0]'", "'lab[1:3]'")
    assert target.components == {"edge": ("lab-1",), "backend": ("lab-2", "lab-3")}
    assert all(h.private_key == tmp_path / "key" for h in target.hosts)
    assert tmp_path / "known_hosts" in target.known_hosts


def test_a_slice_past_the_lab_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        _resolve(tmp_path, "'lab[0]'", "'lab[3:]'")
    assert error.value.problems == (
        "environments.lab.hosts.backend: lab[3:] selects none of the lab's 3 hosts",
    )


def test_anything_else_is_not_a_lab_selection(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        _resolve(tmp_path, "'lab[0]'", "'lab[one]'")
    assert error.value.problems[0].startswith("environments.lab.hosts.backend")
