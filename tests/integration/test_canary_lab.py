"""Canary on real lab hosts, under a steady load through the edge proxy (nginx from Debian
on every host), judged by Debian's Prometheus on the first host: one project deployed for
the whole module (v1, live at once: nothing ran before to compare with), then

- a canary failing about 30 % of its requests, aborted at its first step (20 %): the
  requests the load saw fail stay within about the canary's share (20 % x 30 %), the new
  slots are stopped and every host still serves v1; the ledger keeps the analysis's figures;
- a good canary promoted through every step (20 %, 50 %, the flip) without a failed request;
- auto_promote false: one canary promoted at its first step with `deployer promote` and
  aborted at its second with `deployer abort`, waiting in the ledger each time.

Short steps (analysis 4 s, scraped every second) keep the module within its CI budget."""

from __future__ import annotations

import dataclasses
import json
import random
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lab_project import EXAMPLE, Project, remove_app
from test_blue_green import _remove_slots, _slots
from test_edge_proxy import Load

from deployer.lab import LabState
from deployer.ledger import Ledger

pytestmark = pytest.mark.integration

ANALYSIS = 4


def _flaky(root: Path) -> Path:
    """The example app answering 500 to 3 in 10 requests of GET / (health stays fine)."""
    flaky = root / "flaky"
    shutil.copytree(root / "app", flaky)
    source = flaky / "app.py"
    text = source.read_text()
    good = 'code, body, kind = 200, f"hello from {VERSION}\\n", "text/plain; charset=utf-8"'
    assert good in text
    bad = (
        "code, body, kind = (500 if METRICS.count % 10 in (1, 4, 7) else 200), "
        'f"hello from {VERSION}\\n", "text/plain; charset=utf-8"'
    )
    source.write_text(text.replace(good, bad))
    return flaky


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory, lab: LabState) -> Iterator[Project]:
    app = "c" + secrets.token_hex(4)
    root = tmp_path_factory.mktemp("canary") / "project"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".deployer"))
    project = Project(root=root, app=app, port=random.randint(20000, 45000), lab=lab)
    domain = f"{app}.lab.test"
    project.edit(
        {
            "app": {"name": app},
            "service": {"port": project.port, "listen": "port"},
            "health": {"retries": 10, "interval": 0.5},
            "rollback": {
                "watch": 0,
                "error_rate": {"threshold": 5, "window": 30},
                "response_time": {"threshold_ms": 2000, "window": 30},
            },
            "environments": {
                "lab": {
                    "hosts": {"web": "lab"},
                    "domain": domain,
                    "features": {"monitoring": True},
                    "monitoring": {
                        "server": lab.hosts[0].name,
                        "scrape_interval": 1,
                        "min_requests": 10,
                    },
                }
            },
        }
    )
    config = yaml.safe_load((root / "deploy.yml").read_text())
    config["strategy"] = {"kind": "canary", "steps": ["20%", 50, 100], "analysis": ANALYSIS}
    (root / "deploy.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    _flaky(root)
    try:
        first = project.json("deploy", "lab", "--version", "v1")
        assert first["status"] == "SUCCEEDED", first
        yield project
    finally:
        _remove_slots(project)
        remove_app(project)


def _load(project: Project) -> Load:
    return Load([h.ip for h in project.lab.hosts[:2]], f"{project.app}.lab.test")


def _ledger(project: Project) -> Ledger:
    return Ledger(project.root / ".deployer" / "ledger.sqlite3")


def _steps(project: Project, deployment: int) -> list[dict[str, Any]]:
    """The canary's steps as `history lab --id N --json` shows them (read in-process)."""
    with _ledger(project) as ledger:
        found = ledger.get(deployment)
    return [dataclasses.asdict(s) for s in found.canary_steps]


def test_a_failing_canary_is_aborted_at_its_first_step_within_its_share(
    canary: Project,
) -> None:
    project = canary
    with _load(project) as load:
        time.sleep(1)
        proc = project.cli("deploy", "lab", "--version", "v2", "--artifact", "flaky", "--json")
        time.sleep(1)
    result = json.loads(proc.stdout)
    assert proc.returncode == 1, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert (result["status"], result["stage"]) == ("ROLLED_BACK", "abort"), result
    assert "the canary's analysis at 20 %" in result["reason"], result["reason"]
    assert set(project.current().values()) == {"v1"}
    for host in project.lab.hosts:  # the new slot stopped; the live one untouched
        slots = _slots(project, host)
        assert slots["live"] == "green", slots
        assert (slots["green"], slots["green.state"]) == ("v1", "active"), slots
        assert slots["blue.state"] == "inactive", slots
    steps = _steps(project, result["deployment_id"])
    assert [(s["share"], s["action"], s["outcome"]) for s in steps] == [
        (20, "shift", "done"),
        (20, "analysis", "breached"),
        (0, "abort", "aborted"),
    ], steps
    analysis = steps[1]
    assert analysis["canary_error_rate"] > 5, analysis
    assert analysis["stable_error_rate"] is not None, analysis
    assert analysis["stable_error_rate"] < 1, analysis
    # The canary's own failures are its 500s: at most its share (20 %) of its failure rate
    # (30 %) of the requests, and fewer, since the load runs before the shift and after the
    # abort too. (Time-outs and 502s are the machine's: a starved control host, counted and
    # reported, not the canary's answers.)
    answered = load.failures["http 500"]
    assert load.sent > 200, load.sent
    assert 0 < answered <= 0.2 * 0.3 * load.sent * 1.6, (answered, load.sent, load.failures)
    assert project.json("status", "lab")["hosts"][0]["current"] == "v1"
    print(
        f"canary aborted at 20 %: {answered} of {load.sent} requests answered 500 "
        f"({answered / load.sent:.1%}); other failures: {dict(load.failures)}"
    )


def test_a_good_canary_is_promoted_through_every_step(canary: Project) -> None:
    project = canary
    started = time.monotonic()
    with _load(project) as load:
        result = project.json("deploy", "lab", "--version", "v3")
        time.sleep(1)
    took = time.monotonic() - started
    assert result["status"] == "SUCCEEDED", result
    assert sum(load.failures.values()) == 0, (load.failures, load.sent)
    assert {"v1", "v3"} <= set(load.versions), load.versions
    assert set(project.current().values()) == {"v3"}
    for host in project.lab.hosts:  # v3 live in blue, v1 kept warm in green
        slots = _slots(project, host)
        assert (slots["live"], slots["blue"], slots["blue.state"]) == ("blue", "v3", "active")
        assert (slots["green.state"], slots["green.timer"]) == ("active", "active"), slots
    steps = _steps(project, result["deployment_id"])
    assert [(s["share"], s["action"], s["outcome"]) for s in steps] == [
        (20, "shift", "done"),
        (20, "analysis", "passed"),
        (50, "shift", "done"),
        (50, "analysis", "passed"),
        (100, "flip", "done"),
    ], steps
    for step in (steps[1], steps[3]):
        assert step["canary_requests"] >= 10, step
        assert step["canary_error_rate"] == 0, step
    print(f"good canary through 20/50/100 %: {load.sent} requests, 0 failed, {took:.1f} s")


def _waiting(project: Project, stage: str, proc: subprocess.Popen[str]) -> int:
    """The id of the deployment once it waits at `stage` (read in-process)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        with _ledger(project) as ledger:
            rows = ledger.running("lab")
        if rows and rows[0].stage == stage:
            return rows[0].id
        time.sleep(0.3)
    raise AssertionError(f"never waited at {stage}")


def test_manual_promote_then_abort(canary: Project) -> None:
    """One canary with auto_promote false: promoted at 20 %, aborted at 50 %."""
    project = canary
    project.edit({"strategy": {"auto_promote": False, "decision_timeout": 120}})
    assert project.cli("promote", "lab", "--json").returncode == 2  # nothing waits

    proc = project.popen("deploy", "lab", "--version", "v4", "--json")
    deployment = _waiting(project, "decide 20%", proc)
    promoted = project.json("promote", "lab")
    assert (promoted["deployment_id"], promoted["share"]) == (deployment, 20), promoted
    assert promoted["decision"] == "promote", promoted
    assert _waiting(project, "decide 50%", proc) == deployment
    aborted = project.json("abort", "lab")
    assert (aborted["share"], aborted["decision"]) == (50, "abort"), aborted
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out[-3000:], err[-3000:])
    result = json.loads(out)
    assert (result["status"], result["stage"]) == ("ROLLED_BACK", "abort"), result
    assert "aborted at 50 % by `deployer abort`" in result["reason"], result["reason"]
    assert set(project.current().values()) == {"v3"}  # the good canary's, still live
    assert [(s["share"], s["action"], s["outcome"]) for s in _steps(project, deployment)] == [
        (20, "shift", "done"),
        (20, "analysis", "passed"),
        (20, "decision", "promoted"),
        (50, "shift", "done"),
        (50, "analysis", "passed"),
        (50, "decision", "aborted"),
        (0, "abort", "aborted"),
    ]
    for host in project.lab.hosts:  # the aborted slot stopped, v3 live and serving
        slots = _slots(project, host)
        assert (slots["live"], slots["blue"], slots["blue.state"]) == ("blue", "v3", "active")
        assert slots["green.state"] == "inactive", slots
