"""The ledger under hostile or damaged input: a file that is not a ledger, a ledger from a
newer deployer, rows that do not parse, and secrets that look like identifiers."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deployer.exitcodes import ExitCode
from deployer.ledger import (
    SCHEMA_VERSION,
    HostResult,
    HostStatus,
    Kind,
    Ledger,
    LedgerUnreadable,
    Status,
    check_readable,
)
from deployer.secrets import MASK, redactor_for

ROOT = Path(__file__).resolve().parents[3]
CONFIG = """\
app: {name: myapp}
service: {command: /bin/true, port: 8000}
health: {tcp: {}}
environments:
  prod: {hosts: {web: [{address: 10.0.0.1}]}}
"""

pytestmark = pytest.mark.hostile


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "deploy.yml").write_text(CONFIG)
    return root


def ledger_file(project: Path) -> Path:
    return project / ".deployer" / "ledger.sqlite3"


def deployer(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a process of its own, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DEPLOYER_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "deployer", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def begin(ledger: Ledger, version: str = "v1", **fields: Any) -> int:
    """Open a RUNNING deployment (of v1 in prod unless told otherwise); its id."""
    row: dict[str, Any] = {
        "environment": "prod",
        "kind": Kind.DEPLOY,
        "version": version,
        "previous_version": None,
        "artifact_sha256": None,
        "user": "alice",
        "control_host": "ctl",
        "pid": 1,
    }
    return ledger.begin(**{**row, **fields})


def write_garbage(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(range(256)) * 16)


def write_newer(path: Path) -> None:
    Ledger(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()  # the last connection checkpoints the WAL into the file


def test_garbage_bytes_are_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    write_garbage(path)
    with pytest.raises(LedgerUnreadable, match=str(path)) as info:
        Ledger(path)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert "not a deployer ledger" in str(info.value)


def test_a_database_of_another_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE deployments (x)")
    with pytest.raises(LedgerUnreadable, match=str(path)):
        Ledger(path)


def test_a_row_that_does_not_parse_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with Ledger(path) as ledger:
        begin(ledger)
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE deployments SET status = 'EXPLODED', started_at = 'yesterday'")
    with Ledger(path) as ledger, pytest.raises(LedgerUnreadable, match=str(path)):
        ledger.history()


@pytest.mark.parametrize("damage", [write_garbage, write_newer], ids=["garbage", "newer"])
def test_check_readable_refuses_without_touching_the_file(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    path = tmp_path / "ledger.sqlite3"
    damage(path)
    before = sorted(tmp_path.iterdir()), path.read_bytes()
    with pytest.raises(LedgerUnreadable, match=str(path)):
        check_readable(path)
    assert (sorted(tmp_path.iterdir()), path.read_bytes()) == before


def test_check_readable_accepts_a_ledger_and_creates_none(tmp_path: Path) -> None:
    check_readable(tmp_path / "ledger.sqlite3")
    assert list(tmp_path.iterdir()) == []
    Ledger(tmp_path / "ledger.sqlite3").close()
    check_readable(tmp_path / "ledger.sqlite3")


CLI_READERS = [("history",), ("history", "prod"), ("history", "--json"), ("stats",)]


@pytest.mark.parametrize("damage", [write_garbage, write_newer], ids=["garbage", "newer"])
@pytest.mark.parametrize("args", CLI_READERS, ids=[" ".join(a) for a in CLI_READERS])
def test_every_reader_exits_2_naming_the_file(
    project: Path, damage: Callable[[Path], None], args: tuple[str, ...]
) -> None:
    path = ledger_file(project)
    damage(path)
    before = path.read_bytes()
    proc = deployer(project, *args)
    assert proc.returncode == ExitCode.BAD_INPUT, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert str(path) in proc.stderr + proc.stdout
    assert path.read_bytes() == before  # a ledger deployer cannot read is left as it was


def test_an_older_ledger_is_still_migrated_by_the_cli(project: Path) -> None:
    path = ledger_file(project)
    with Ledger(path) as ledger:
        ledger.finish(begin(ledger), Status.SUCCEEDED)
    with sqlite3.connect(path) as raw:
        raw.execute("ALTER TABLE deployments DROP COLUMN error_rate")
        raw.execute("ALTER TABLE deployments DROP COLUMN p95_ms")
        raw.execute("ALTER TABLE deployment_hosts DROP COLUMN services")
        raw.execute("ALTER TABLE deployment_hosts DROP COLUMN analysis")
        raw.execute("DROP TABLE deployment_hooks")
        raw.execute("DROP TABLE backups")
        raw.execute("DROP TABLE canary_steps")
        raw.execute("DROP TABLE canary_decisions")
        raw.execute("PRAGMA user_version = 1")
    proc = deployer(project, "history", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [row["version"] for row in json.loads(proc.stdout)] == ["v1"]


# --- identifiers are never redacted ------------------------------------------------------

SECRET = "2024"  # a secret that also occurs inside a version, a host name, a digest...
VERSION = "v2024.1"
HOST = "web2024.example.net"
SHA = "2024" + "ab" * 30


def _record_failed_deploy(ledger: Ledger) -> int:
    deployment_id = begin(
        ledger,
        VERSION,
        environment="prod2024",
        previous_version="v2023.9",
        artifact_sha256=SHA,
    )
    ledger.record_hosts(
        deployment_id,
        [
            HostResult(
                HOST,
                HostStatus.FAILED,
                "switch",
                "v2023.9",
                VERSION,
                f"health check said: token {SECRET} rejected",
            )
        ],
    )
    ledger.finish(deployment_id, Status.ROLLED_BACK, reason=f"password {SECRET} was wrong")
    ledger.mark_bad("prod2024", VERSION, deployment_id=deployment_id, reason=f"bad {SECRET}")
    ledger.record_observation("prod2024", HOST, VERSION, healthy=False)
    return deployment_id


def test_identifiers_are_stored_whole_and_free_text_is_masked(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with Ledger(path, redact=redactor_for({"TOKEN": SECRET})) as ledger:
        deployment_id = _record_failed_deploy(ledger)
        row = ledger.get(deployment_id)
        assert (row.environment, row.version, row.previous_version) == (
            "prod2024",
            VERSION,
            "v2023.9",
        )
        assert row.artifact_sha256 == SHA
        (host,) = row.hosts
        assert (host.host, host.version_before, host.version_after) == (HOST, "v2023.9", VERSION)
        # the ledger still refuses the bad version, under its real name
        assert ledger.bad_versions("prod2024") == frozenset({VERSION})
        assert VERSION not in ledger.good_versions("prod2024")
        assert ledger.current("prod2024") == "v2023.9"
        assert ledger.observations("prod2024")[HOST][0] == VERSION
        # free text is masked
        assert row.reason == f"password {MASK} was wrong"
        assert host.message == f"health check said: token {MASK} rejected"
    with sqlite3.connect(path) as raw:
        reasons = [r[0] for r in raw.execute("SELECT reason FROM bad_versions")]
    assert reasons == [f"bad {MASK}"]


def test_history_json_shows_the_version_unmasked(project: Path) -> None:
    with Ledger(ledger_file(project), redact=redactor_for({"TOKEN": SECRET})) as ledger:
        deployment_id = begin(ledger, VERSION)
        ledger.finish(deployment_id, Status.FAILED, reason=f"the {SECRET} token expired")
    proc = deployer(project, "history", "--json")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["version"] == VERSION
    assert row["reason"] == f"the {MASK} token expired"
    assert SECRET not in row["reason"]
