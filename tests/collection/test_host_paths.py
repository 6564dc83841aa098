"""deployer_release and the health checks on a host whose service user is hostile (no lab):
root never follows a path the service user can plant under shared/, the release tree is
root's and read-only to the service, deploy_to is never taken over, and command checks
run as the service user. Run as root (as the module runs on the hosts)."""

from __future__ import annotations

import io
import json
import os
import pwd
import shutil
import stat
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))

from ansible_collections.deployer.core.plugins.module_utils import health, layout
from ansible_collections.deployer.core.plugins.modules import deployer_release

pytestmark = [
    pytest.mark.hostile,
    pytest.mark.skipif(os.geteuid() != 0, reason="the module runs as root on the hosts"),
]

SERVICE = "nobody"  # a user every Debian host has; stands in for the service user
SERVICE_UID = pwd.getpwnam(SERVICE).pw_uid
SERVICE_GID = pwd.getpwnam(SERVICE).pw_gid


def stager(deploy_to: Path, **params: Any) -> deployer_release.Stager:
    module = SimpleNamespace(
        check_mode=params.pop("check_mode", False),
        params={
            "deploy_to": str(deploy_to),
            "app": "hello",
            "version": "v1",
            "sha256": "0" * 64,
            "archive": None,
            "service_user": SERVICE,
            "service_group": None,
            "env": {"GREETING": "hi"},
            "units": {},
            "keep_releases": 5,
            "required_bytes": 0,
            "shared_dirs": [],
            "shared_files": [],
            **params,
        },
    )
    return deployer_release.Stager(module)


