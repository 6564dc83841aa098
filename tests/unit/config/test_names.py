"""Names that reach shells, paths and inventories: whatever is accepted is safe.

hypothesis is not installed, so the property tests draw from a seeded random generator:
strings of safe characters with dangerous ones and '..' mixed in.
"""

from __future__ import annotations

import contextlib
import random
import re
import string
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from deployer.config import names
from deployer.config.loader import load_project
from deployer.config.resolve import resolve

SAFE = string.ascii_letters + string.digits + "._-+:%@/"
DANGEROUS = [*" \t\n\r\x00;&|$`'\"\\<>(){}[]*?!~#=,", "..", "../", "/..", "$(", "\u00e9"]
METACHARS = set(" \t\n\r\x00;&|$`'\"\\<>(){}[]*?!~#")

NAMES = {
    "Name": names.Name,
    "Ident": names.Ident,
    "Version": names.Version,
    "Address": names.Address,
    "UserName": names.UserName,
    "EnvVarName": names.EnvVarName,
}
PATHS = {"AbsPath": names.AbsPath, "RelPath": names.RelPath}


def _samples(seed: int, count: int = 4000) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        chars = [rng.choice(SAFE) for _ in range(rng.randint(0, 12))]
        if rng.random() < 0.5:
            chars.insert(rng.randint(0, len(chars)), rng.choice(DANGEROUS))
        if rng.random() < 0.3:
            chars.insert(0, rng.choice(string.ascii_lowercase + "/"))
        out.append("".join(chars))
    return out


def _accepted(kind: Any, seed: int) -> list[str]:
    adapter = TypeAdapter(kind)
    accepted = []
    for value in _samples(seed):
        with contextlib.suppress(ValidationError):
            accepted.append(adapter.validate_python(value))
    return accepted


@pytest.mark.parametrize("kind", NAMES)
def test_accepted_names_are_safe(kind: str) -> None:
    accepted = _accepted(NAMES[kind], seed=len(kind))
    assert len(accepted) > 50  # the generator does reach the accepting side
    for value in accepted:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:%+-]*|_[A-Za-z0-9_-]*", value), value
        assert ".." not in value
        assert "/" not in value
        assert not METACHARS & set(value), value


@pytest.mark.parametrize("kind", PATHS)
def test_accepted_paths_are_safe(kind: str) -> None:
    accepted = _accepted(PATHS[kind], seed=len(kind))
    assert len(accepted) > 25
    for value in accepted:
        assert re.fullmatch(r"[A-Za-z0-9._/@+-]+", value), value
        assert (kind == "AbsPath") == value.startswith("/")
        segments = value.strip("/").split("/")
        assert all(s not in ("", ".", "..") for s in segments[1 if kind == "RelPath" else 0 :]), (
            value
        )
        assert ".." not in segments


@pytest.mark.parametrize(
    "value",
    [
        "v1';rm -rf /",
        "../../etc",
        "`id`",
        "",
        "$(id)",
        "1.0 ",
        "-rf",
        "1..2",
        "1.0/x",
        "1.0\n",
        "x" * 129,
    ],
)
def test_check_version_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        names.check_version(value)


@pytest.mark.parametrize("value", ["1.0.0", "v2.3.4-rc.1", "2024-06-01_abc123", "1.0+build.7"])
def test_check_version_accepts(value: str) -> None:
    assert names.check_version(value) == value


@pytest.mark.parametrize("kind", ["Name", "Address", "UserName", "Version", "Ident"])
@pytest.mark.parametrize("value", ["-oProxyCommand=touch x", "a;b", "a b", "", "../x", "a/b"])
def test_option_and_shell_injection_rejected(kind: str, value: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(NAMES[kind]).validate_python(value)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("AbsPath", "/"),
        ("AbsPath", "/srv//x"),
        ("AbsPath", "/srv/x/"),
        ("AbsPath", "/srv/./x"),
        ("AbsPath", "/srv/a b"),
        ("RelPath", "/abs"),
        ("RelPath", "a/../b"),
        ("RelPath", "./a"),
        ("RelPath", "a/./b"),
    ],
)
def test_bad_paths_rejected(kind: str, value: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(PATHS[kind]).validate_python(value)


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b"])
def test_single_line(value: str) -> None:
    with pytest.raises(ValueError):
        names.single_line(value)


@pytest.mark.parametrize("app", ["9lives", "0day.app"])
def test_default_service_user_is_a_valid_user_name(app: str, tmp_path: Path) -> None:
    config = tmp_path / "deploy.yml"
    config.write_text(
        f"app: {{name: {app}}}\nservice: {{command: /bin/true, port: 80}}\nhealth: {{tcp: {{}}}}\n"
        "environments: {staging: {hosts: {web: [{address: 10.0.0.1}]}}}\n"
    )
    user = resolve(load_project(config), "staging").service_user
    TypeAdapter(names.UserName).validate_python(user)
