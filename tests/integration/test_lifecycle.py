"""The release lifecycle on real lab hosts through the real CLI: deploy, automatic fleet-wide
rollback, manual rollback, the lock, Ctrl-C, pruning and secrets."""

from __future__ import annotations

import json
import secrets
import signal
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Project

pytestmark = pytest.mark.integration


def answers(project: Project) -> set[str]:
    """What the service says on every host (over SSH, from the host itself)."""
    seen = set()
    for host in project.lab.hosts:
        proc = project.ssh(host, f"curl -s --max-time 3 http://127.0.0.1:{project.port}/")
        seen.add(proc.stdout.strip())
    return seen


def test_v1_v2_broken_v3_rolled_back_then_rollback_to_v1(project: Project) -> None:
    first = project.json("deploy", "lab", "--version", "v1")
    assert first["status"] == "SUCCEEDED", first
    assert set(project.current().values()) == {"v1"}
    assert answers(project) == {"hello from v1"}

    project.json("deploy", "lab", "--version", "v2")
    assert set(project.current().values()) == {"v2"}

    broken = project.json("deploy", "lab", "--version", "v3", "--artifact", "broken", expect=1)
    assert broken["status"] == "ROLLED_BACK"
    assert broken["stage"] == "switch"
    assert "v3" not in set(project.current().values())
    assert set(project.current().values()) == {"v2"}  # every host, not only the failing one
    assert answers(project) == {"hello from v2"}
    failing = [h["host"] for h in broken["hosts"] if h["message"]]
    assert failing, broken
    assert "healthz" in broken["reason"]

    history = project.json("history", "lab")
    assert [d["version"] for d in history[:3]] == ["v3", "v2", "v1"]
    assert history[0]["status"] == "ROLLED_BACK"
    assert history[0]["rollback_seconds"] > 0

    marks = {r["version"]: r["marks"] for r in project.json("releases", "lab")["releases"]}
    assert "bad" in marks["v3"]
    assert "current" in marks["v2"]

    again = project.cli("deploy", "lab", "--version", "v3", "--artifact", "broken")
    assert again.returncode == 2
    assert "marked bad" in again.stderr

    back = project.json("rollback", "lab", "--to", "v1")
    assert back["status"] == "SUCCEEDED"
    status = project.json("status", "lab")
    assert {h["current"] for h in status["hosts"]} == {"v1"}
    assert all(h["healthy"] for h in status["hosts"])
    assert status["drift"] is False
    assert status["problems"] == []


def runs_made(project: Project, action: Callable[[], Any]) -> list[str]:
    """The playbooks of the Ansible runs `action` made, in order."""
    artifacts = project.root / ".deployer" / "runs" / "artifacts"
    before = set(artifacts.iterdir()) if artifacts.exists() else set()
    action()
    made = sorted(set(artifacts.iterdir()) - before, key=lambda p: p.name)
    return [p.name.split("-")[1] for p in made]


def test_runs_are_few_first_batch_with_prepare_and_a_rollback_in_one(project: Project) -> None:
    """The prepare run also switches the first batch (the second of two is a run of its own),
    and a rollback the ledger can name is one run: lock, check, switch, release."""
    made = runs_made(project, lambda: project.json("deploy", "lab", "--version", "v1"))
    deployed = project.json("history", "lab")[0]
    assert deployed["status"] == "SUCCEEDED", deployed
    assert made == ["prepare", "switch"], made
    project.json("deploy", "lab", "--version", "v2")

    made = runs_made(project, lambda: project.json("rollback", "lab"))
    assert made == ["rollback"], made
    assert set(project.current().values()) == {"v1"}
    assert answers(project) == {"hello from v1"}
    row = project.json("history", "lab")[0]
    assert (row["kind"], row["status"], row["version"], row["previous_version"]) == (
        "rollback",
        "SUCCEEDED",
        "v1",
        "v2",
    )
    assert project.json("lock", "status", "lab")["held"] is False


def test_rollback_to_a_version_the_ledger_marked_bad_is_refused_even_if_hosts_forgot(
    project: Project,
) -> None:
    """The ledger's bad mark stands on its own: with the hosts' own marks gone (a rebuilt
    meta.json, say), `rollback --to` the bad version still exits 2 and switches nothing."""
    project.json("deploy", "lab", "--version", "v1")
    project.json("deploy", "lab", "--version", "v2", "--artifact", "broken", expect=1)
    assert "v2" in {r["version"] for r in project.json("releases", "lab")["releases"]}
    for host in project.lab.hosts:
        meta = f"/srv/{project.app}/releases/v2/.deployer/meta.json"
        forgot = project.ssh(host, f'sudo sed -i \'s/"bad"/"good"/\' {meta} && cat {meta}')
        assert '"bad"' not in forgot.stdout, forgot.stdout

    refused = project.cli("rollback", "lab", "--to", "v2")
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert "marked bad in this environment" in refused.stderr
    assert set(project.current().values()) == {"v1"}
    assert project.json("history", "lab")[0]["kind"] == "deploy"  # no rollback was recorded
    assert project.json("lock", "status", "lab")["held"] is False


