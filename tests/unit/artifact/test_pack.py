"""Packing a project directory: code in, credentials out, modes kept, hard links whole,
symlinks that leave refused, the same bytes every time; prebuilt tarballs checked against
the hosts' member rules before anything else happens."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
import yaml

from deployer import artifact
from deployer.config.loader import load_project
from deployer.config.models import Artifact as Settings
from deployer.config.resolve import resolve
from deployer.errors import BadRequest
from deployer.exitcodes import ExitCode

pytestmark = pytest.mark.hostile

VAULT = "$ANSIBLE_VAULT;1.1;AES256\n3132333435\n"
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----\n"
CODE = {"app.py", "run.sh", "private.cfg", "copy.py", "lib", "lib/util.py", "lib/closed"}


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project packed with `artifact.path: "."`: code, and every kind of credential."""
    root = tmp_path / "project"
    write(root / "app.py", "print('hi')\n")
    write(root / "run.sh", "#!/bin/sh\n", 0o775)
    write(root / "private.cfg", "mine\n", 0o600)
    write(root / "lib" / "util.py", "x = 1\n", 0o664)
    (root / "lib" / "closed").mkdir(mode=0o700)
    (root / "lib" / "closed").chmod(0o700)
    os.link(root / "app.py", root / "copy.py")
    write(root / "secrets.yml", VAULT, 0o600)  # secrets.vault_file
    write(root / "vault-pass", "hunter2\n", 0o600)  # secrets.vault_password_file
    write(root / "keys" / "deploy", KEY, 0o600)  # ssh.private_key, by a plain name
    write(root / "ssh" / "hosts", "lab1 ssh-ed25519 AAAA\n")  # ssh.known_hosts
    write(root / "ssh" / "edge_hosts", "bastion ssh-ed25519 AAAA\n")  # ssh.jump[0]'s
    write(root / "ssh" / "bastion.id", "not a key by content\n", 0o600)  # and its key
    os.link(root / "vault-pass", root / "lib" / "pass-again")  # the password, renamed
    write(root / "prod-key.txt", KEY, 0o600)  # another environment's key: by content
    write(root / "old-vault.yml", VAULT)  # a vault the config no longer names
    write(root / ".env", "TOKEN=1\n")
    write(root / ".env.production", "TOKEN=2\n")
    write(root / "config" / ".env.d" / "x", "TOKEN=3\n")
    write(root / "key.pem", "-----BEGIN CERTIFICATE-----\n")
    write(root / "tls.key", "k\n")
    write(root / "id_rsa.pub", "ssh-rsa AAAA\n")
    write(root / "id_ed25519", "k\n")
    write(root / ".deployer" / "ledger.sqlite3", "db")
    write(root / "sub" / ".deployer" / "x", "nested state")
    write(root / ".git" / "HEAD", "ref\n")
    config = {
        "app": {"name": "hello"},
        "service": {"command": "/usr/bin/python3 app.py", "port": 8000},
        "health": {"tcp": {}},
        "secrets": {"vault_file": "secrets.yml", "vault_password_file": "vault-pass"},
        "environments": {
            "staging": {
                "hosts": {"web": [{"address": "10.0.0.1"}]},
                "ssh": {
                    "private_key": "keys/deploy",
                    "known_hosts": "ssh/hosts",
                    "jump": [
                        {
                            "address": "bastion.example.net",
                            "private_key": "ssh/bastion.id",
                            "known_hosts": "ssh/edge_hosts",
                        }
                    ],
                },
            }
        },
    }
    write(root / "deploy.yml", yaml.safe_dump(config))
    return root


def pack(project: Path, out: Path, **settings: object) -> artifact.Artifact:
    """What `deploy staging` packs for this project."""
    path = project / "deploy.yml"
    if settings:
        data = yaml.safe_load(path.read_text())
        data["artifact"] = settings
        path.write_text(yaml.safe_dump(data))
    target = resolve(load_project(path), "staging")
    return artifact.for_target(target, project / target.artifact.path, out)


