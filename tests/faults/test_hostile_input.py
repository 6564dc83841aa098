"""Hostile input on the controller, end to end through the real CLI: a vault whose decrypted
text is not YAML, YAML built to exhaust the parser, a ledger that is not a ledger, addresses
and paths Ansible would mishandle. Each exits 2 naming the file, the line or the config path,
with no traceback and no secret in the output, before any connection is opened. Then the two
cases that live on the lab: a secret that occurs in a version never masks that version in the
ledger (so the version stays refused once it is bad), and `lock release` breaks only the
lock it read."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from test_faults_input import Listener, listener, probe_environment  # noqa: F401

if TYPE_CHECKING:
    from conftest import FaultProject

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.hostile]

CANARY = "hostilecanary" + secrets.token_hex(8)
VAULT_PASSWORD = "hostilepassword" + secrets.token_hex(8)
DEPLOY = ("deploy", "probe", "--version", "v1")
STATUS = ("status", "probe")
EVERY_LEDGER_READER = (
    DEPLOY,
    ("plan", "probe", "--version", "v1"),
    STATUS,
    ("releases", "probe"),
    ("rollback", "probe"),
    ("history",),
    ("stats",),
)
PAD = "# " + "x" * 97 + "\n"


def config_path(project: FaultProject) -> Path:
    return project.root / "deploy.yml"


def append(text: str, times: int = 1) -> Callable[[FaultProject], None]:
    def change(project: FaultProject) -> None:
        with config_path(project).open("a") as handle:
            for _ in range(times):
                handle.write(text)

    return change


def set_key(dotted: str, value: Any) -> Callable[[FaultProject], None]:
    def change(project: FaultProject) -> None:
        data = yaml.safe_load(config_path(project).read_text())
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        node[last] = value
        config_path(project).write_text(yaml.safe_dump(data, sort_keys=False))

    return change


def vault_holding(plain: str) -> Callable[[FaultProject], None]:
    """A vault that decrypts (right password) to `plain`, and secrets that need it."""

    def change(project: FaultProject) -> None:
        from ansible.parsing.vault import VaultLib, VaultSecret

        vault = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))])
        (project.root / "secrets.vault.yml").write_bytes(vault.encrypt(plain))
        project.edit(
            {
                "secrets": {
                    "vault_file": "secrets.vault.yml",
                    "vault_password_env": "HOSTILE_VAULT_PASSWORD",
                    "env": {"DB_PASSWORD": {"vault": "db_password"}},
                }
            }
        )

    return change


def ledger_of(write: Callable[[Path], None]) -> Callable[[FaultProject], None]:
    def change(project: FaultProject) -> None:
        project.ledger_path.parent.mkdir(mode=0o700, exist_ok=True)
        write(project.ledger_path)

    return change


def garbage(path: Path) -> None:
    path.write_bytes(secrets.token_bytes(8192))


def newer(path: Path) -> None:
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE deployments (id INTEGER PRIMARY KEY)")
    raw.execute("PRAGMA user_version = 99")
    raw.close()


def bomb() -> str:
    lines = ["lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 10)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


# case -> (change, commands, what the error must say)
CASES: dict[str, tuple[Callable[[FaultProject], None], tuple[tuple[str, ...], ...], str]] = {
    "vault plaintext with a tab": (
        vault_holding(f"db_password: {CANARY}\n\tapi_key: {CANARY}\n"),
        (DEPLOY,),
        "the decrypted content is not a YAML mapping (line 2, column 1)",
    ),
    "vault plaintext with an undefined alias": (
        vault_holding(f"db_password: *{CANARY}\n"),
        (DEPLOY,),
        "the decrypted content is not a YAML mapping (line 1, column 14)",
    ),
    "vault plaintext a list": (
        vault_holding(f"- {CANARY}\n"),
        (DEPLOY,),
        "the decrypted content is not a YAML mapping of names to values",
    ),
    "complex key": (
        append("? [a, b]\n: 1\n"),
        (DEPLOY, STATUS),
        "a list or a mapping cannot be a key",
    ),
    "5,000 levels of nesting": (
        append("deep: " + "[" * 5000 + "]" * 5000 + "\n"),
        (DEPLOY, STATUS),
        "nested deeper than 64 levels",
    ),
    "alias bomb": (append(bomb()), (DEPLOY, STATUS), "more than 100000 values"),
    "50 MB deploy.yml": (
        append(PAD * 1024, times=50 * 1024 * 1024 // (len(PAD) * 1024)),
        (DEPLOY, STATUS),
        "larger than 1048576 bytes, the limit for a config file",
    ),
    "host:port address": (
        set_key("environments.probe.hosts.web.0.address", "localhost:2222"),
        (DEPLOY, STATUS),
        "put the port in `port:` (address: localhost, port: 2222)",
    ),
    "deploy_to /tmp": (
        set_key("service.deploy_to", "/tmp"),
        (DEPLOY, STATUS),
        "service.deploy_to: '/tmp' is a system directory",
    ),
    "trailing backslash": (
        set_key("service.command", "/usr/bin/python3 app.py \\"),
        (DEPLOY, STATUS),
        "service.command: must not end with a backslash",
    ),
    "garbage ledger": (ledger_of(garbage), EVERY_LEDGER_READER, "is not a deployer ledger"),
    "newer ledger": (ledger_of(newer), EVERY_LEDGER_READER, "written by a newer deployer"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_exits_2_before_any_connection(
    bare_project: FaultProject,
    listener: Listener,  # noqa: F811
    case: str,
) -> None:
    project = bare_project
    probe_environment(project, listener)
    project.edit({"artifact": {"build": f"touch {project.root}/built"}})
    change, commands, expected = CASES[case]
    change(project)
    ledger_before = project.ledger_path.read_bytes() if project.ledger_path.exists() else None
    env = {"HOSTILE_VAULT_PASSWORD": VAULT_PASSWORD}
    for command in commands:
        started = time.monotonic()
        proc = project.cli(*command, env=env, timeout=60)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 2, (command, proc.returncode, proc.stdout, proc.stderr[-3000:])
        assert expected in proc.stderr, (command, proc.stderr[-3000:])
        assert "Traceback" not in output, (command, output[-3000:])
        assert CANARY not in output
        assert VAULT_PASSWORD not in output
        assert time.monotonic() - started < 20, command
    if "ledger" in case:
        assert str(project.ledger_path) in proc.stderr
    assert listener.connections == []
    assert not (project.root / "built").exists(), "the artifact build command ran"
    assert not (project.root / ".deployer" / "runs").exists()
    after = project.ledger_path.read_bytes() if project.ledger_path.exists() else None
    assert after == ledger_before


def test_merge_keys_are_accepted_end_to_end(bare_project: FaultProject) -> None:
    """The control of the cases above: a config written with merge keys validates, and the
    inventory carries the merged values with the written keys winning."""
    project = bare_project
    host = {k: v for k, v in project.hosts_entries("lab1")[0].items() if k != "name"}
    data = yaml.safe_load(config_path(project).read_text())
    del data["environments"]
    config_path(project).write_text(
        yaml.safe_dump(data, sort_keys=False)
        + "environments:\n"
        + "  one:\n"
        + f"    ssh: {json.dumps(project.lab_ssh())}\n"
        + "    hosts:\n"
        + "      web:\n"
        + f"        - &lab {json.dumps({'name': 'first', **host})}\n"
        + "        - <<: *lab\n"
        + "          name: second\n"
    )
    proc = project.cli("inventory", "one", "--json")
    assert proc.returncode == 0, proc.stderr
    hosts = json.loads(proc.stdout)["all"]["children"]["env_one"]["children"]["web"]["hosts"]
    assert set(hosts) == {"first", "second"}
    assert hosts["second"]["ansible_port"] == host["port"]


# --- on the lab ----------------------------------------------------------------------------


def one_host(project: FaultProject) -> None:
    """Environment `one`: lab1 alone, everything in one batch (short runs)."""
    project.fast()
    project.edit(
        {
            "environments": {
                "one": {"hosts": {"web": project.hosts_entries("lab1")}, "ssh": project.lab_ssh()}
            }
        }
    )


def test_a_secret_inside_a_version_never_masks_it(project: FaultProject) -> None:
    """A secret whose value occurs inside a version: the failed version is stored whole and
    stays refused, history shows it whole, and the secret is still masked in free text."""
    one_host(project)
    secret = str(secrets.randbelow(9000) + 1000)  # four digits, like a year
    env = {"HOSTILE_TOKEN": secret}
    project.edit({"secrets": {"env": {"API_TOKEN": {"from_env": "HOSTILE_TOKEN"}}}})
    project.deploy("one", "--version", "v1", env=env)
    project.edit({"service": {"env": {"UNHEALTHY_ON": "lab1"}}})
    version = f"v{secret}.1"
    failed = project.deploy(
        "one", "--version", version, "--artifact", project.variant(), env=env, expect=1
    )
    assert failed["status"] == "ROLLED_BACK"

    row = project.rows()[-1]
    assert (row["version"], row["previous_version"]) == (version, "v1")
    assert secret not in row["reason"]
    conn = sqlite3.connect(f"file:{project.ledger_path}?mode=ro", uri=True)
    try:
        bad = [r[0] for r in conn.execute("SELECT version FROM bad_versions")]
    finally:
        conn.close()
    assert bad == [version]

    again, _ = project.run("deploy", "one", "--version", version, env=env)
    assert again.returncode == 2, (again.stdout, again.stderr[-2000:])
    assert f"version {version} is marked bad" in again.stderr
    history = project.json("history", "one")
    assert [h["version"] for h in history] == [version, "v1"]
    assert project.current()["lab1"] == "v1"


LOCK_CLI = """
import os
import sys
from deployer.cli import main
from deployer.targets.ssh import lock