def test_same_version_twice_is_a_recorded_noop(project: Project) -> None:
    project.json("deploy", "lab", "--version", "v1")
    second = project.json("deploy", "lab", "--version", "v1")
    assert second["status"] == "SUCCEEDED"
    assert second["noop"] is True
    assert project.json("history", "lab")[0]["noop"] is True


def test_two_deploys_at_once_one_waits_out_with_exit_3(project: Project) -> None:
    project.edit({"health": {"retries": 8, "interval": 1}})
    project.json("deploy", "lab", "--version", "v1")
    one = project.popen("deploy", "lab", "--version", "v2", "--artifact", "broken", "--json")
    time.sleep(1.5)
    two = project.popen("deploy", "lab", "--version", "v4", "--json")
    out_two, err_two = two.communicate(timeout=300)
    out_one, _ = one.communicate(timeout=300)
    codes = sorted([one.returncode, two.returncode])
    assert 3 in codes, (codes, out_two, err_two)
    loser = json.dumps(json.loads(out_two if two.returncode == 3 else out_one))
    assert "locked by" in loser
    assert "pid" in loser
    lock = project.json("lock", "status", "lab")
    assert lock["held"] is False


def test_sigint_mid_deploy_releases_lock_and_records_interrupted(project: Project) -> None:
    project.edit({"health": {"retries": 60, "interval": 1}})
    project.json("deploy", "lab", "--version", "v1")
    proc = project.popen("deploy", "lab", "--version", "v2", "--artifact", "broken", "--json")
    time.sleep(6)  # inside the first batch's health checks
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    assert json.loads(out)["status"] == "INTERRUPTED"
    assert project.json("lock", "status", "lab")["held"] is False
    assert project.json("history", "lab")[0]["status"] == "INTERRUPTED"
    status = project.json("status", "lab")
    assert any("INTERRUPTED" in p for p in status["problems"])


def test_rollback_to_a_pruned_version_is_refused(project: Project) -> None:
    project.edit({"keep_releases": 2})
    for version in ("v1", "v2", "v3"):
        project.json("deploy", "lab", "--version", version)
    refused = project.cli("rollback", "lab", "--to", "v1")
    assert refused.returncode == 2
    for host in project.lab.hosts:
        assert host.name in refused.stderr
    assert set(project.current().values()) == {"v3"}


def test_secret_canary_never_leaks_from_a_failing_verbose_deploy(project: Project) -> None:
    from ansible.parsing.vault import VaultLib, VaultSecret

    env_canary = "envcanary" + secrets.token_hex(8)
    vault_canary = "vaultcanary" + secrets.token_hex(8)
    password = secrets.token_hex(8)
    vault = VaultLib([("default", VaultSecret(password.encode()))])
    (project.root / "secrets.vault.yml").write_bytes(
        vault.encrypt(f"db_password: {vault_canary}\n")
    )
    project.edit(
        {
            "secrets": {
                "vault_file": "secrets.vault.yml",
                "vault_password_env": "HELLO_VAULT_PASSWORD",
                "env": {
                    "API_TOKEN": {"from_env": "HELLO_API_TOKEN"},
                    "DB_PASSWORD": {"vault": "db_password"},
                },
            }
        }
    )
    env = {"HELLO_API_TOKEN": env_canary, "HELLO_VAULT_PASSWORD": password}
    good = project.cli("-vvvv", "deploy", "lab", "--version", "v1", env=env)
    assert good.returncode == 0, good.stderr[-2000:]
    failing = project.cli(
        "-vvvv", "deploy", "lab", "--version", "v2", "--artifact", "broken", env=env
    )
    assert failing.returncode == 1
    canaries = (env_canary, vault_canary)
    for text in (good.stdout, good.stderr, failing.stdout, failing.stderr):
        assert not any(c in text for c in canaries)
    for path in (project.root / ".deployer").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(c.encode() in data for c in canaries), path
    ledger = sqlite3.connect(project.root / ".deployer" / "ledger.sqlite3")
    dump = "\n".join(ledger.iterdump())
    assert not any(c in dump for c in canaries)
    # on the hosts: only the release's 0600 env file may hold them, never a temp dir
    for host in project.lab.hosts:
        proc = project.ssh(
            host,
            "sudo grep -rl -e "
            + " -e ".join(canaries)
            + " /tmp /var/tmp /root/.ansible /home/deploy/.ansible 2>/dev/null; true",
        )
        assert proc.stdout.strip() == "", (host.name, proc.stdout)
        mode = project.ssh(host, f"sudo stat -c '%a %U' /srv/{project.app}/current/.deployer/env")
        assert mode.stdout.split()[0] == "600"