def members(art: artifact.Artifact) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(art.path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_the_tarball_holds_exactly_the_code(project: Path, tmp_path: Path) -> None:
    packed = members(pack(project, tmp_path / "out"))
    assert set(packed) == CODE | {"sub", "config", "keys", "ssh"}
    assert {n for n, m in packed.items() if m.isfile()} == {
        "app.py",
        "run.sh",
        "private.cfg",
        "copy.py",
        "lib/util.py",
    }


def test_modes_are_kept_less_group_and_other_write(project: Path, tmp_path: Path) -> None:
    packed = members(pack(project, tmp_path / "out"))
    assert {n: packed[n].mode for n in CODE} == {
        "app.py": 0o644,
        "run.sh": 0o755,
        "private.cfg": 0o600,
        "copy.py": 0o644,
        "lib": 0o755,
        "lib/util.py": 0o644,
        "lib/closed": 0o700,
    }


def test_a_hard_linked_file_is_packed_whole(project: Path, tmp_path: Path) -> None:
    art = pack(project, tmp_path / "out")
    with tarfile.open(art.path) as tar:
        copy = tar.getmember("copy.py")
        assert copy.isfile()
        handle = tar.extractfile(copy)
        assert handle is not None
        assert handle.read() == b"print('hi')\n"


def test_packing_is_reproducible(project: Path, tmp_path: Path) -> None:
    first = pack(project, tmp_path / "one")
    second = pack(project, tmp_path / "two")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256


def test_include_lets_one_named_file_in(project: Path, tmp_path: Path) -> None:
    packed = members(pack(project, tmp_path / "out", include=["key.pem", "config/.env.d/x"]))
    assert set(packed) - (CODE | {"sub", "config", "keys", "ssh"}) == {
        "key.pem",
        "config/.env.d",
        "config/.env.d/x",
    }


def test_include_lifts_the_config_named_and_content_rules_too(
    project: Path, tmp_path: Path
) -> None:
    packed = members(pack(project, tmp_path / "out", include=["keys/deploy", "old-vault.yml"]))
    assert {"keys/deploy", "old-vault.yml"} <= set(packed)
    assert "secrets.yml" not in packed


def test_exclude_adds_to_the_credentials_never_replaces_them(project: Path, tmp_path: Path) -> None:
    packed = members(pack(project, tmp_path / "out", exclude=["lib"]))
    assert set(packed) == {"app.py", "run.sh", "private.cfg", "copy.py", ".git", ".git/HEAD"} | {
        "sub",
        "config",
        "keys",
        "ssh",
    }


@pytest.mark.parametrize("target", ["../../outside", "/etc/passwd", "../sub/../../outside"])
def test_a_symlink_leaving_the_directory_is_refused(
    project: Path, tmp_path: Path, target: str
) -> None:
    (tmp_path / "outside").write_text("x")
    (project / "lib" / "escape").symlink_to(target)
    with pytest.raises(BadRequest) as info:
        pack(project, tmp_path / "out")
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert "lib/escape" in info.value.message
    assert not list((tmp_path / "out").glob("*.tar.gz"))


def test_a_symlink_inside_is_packed_as_a_link(project: Path, tmp_path: Path) -> None:
    (project / "lib" / "main.py").symlink_to("../app.py")
    packed = members(pack(project, tmp_path / "out"))
    assert packed["lib/main.py"].issym()
    assert packed["lib/main.py"].linkname == "../app.py"


def hostile(path: Path, *names: tuple[str, bytes, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, link in names:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            tar.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    return path


@pytest.mark.parametrize(
    ("names", "member"),
    [
        (
            [
                ("a/b/", tarfile.DIRTYPE, ""),
                ("a/b/root", tarfile.SYMTYPE, "../.."),
                ("x", tarfile.SYMTYPE, "a/b/root/../etc"),
            ],
            "'x'",
        ),
        ([("d", tarfile.SYMTYPE, "."), ("h", tarfile.LNKTYPE, "d/f")], "'h'"),
        ([("f", tarfile.REGTYPE, ""), ("./f", tarfile.REGTYPE, "")], "'./f'"),
        ([(".deployer/meta.json", tarfile.REGTYPE, "")], "'.deployer/meta.json'"),
        ([("dev", tarfile.CHRTYPE, "")], "'dev'"),
    ],
)
def test_a_hostile_prebuilt_tarball_is_refused_naming_the_member(
    tmp_path: Path, names: list[tuple[str, bytes, str]], member: str
) -> None:
    path = hostile(tmp_path / "x.tar.gz", *names)
    with pytest.raises(BadRequest) as info:
        artifact.prepare(path, tmp_path / "out", Settings().exclude)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert member in info.value.message
    assert str(path) in info.value.message


def test_a_packed_tarball_passes_the_hosts_rules(project: Path, tmp_path: Path) -> None:
    art = pack(project, tmp_path / "out")
    assert artifact.use_tarball(art.path).sha256 == art.sha256


def test_an_unreadable_file_is_an_error_naming_it(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = Path.open

    def refuse(self: Path, *args: object, **kwargs: object) -> object:
        if self.name == "util.py":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(BadRequest, match=r"cannot pack lib/util\.py: Permission denied"):
        pack(project, tmp_path / "out")
