"""The lab image tag follows its assets, so an old image is never reused after an edit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deployer.lab import image


def test_tag_is_stable() -> None:
    assert image.image_tag() == image.image_tag()
    assert image.image_tag().startswith("deployer-lab:")


def test_tag_changes_when_an_asset_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "image"
    shutil.copytree(image.ASSETS, copy)
    monkeypatch.setattr(image, "ASSETS", copy)
    before = image.image_tag()
    with (copy / "sshd-lab.conf").open("a") as handle:
        handle.write("# edited\n")
    assert image.image_tag() != before


def test_tag_changes_when_the_base_package_list_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    before = image.image_tag()
    monkeypatch.setattr(image, "BASE_PACKAGES", (*image.BASE_PACKAGES, "nginx"))
    assert image.image_tag() != before


def test_dockerfile_builds_from_the_base_image() -> None:
    dockerfile = (image.ASSETS / "Dockerfile").read_text()
    assert f"FROM {image.BASE_IMAGE}\n" in dockerfile
    assert "rm -f /etc/ssh/ssh_host_*" in dockerfile
