"""Hostile tarballs against the host-side unpacker: every refused member is named, nothing
is written (inside the release or next to it), and a good tarball gets the modes and owner
the release rules give it."""

from __future__ import annotations

import io
import os
import stat
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))

from ansible_collections.deployer.core.plugins.module_utils import tarcheck, unpack

pytestmark = pytest.mark.hostile

# As root (CI, the lab machine) the unpacker must give every entry this owner; otherwise it
# can only give the tests' own.
OWNER = (4321, 4322) if os.getuid() == 0 else (os.getuid(), os.getgid())

Spec = tuple[str, object]


def member(name: str, spec: object) -> tuple[tarfile.TarInfo, bytes | None]:
    """(name, b"data") or (name, (b"data", mode)): a file; "/" or ("/", mode): a directory;
    "->t": a symlink; "=>t": a hard link; "fifo", "chr", "blk": special files."""
    info = tarfile.TarInfo(name)
    data = None
    mode = None
    if isinstance(spec, tuple):
        spec, mode = spec
    if isinstance(spec, bytes):
        data, info.size, info.mode = spec, len(spec), 0o644
    elif spec == "/":
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif isinstance(spec, str) and spec.startswith("->"):
        info.type, info.linkname = tarfile.SYMTYPE, spec[2:]
    elif isinstance(spec, str) and spec.startswith("=>"):
        info.type, info.linkname = tarfile.LNKTYPE, spec[2:]
    else:
        info.type = {"fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE}[
            str(spec)
        ]
    if mode is not None:
        info.mode = mode
    return info, data


def tarball(path: Path, *members: Spec) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, spec in members:
            info, data = member(name, spec)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


