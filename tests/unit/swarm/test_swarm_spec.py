"""Component defaults: where each component builds from, its port, publishing and health."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.config.loader import load_project
from deployer.config.resolve import resolve
from deployer.config.swarm import SwarmComponent, SwarmSettings, settings_of
from deployer.errors import BadRequest
from deployer.targets.swarm.build import locate, specs_of
from deployer.targets.swarm.spec import docker_name, image_tag

GOLDEN = Path(__file__).parents[2] / "golden" / "swarm" / "compose"


def test_defaults_follow_the_folders() -> None:
    target = resolve(load_project(GOLDEN / "hello" / "deploy.yml"), "swarm")
    settings = settings_of(target)
    assert settings == SwarmSettings()
    found = locate(target, settings)
    assert (found["web"].stack, found["site"].stack) == ("python", "static")
    web, site = specs_of(target, settings)
    assert (web.service, web.repository, web.image("v1")) == (
        "swarm-hello_web",
        "swarm-hello-web",
        "swarm-hello-web:v1",
    )
    assert (web.port, web.publish, web.command) == (8000, 8000, "python3 app.py")
    assert (site.port, site.publish, site.command) == (80, 80, None)
    assert site.health.http is not None
    assert site.health.http.port == 80
    assert web.health == target.health


def test_component_settings_override(tmp_path: Path) -> None:
    target = resolve(load_project(GOLDEN / "hello" / "deploy.yml"), "swarm")
    settings = SwarmSettings(
        stack="Edge.Stack",
        components={"site": SwarmComponent(path="web", stack="python", publish=0, port=9000)},
    )
    _web, site = specs_of(target, settings)
    assert site.service == "edge-stack_site"
    assert (site.stack, site.port, site.publish) == ("python", 9000, None)
    with pytest.raises(BadRequest, match="does not exist"):
        locate(target, SwarmSettings(components={"web": SwarmComponent(path="nowhere")}))


def test_names_and_tags() -> None:
    assert docker_name("Shop.API") == "shop-api"
    assert image_tag("v1.2_rc-3") == "v1.2_rc-3"
    with pytest.raises(BadRequest, match="image tag"):
        image_tag("1.0+build5")
