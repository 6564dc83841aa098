"""deployer_release's env_files: each a .deployer/env.<name> of the release, root 0600, in
the format of .deployer/env (read back as systemd reads it), reconciled on every run and
removed once its name is no longer given. Run as root (as the module runs on the hosts)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))

from ansible_collections.deployer.core.plugins.module_utils import envfile, layout
from ansible_collections.deployer.core.plugins.modules import deployer_release
from test_host_paths import owner, stage, stager

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the module runs as root on the hosts")

DATABASE = {"DATABASE_URL": "postgresql://shop:s3cret@db/shop"}
REDIS = {"REDIS_URL": "redis://:r3dis-pw@cache:6379/0", "REDIS_DB": 0}


def meta_dir(deploy_to: Path, version: str = "v1") -> Path:
    return deploy_to / "releases" / version / layout.META_DIR


def again(deploy_to: Path, **params: object) -> dict[str, object]:
    """Stage v1 again (the same sha256: only env, links, units and pruning reconciled)."""
    meta = layout.Tree(str(deploy_to)).read_meta("v1")
    assert meta is not None
    return stager(deploy_to, sha256=meta["sha256"], **params).run()


def test_env_files_are_written_0600_root_in_the_env_format(tmp_path: Path) -> None:
    deploy_to = tmp_path / "srv"
    result = stage(deploy_to, env_files={"database": DATABASE, "redis": REDIS})
    assert result["env_files_changed"] == ["database", "redis"]
    for name, env in (("database", DATABASE), ("redis", REDIS)):
        path = meta_dir(deploy_to) / f"env.{name}"
        assert owner(path) == (0, 0, 0o600)
        text = path.read_bytes()
        assert dict(envfile.parse(text)) == {k: str(v) for k, v in env.items()}
        # every variable counts as secret: the names (never the values) in the comment
        assert f"# deployer secret variables: {' '.join(sorted(env))}\n".encode() in text
    # .deployer/env as before
    assert dict(envfile.parse((meta_dir(deploy_to) / "env").read_bytes())) == {"GREETING": "hi"}


def test_the_same_env_files_again_change_nothing(tmp_path: Path) -> None:
    deploy_to = tmp_path / "srv"
    stage(deploy_to, env_files={"database": DATABASE})
    result = again(deploy_to, env_files={"database": DATABASE})
    assert (result["env_changed"], result["env_files_changed"]) == (False, [])


def test_a_changed_or_loosened_env_file_is_rewritten(tmp_path: Path) -> None:
    deploy_to = tmp_path / "srv"
    stage(deploy_to, env_files={"database": DATABASE})
    path = meta_dir(deploy_to) / "env.database"
    path.chmod(0o644)
    assert again(deploy_to, env_files={"database": DATABASE})["env_files_changed"] == ["database"]
    assert owner(path) == (0, 0, 0o600)
    changed = {"DATABASE_URL": "postgresql://shop:rotated@db/shop"}
    assert again(deploy_to, env_files={"database": changed})["env_files_changed"] == ["database"]
    assert dict(envfile.parse(path.read_bytes())) == changed


def test_env_files_no_longer_given_are_removed(tmp_path: Path) -> None:
    deploy_to = tmp_path / "srv"
    stage(deploy_to, env_files={"database": DATABASE, "redis": REDIS})
    # not env files of deployer's: left alone
    (meta_dir(deploy_to) / "env.Not-A-Name").write_text("")
    result = again(deploy_to, env_files={"database": DATABASE})
    assert result["env_files_changed"] == ["redis"]
    assert sorted(p.name for p in meta_dir(deploy_to).iterdir() if p.name.startswith("env")) == [
        "env",
        "env.Not-A-Name",
        "env.database",
    ]
    assert again(deploy_to)["env_files_changed"] == ["database"]
    assert not (meta_dir(deploy_to) / "env.database").exists()


def test_check_mode_reports_and_writes_nothing(tmp_path: Path) -> None:
    deploy_to = tmp_path / "srv"
    stage(deploy_to, env_files={"database": DATABASE})
    result = again(deploy_to, env_files={"redis": REDIS}, check_mode=True)
    assert sorted(result["env_files_changed"]) == ["database", "redis"]
    assert (meta_dir(deploy_to) / "env.database").exists()
    assert not (meta_dir(deploy_to) / "env.redis").exists()


def test_env_files_as_the_json_string_the_action_plugin_sends(tmp_path: Path) -> None:
    deploy_to = tmp_path / "srv"
    stage(deploy_to, env_files=json.dumps({"database": DATABASE}))
    assert (meta_dir(deploy_to) / "env.database").exists()


@pytest.mark.parametrize(
    ("env_files", "message"),
    [
        ({"Database": DATABASE}, "invalid env file name 'Database'"),
        ({"../x": DATABASE}, "invalid env file name"),
        ({"db\n": DATABASE}, "invalid env file name"),
        ({"x" * 33: DATABASE}, "invalid env file name"),
        ({"database": "postgresql://"}, "env_files.database must be a mapping"),
        ({"database": {"BAD-NAME": "s3cret"}}, "BAD-NAME"),
        ("not json", "env_files is not valid JSON"),
    ],
)
def test_bad_env_files_are_refused_without_echoing_values(
    tmp_path: Path, env_files: object, message: str
) -> None:
    with pytest.raises(deployer_release.StageError) as info:
        stage(tmp_path / "srv", env_files=env_files)
    assert message in str(info.value)
    assert "s3cret" not in str(info.value)
