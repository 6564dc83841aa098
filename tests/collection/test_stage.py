"""`deployer.stage`: the step a failure belongs to, reported by the modules themselves (run
here through the lean loader, as on a host) and defaulted by deployer_release's action
plugin. The playbooks' end-to-end view (roles' rescues included) is in test_playbooks.py."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))

from ansible_collections.deployer.core.plugins.action import deployer_release as release_action
from ansible_collections.deployer.core.plugins.plugin_utils import lean
from test_lean import run_host

# The release module works as root (the tree is root's); service user root: no useradd.
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="deployer_release needs root")


def tarball(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("app.py")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"x=1"))
    return path


def release(tmp_path: Path, archive: Path | None, **params: Any) -> tuple[int, dict[str, Any]]:
    sha = hashlib.sha256(archive.read_bytes()).hexdigest() if archive and archive.exists() else ""
    args = {
        "deploy_to": str(tmp_path / "srv"),
        "app": "x",
        "version": "v1",
        "sha256": sha or "0" * 64,
        "archive": str(archive) if archive else None,
        "src": None,
        "service_user": "root",
        "service_group": None,
        "shared_dirs": [],
        "shared_files": [],
        "env": {},
        "secret_names": [],
        "units": {},
        "keep_releases": 5,
        "required_bytes": 0,
        **params,
    }
    return run_host("deployer_release", lean.module_spec("deployer_release")[0], args)


@as_root
def test_release_reports_preflight_upload_or_stage(tmp_path: Path) -> None:
    good = tarball(tmp_path / "good.tar.gz")
    rc, result = release(tmp_path, good, required_bytes=10**18)
    assert (rc, result["deployer"]["stage"]) == (1, "preflight"), result
    assert "not enough disk space" in result["msg"]
    assert result["deployer"]["current"] is None  # what the host runs, as before

    rc, result = release(tmp_path, tarball(tmp_path / "good.tar.gz"), sha256="1" * 64)
    assert (rc, result["deployer"]["stage"]) == (1, "stage"), result  # it arrived
    assert "sha256 mismatch" in result["msg"]

    rc, result = release(tmp_path, None)
    assert (rc, result["deployer"]["stage"]) == (1, "upload"), result
    assert "no archive was given" in result["msg"]

    rc, result = release(tmp_path, tmp_path / "gone.tar.gz", sha256="2" * 64)
    assert (rc, result["deployer"]["stage"]) == (1, "upload"), result
    assert "does not exist on the host" in result["msg"]

    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    rc, result = release(tmp_path, junk)
    assert (rc, result["deployer"]["stage"]) == (1, "stage"), result
    assert "unpacking" in result["msg"]

    rc, result = release(tmp_path, tarball(tmp_path / "good.tar.gz"), units={"../x": "y"})
    assert (rc, result["deployer"]["stage"]) == (1, "stage"), result

    rc, result = release(tmp_path, None, sha256="short")
    assert (rc, result["deployer"]) == (1, {"version": "v1", "stage": "stage"}), result

    rc, result = release(tmp_path, tarball(tmp_path / "good.tar.gz"))
    assert rc == 0, result
    assert "stage" not in result["deployer"]  # only failures carry a stage


def test_preflight_failures_are_preflight(tmp_path: Path) -> None:
    source = lean.module_spec("deployer_preflight")[0]
    params = {"deploy_to": str(tmp_path), "app": "x", "version": "v1", "sha256": ""}
    rc, result = run_host("deployer_preflight", source, {**params, "required_bytes": 10**18})
    assert (rc, result["deployer"]["stage"]) == (1, "preflight"), result
    assert "not enough disk space" in result["msg"]
    rc, result = run_host(
        "deployer_preflight", source, {**params, "version": "../x", "required_bytes": 0}
    )
    assert (rc, result["deployer"]) == (1, {"stage": "preflight"}), result
    rc, result = run_host("deployer_preflight", source, {**params, "required_bytes": 0})
    assert rc == 0, result
    assert "stage" not in result["deployer"]


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ({"failed": True, "msg": "MODULE FAILURE: no result (rc 1)"}, {"stage": "stage"}),
        ({"failed": True, "msg": "bad args", "deployer": None}, {"stage": "stage"}),
        (
            {"failed": True, "deployer": {"version": "v1", "stage": "upload"}},
            {"version": "v1", "stage": "upload"},
        ),
        ({"changed": True, "deployer": {"version": "v1"}}, {"version": "v1"}),
    ],
)
def test_the_action_plugin_gives_every_failure_a_stage(
    outcome: dict[str, Any], expected: dict[str, Any]
) -> None:
    action = object.__new__(release_action.ActionModule)
    action._run = lambda tmp, task_vars: dict(outcome)  # type: ignore[method-assign]
    assert action.run()["deployer"] == expected
