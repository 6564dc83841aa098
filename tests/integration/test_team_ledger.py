"""One history for a team: two checkouts of one project on two control hosts (a laptop and a
CI runner, told apart by DEPLOYER_CONTROL_HOST) deploy the same lab environment through the
real CLI, sharing a PostgreSQL ledger (`ledger.url`, its password `from_env`) on a real
server. They see one history, one set of bad versions and one rollback target; two deploys
started at once: one succeeds, the other exits 3 naming the control host that holds the
environment."""

from __future__ import annotations

import json
import random
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE, Project, remove_app

from deployer.lab import LabState
from deployer.ledger import Kind, Status

pytestmark = pytest.mark.integration


@dataclass
class Checkout:
    """A copy of the project on one control host."""

    project: Project
    name: str
    """The control host's name."""
    env: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.project.cli(*args, env=self.env)

    def json(self, *args: str, expect: int = 0) -> Any:
        proc = self.cli(*args, "--json")
        assert proc.returncode == expect, (self.name, proc.returncode, proc.stdout, proc.stderr)
        return json.loads(proc.stdout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return self.project.popen(*args, env=self.env)

    def runs(self) -> set[str]:
        artifacts = self.project.root / ".deployer" / "runs" / "artifacts"
        return {p.name for p in artifacts.iterdir()} if artifacts.exists() else set()


@pytest.fixture
def team(tmp_path: Path, lab: LabState, postgres: Any) -> Iterator[tuple[Checkout, Checkout]]:
    """examples/hello checked out twice, in directories of their own, with one ledger."""
    app, port = "t" + secrets.token_hex(4), random.randint(20000, 45000)
    checkouts = []
    for name in ("laptop", "ci-runner"):
        root = tmp_path / name / "hello"
        shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".deployer"))
        project = Project(root=root, app=app, port=port, lab=lab)
        project.edit(
            {
                "app": {"name": app},
                "service": {"port": port},
                "ledger": {"url": postgres.url, "password": {"from_env": "TEAM_LEDGER_PASSWORD"}},
            }
        )
        env = {"TEAM_LEDGER_PASSWORD": postgres.password, "DEPLOYER_CONTROL_HOST": name}
        checkouts.append(Checkout(project, name, env))
    try:
        yield checkouts[0], checkouts[1]
    finally:
        remove_app(checkouts[0].project)


def test_two_checkouts_share_history_bad_versions_and_rollback_target(
    team: tuple[Checkout, Checkout], postgres: Any
) -> None:
    laptop, ci = team
    assert laptop.json("deploy", "lab", "--version", "v1")["status"] == "SUCCEEDED"
    assert ci.json("deploy", "lab", "--version", "v2")["status"] == "SUCCEEDED"
    history = ci.json("history", "lab")
    assert [(d["version"], d["control_host"]) for d in history] == [
        ("v2", "ci-runner"),
        ("v1", "laptop"),
    ]
    assert history[0]["previous_version"] == "v1"  # what the laptop deployed
    assert laptop.json("history", "lab") == history

    # a version that failed from the laptop is bad for the CI runner too
    broken = laptop.json("deploy", "lab", "--version", "v3", "--artifact", "broken", expect=1)
    assert broken["status"] == "ROLLED_BACK"
    assert set(laptop.project.current().values()) == {"v2"}
    for host in laptop.project.lab.hosts:  # only the ledger remembers it now
        meta = f"/srv/{laptop.project.app}/releases/v3/.deployer/meta.json"
        laptop.project.ssh(host, f'sudo sed -i \'s/"bad"/"good"/\' {meta}')
    again = ci.cli("deploy", "lab", "--version", "v3", "--artifact", "broken")
    assert again.returncode == 2, (again.stdout, again.stderr)
    assert "version v3 is marked bad in lab" in again.stderr
    back_to_bad = ci.cli("rollback", "lab", "--to", "v3")
    assert back_to_bad.returncode == 2, (back_to_bad.stdout, back_to_bad.stderr)
    assert "marked bad in this environment" in back_to_bad.stderr
    assert ci.json("plan", "lab", "--version", "v3")["version_is_bad"] is True

    # the rollback target: the newest good version but the live one, v1 (the laptop's), which
    # the ledger names, so the CI runner's rollback is the one run that needs no host read
    before = ci.runs()
    rolled = ci.json("rollback", "lab")
    assert (rolled["status"], rolled["version"]) == ("SUCCEEDED", "v1")
    assert [r.split("-")[1] for r in sorted(ci.runs() - before)] == ["rollback"]
    status = laptop.json("status", "lab")
    assert {h["current"] for h in status["hosts"]} == {"v1"}
    assert status["problems"] == []  # the laptop's ledger expects what the runner rolled to
    last = laptop.json("history", "lab")[0]
    assert (last["kind"], last["version"], last["previous_version"], last["control_host"]) == (
        "rollback",
        "v1",
        "v2",
        "ci-runner",
    )
    assert laptop.json("history", "lab") == ci.json("history", "lab")
    for checkout in team:  # neither keeps a ledger of its own
        assert not (checkout.project.root / ".deployer" / "ledger.sqlite3").exists()


