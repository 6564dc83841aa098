"""deployer_switch with `services`: after v0 (one service), v1, the failed v2, v3 (worker
dropped), a stop, v1 again and the failed v4 rolled back, v1's api and worker run from
current/<service> under their unit names, and the switch results say what happened to
each service."""

import json

import pytest


@pytest.fixture
def app(host):
    return host.ansible.get_variables()["flow_app"]


@pytest.fixture
def port(host):
    return int(host.ansible.get_variables()["flow_port"])


def result(host, name):
    return json.loads(host.file(f"/root/services-results/{name}.json").content_string)


def meta(host, app, version):
    return json.loads(
        host.file(f"/srv/{app}/releases/{version}/.deployer/meta.json").content_string
    )


def test_current_is_v1_and_the_states_say_what_happened(host, app):
    assert host.file(f"/srv/{app}/current").linked_to == f"/srv/{app}/releases/v1"
    assert meta(host, app, "v1")["state"] == "good"
    assert meta(host, app, "v2")["state"] == "bad"
    assert meta(host, app, "v2")["reason"] == "the worker did not start"
    assert meta(host, app, "v3")["state"] == "good"
    assert meta(host, app, "v4")["state"] == "bad"


def test_the_units_are_named_after_the_app_and_the_service(host, app):
    files = host.check_output(f"ls /etc/systemd/system | grep -F {app} || true").split()
    assert sorted(files) == [
        f"{app}:api.target",
        f"{app}:api@.service",
        f"{app}:api@.socket",
        f"{app}:worker.service",
    ]  # v0's own unit, app.service, is gone
    listed = host.check_output(
        f"systemctl list-units --all --plain --no-legend '{app}:api@*' | cut -d' ' -f1"
    ).split()
    assert sorted(listed) == sorted(
        f"{app}:api@{p}.{kind}" for p in (8141, 8142) for kind in ("service", "socket")
    )


def test_both_api_instances_answer_from_current_api(host, app, port):
    for p in (port, port + 1):
        assert host.service(f"{app}:api@{p}.socket").is_enabled
        assert host.service(f"{app}:api@{p}.service").is_running
        answer = host.check_output(f"curl -sf http://127.0.0.1:{p}/")
        assert answer == f"api v1 /srv/{app}/releases/v1/api {p}"


def test_the_worker_runs_from_current_worker(host, app):
    worker = host.service(f"{app}:worker.service")
    assert worker.is_running
    assert worker.is_enabled
    workdir = host.check_output(f"systemctl show -p WorkingDirectory --value {app}:worker")
    assert workdir == f"/srv/{app}/current/worker"
    # the worker's own word (/proc/<pid>/cwd of another user needs ptrace, which docker
    # exec has not): its version and its working directory, current resolved
    beat = host.file(f"/run/{app}-worker/beat").content_string
    assert beat == f"v1 /srv/{app}/releases/v1/worker\n"


def test_v1_switched_the_api_then_the_worker(host):
    switched = result(host, "v1")["deployer"]
    assert switched["previous"] == "v0"
    assert switched["switched"]
    assert switched["restarted"]
    assert switched["healthy"]
    services = switched["services"]
    assert list(services) == ["api", "worker"]
    assert services["api"]["restarted"]
    assert services["api"]["healthy"]
    assert services["api"]["attempts"] >= 2  # one instance after the other
    assert "8141" in services["api"]["health_message"]
    assert "8142" in services["api"]["health_message"]
    assert services["worker"]["restarted"]
    assert services["worker"]["healthy"]
    assert switched["attempts"] == sum(s["attempts"] for s in services.values())
    assert switched["health_message"].startswith("api: ")


def test_v2_failed_on_the_worker_after_the_api(host):
    failed = result(host, "v2")
    assert "service worker" in failed["msg"]
    assert failed["deployer"]["service"] == "worker"
    assert failed["deployer"]["health_message"].startswith("worker: ")
    assert failed["deployer"]["services"]["api"] == {
        **failed["deployer"]["services"]["api"],
        "restarted": True,
        "healthy": True,
    }
    assert failed["deployer"]["services"]["worker"]["healthy"] is False
    assert any("no queue configured" in line for line in failed["deployer"]["failure"]["journal"])


def test_v3_dropped_the_worker_and_switched_docs_by_current(host):
    switched = result(host, "v3")["deployer"]
    assert list(switched["services"]) == ["api", "docs"]
    docs = switched["services"]["docs"]
    assert docs["restarted"] is False
    assert docs["healthy"] is True
    assert docs["attempts"] == 1  # its command check


def test_v1_again_brought_the_worker_back(host):
    switched = result(host, "v1-again")["deployer"]
    assert switched["previous"] is None  # the app had been stopped
    assert switched["services"]["worker"]["restarted"]
    assert switched["healthy"]


def test_v4_failed_on_the_api_before_the_worker_was_touched(host):
    failed = result(host, "v4")["deployer"]
    assert failed["service"] == "api"
    assert failed["services"]["api"]["restarted"] is True
    assert failed["services"]["api"]["healthy"] is False
    assert failed["services"]["worker"] == {
        "restarted": False,
        "healthy": False,
        "attempts": 0,
        "health_message": "",
    }
    assert any("no database configured" in line for line in failed["failure"]["journal"])
