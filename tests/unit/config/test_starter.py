"""The starter deploy.yml of `deployer init`: golden, and valid against the models.

Regenerate tests/golden/starter/deploy.yml after an intended change with
`UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/config/test_starter.py` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from deployer.config.loader import load_project
from deployer.config.models import Project
from deployer.config.resolve import resolve
from deployer.config.starter import starter

GOLDEN = Path(__file__).parents[2] / "golden" / "starter" / "deploy.yml"


def test_starter_matches_golden() -> None:
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(starter("hello"))
    assert starter("hello") == GOLDEN.read_text()


def test_golden_starter_validates() -> None:
    project = Project.model_validate(yaml.safe_load(GOLDEN.read_text()))
    assert project.app.name == "hello"
    assert set(project.environments) == {"lab", "production"}


def test_starter_resolves_without_a_lab(tmp_path: Path) -> None:
    config = tmp_path / "deploy.yml"
    config.write_text(starter("my-app.v2"))
    target = resolve(load_project(config), "production")
    assert target.app.name == "my-app.v2"
    assert target.service_user == "my-app-v2"
    assert [h.address for h in target.hosts] == ["203.0.113.10", "203.0.113.11"]


def test_starter_shows_every_top_level_section() -> None:
    text = starter()
    for name in Project.model_fields:
        assert f"\n{name}:" in text or f"\n# {name}:" in text, name