def _first_to_end(procs: list[subprocess.Popen[str]], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i, proc in enumerate(procs):
            if proc.poll() is not None:
                return i
        time.sleep(0.1)
    raise AssertionError("neither deploy ended")


def test_two_deploys_at_once_from_two_control_hosts_one_exits_3_naming_the_other(
    team: tuple[Checkout, Checkout], postgres: Any
) -> None:
    for checkout in team:  # the winner keeps the environment for its watch window
        checkout.project.edit({"rollback": {"watch": 15}})
    laptop, ci = team
    procs = [
        laptop.popen("deploy", "lab", "--version", "v1", "--json"),
        ci.popen("deploy", "lab", "--version", "v1", "--json"),
    ]
    first = _first_to_end(procs, timeout=240)
    loser, winner = team[first], team[1 - first]
    lost = json.loads(procs[first].communicate(timeout=60)[0])
    assert procs[first].returncode == 3, lost
    assert procs[1 - first].poll() is None  # the other still deploys
    holder = f"locked by root@{winner.name} (pid {procs[1 - first].pid})"
    assert holder in lost["reason"], lost

    text = loser.cli("deploy", "lab", "--version", "v1")  # the same refusal without --json
    assert text.returncode == 3, (text.stdout, text.stderr)
    assert holder in text.stdout + text.stderr
    lock = loser.json("lock", "status", "lab")
    assert lock["held"] is True
    assert lock["holder"]["control_host"] == winner.name
    assert lock["stale"] is False

    out, err = procs[1 - first].communicate(timeout=240)
    won = json.loads(out)
    assert (procs[1 - first].returncode, won["status"]) == (0, "SUCCEEDED"), (out, err)
    assert f"deployment #{won['deployment_id']}" in lost["reason"]  # one ledger's numbering
    rows = loser.json("history", "lab")
    seen = [(r["control_host"], r["status"]) for r in rows]
    assert seen[0] == (loser.name, "FAILED")  # the refusal without --json, then the race's two
    assert sorted(seen[1:]) == sorted([(loser.name, "FAILED"), (winner.name, "SUCCEEDED")])
    assert winner.json("history", "lab") == rows

    # each control host judges only its own runs: a RUNNING row of the laptop whose process
    # is gone is left alone by the runner, and marked INTERRUPTED by the laptop
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with postgres.ledger() as ledger:
        orphan = ledger.begin(
            environment="lab",
            kind=Kind.DEPLOY,
            version="v9",
            previous_version="v1",
            artifact_sha256=None,
            user="root",
            control_host="laptop",
            pid=child.pid,
        )
    ci.json("status", "lab")
    with postgres.ledger() as ledger:
        assert ledger.get(orphan).status is Status.RUNNING
    laptop.json("status", "lab")
    with postgres.ledger() as ledger:
        row = ledger.get(orphan)
    assert row.status is Status.INTERRUPTED
    assert f"pid {child.pid}" in row.reason