def tarball(path: Path, version: str) -> tuple[str, str]:
    """A release tarball (app.py, bin/run, VERSION): (its path, its sha256)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, mode, data in (
            ("app.py", 0o644, b"print('hi')\n"),
            ("bin/run", 0o755, b"#!/bin/sh\n"),
            ("VERSION", 0o644, f"{version}\n".encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    from ansible_collections.deployer.core.plugins.module_utils.unpack import sha256_of

    return str(path), sha256_of(str(path))


def stage(deploy_to: Path, version: str = "v1", **params: Any) -> dict[str, Any]:
    deploy_to.parent.mkdir(parents=True, exist_ok=True)
    archive, sha = tarball(deploy_to.parent / f"{version}.tar.gz", version)
    return stager(deploy_to, version=version, archive=archive, sha256=sha, **params).run()


def owner(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def tree_of(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# --- shared paths: nothing is followed below shared/ -----------------------------------


@pytest.mark.parametrize(
    ("shared", "planted"),
    [
        ({"shared_files": ["conf/sub/app.ini"]}, "conf"),
        ({"shared_files": ["conf/sub/app.ini"]}, "conf/sub"),
        ({"shared_files": ["conf/sub/app.ini"]}, "conf/sub/app.ini"),
        ({"shared_dirs": ["data/cache"]}, "data"),
        ({"shared_dirs": ["data/cache"]}, "data/cache"),
    ],
)
def test_a_symlink_planted_under_shared_is_refused_and_nothing_is_made_through_it(
    tmp_path: Path, shared: dict[str, list[str]], planted: str
) -> None:
    deploy_to, outside = tmp_path / "srv", tmp_path / "etc-target"
    outside.mkdir()
    stage(deploy_to, "v1", **shared)
    # the service user owns shared/<planted>'s parent: it can swap the entry for a link
    victim = deploy_to / "shared" / planted
    shutil.rmtree(victim) if victim.is_dir() else victim.unlink()
    victim.symlink_to(outside)

    with pytest.raises(deployer_release.StageError, match=f"shared/{planted} is a symlink"):
        stage(deploy_to, "v2", **shared)
    assert list(outside.iterdir()) == []
    assert sorted(os.listdir(deploy_to / "releases")) == ["v1"]


def test_a_file_where_a_shared_directory_belongs_is_refused(tmp_path: Path) -> None:
    deploy_to = tmp_path / "srv"
    stage(deploy_to)
    (deploy_to / "shared" / "conf").write_text("not a directory")
    with pytest.raises(deployer_release.StageError, match="shared/conf is not a directory"):
        stage(deploy_to, "v2", shared_files=["conf/app.ini"])


def test_shared_paths_belong_to_the_service_and_are_linked_from_the_release(
    tmp_path: Path,
) -> None:
    deploy_to = tmp_path / "srv"
    result = stage(deploy_to, shared_dirs=["data"], shared_files=["conf/sub/app.ini"])
    assert sorted(result["links_changed"]) == ["conf/sub/app.ini", "data"]
    shared, release = deploy_to / "shared", deploy_to / "releases" / "v1"
    assert owner(shared) == (0, 0, 0o755)
    for path in ("data", "conf", "conf/sub"):
        assert owner(shared / path) == (SERVICE_UID, SERVICE_GID, 0o755)
    assert owner(shared / "conf/sub/app.ini") == (SERVICE_UID, SERVICE_GID, 0o640)
    assert os.readlink(release / "data") == str(shared / "data")
    assert os.readlink(release / "conf/sub/app.ini") == str(shared / "conf/sub/app.ini")
    assert owner(release / "conf")[:2] == (0, SERVICE_GID)
    assert os.lstat(release / "data").st_uid == 0
    # the same again changes nothing
    meta = layout.Tree(str(deploy_to)).read_meta("v1")
    assert meta is not None
    shared_paths = {"shared_dirs": ["data"], "shared_files": ["conf/sub/app.ini"]}
    again = stager(deploy_to, sha256=meta["sha256"], **shared_paths).run()
    assert (again["links_changed"], again["env_changed"]) == ([], False)


# --- the release tree belongs to root ---------------------------------------------------


def test_the_release_is_roots_and_read_only_to_the_service(tmp_path: Path) -> None:
    deploy_to = tmp_path / "srv"
    stage(deploy_to)
    release = deploy_to / "releases" / "v1"
    assert owner(release) == (0, SERVICE_GID, 0o755)
    for path in release.rglob("*"):
        uid, _, mode = owner(path)
        assert (uid, mode & 0o022) == (0, 0), path
    for path in ("app.py", "VERSION", "bin/run"):
        assert owner(release / path)[:2] == (0, SERVICE_GID)
    assert owner(release / ".deployer") == (0, 0, 0o755)
    assert owner(release / ".deployer" / "meta.json") == (0, 0, 0o644)
    assert owner(release / ".deployer" / "env") == (0, 0, 0o600)
    assert (release / ".deployer" / "env").read_text().endswith('GREETING="hi"\n')


def test_a_release_staged_by_an_older_deployer_is_taken_back_by_root(tmp_path: Path) -> None:
    """Releases the service user owned (what staging did before) become root's, without
    following what the service user may have planted in them."""
    deploy_to, outside = tmp_path / "srv", tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("x")
    os.chmod(outside / "precious", 0o600)
    os.chown(outside / "precious", 4321, 4321)
    stage(deploy_to)
    release = deploy_to / "releases" / "v1"
    for path in [release, *release.rglob("*")]:
        os.lchown(path, SERVICE_UID, SERVICE_GID)
    os.chmod(release / "app.py", 0o666)
    (release / "planted").symlink_to(outside)
    (release / "bin" / "escape").symlink_to(outside / "precious")
    for link in (release / "planted", release / "bin" / "escape"):
        os.lchown(link, SERVICE_UID, SERVICE_GID)
    stage(deploy_to, "v2")

    assert owner(outside / "precious") == (4321, 4321, 0o600)
    for path in [release, *release.rglob("*")]:
        assert os.lstat(path).st_uid == 0, path
    assert owner(release / "app.py") == (0, SERVICE_GID, 0o644)
    assert owner(release / ".deployer" / "env") == (0, 0, 0o600)
    assert owner(release / ".deployer") == (0, 0, 0o755)


def test_meta_is_never_written_through_a_link_in_a_release(tmp_path: Path) -> None:
    deploy_to, outside = tmp_path / "srv", tmp_path / "outside"
    outside.mkdir()
    stage(deploy_to)
    tree = layout.Tree(str(deploy_to))
    meta = tree.read_meta("v1")
    assert meta is not None
    (deploy_to / "releases" / "v1" / ".deployer").rename(tmp_path / "moved")
    (deploy_to / "releases" / "v1" / ".deployer").symlink_to(outside)
    with pytest.raises(layout.UnsafePath, match=r"v1/\.deployer is a symlink"):
        tree.write_meta("v1", meta)
    assert list(outside.iterdir()) == []


# --- deploy_to is never taken over ------------------------------------------------------


def test_a_new_deploy_to_is_created_and_marked(tmp_path: Path) -> None:
    deploy_to = tmp_path / "new" / "srv"
    stage(deploy_to)
    assert owner(deploy_to) == (0, 0, 0o755)
    marker = deploy_to / layout.TREE_MARKER
    assert owner(marker) == (0, 0, 0o644)
    assert json.loads(marker.read_text())["app"] == "hello"


def test_an_existing_directory_deployer_did_not_create_is_refused_untouched(
    tmp_path: Path,
) -> None:
    deploy_to = tmp_path / "someone-elses"
    deploy_to.mkdir()
    (deploy_to / "notes.txt").write_text("mine")
    os.chmod(deploy_to, 0o1777)
    os.chown(deploy_to, SERVICE_UID, 0)
    before = owner(deploy_to)
    with pytest.raises(deployer_release.StageError, match="was not created by deployer"):
        stage(deploy_to)
    assert owner(deploy_to) == before
    assert tree_of(deploy_to) == ["notes.txt"]


def test_an_empty_directory_is_adopted_without_changing_its_owner_or_mode(
    tmp_path: Path,
) -> None:
    deploy_to = tmp_path / "mnt"
    deploy_to.mkdir(mode=0o711)
    os.chmod(deploy_to, 0o711)
    stage(deploy_to)
    assert owner(deploy_to) == (0, 0, 0o711)
    assert (deploy_to / layout.TREE_MARKER).is_file()


def test_a_directory_another_user_can_write_is_refused(tmp_path: Path) -> None:
    deploy_to = tmp_path / "theirs"
    deploy_to.mkdir()
    os.chown(deploy_to, SERVICE_UID, SERVICE_GID)
    with pytest.raises(deployer_release.StageError, match="writable by"):
        stage(deploy_to)
    assert owner(deploy_to)[:2] == (SERVICE_UID, SERVICE_GID)
    assert tree_of(deploy_to) == []


def test_a_tree_of_an_older_deployer_is_adopted(tmp_path: Path) -> None:
    deploy_to = tmp_path / "srv"
    stage(deploy_to)
    (deploy_to / layout.TREE_MARKER).unlink()
    assert stage(deploy_to, "v2")["unpacked"] is True
    assert json.loads((deploy_to / layout.TREE_MARKER).read_text())["app"] == "hello"


def test_the_tree_of_another_app_is_refused(tmp_path: Path) -> None:
    deploy_to = tmp_path / "srv"
    stage(deploy_to)
    with pytest.raises(deployer_release.StageError, match="release tree of the app hello"):
        stage(deploy_to, "v2", app="other")


def test_check_mode_refuses_a_foreign_directory_too(tmp_path: Path) -> None:
    deploy_to = tmp_path / "someone-elses"
    deploy_to.mkdir()
    (deploy_to / "notes.txt").write_text("mine")
    with pytest.raises(deployer_release.StageError, match="was not created by deployer"):
        stager(deploy_to, check_mode=True).run()
    assert tree_of(deploy_to) == ["notes.txt"]


# --- command checks run as the service user ---------------------------------------------


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory any user can write (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="deployer-test-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


def test_a_command_check_runs_as_the_user_it_names(open_dir: Path) -> None:
    out = open_dir / "who"
    run = f"id -un > {out}; echo HOME=$HOME PWD=$PWD >> {out}; env | grep -c SECRET_CANARY"
    os.environ["SECRET_CANARY"] = "x"
    try:
        ok, message = health.attempt({"command": {"run": run, "user": SERVICE}})
    finally:
        del os.environ["SECRET_CANARY"]
    assert (ok, message) == (False, f"command {run!r} exited 1: 0")  # not inherited
    assert out.read_text().splitlines() == [SERVICE, "HOME=/nonexistent PWD=/"]
    assert os.stat(out).st_uid == SERVICE_UID
    ok, _ = health.attempt({"command": {"run": f"id -un > {out}", "user": "root"}})
    assert ok
    assert out.read_text() == "root\n"


def test_a_command_check_for_a_user_the_host_lacks_fails_and_says_so() -> None:
    ok, message = health.attempt({"command": {"run": "true", "user": "no-such-user-x"}})
    assert not ok
    assert message == "command 'true' could not start: no user no-such-user-x on this host"


def test_a_link_in_the_tarball_where_a_shared_path_goes_is_refused(tmp_path: Path) -> None:
    deploy_to, outside = tmp_path / "srv", tmp_path / "outside"
    outside.mkdir()
    archive = tmp_path / "v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("conf")
        info.type, info.linkname = tarfile.SYMTYPE, "."
        tar.addfile(info)
    from ansible_collections.deployer.core.plugins.module_utils.unpack import sha256_of

    sha = sha256_of(str(archive))
    with pytest.raises(deployer_release.StageError, match="releases/v1/conf is a symlink"):
        stager(deploy_to, archive=str(archive), sha256=sha, shared_files=["conf/a.ini"]).run()
    assert os.listdir(deploy_to / "releases") == []


def test_a_refused_deploy_to_creates_no_user(tmp_path: Path) -> None:
    deploy_to = tmp_path / "theirs"
    deploy_to.mkdir()
    (deploy_to / "keep").write_text("")
    created: list[Any] = []
    module = stager(deploy_to, service_user="no-such-user-y").module
    module.run_command = lambda *a, **k: created.append(a) or (0, "", "")
    module.get_bin_path = lambda *a, **k: "/usr/sbin/useradd"
    with pytest.raises(deployer_release.StageError, match="not created by deployer"):
        deployer_release.Stager(module).run()
    assert created == []
