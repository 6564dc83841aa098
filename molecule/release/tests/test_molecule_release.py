"""deployer.core.release: v1 staged (owners, env, shared links, units), not switched to."""

import hashlib
import json
import os
from pathlib import Path

import pytest


@pytest.fixture
def app(host):
    return host.ansible.get_variables()["flow_app"]


def test_release_is_staged_with_the_tarball_sha(host, app):
    release = f"/srv/{app}/releases/v1"
    # root's, read-only to the service
    code = host.file(f"{release}/app.py")
    assert (code.user, code.group) == ("root", app)
    assert code.mode & 0o022 == 0
    assert (host.file(release).user, host.file(release).mode) == ("root", 0o755)
    assert host.file(f"{release}/VERSION").content_string == "v1\n"
    meta = json.loads(host.file(f"{release}/.deployer/meta.json").content_string)
    artifacts = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "artifacts")
    tarball = (artifacts / "hello-v1.tar.gz").read_bytes()
    assert meta["sha256"] == hashlib.sha256(tarball).hexdigest()
    assert meta["state"] == "staged"
    assert not host.file(f"/srv/{app}/current").exists


def test_env_file_is_roots_alone(host, app):
    env = host.file(f"/srv/{app}/releases/v1/.deployer/env")
    assert (env.mode, env.user, env.group) == (0o600, "root", "root")
    assert 'API_TOKEN="molecule-secret"' in env.content_string


def test_shared_paths_are_the_services_and_linked_into_the_release(host, app):
    root = f"/srv/{app}"
    for path in ("data", "config/local.ini"):
        assert host.file(f"{root}/releases/v1/{path}").linked_to == f"{root}/shared/{path}"
        assert host.file(f"{root}/shared/{path}").user == app
    assert host.file(f"{root}/.deployer-tree").user == "root"


def test_units_kept_with_the_release_and_nothing_installed_or_started(host, app):
    units = f"/srv/{app}/releases/v1/.deployer/units"
    for name in (f"{app}.socket", f"{app}.service"):
        assert host.file(f"{units}/{name}").user == "root"
        assert not host.file(f"/etc/systemd/system/{name}").exists  # the switch installs them
    assert not host.service(f"{app}.socket").is_running


def test_upload_removed(host):
    assert host.check_output("find /root/.ansible/tmp -name '*.tar.gz' 2>/dev/null | wc -l") == "0"
