"""Fixtures of the fault-injection suite: real deployments on the lab, broken on purpose.

The suite reuses the integration suite's lab and `Project`. pytest reads `pytest_plugins`
only in the rootdir conftest and tests/ has no packages, so tests/integration/conftest.py is
loaded here by path under a module name of its own, and its `Project`, lab name and size are
used. `lab` and `project` are redefined on top of them: `lab` retries `up` once (see
`lab_up`), and a fault may restart a lab container, which can move its published SSH port,
so each test reads the lab as it is now (healing it first when a fault was left behind) and
cleans up through the lab as it is at the end.

Run with its own lab: DEPLOYER_TEST_LAB=faults pytest tests/faults   (or -m faults)
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deployer.lab import LabError, LabHost, LabState, down, status, up


def _load_integration_fixtures() -> Any:
    path = Path(__file__).resolve().parents[1] / "integration" / "conftest.py"
    spec = importlib.util.spec_from_file_location("deployer_integration_fixtures", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_integration = _load_integration_fixtures()

Project = _integration.Project
LAB_NAME: str = _integration.LAB_NAME
LAB_HOSTS: int = _integration.LAB_HOSTS
EXAMPLE: Path = _integration.EXAMPLE
APPS = Path(__file__).parent / "apps"


CORRUPTING_CLI = """
import sys
from deployer import artifact
from deployer.cli import main

checksummed = artifact.prepare

