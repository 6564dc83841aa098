"""Faults during the rollout itself: a host that fails its health check, a host that dies,
a network stall, an app that crashes inside the watch window. In every case the fleet ends
on the previous version (or the ledger and `status` say where it is not), the error names
the host and the stage, the lock is released and the exit code is 1."""

from __future__ import annotations

import json
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import FaultProject

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def assert_all_on(project: FaultProject, version: str) -> None:
    assert set(project.current().values()) == {version}, project.current()
    assert set(project.answers().values()) == {f"hello from {version}"}, project.answers()


def test_health_check_fails_on_one_host_mid_rollout(project: FaultProject) -> None:
    """Case 1: batch 1 (lab1, lab2) switches fine, lab3 in batch 2 fails its health check:
    every switched host goes back to v1, v2 is marked bad, exit 1."""
    project.fast()
    project.deploy("lab", "--version", "v1")
    project.edit(
        {
            "strategy": {"kind": "rolling", "batch_size": 2, "failure_budget": 0},
            "health": {"retries": 4, "interval": 0.5},
            "service": {"env": {"UNHEALTHY_ON": "lab3"}},
        }
    )
    result = project.deploy("lab", "--version", "v2", "--artifact", project.variant(), expect=1)

    assert result["status"] == "ROLLED_BACK"
    assert result["stage"] == "switch"
    assert result["exit_code"] == 1
    assert "lab3" in result["reason"]
    assert "healthz" in result["reason"]
    assert result["batches"] == [["lab1", "lab2"], ["lab3", "lab4"]]
    hosts = {h["host"]: h for h in result["hosts"]}
    assert {h["status"] for h in hosts.values()} == {"rolled_back"}, hosts
    assert {h["after"] for h in hosts.values()} == {"v1"}
    assert "500" in hosts["lab3"]["message"]
    assert_all_on(project, "v1")

    row = project.rows()[-1]
    assert (row["status"], row["version"], row["previous_version"]) == ("ROLLED_BACK", "v2", "v1")
    assert {h["version_after"] for h in project.host_rows(row["id"]).values()} == {"v1"}
    status = project.json("status", "lab")
    assert status["drift"] is False
    assert status["expected"] == "v1"
    assert status["problems"] == []
    assert not project.lock_held()
    marks = {r["version"]: r["marks"] for r in project.json("releases", "lab")["releases"]}
    assert "bad" in marks["v2"]


def test_host_dies_after_it_switched_then_a_rerun_converges(project: FaultProject) -> None:
    """Case 3: lab3 is killed (docker kill) after its `current` moved to v2, while its
    batch health-checks: the rollout stops (failure budget 0), the others go back to v1,
    the ledger marks lab3 unknown; once lab3 is back, `status` tells the truth and a
    re-run of the same deploy converges."""
    project.fast()
    project.deploy("lab", "--version", "v1")
    project.edit(
        {
            "strategy": {"kind": "rolling", "batch_size": 2, "failure_budget": 0},
            "health": {"retries": 30, "interval": 0.5},
            "service": {"env": {"HEALTHY_AFTER": "3"}},
        }
    )
    artifact = project.variant()
    proc = project.start("deploy", "lab", "--version", "v2", "--artifact", artifact, "--json")
    project.wait_for_stage(proc, lambda s: s == "switch 2/2")
    deadline = time.monotonic() + 60
    while project.docker("lab3", "readlink", f"/srv/{project.app}/current").stdout.strip() != (
        "releases/v2"
    ):
        assert time.monotonic() < deadline, "lab3 never switched"
        time.sleep(0.1)
    killed = subprocess.run(
        ["docker", "kill", project.host("lab3").container], capture_output=True, text=True
    )
    assert killed.returncode == 0, killed.stderr
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, (out[-3000:], err[-3000:])
    result = json.loads(out)

    assert result["status"] == "ROLLED_BACK"
    assert result["stage"] == "switch"
    assert "lab3" in result["reason"]
    assert "unreachable" in result["reason"]
    hosts = {h["host"]: h for h in result["hosts"]}
    assert hosts["lab3"]["status"] == "unknown", hosts["lab3"]
    assert hosts["lab3"]["after"] is None
    for name in ("lab1", "lab2", "lab4"):
        assert (hosts[name]["status"], hosts[name]["after"]) == ("rolled_back", "v1"), hosts
    row = project.rows()[-1]
    assert project.host_rows(row["id"])["lab3"]["status"] == "unknown"
    assert not project.lock_held()

    project.refresh()  # lab3 back (`lab up`: new port, hosts.yml and known_hosts rewritten)
    status = project.json("status", "lab")
    on_hosts = project.current()
    assert {h["host"]: h["current"] for h in status["hosts"]} == on_hosts
    if len(set(on_hosts.values())) > 1:  # lab3 came back on v2: status must say so
        assert status["drift"] is True
        assert any("disagree" in p for p in status["problems"]), status["problems"]

    project.fast(service={"env": {"HEALTHY_AFTER": "0"}})
    again = project.deploy("lab", "--version", "v2", "--artifact", artifact)
    assert again["status"] == "SUCCEEDED"
    assert set(project.current().values()) == {"v2"}
    assert set(project.answers().values()) == {"hello from v2"}


