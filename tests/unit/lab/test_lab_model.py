"""Lab naming rules and where a lab keeps its files."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.lab import LabError, lab_dir
from deployer.lab.model import check_name, container_name


def test_lab_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DEPLOYER_LAB_DIR", str(tmp_path))
    assert lab_dir("pytest") == tmp_path / "pytest"
    assert lab_dir() == tmp_path / "lab"


def test_lab_dir_defaults_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DEPLOYER_LAB_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert lab_dir() == tmp_path / ".local/share/deployer/labs/lab"


@pytest.mark.parametrize("name", ["", "../etc", "Lab", "a b", "-x", "x" * 40, "a/b"])
def test_bad_lab_names_are_refused(name: str) -> None:
    with pytest.raises(LabError):
        check_name(name)


def test_container_name() -> None:
    assert container_name("lab", 1) == "deployer-lab-1"
