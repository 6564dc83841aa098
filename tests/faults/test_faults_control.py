"""Faults of the control side: the deployer process killed or interrupted mid-deploy,
two deploys at once, the same version deployed twice. The lock is released or reported
stale with its holder, the ledger never shows an interrupted run as a success, and `status`
says where the hosts really are."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import FaultProject

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def wait_until(condition: Any, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def current_via_docker(project: FaultProject, host: str) -> str:
    link = project.docker(host, "readlink", f"/srv/{project.app}/current").stdout.strip()
    return link.rsplit("/", 1)[-1]


def test_sigkill_leaves_a_stale_lock_reported_with_its_holder(project: FaultProject) -> None:
    """Case 5: the deployer process group is SIGKILLed in batch 2 of 4. The next deploy
    exits 3 naming the stale lock's holder, `lock release` clears it, a redeploy converges,
    and the ledger shows the killed run as INTERRUPTED, never SUCCEEDED."""
    project.fast()
    project.deploy("lab", "--version", "v1")
    project.edit(
        {
            "strategy": {"kind": "rolling", "batch_size": 1},
            "health": {"retries": 40, "interval": 0.5},
            "service": {"env": {"HEALTHY_AFTER": "4"}},
        }
    )
    artifact = project.variant()
    proc = project.start("deploy", "lab", "--version", "v2", "--artifact", artifact, "--json")
    project.wait_for_stage(proc, lambda s: s == "switch 2/4")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    killed = project.rows()[-1]
    assert (killed["status"], killed["pid"]) == ("RUNNING", proc.pid)  # nobody could finish it

    locked = project.deploy("lab", "--version", "v2", "--artifact", artifact, expect=3)
    assert (locked["status"], locked["stage"], locked["exit_code"]) == ("FAILED", "lock", 3)
    for words in (f"pid {proc.pid}", f"deployment #{killed['id']}", "STALE", "lock release lab"):
        assert words in locked["reason"], (words, locked["reason"])
    rows = {r["id"]: r for r in project.rows()}
    assert rows[killed["id"]]["status"] == "INTERRUPTED"
    assert "pid" in rows[killed["id"]]["reason"]

    lock = project.json("lock", "status", "lab")
    assert (lock["held"], lock["stale"], lock["holder"]["pid"]) == (True, True, proc.pid)
    released = project.cli("lock", "release", "lab")
    assert released.returncode == 0, released.stderr
    assert "lock released" in released.stdout
    assert project.json("lock", "status", "lab")["held"] is False

    project.fast(service={"env": {"HEALTHY_AFTER": "0"}})
    final = project.deploy("lab", "--version", "v2", "--artifact", artifact)
    assert final["status"] == "SUCCEEDED"
    assert set(project.current().values()) == {"v2"}
    statuses = [r["status"] for r in project.rows()]
    assert statuses == ["SUCCEEDED", "INTERRUPTED", "FAILED", "SUCCEEDED"]
    history = project.json("history", "lab")
    assert [d["status"] for d in history] == statuses[::-1]
    ledger = sqlite3.connect(f"file:{project.ledger_path}?mode=ro", uri=True)
    assert ledger.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ledger.close()


@pytest.mark.parametrize("moment", ["prepare", "switch"])
def test_sigint_mid_deploy_releases_the_lock_and_says_where_hosts_are(
    project: FaultProject, moment: str
) -> None:
    """Case 6 (extends test_lifecycle's SIGINT test, which interrupts at a fixed delay):
    Ctrl-C once the lock is taken in prepare, and once batch 1 has switched and waits for
    its health checks. Either way the lock is released, INTERRUPTED is recorded with the
    stage reached, and `status` reports where the hosts are, drift included."""
    project.fast()
    project.deploy("lab", "--version", "v1")
    project.edit(
        {
            "strategy": {"kind": "rolling", "batch_size": 2},
            "health": {"retries": 120, "interval": 0.5},
            "service": {"env": {"HEALTHY_AFTER": "60"}},  # batch 1 never passes in time
        }
    )
    held = project.lab.hosts[-1].container
    if moment == "prepare":
        # The last host answers nothing until the interruption: however fast staging is
        # elsewhere, the run is still in prepare, after the lock, when Ctrl-C comes.
        subprocess.run(["docker", "pause", held], check=True, capture_output=True)
        project.undo.append(
            lambda: subprocess.run(["docker", "unpause", held], check=False, capture_output=True)
        )
    proc = project.start("deploy", "lab", "--version", "v2", "--artifact", project.variant())
    lock = f"/var/lib/deployer/locks/{project.app}/lab.lock"
    if moment == "prepare":
        wait_until(
            lambda: project.docker("lab1", "test", "-d", lock).returncode == 0, what="the lock"
        )
    else:
        project.wait_for_stage(proc, lambda s: s.startswith("switch 1/"))
        wait_until(lambda: current_via_docker(project, "lab1") == "v2", what="lab1 to switch")
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    out, err = proc.communicate(timeout=120)
    if moment == "prepare":
        subprocess.run(["docker", "unpause", held], check=True, capture_output=True)

    assert proc.returncode == 1, (out[-3000:], err[-3000:])
    assert "INTERRUPTED" in out
    row = project.rows()[-1]
    assert row["status"] == "INTERRUPTED"
    assert row["stage"] == ("prepare" if moment == "prepare" else "switch 1/2")
    assert project.docker("lab1", "test", "-d", lock).returncode != 0  # the lock is gone
    status = project.json("status", "lab")
    assert any("INTERRUPTED" in p for p in status["problems"]), status["problems"]
    on_hosts = project.current()
    assert {h["host"]: h["current"] for h in status["hosts"]} == on_hosts
    if moment == "prepare":
        assert set(on_hosts.values()) == {"v1"}
    assert status["drift"] is (len(set(on_hosts.values())) > 1)


def test_two_deploys_to_one_environment_exactly_one_proceeds(project: FaultProject) -> None:
    """Case 7a: two deploys of the same environment started at the same moment: one
    deploys, the other exits 3 naming the holder and changes nothing."""
    project.fast(service={"env": {"HEALTHY_AFTER": "4"}})
    artifact = project.variant()
    one = project.start("deploy", "lab", "--version", "v1", "--artifact", artifact, "--json")
    two = project.start("deploy", "lab", "--version", "v2", "--artifact", artifact, "--json")
    results = {}
    for proc in (one, two):
        out, err = proc.communicate(timeout=240)
        results[proc.returncode] = json.loads(out) if out.strip() else err
    assert sorted(results) == [0, 3], results
    winner, loser = results[0], results[3]
    assert winner["status"] == "SUCCEEDED"
    assert (loser["status"], loser["stage"]) == ("FAILED", "lock")
    assert "locked by" in loser["reason"]
    assert "pid" in loser["reason"]
    assert set(project.current().values()) == {winner["version"]}
    for host in project.lab.hosts:
        assert project.releases_on(host.name) == [winner["version"]], host.name
    assert project.json("lock", "status", "lab")["held"] is False


def test_deploys_to_two_environments_proceed_together(project: FaultProject) -> None:
    """Case 7b: `blue` (lab1, lab2) and `green` (lab3, lab4) are disjoint: their deploys
    run at the same time, both succeed, and the ledger shows them overlapping."""
    ssh = project.lab_ssh()
    project.edit(
        {
            "environments": {
                "blue": {"hosts": {"web": project.hosts_entries("lab1", "lab2")}, "ssh": ssh},
                "green": {"hosts": {"web": project.hosts_entries("lab3", "lab4")}, "ssh": ssh},
            }
        }
    )
    project.fast(service={"env": {"HEALTHY_AFTER": "4"}})
    artifact = project.variant()
    procs = {
        env: project.start("deploy", env, "--version", "v1", "--artifact", artifact, "--json")
        for env in ("blue", "green")
    }
    for env, proc in procs.items():
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, (env, out[-3000:], err[-3000:])
        assert json.loads(out)["status"] == "SUCCEEDED"
    blue, green = sorted(project.rows(), key=lambda r: r["environment"])
    assert (blue["environment"], green["environment"]) == ("blue", "green")
    assert blue["started_at"] < green["ended_at"]
    assert green["started_at"] < blue["ended_at"]
    assert set(project.current().values()) == {"v1"}
    assert project.json("lock", "status", "blue")["held"] is False
    assert project.json("lock", "status", "green")["held"] is False


def snapshot(project: FaultProject) -> dict[str, str]:
    """Every path of the release tree and the units with inode, mtime and ctime, and the
    service's main PID and start time, per host."""
    app = project.app
    command = (
        f"sudo find /srv/{app} /etc/systemd/system/{app}.service "
        f"/etc/systemd/system/{app}.socket -printf '%p %i %T@ %C@\\n' | sort; "
        f"systemctl show -p MainPID -p ExecMainStartTimestampMonotonic {app}.service"
    )
    return {h.name: project.on(h.name, command) for h in project.lab.hosts}


def test_same_version_twice_changes_nothing_on_the_hosts(project: FaultProject) -> None:
    """Case 16: redeploying the running version touches no file, restarts nothing and is
    recorded as a no-op."""
    project.fast()
    project.deploy("lab", "--version", "v1")
    before = snapshot(project)
    assert all("MainPID=0" not in text for text in before.values()), before
    second = project.deploy("lab", "--version", "v1")
    assert second["status"] == "SUCCEEDED"
    assert second["noop"] is True
    assert {h["status"] for h in second["hosts"]} == {"ok"}
    assert snapshot(project) == before
    assert project.rows()[-1]["noop"] == 1
    assert project.json("history", "lab")[0]["noop"] is True
    assert project.json("lock", "status", "lab")["held"] is False


def test_a_lock_that_cannot_be_taken_stops_the_deploy_in_the_lock_stage(
    project: FaultProject,
) -> None:
    """The lock fails for another reason than a holder (here its parent is a file on the
    primary): exit 1 in stage `lock` naming the primary and the cause, nothing staged or
    switched anywhere; never reported as unreachable hosts."""
    project.fast()
    project.deploy("lab", "--version", "v1")
    locks = f"/var/lib/deployer/locks/{project.app}"
    project.on("lab1", f"sudo rm -rf {locks} && sudo touch {locks}")
    project.undo.append(lambda: project.on("lab1", f"sudo rm -f {locks}", check=False))

    result = project.deploy("lab", "--version", "v2", expect=1)
    assert (result["status"], result["stage"]) == ("FAILED", "lock")
    assert "taking the lock on lab1 failed" in result["reason"]
    assert "nothing was changed" in result["reason"]
    assert "unreachable" not in result["reason"]
    assert set(project.current().values()) == {"v1"}
    for host in project.lab.hosts:
        assert project.releases_on(host.name) == ["v1"], host.name
