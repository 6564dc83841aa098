"""Component defaults: where each component builds from, its port, publishing and health."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.config.loader import load_project
from deployer.config.resolve import resolve
from deployer.config.swarm import SwarmComponent, SwarmSettings, settings_of
from deployer.errors import BadRequest
from deployer.targets.swarm.build import build_images, locate, specs_of
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


def test_artifact_dir_replaces_the_configured_folders(tmp_path: Path) -> None:
    """`deploy --artifact DIR` on Swarm: components build from DIR/<name> (or DIR itself)."""
    target = resolve(load_project(GOLDEN / "hello" / "deploy.yml"), "swarm")
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "app.py").write_text("print('hi')\n")
    (tmp_path / "web" / "requirements.txt").write_text("")
    (tmp_path / "index.html").write_text("<h1>hi</h1>\n")
    found = locate(target, SwarmSettings(), tmp_path)
    assert found["web"].context == (tmp_path / "web").resolve()
    assert found["site"].context == tmp_path.resolve()  # no site/ folder: DIR itself
    # a component's own path is relative to the project; --artifact replaces it too
    pinned = SwarmSettings(components={"web": SwarmComponent(path="nowhere")})
    assert locate(target, pinned, tmp_path)["web"].context == (tmp_path / "web").resolve()


def test_artifact_must_be_a_directory_for_swarm(tmp_path: Path) -> None:
    target = resolve(load_project(GOLDEN / "hello" / "deploy.yml"), "swarm")
    tarball = tmp_path / "release.tar.gz"
    tarball.write_bytes(b"")
    with pytest.raises(BadRequest, match="built from a directory"):
        build_images(target, "v1", root=tarball)