read = lock.status

def read_then(session):
    seen = read(session)
    action = os.environ["HOSTILE_LOCK_STEP"]
    if action == "take":
        lock.acquire(session, os.environ["HOSTILE_TOKEN_A"])
        return read(session)
    if action == "retake":  # between the read and the break: A ends, B takes the lock
        lock.release_own(session, os.environ["HOSTILE_TOKEN_A"])
        lock.acquire(session, os.environ["HOSTILE_TOKEN_B"])
    return seen

lock.status = read_then
sys.argv[0] = "deployer"
main()
"""


def lock_cli(
    project: FaultProject, step: str, *args: str, tokens: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The real CLI, with `lock.status` followed by real lock runs on lab1: `take` takes
    lock A (in a process that then ends), `retake` hands the lock from A to B between the
    read and the break."""
    return subprocess.run(
        [sys.executable, "-c", LOCK_CLI, *args],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "DEPLOYER_LAB_NAME": project.lab.name,
            "HOSTILE_LOCK_STEP": step,
            **tokens,
        },
    )


def test_lock_release_breaks_only_the_lock_it_read(project: FaultProject) -> None:
    one_host(project)
    tokens = {"HOSTILE_TOKEN_A": secrets.token_hex(16), "HOSTILE_TOKEN_B": secrets.token_hex(16)}
    taken = lock_cli(project, "take", "lock", "status", "one", "--json", tokens=tokens)
    assert taken.returncode == 0, taken.stderr[-2000:]
    first = json.loads(taken.stdout)
    assert first["held"] is True

    # A's process is gone, so its lock is stale; B takes the lock while release runs
    released = lock_cli(project, "retake", "lock", "release", "one", tokens=tokens)
    assert released.returncode == 3, (released.stdout, released.stderr[-2000:])
    assert "the lock was taken again after it was read and was left alone" in released.stderr
    assert "Traceback" not in released.stderr
    now = project.json("lock", "status", "one")
    assert (now["held"], now["token"]) == (True, tokens["HOSTILE_TOKEN_B"])
    assert first["token"] == tokens["HOSTILE_TOKEN_A"]  # what status showed, and broke by

    # --force breaks the lock that status showed: B's, by its token
    forced = project.cli("lock", "release", "one", "--force", "--json")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert json.loads(forced.stdout)["was"]["token"] == tokens["HOSTILE_TOKEN_B"]
    assert project.json("lock", "status", "one")["held"] is False
