"""deployer.core.switch: current is v1, the socket and service run and answer."""

import json

import pytest


@pytest.fixture
def app(host):
    return host.ansible.get_variables()["flow_app"]


def test_current_points_at_v1(host, app):
    assert host.file(f"/srv/{app}/current").linked_to == f"/srv/{app}/releases/v1"


def test_v1_is_marked_good(host, app):
    meta = json.loads(host.file(f"/srv/{app}/releases/v1/.deployer/meta.json").content_string)
    assert meta["state"] == "good"
    assert meta["switched_at"]


def test_socket_and_service_run_and_answer(host, app):
    port = host.ansible.get_variables()["flow_port"]
    assert host.service(f"{app}.socket").is_enabled
    assert host.service(f"{app}.service").is_running
    assert host.check_output(f"curl -sf http://127.0.0.1:{port}/") == "hello from v1"
