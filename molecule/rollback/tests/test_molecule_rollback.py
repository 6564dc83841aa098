"""deployer.core.rollback: v1 serves again, v2 is marked bad with the reason."""

import json

import pytest


@pytest.fixture
def app(host):
    return host.ansible.get_variables()["flow_app"]


def meta(host, app, version):
    path = f"/srv/{app}/releases/{version}/.deployer/meta.json"
    return json.loads(host.file(path).content_string)


def test_v1_is_current_and_answers(host, app):
    port = host.ansible.get_variables()["flow_port"]
    assert host.file(f"/srv/{app}/current").linked_to == f"/srv/{app}/releases/v1"
    assert host.check_output(f"curl -sf http://127.0.0.1:{port}/") == "hello from v1"


def test_v2_is_marked_bad_with_the_reason(host, app):
    assert meta(host, app, "v2")["state"] == "bad"
    assert meta(host, app, "v2")["reason"] == "molecule: v2 rejected"
    assert meta(host, app, "v1")["state"] == "good"