@pytest.fixture
def where(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(archive path, dest, outside): `outside` is a sentinel directory next to dest, holding
    one file an escape would reach."""
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("keep")
    (outside / "secret").chmod(0o600)
    return tmp_path / "a.tar.gz", dest, outside


def run(where: tuple[Path, Path, Path], *members: Spec) -> Path:
    archive, dest, _ = where
    tarball(archive, *members)
    unpack.unpack(str(archive), str(dest), *OWNER, "u", "g")
    return dest


def untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    info = (outside / "secret").stat()
    assert (info.st_mode & 0o7777, info.st_nlink) == (0o600, 1)
    assert (outside / "secret").read_text() == "keep"


CHAIN = [("a/b/", "/"), ("a/b/root", "->../.."), ("a/b/c/", "/")]  # a link back to the root

REFUSED: dict[str, tuple[list[Spec], str, str]] = {
    # name: (members, the member the message names, what it says)
    "link chain through the root, then ..": (
        [*CHAIN, ("x", "->a/b/root/../outside")],
        "'x'",
        "resolves outside the release through the link 'a/b/root'",
    ),
    "link chain, deeper": (
        [*CHAIN, ("a/b/c/up", "->../root/.."), ("w", "->a/b/c/up/outside/secret")],
        "'a/b/c/up'",
        "resolves outside",
    ),
    "link created after the link that goes through it": (
        [("a/", "/"), ("x", "->a/b/../outside"), ("a/b", "->..")],
        "'x'",
        "resolves outside the release through the link 'a/b'",
    ),
    "hard link through a link": (
        [("d/", "/"), ("d/f", b"x"), ("l", "->d"), ("h", "=>l/f")],
        "'h'",
        "goes through the link 'l'",
    ),
    "hard link through a chain that leaves": (
        [*CHAIN, ("h", "=>a/b/root/../outside/secret")],
        "'h'",
        "points outside",
    ),
    "hard link to a later member": ([("h", "=>f"), ("f", b"x")], "'h'", "earlier regular file"),
    "hard link to a directory": ([("d/", "/"), ("h", "=>d")], "'h'", "earlier regular file"),
    "hard link to a symlink": (
        [("f", b"x"), ("s", "->f"), ("h", "=>s")],
        "'h'",
        "goes through the link 's'",
    ),
    "hard link, absolute": ([("h", "=>/etc/passwd")], "'h'", "points outside"),
    "duplicate: a file over a link that leaves": (
        [*CHAIN, ("f", "->a/b/c/x"), ("f", b"pwned")],
        "'f'",
        "repeats an earlier member",
    ),
    "duplicate after normalisation": ([("./f", b"1"), ("f", b"2")], "'f'", "repeats"),
    "duplicate directory": ([("d/", "/"), ("./d", "/")], "'./d'", "repeats"),
    "file where a directory was implied": ([("d/f", b"x"), ("d", b"y")], "'d'", "inside it"),
    "file under a file": ([("f", b"x"), ("f/g", b"y")], "'f/g'", "not a directory"),
    "written through a link": (
        [("l", "->."), ("l/f", b"x")],
        "'l/f'",
        "written through the link 'l'",
    ),
    "absolute name": ([("/tmp/evil", b"x")], "'/tmp/evil'", "absolute"),
    "'..' segment": ([("a/../../outside/evil", b"x")], "'a/../../outside/evil'", "'..'"),
    "'..' inside": ([("a/../b", b"x")], "'a/../b'", "'..'"),
    "absolute symlink": ([("l", "->/etc")], "'l'", "absolute target"),
    "symlink up": ([("d/l", "->../../outside")], "'d/l'", "points outside"),
    "symlink loop": ([("a", "->b"), ("b", "->a/x")], "'a'", "loop"),
    "character device": ([("null", "chr")], "'null'", "device, fifo"),
    "block device": ([("sda", "blk")], "'sda'", "device, fifo"),
    "fifo": ([("pipe", "fifo")], "'pipe'", "device, fifo"),
    ".deployer/": ([(".deployer/meta.json", b"{}")], "'.deployer/meta.json'", "reserves"),
    "./.deployer": ([("./.deployer", "->.")], "'./.deployer'", "reserves"),
    "root as a file": ([(".", b"x")], "'.'", "root"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_hostile_member_is_refused_before_anything_is_written(
    where: tuple[Path, Path, Path], case: str
) -> None:
    members, named, says = REFUSED[case]
    with pytest.raises(unpack.UnsafeArchive) as info:
        run(where, ("ok.txt", b"fine"), *members)
    message = str(info.value)
    assert named in message, message
    assert says in message, message
    _, dest, outside = where
    assert list(dest.iterdir()) == [], "something was written before the refusal"
    untouched(outside)


def test_the_check_alone_is_pure_and_returns_parents_first() -> None:
    infos = [member(n, s)[0] for n, s in [("a/b/f", b"x"), ("a/", "/"), ("l", "->a/b")]]
    entries = tarcheck.check_members(infos, ".deployer")
    assert [(e.name, e.kind) for e in entries] == [
        ("a", "dir"),
        ("a/b", "dir"),
        ("a/b/f", "file"),
        ("a", "dir"),
        ("l", "symlink"),
    ]
    assert [e.member is None for e in entries] == [True, True, False, False, False]


def naive(members: list[tarfile.TarInfo], reserved: str) -> list[tarcheck.Entry]:
    """A check that lets everything through, to stand for a case the real check missed."""
    kinds = {tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink"}
    return [
        tarcheck.Entry(m.name, kinds.get(m.type, "file"), m.linkname or None, m) for m in members
    ]


@pytest.mark.parametrize(
    "members",
    [
        [("sub/evil", b"x")],  # a file through a planted link
        [("sub/d/", "/")],  # a directory through it
        [("sub/l", "->x")],  # a symlink through it
        [("secret", b"pwned")],  # a file over a planted link
        [("h", "=>sub/secret")],  # a hard link through it
        [("h", "=>secret")],  # a hard link to the planted link itself
        [("l", "->../outside"), ("l/evil", b"x")],  # through a link of the archive
    ],
)
def test_no_link_is_followed_even_if_the_check_missed_one(
    where: tuple[Path, Path, Path], members: list[Spec], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the check switched off, links planted in dest (or made by the archive) still
    cannot make the unpacker create, write, chown or chmod anything next to the release."""
    archive, dest, outside = where
    (dest / "sub").symlink_to(outside)
    (dest / "secret").symlink_to(outside / "secret")
    monkeypatch.setattr(unpack, "check_members", naive)
    tarball(archive, *members)
    with pytest.raises((OSError, unpack.UnsafeArchive)):
        unpack.unpack(str(archive), str(dest), *OWNER, "u", "g")
    untouched(outside)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_modes_are_kept_never_widened_and_the_group_reads(where: tuple[Path, Path, Path]) -> None:
    dest = run(
        where,
        ("private", (b"p", 0o600)),
        ("public", (b"p", 0o644)),
        ("tool", (b"#!/bin/sh\n", 0o755)),
        ("suid", (b"x", 0o4777)),
        ("world", (b"x", 0o666)),
        ("odd", (b"x", 0o611)),
        ("readonly", (b"x", 0o444)),
        ("closed/", ("/", 0o700)),
        ("closed/f", (b"x", 0o640)),
        ("open/", ("/", 0o777)),
        ("sticky/", ("/", 0o1777)),
        ("implied/f", b"x"),
    )
    assert {str(p.relative_to(dest)): mode(p) for p in dest.rglob("*")} == {
        "private": 0o640,
        "public": 0o644,
        "tool": 0o755,
        "suid": 0o755,
        "world": 0o644,
        "odd": 0o640,
        "readonly": 0o644,
        "closed": 0o750,
        "closed/f": 0o640,
        "open": 0o755,
        "sticky": 0o755,
        "implied": 0o755,
        "implied/f": 0o644,
    }


def test_a_good_tree_is_owned_as_asked_with_links_and_content(
    where: tuple[Path, Path, Path],
) -> None:
    dest = run(
        where,
        ("./bin/", "/"),
        ("./bin/run", (b"#!/bin/sh\n", 0o755)),
        ("lib/x.py", b"x"),
        ("bin/alias", "->run"),
        ("lib/y.py", "=>lib/x.py"),
        ("lib/up", "->../bin/run"),
        ("root", "->."),
        ("via", "->root/lib/x.py"),
        ("lib/", "/"),
    )
    assert (dest / "via").read_bytes() == b"x"
    assert (dest / "lib" / "y.py").stat().st_ino == (dest / "lib" / "x.py").stat().st_ino
    assert os.readlink(dest / "lib" / "up") == "../bin/run"
    for path in [dest / "bin", dest / "bin" / "run", dest / "bin" / "alias", dest / "lib"]:
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == OWNER, path
