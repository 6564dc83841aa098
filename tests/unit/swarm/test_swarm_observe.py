"""Reading Swarm's JSON, and deciding from it whether a rollout converged or was rolled back.

The JSON is the shape `docker service inspect` / `docker inspect <task>` / `docker node
inspect` print (trimmed to the fields deployer reads), including the quirk that a service's
template carries `DNSConfig: {}` and `Runtime` while its tasks' copies do not.
"""

from __future__ import annotations

from typing import Any

from deployer.targets.swarm import observe, rollout

TEMPLATE = {
    "ContainerSpec": {"Image": "app-web:v2", "Labels": {"io.deployer.version": "v2"}},
    "Resources": {"Limits": {"NanoCPUs": 200000000}},
    "DNSConfig": {},
}


def _task(node: str, version: str, state: str = "running", err: str = "") -> dict[str, Any]:
    spec = {
        "ContainerSpec": {
            "Image": f"app-web:{version}",
            "Labels": {"io.deployer.version": version},
        },
        "Resources": {"Limits": {"NanoCPUs": 200000000}},
    }
    return {
        "ServiceID": "s1",
        "NodeID": node,
        "Spec": spec,
        "Status": {"State": state, "Err": err},
    }


def _data(tasks: list[dict[str, Any]], update: dict[str, str] | None = None) -> dict[str, Any]:
    service: dict[str, Any] = {
        "ID": "s1",
        "Version": {"Index": 42},
        "Spec": {
            "Name": "app_web",
            "Labels": {"io.deployer.version": "v2"},
            "TaskTemplate": {**TEMPLATE, "Runtime": "container"},
            "Mode": {"Replicated": {"Replicas": 2}},
        },
    }
    if update:
        service["UpdateStatus"] = update
    nodes = [{"ID": "n1", "Description": {"Hostname": "lab1"}}, {"ID": "n2"}]
    return {"services": [service], "tasks": tasks, "nodes": nodes}


def test_parse_reads_versions_nodes_and_current_tasks() -> None:
    views = observe.parse(_data([_task("n1", "v2"), _task("n2", "v1")]))
    web = views["app_web"]
    assert (web.version, web.replicas, web.index, web.image) == ("v2", 2, 42, "app-web:v2")
    assert [(t.node, t.version, t.current) for t in web.tasks] == [
        ("lab1", "v2", True),
        ("n2", "v1", False),
    ]
    assert not web.converged
    assert observe.versions(list(views.values())) == {"v1": ("app_web",), "v2": ("app_web",)}


def test_converged_when_every_replica_runs_the_template() -> None:
    web = observe.parse(_data([_task("n1", "v2"), _task("n2", "v2")]))["app_web"]
    assert web.converged
    assert rollout._state(web, None, "v2") == "converged"
    assert web.describe() == "2/2 tasks running (lab1, n2)"


def test_a_starting_task_is_not_converged() -> None:
    web = observe.parse(_data([_task("n1", "v2"), _task("n2", "v2", "starting")]))["app_web"]
    assert rollout._state(web, None, "v2") == "pending"


def test_swarm_rollback_is_reported_once_it_completes() -> None:
    before = observe.parse(_data([], {"State": "completed", "StartedAt": "t0"}))["app_web"]
    started = {"State": "rollback_started", "StartedAt": "t1", "Message": "update rolled back"}
    during = observe.parse(_data([_task("n1", "v1")], started))["app_web"]
    assert rollout._state(during, before, "v3") == "pending"
    done = {"State": "rollback_completed", "StartedAt": "t1"}
    after = observe.parse(_data([_task("n1", "v2"), _task("n2", "v2")], done))["app_web"]
    assert rollout._state(after, before, "v3") == "rolled_back"


def test_an_old_rollback_status_says_nothing_about_this_rollout() -> None:
    old = {"State": "rollback_completed", "StartedAt": "t0"}
    before = observe.parse(_data([], old))["app_web"]
    now = observe.parse(_data([_task("n1", "v2"), _task("n2", "v2")], old))["app_web"]
    assert rollout._state(now, before, "v2") == "converged"


def test_paused_update_and_missing_service() -> None:
    paused = {"State": "paused", "StartedAt": "t1", "Message": "update paused"}
    web = observe.parse(_data([_task("n1", "v2")], paused))["app_web"]
    assert rollout._state(web, None, "v2") == "paused"
    assert "update paused" in web.describe()
    assert rollout._state(None, None, "v2") == "pending"


def test_settled_reason_names_what_went_wrong() -> None:
    views = observe.parse(_data([_task("n1", "v2", "failed", "task: non-zero exit (1)")]))
    settled = rollout.Settled({"app_web": "rolled_back"}, views, 12.0)
    assert not settled.ok
    assert settled.swarm_rolled_back == ("app_web",)
    assert "Swarm rolled the update back" in settled.reason()
    assert "non-zero exit" in settled.reason()
