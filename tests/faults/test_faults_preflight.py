"""Faults before anything is switched: an unreachable host, a full disk, a corrupt upload,
a changed host key. Each one stops the deployment before any host's `current` moves, names
the host and the stage, leaves no partial release behind and releases the lock."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import FaultProject

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def test_unreachable_host_stops_the_deploy_in_preflight(project: FaultProject) -> None:
    """Case 2: lab3 refuses SSH (iptables inside it): exit 4 naming lab3, nothing changed."""
    project.fast()
    project.deploy("lab", "--version", "v1")
    rule = ["INPUT", "-p", "tcp", "--dport", "22", "-j", "REJECT", "--reject-with", "tcp-reset"]
    assert project.docker("lab3", "iptables", "-I", *rule).returncode == 0
    project.undo.append(lambda: project.docker("lab3", "iptables", "-D", *rule))

    proc, seconds = project.run("deploy", "lab", "--version", "v2", "--json", timeout=180)
    assert proc.returncode == 4, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert seconds < 90
    result = json.loads(proc.stdout)
    assert result["status"] == "FAILED"
    assert result["stage"] == "preflight"
    assert "unreachable in preflight: lab3" in result["reason"]
    assert {h["host"]: h["status"] for h in result["hosts"]} == {"lab3": "unreachable"}
    row = project.rows()[-1]
    assert (row["status"], row["stage"]) == ("FAILED", "preflight")
    assert project.host_rows(row["id"])["lab3"]["status"] == "unreachable"

    assert project.docker("lab3", "iptables", "-D", *rule).returncode == 0
    project.undo.clear()
    assert set(project.current().values()) == {"v1"}
    for host in project.lab.hosts:
        assert project.releases_on(host.name) == ["v1"], host.name  # v2 staged nowhere
    assert not project.lock_held()


def test_disk_full_during_unpack_removes_the_partial_release(project: FaultProject) -> None:
    """Case 8: /srv/<app> on lab2 is a 1 MiB tmpfs. v2 (400 one-byte files: a few KiB by
    the preflight's estimate, 1.6 MiB in 4 KiB pages) fills it while unpacking: the
    deploy fails before any switch, lab2 keeps no partial release and v1 keeps serving."""
    project.fast()
    deploy_to = f"/srv/{project.app}"
    project.on(
        "lab2",
        f"sudo mkdir -p {deploy_to} && sudo mount -t tmpfs -o size=1m,mode=0755 tmpfs {deploy_to}",
    )
    project.undo.append(lambda: project.on("lab2", f"sudo umount {deploy_to}", check=False))
    project.deploy("lab", "--version", "v1")
    many = project.root / "many"
    shutil.copytree(project.root / "app", many, ignore=shutil.ignore_patterns("__pycache__"))
    (many / "blobs").mkdir()
    for number in range(400):
        (many / "blobs" / f"{number:03d}").write_text("x")

    result = project.deploy("lab", "--version", "v2", "--artifact", "many", expect=1)
    assert result["status"] == "FAILED"
    assert result["stage"] == "stage"
    assert "lab2" in result["reason"]
    assert "No space left on device" in result["reason"]
    assert "nothing was switched" in result["reason"]
    hosts = {h["host"]: h for h in result["hosts"]}
    assert hosts["lab2"]["status"] == "failed"
    assert hosts["lab2"]["after"] == "v1"

    assert project.releases_on("lab2") == ["v1"]  # no v2, no v2.partial-*
    assert project.on("lab2", f"sudo ls -A {deploy_to}/.uploads").strip() == ""
    assert set(project.current().values()) == {"v1"}
    assert set(project.answers().values()) == {"hello from v1"}
    assert not project.lock_held()
    assert project.rows()[-1]["status"] == "FAILED"


def test_corrupt_upload_is_rejected_before_any_switch(project: FaultProject) -> None:
    """Case 9: the tarball given with --artifact is corrupted between its checksum and the
    upload: every host rejects it on the sha256 check and nothing is switched or staged."""
    project.fast()
    project.deploy("lab", "--version", "v1")
    tarball = project.root / "v2.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(project.root / "app" / "app.py", arcname="app.py")

    proc = project.corrupting_cli(
        "deploy", "lab", "--version", "v2", "--artifact", str(tarball), "--json"
    )
    assert proc.returncode == 1, (proc.stdout[-3000:], proc.stderr[-3000:])
    result = json.loads(proc.stdout)
    assert result["status"] == "FAILED"
    assert result["stage"] == "stage"
    assert "sha256 mismatch" in result["reason"]
    assert "nothing was switched" in result["reason"]
    assert {h["host"] for h in result["hosts"]} == {h.name for h in project.lab.hosts}
    for host in project.lab.hosts:
        assert f"{host.name}: staging v2 failed: sha256 mismatch" in result["reason"]
    assert {h["status"] for h in result["hosts"]} == {"failed"}

    assert set(project.current().values()) == {"v1"}
    for host in project.lab.hosts:
        assert project.releases_on(host.name) == ["v1"], host.name
        leftovers = project.on(
            host.name, "sudo find /home/deploy/.ansible/tmp -name '*.tar.gz' 2>/dev/null || true"
        )
        assert leftovers.strip() == "", (host.name, leftovers)
    assert not project.lock_held()
    assert "v2" not in {r["version"] for r in project.json("releases", "lab")["releases"]}


def wrong_known_hosts(project: FaultProject, tmp_path: Path, victim: str) -> Path:
    """A copy of the lab's known_hosts in which `victim`'s keys are replaced by a key that
    is not its own (what a rebuilt host, or a man in the middle, looks like)."""
    key = tmp_path / "not_the_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, blob = key.with_suffix(".pub").read_text().split()[:2]
    marker = f"[127.0.0.1]:{project.host(victim).port} "
    lines = [
        line
        for line in project.lab.known_hosts.read_text().splitlines()
        if not line.startswith(marker)
    ]
    lines.append(f"{marker}{kind} {blob}")
    path = tmp_path / "known_hosts"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_changed_host_key_is_refused_and_never_retrusted(
    project: FaultProject, tmp_path: Path
) -> None:
    """Case 14: the known_hosts the environment uses holds another key for lab2: the
    deploy stops in preflight with exit 4 saying the host key does not match, and the
    known_hosts files are left exactly as they were (no silent re-trust)."""
    known_hosts = wrong_known_hosts(project, tmp_path, "lab2")
    names = ("lab1", "lab2", "lab3", "lab4")
    project.edit(
        {
            "environments": {
                "keys": {
                    "hosts": {"web": project.hosts_entries(*names)},
                    "ssh": project.lab_ssh(known_hosts),
                }
            }
        }
    )
    before = known_hosts.read_bytes(), project.lab.known_hosts.read_bytes()

    proc, _ = project.run("deploy", "keys", "--version", "v1", "--json", timeout=180)
    assert proc.returncode == 4, (proc.stdout[-3000:], proc.stderr[-3000:])
    result = json.loads(proc.stdout)
    assert result["stage"] == "preflight"
    assert "lab2" in result["reason"]
    hosts = {h["host"]: h for h in result["hosts"]}
    assert hosts["lab2"]["status"] == "unreachable"
    assert "host key does not match" in hosts["lab2"]["message"]
    assert (known_hosts.read_bytes(), project.lab.known_hosts.read_bytes()) == before
    for name in ("lab1", "lab3", "lab4"):
        assert project.on(name, f"test -e /srv/{project.app} && echo staged || true").strip() == ""
    assert not project.lock_held()
