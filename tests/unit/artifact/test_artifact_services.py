"""One tarball for every service of a release: each service's directory under its name,
built first; `--artifact SERVICE=DIR` swaps one service's files for a release."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from deployer.artifact import for_services, service_overrides
from deployer.config.loader import load_project
from deployer.config.resolve import Target, resolve
from deployer.errors import BadRequest

SHOP = Path(__file__).parents[3] / "examples" / "shop"


def _shop(tmp_path: Path) -> Target:
    root = tmp_path / "shop"
    shutil.copytree(SHOP, root, ignore=shutil.ignore_patterns("dist", "__pycache__"))
    return resolve(load_project(root / "deploy.yml"), "production")


def _names(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


def test_every_service_is_packed_under_its_name_after_its_build(tmp_path: Path) -> None:
    target = _shop(tmp_path)
    packed = for_services(target, tmp_path / "out")
    names = _names(packed.path)
    assert "api/api.py" in names
    assert "frontend/dist/index.html" in names
    assert not any(n.startswith("frontend/src") or n == "frontend/build.py" for n in names)
    scripts = [n for n in names if n.startswith("frontend/dist/app.") and n.endswith(".js")]
    assert len(scripts) == 1  # fingerprinted by the build: app.<hash>.js
    assert "deploy.yml" not in names  # the config is never packed
    again = for_services(target, tmp_path / "again")
    assert again.sha256 == packed.sha256  # reproducible


def test_one_service_from_another_directory(tmp_path: Path) -> None:
    target = _shop(tmp_path)
    broken = tmp_path / "api-broken"
    shutil.copytree(target.project_dir / "api", broken)
    (broken / "BROKEN").touch()
    overrides = service_overrides(target, Path(f"api={broken}"))
    names = _names(for_services(target, tmp_path / "out", overrides=overrides).path)
    assert "api/BROKEN" in names
    assert "frontend/dist/index.html" in names


def test_a_missing_directory_is_named_where_it_was_given(tmp_path: Path) -> None:
    target = _shop(tmp_path)
    overrides = service_overrides(target, Path(f"api={tmp_path / 'nowhere'}"))
    with pytest.raises(BadRequest) as error:
        for_services(target, tmp_path / "out", overrides=overrides)
    assert str(error.value).startswith("--artifact: ")
    shutil.rmtree(target.project_dir / "api")
    with pytest.raises(BadRequest) as error:
        for_services(target, tmp_path / "out")
    assert str(error.value).startswith("services.api.artifact.path: ")


@pytest.mark.parametrize("given", ["api", "billing=x", "api="])
def test_an_artifact_flag_that_names_no_service_is_refused(tmp_path: Path, given: str) -> None:
    with pytest.raises(BadRequest) as error:
        service_overrides(_shop(tmp_path), Path(given))
    assert "SERVICE=DIR" in str(error.value)
