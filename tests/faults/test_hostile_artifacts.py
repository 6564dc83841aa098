"""Hostile artifacts on the lab: a crafted prebuilt tarball is refused on the controller
before any host is touched; with that check switched off, the hosts refuse it on their own
and nothing is written outside the release; and the default `artifact.path` ships code,
not the project's credentials."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import FaultProject

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.hostile]

# The real CLI without the controller's member check: only the hosts stand in the way.
UNCHECKED_CLI = """
import sys
from deployer import artifact
from deployer.cli import main

artifact.check_members = lambda members, where: None
sys.argv[0] = "deployer"
main()
"""

DEPTH = 6  # directories above the link back to the release root


def link_chain_tarball(path: Path, pwned: str) -> Path:
    """A link back to the release root six directories down; a link `f` through it whose
    five `..` stay inside the release lexically (d0/d1/...) but climb from the real root
    (/srv/<app>/releases/<version>) to `/`; then a regular file `f`, which an unpacker that
    trusts the lexical check writes through the link, as root, to `pwned`."""
    deep = "/".join(f"d{i}" for i in range(DEPTH))
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, kind: bytes, link: str = "", data: bytes | None = None) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = kind, link, 0o755
            info.size = len(data or b"")
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        add("app.py", tarfile.REGTYPE, data=b"print('never runs')\n")
        add(f"{deep}/", tarfile.DIRTYPE)
        add(f"{deep}/root", tarfile.SYMTYPE, "/".join([".."] * DEPTH))
        add("f", tarfile.SYMTYPE, f"{deep}/root/" + "../" * (DEPTH - 1) + pwned.lstrip("/"))
        add("f", tarfile.REGTYPE, data=b"pwned\n")
    return path


def assert_no_trace(project: FaultProject, pwned: str) -> None:
    for host in project.lab.hosts:
        seen = project.docker(host.name, "sh", "-c", f"ls -d {pwned} /srv/{project.app} 2>&1")
        assert "No such file" in seen.stdout, (host.name, seen.stdout)
        assert seen.stdout.count("No such file") == 2, (host.name, seen.stdout)


def test_a_hostile_prebuilt_tarball_is_refused_before_any_host(
    bare_project: FaultProject,
) -> None:
    pwned = f"/tmp/hz-pwned-{secrets.token_hex(6)}"
    tarball = link_chain_tarball(bare_project.root / "x.tar.gz", pwned)
    proc, seconds = bare_project.run("deploy", "lab", "--artifact", str(tarball))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    out = proc.stdout + proc.stderr
    assert "archive symlink 'f'" in out, out
    assert "resolves outside the release" in out, out
    assert "Traceback" not in out
    assert seconds < 30
    assert not bare_project.ledger_path.exists()
    assert not (bare_project.root / ".deployer" / "runs").exists()
    assert_no_trace(bare_project, pwned)


def test_the_hosts_refuse_a_link_chain_on_their_own(project: FaultProject) -> None:
    pwned = f"/tmp/hz-pwned-{secrets.token_hex(6)}"
    tarball = link_chain_tarball(project.root / "x.tar.gz", pwned)
    project.fast()
    proc = subprocess.run(
        [sys.executable, "-c", UNCHECKED_CLI, "deploy", "lab", "--artifact", str(tarball)],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "DEPLOYER_LAB_NAME": project.lab.name},
    )
    out = proc.stdout + proc.stderr
    for host in project.lab.hosts:  # checked as root, whatever the message says
        outside = project.docker(host.name, "ls", "-ld", pwned)
        assert outside.returncode != 0, (host.name, outside.stdout)
        releases = project.docker(host.name, "ls", "-A", f"/srv/{project.app}/releases")
        assert releases.stdout.split() == [], (host.name, releases.stdout)
    assert set(project.current().values()) == {""}, "a host was switched"
    assert proc.returncode == 1, out[-3000:]
    assert "archive symlink 'f'" in out, out[-3000:]
    assert "resolves outside the release" in out, out[-3000:]


def test_the_default_artifact_path_ships_code_not_credentials(project: FaultProject) -> None:
    from ansible.parsing.vault import VaultLib, VaultSecret

    password = "vaultpassword" + secrets.token_hex(8)
    dotenv = "dotenvcanary" + secrets.token_hex(8)
    vault = VaultLib([("default", VaultSecret(password.encode()))])
    root = project.root
    (root / "secrets.vault.yml").write_bytes(vault.encrypt("db_password: s3cret\n"))
    (root / "vault-password").write_text(password + "\n")
    (root / ".env").write_text(f"TOKEN={dotenv}\n")
    (root / "app" / "private.cfg").write_text("mine\n")
    (root / "app" / "private.cfg").chmod(0o600)
    project.fast()
    project.edit(
        {
            "artifact": {"path": "."},  # what `deployer init` writes
            "service": {"command": "/usr/bin/python3 app/app.py"},
            "secrets": {
                "vault_file": "secrets.vault.yml",
                "vault_password_file": "vault-password",
                "env": {"DB_PASSWORD": {"vault": "db_password"}},
            },
        }
    )
    result = project.deploy("lab", "--version", "v1")
    assert result["status"] == "SUCCEEDED", result
    release = f"/srv/{project.app}/releases/v1"
    for host in project.lab.hosts:
        listing = project.docker(host.name, "find", release, "-printf", "%P %m\n")
        files = dict(line.split(" ") for line in listing.stdout.splitlines() if line)
        assert files["app/app.py"] == "644", (host.name, files)
        assert files["app/private.cfg"] == "640", (host.name, files)
        for name in ("secrets.vault.yml", "vault-password", ".env", "deploy.yml"):
            assert name not in files, (host.name, name)
        leaked = project.docker(
            host.name,
            "grep",
            "-rlF",
            "-e",
            password,
            "-e",
            dotenv,
            "-e",
            "$ANSIBLE_VAULT",
            f"/srv/{project.app}",
        )
        assert leaked.stdout == "", (host.name, leaked.stdout)