def test_network_stall_during_health_checks_is_bounded_and_rolled_back(
    project: FaultProject,
) -> None:
    """Case 4: packets to the app port are dropped inside lab2: each health request times
    out after health.http.timeout, the deployment fails within a bounded time and rollback
    is attempted on every switched host (on lab2 too, where it cannot pass its checks)."""
    project.fast(health={"retries": 3, "interval": 0.5, "http": {"timeout": 2}})
    project.deploy("lab", "--version", "v1")
    rule = ["INPUT", "-p", "tcp", "--dport", str(project.port), "-j", "DROP"]
    assert project.docker("lab2", "iptables", "-I", *rule).returncode == 0
    project.undo.append(lambda: project.docker("lab2", "iptables", "-D", *rule))

    proc, seconds = project.run("deploy", "lab", "--version", "v2", "--json", timeout=180)
    assert proc.returncode == 1, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert seconds < 120
    result = json.loads(proc.stdout)
    assert result["status"] == "ROLLED_BACK"
    assert result["stage"] == "switch"
    assert "lab2" in result["reason"]
    assert "timed out after 2s" in result["reason"]
    assert "rollback FAILED on lab2" in result["reason"]
    hosts = {h["host"]: h for h in result["hosts"]}
    for name in ("lab1", "lab3", "lab4"):
        assert (hosts[name]["status"], hosts[name]["after"]) == ("rolled_back", "v1"), hosts
    # the rollback did switch lab2 back; only its health checks could not pass
    assert (hosts["lab2"]["status"], hosts["lab2"]["stage"]) == ("failed", "rollback")
    assert hosts["lab2"]["after"] == "v1", hosts["lab2"]
    assert set(project.current().values()) == {"v1"}
    assert not project.lock_held()

    project.docker("lab2", "iptables", "-D", *rule)
    project.undo.clear()
    status = project.json("status", "lab")
    assert {h["current"] for h in status["hosts"]} == {"v1"}
    assert all(h["healthy"] for h in status["hosts"]), status["hosts"]
    assert status["drift"] is False


def test_app_crashes_inside_the_watch_window(project: FaultProject) -> None:
    """Case 11: v2 passes the switch health checks, then crashes for good a few seconds
    later: the watch window counts it as a failure and the fleet goes back to v1."""
    project.fast()
    project.deploy("lab", "--version", "v1")
    project.edit(
        {
            "rollback": {"watch": 25, "health_checks": {"period": 1, "threshold": 2}},
            "service": {"env": {"CRASH_AFTER": "6"}},
        }
    )
    result = project.deploy("lab", "--version", "v2", "--artifact", project.variant(), expect=1)

    assert result["status"] == "ROLLED_BACK"
    assert result["stage"] == "watch"
    assert "failed in the watch window" in result["reason"]
    for host in project.lab.hosts:
        assert f"{host.name}: failed: unhealthy" in result["reason"]
    hosts = {h["host"]: h for h in result["hosts"]}
    assert {(h["status"], h["after"]) for h in hosts.values()} == {("rolled_back", "v1")}, hosts
    assert any(h["message"] for h in hosts.values())
    assert_all_on(project, "v1")
    assert project.rows()[-1]["status"] == "ROLLED_BACK"
    assert not project.lock_held()
    marks = {r["version"]: r["marks"] for r in project.json("releases", "lab")["releases"]}
    assert "bad" in marks["v2"]