def prepare_then_corrupt(*args, **kwargs):
    art = checksummed(*args, **kwargs)
    data = bytearray(art.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    art.path.write_bytes(bytes(data))
    return art

artifact.prepare = prepare_then_corrupt
sys.argv[0] = "deployer"
main()
"""


def lab_up() -> LabState:
    """`deployer.lab.up` for the test lab, tried twice: under load, `up` has been seen to
    write a known_hosts without one host's keys (they are read through `docker exec`) and
    then fail its own login check on that host; a second `up` rewrites the file."""
    try:
        return up(LAB_HOSTS, name=LAB_NAME)
    except LabError:
        return up(LAB_HOSTS, name=LAB_NAME)


@pytest.fixture(scope="session")
def lab() -> Iterator[LabState]:
    """The integration suite's `lab` (same name, same size, same teardown), with `lab_up`."""
    state = lab_up()
    yield state
    if os.environ.get("DEPLOYER_KEEP_LAB") != "1":
        down(LAB_NAME)


def lab_now() -> LabState:
    """The lab as docker sees it now; brought back up (`up` rewrites hosts.yml and
    known_hosts with the current ports and keys) when a host is stopped or paused."""
    state = status(LAB_NAME)
    if len(state.hosts) != LAB_HOSTS or any(
        h.state != "running" or not h.port for h in state.hosts
    ):
        state = lab_up()
    return state


class FaultProject(Project):  # type: ignore[misc, valid-type]
    """A Project with the helpers fault tests share: timed CLI runs, the ledger, hosts."""

    undo: list[Callable[[], object]]

    # --- the lab -----------------------------------------------------------------------

    def host(self, name: str) -> LabHost:
        return next(h for h in self.lab.hosts if h.name == name)

    def refresh(self) -> None:
        """Re-read the lab (after a host was brought back, its port may have moved)."""
        self.lab = lab_now()

    def on(self, name: str, command: str, check: bool = True) -> str:
        """Run a shell command on a lab host over SSH (as deploy; prefix sudo yourself)."""
        proc = self.ssh(self.host(name), command)
        if check:
            assert proc.returncode == 0, (name, command, proc.stdout, proc.stderr)
        return proc.stdout

    def docker(self, name: str, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a command inside a lab host's container as root, without SSH."""
        return subprocess.run(
            ["docker", "exec", self.host(name).container, *argv],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def releases_on(self, name: str) -> list[str]:
        out = self.on(name, f"ls -A /srv/{self.app}/releases 2>/dev/null || true")
        return sorted(out.split())

    def answers(self) -> dict[str, str]:
        """What the service answers on every host (from the host itself)."""
        return {
            h.name: self.on(
                h.name, f"curl -s --max-time 3 http://127.0.0.1:{self.port}/", check=False
            ).strip()
            for h in self.lab.hosts
        }

    def lock_held(self) -> bool:
        """Whether the environment lock directory exists on the primary (lab1), over SSH."""
        out = self.on("lab1", f"sudo ls /var/lib/deployer/locks/{self.app}/ 2>/dev/null || true")
        return bool(out.strip())

    def hosts_entries(self, *names: str) -> list[dict[str, Any]]:
        """Explicit `hosts:` entries for lab hosts (for environments that split the lab)."""
        return [
            {"name": h.name, "address": h.address, "port": h.port, "user": h.user}
            for h in self.lab.hosts
            if h.name in names
        ]

    def lab_ssh(self, known_hosts: Path | None = None) -> dict[str, Any]:
        """`ssh:` settings that reach lab hosts listed explicitly."""
        return {
            "private_key": str(self.lab.private_key),
            "known_hosts": str(known_hosts or self.lab.known_hosts),
            "connect_timeout": 5,
        }

    # --- the project ---------------------------------------------------------------------

    def variant(self, name: str = "faulty") -> str:
        """Copy tests/faults/apps/<name> into the project; returns the --artifact value."""
        shutil.copytree(APPS / name, self.root / name, dirs_exist_ok=True)
        return name

    def fast(self, **sections: Any) -> None:
        """Settings that keep a case short: every host in one batch, quick health checks."""
        change: dict[str, Any] = {
            "strategy": {"kind": "all_at_once", "failure_budget": 0},
            "health": {"retries": 20, "interval": 0.5},
        }
        change.update(sections)
        self.edit(change)

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 240
    ) -> tuple[subprocess.CompletedProcess[str], float]:
        started = time.monotonic()
        proc = self.cli(*args, env=env, timeout=timeout)
        return proc, time.monotonic() - started

    def deploy(self, *args: str, expect: int = 0, env: dict[str, str] | None = None) -> Any:
        """`deploy ... --json`; asserts the exit code and returns the parsed result."""
        proc, _ = self.run("deploy", *args, "--json", env=env)
        assert proc.returncode == expect, (
            proc.returncode,
            proc.stdout[-3000:],
            proc.stderr[-3000:],
        )
        return json.loads(proc.stdout)

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start the CLI in its own process group (as a terminal or a CI job would)."""
        return subprocess.Popen(
            [sys.executable, "-m", "deployer", *args],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, "DEPLOYER_LAB_NAME": self.lab.name, **(env or {})},
        )

    def corrupting_cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The real CLI with one change: the release tarball is corrupted on the controller
        after deployer checksummed it and before it is uploaded (a byte flipped in place)."""
        return subprocess.run(
            [sys.executable, "-c", CORRUPTING_CLI, *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=240,
            env={**os.environ, "DEPLOYER_LAB_NAME": self.lab.name, **(env or {})},
        )

    @property
    def ledger_path(self) -> Path:
        return self.root / ".deployer" / "ledger.sqlite3"

    def rows(self) -> list[dict[str, Any]]:
        """Deployments in the ledger, oldest first, read directly (read-only) from SQLite."""
        if not self.ledger_path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.ledger_path}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute("SELECT * FROM deployments ORDER BY id")]
        finally:
            conn.close()

    def host_rows(self, deployment_id: int) -> dict[str, dict[str, Any]]:
        conn = sqlite3.connect(f"file:{self.ledger_path}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            rows = conn.execute(
                "SELECT * FROM deployment_hosts WHERE deployment_id = ?", (deployment_id,)
            )
            return {r["host"]: dict(r) for r in rows}
        finally:
            conn.close()

    def wait_for_stage(
        self, proc: subprocess.Popen[str], predicate: Callable[[str], bool], timeout: float = 90
    ) -> str:
        """Poll the ledger until the running deployment's stage satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, ("deploy ended early", proc.communicate())
            running = [r for r in self.rows() if r["status"] == "RUNNING"]
            if running and predicate(running[-1]["stage"]):
                return str(running[-1]["stage"])
            time.sleep(0.1)
        raise AssertionError("the deployment never reached the expected stage")


@pytest.fixture
def project(tmp_path: Path, lab: LabState) -> Iterator[FaultProject]:
    """examples/hello under a unique app name and port, on the lab as it is now; faults a
    test registers in `project.undo` are undone, and the app removed from every host."""
    state = lab_now()
    app = "f" + secrets.token_hex(4)
    port = random.randint(20000, 45000)
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".deployer", "__pycache__"))
    proj = FaultProject(root=root, app=app, port=port, lab=state)
    proj.undo = []
    proj.edit({"app": {"name": app}, "service": {"port": port}})
    yield proj
    for action in reversed(proj.undo):
        action()
    proj.refresh()
    for host in proj.lab.hosts:
        proj.ssh(
            host,
            f"sudo umount /srv/{app} 2>/dev/null; "
            f"sudo systemctl disable --now {app}.socket {app}.service; "
            f"sudo rm -rf /srv/{app} /etc/systemd/system/{app}.* "
            f"/var/lib/deployer/locks/{app}",
        )


@pytest.fixture
def bare_project(tmp_path: Path, lab: LabState) -> FaultProject:
    """Like `project`, for cases that must never reach a host: no clean-up on the hosts
    (and any trace such a case left there would be a failure of its own)."""
    root = tmp_path / "bare"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".deployer", "__pycache__"))
    proj = FaultProject(
        root=root, app="f" + secrets.token_hex(4), port=random.randint(20000, 45000), lab=lab_now()
    )
    proj.undo = []
    proj.edit({"app": {"name": proj.app}, "service": {"port": proj.port}})
    return proj
