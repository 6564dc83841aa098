"""The controller's private directories: SSH control sockets never go where another local
user could have planted something first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deployer.errors import DeployerError
from deployer.paths import private_dir, ssh_control_dir

pytestmark = pytest.mark.hostile


def test_a_missing_directory_is_created_private(tmp_path: Path) -> None:
    made = private_dir(tmp_path / "cp")
    assert made.is_dir()
    assert made.stat().st_mode & 0o777 == 0o700


def test_a_planted_symlink_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "cp").symlink_to(elsewhere)
    with pytest.raises(DeployerError, match="is a symlink"):
        private_dir(tmp_path / "cp")


def test_a_directory_open_to_others_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cp").mkdir()
    (tmp_path / "cp").chmod(0o777)
    with pytest.raises(DeployerError, match="open to other users"):
        private_dir(tmp_path / "cp")


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a directory away")
def test_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cp").mkdir(mode=0o700)
    os.chown(tmp_path / "cp", 65534, 65534)
    with pytest.raises(DeployerError, match="belongs to uid 65534"):
        private_dir(tmp_path / "cp")


def test_a_file_in_its_place_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cp").write_text("")
    with pytest.raises(DeployerError, match="not a directory"):
        private_dir(tmp_path / "cp")


def test_control_dirs_are_per_user_and_project_under_the_runtime_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    one = ssh_control_dir(tmp_path / "a", "cp")
    two = ssh_control_dir(tmp_path / "b", "cp")
    assert one.parent == two.parent == runtime / f"deployer-cp-{os.getuid()}"
    assert one != two
    assert all(p.stat().st_mode & 0o777 == 0o700 for p in (one, two, one.parent))
    # short, so ssh's %C (40 hex digits) still fits the 108-byte socket path limit
    assert len(str(one)) - len(str(runtime)) <= 30


def test_the_per_user_parent_is_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    planted = tmp_path / f"deployer-cp-{os.getuid()}"
    planted.mkdir()
    planted.chmod(0o755)
    with pytest.raises(DeployerError, match=str(planted)):
        ssh_control_dir(tmp_path / "project", "cp")
