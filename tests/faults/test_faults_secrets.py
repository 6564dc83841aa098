"""Case 15, the secret canary, extending test_lifecycle's: unique values in the vault file and
in an environment variable the config names, deploys at -vvvv that fail in staging (a
corrupt upload) and in the health checks (with a rollback). Zero hits anywhere but the one
place a secret belongs, the release's 0600 env file on the hosts (checked as a control:
the values did reach the hosts, so the zero hits elsewhere mean something)."""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import tarfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from deployer.lab import ssh_argv

if TYPE_CHECKING:
    from conftest import FaultProject

pytestmark = [pytest.mark.faults, pytest.mark.integration]


class ProcessWatcher:
    """Samples the argv and the environment of every controller process while deploys run.

    Exempt: the deployer CLI itself (a child of this test process), whose environment holds
    the canary by design since the config names that variable, and the lab hosts' processes
    (other PID namespaces), where the service gets its secrets through its EnvironmentFile.
    Everything the CLI starts (ansible-playbook, ssh, ...) is checked."""

    def __init__(self, canaries: tuple[str, ...]) -> None:
        self.canaries = tuple(c.encode() for c in canaries)
        self.namespace = os.readlink("/proc/self/ns/pid")
        self.hits: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProcessWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _check(self, proc: Path) -> None:
        try:
            if os.readlink(proc / "ns" / "pid") != self.namespace:
                return
            parent = int((proc / "stat").read_text().rsplit(")", 1)[-1].split()[1])
            if int(proc.name) == os.getpid() or parent == os.getpid():
                return
            argv = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except (OSError, ValueError, IndexError):
            return
        for part, data in (("argv", argv), ("environ", environ)):
            if any(c in data for c in self.canaries):
                shown = argv.replace(b"\0", b" ")[:150]
                self.hits.append(f"pid {proc.name} (parent {parent}) {part}: {shown!r}")

    def _run(self) -> None:
        while not self._stop.is_set():
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    self._check(proc)
            self.samples += 1
            self._stop.wait(0.2)


def test_secret_canaries_never_leak_from_failing_verbose_deploys(project: FaultProject) -> None:
    from ansible.parsing.vault import VaultLib, VaultSecret

    env_canary = "envcanary" + secrets.token_hex(8)
    vault_canary = "vaultcanary" + secrets.token_hex(8)
    password = "vaultpassword" + secrets.token_hex(8)
    vault = VaultLib([("default", VaultSecret(password.encode()))])
    (project.root / "secrets.vault.yml").write_bytes(
        vault.encrypt(f"db_password: {vault_canary}\n")
    )
    project.fast(health={"retries": 4, "interval": 0.5})
    project.edit(
        {
            "secrets": {
                "vault_file": "secrets.vault.yml",
                "vault_password_env": "FAULTS_VAULT_PASSWORD",
                "env": {
                    "API_TOKEN": {"from_env": "FAULTS_API_TOKEN"},
                    "DB_PASSWORD": {"vault": "db_password"},
                },
            },
        }
    )
    env = {"FAULTS_API_TOKEN": env_canary, "FAULTS_VAULT_PASSWORD": password}
    canaries = (env_canary, vault_canary, password)
    outputs: list[str] = []

    good = project.cli("-vvvv", "deploy", "lab", "--version", "v1", env=env)
    assert good.returncode == 0, good.stderr[-3000:]
    outputs += [good.stdout, good.stderr]

    tarball = project.root / "v2.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(project.root / "app" / "app.py", arcname="app.py")
    with ProcessWatcher(canaries) as watcher:
        corrupt = project.corrupting_cli(
            "-vvvv", "deploy", "lab", "--version", "v2", "--artifact", str(tarball), env=env
        )
        project.edit({"service": {"env": {"UNHEALTHY_ON": "lab2"}}})
        unhealthy = project.cli(
            "-vvvv", "deploy", "lab", "--version", "v3", "--artifact", project.variant(), env=env
        )
    assert corrupt.returncode == 1, corrupt.stderr[-3000:]
    assert "sha256 mismatch" in corrupt.stdout
    assert unhealthy.returncode == 1, unhealthy.stderr[-3000:]
    assert "ROLLED_BACK" in unhealthy.stdout
    outputs += [corrupt.stdout, corrupt.stderr, unhealthy.stdout, unhealthy.stderr]
    assert watcher.samples > 10
    assert watcher.hits == [], watcher.hits

    for text in outputs:
        assert not any(c in text for c in canaries)
    # everything deployer wrote on the controller: run artifacts, inventories, the ledger
    # (and its WAL), artifacts, known_hosts...
    for path in project.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(c.encode() in data for c in canaries), path
    ledger = sqlite3.connect(project.ledger_path)
    dump = "\n".join(ledger.iterdump())
    ledger.close()
    assert not any(c in dump for c in canaries)
    ansible_home = Path.home() / ".ansible"
    for path in ansible_home.rglob("*") if ansible_home.is_dir() else ():
        if path.is_file():
            assert not any(c.encode() in path.read_bytes() for c in canaries), path

    # On the hosts the canaries travel on stdin, never in argv: sudo logs its command lines
    # to the journal, and a grep for them there would plant what it looks for.
    deploy_to = f"/srv/{project.app}"
    env_file = f"{deploy_to}/releases/v1/.deployer/env"
    script = (
        "set -e; f=$(mktemp /dev/shm/canaries.XXXXXX); cat > $f; "
        # temporary directories, logs, the lock, the units and the release tree...
        "sudo grep -rl -f $f /tmp /var/tmp /root/.ansible /home/deploy/.ansible /var/log "
        f"/var/lib/deployer /etc/systemd/system {deploy_to} 2>/dev/null "
        f"| grep -v '^{deploy_to}/releases/[^/]*/.deployer/env$' || true; "
        # ...the journal (module invocations are logged there)...
        "echo journal: $(sudo journalctl --no-pager -o cat | grep -c -f $f || true); "
        # ...and the control: the values did reach the host, in the one file meant for them
        f"echo env: $(sudo grep -c -f $f {env_file}) $(sudo stat -c '%a %U' {env_file}); "
        "rm -f $f"
    )
    for host in project.lab.hosts:
        found = subprocess.run(
            ssh_argv(project.lab, host, script),
            input="\n".join(canaries) + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert found.returncode == 0, (host.name, found.stderr)
        assert found.stdout.splitlines() == [
            "journal: 0",
            "env: 2 600 root",
        ], (host.name, found.stdout)
