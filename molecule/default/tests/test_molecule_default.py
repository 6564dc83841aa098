"""The whole flow: after v1, v2, the failed v3 and the rollback, v1 serves again."""

import json

import pytest


@pytest.fixture
def app(host):
    return host.ansible.get_variables()["flow_app"]


def state(host, app, version):
    meta = host.file(f"/srv/{app}/releases/{version}/.deployer/meta.json").content_string
    return json.loads(meta)["state"]


def test_v1_is_current_and_answers(host, app):
    port = host.ansible.get_variables()["flow_port"]
    assert host.file(f"/srv/{app}/current").linked_to == f"/srv/{app}/releases/v1"
    assert host.check_output(f"curl -sf http://127.0.0.1:{port}/") == "hello from v1"


def test_failed_v3_is_bad_and_the_others_good(host, app):
    states = {v: state(host, app, v) for v in ("v1", "v2", "v3")}
    assert states == {"v1": "good", "v2": "good", "v3": "bad"}


def test_lock_was_released(host, app):
    assert not host.file(f"/var/lib/deployer/locks/{app}-molecule.lock").exists
