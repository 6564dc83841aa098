"""Release artifacts: a directory packed into a reproducible tarball, or a prebuilt one.

The same content always gives the same bytes (sorted entries, fixed mtimes and owners, gzip
without a timestamp), so the default version, derived from the sha256, is stable across
machines and re-runs. A packed directory carries code, not credentials: `.deployer/`, the
files the config names (deploy.yml, the vault and its password file, SSH keys, known_hosts),
`.env*`, keys by name (NEVER_PACKED) and private keys or vault files by content are left out
unless `artifact.include` names them. Both kinds of tarball pass the host's member rules
(module_utils/tarcheck.py of the collection) before any host is touched.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from deployer.errors import BadRequest, DeployerError
from deployer.paths import host_code

if TYPE_CHECKING:
    from deployer.config.resolve import Target

_EPOCH = 1_600_000_000  # fixed mtime for reproducible archives

NEVER_PACKED = (".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_ed25519*")
"""Names (of a file or any directory above it) left out unless `artifact.include` names them."""

_SECRET_HEADS = (b"$ANSIBLE_VAULT;", b"-----BEGIN OPENSSH PRIVATE KEY-----")


@dataclass(frozen=True)
class Artifact:
    path: Path  # the tarball on the control host
    sha256: str
    size: int  # bytes of the tarball
    unpacked_size: int  # bytes once unpacked (for the disk-space preflight)

    @property
    def default_version(self) -> str:
        return self.sha256[:12]

    @property
    def required_bytes(self) -> int:
        """Room a host needs: the upload, the unpacked tree, and 10% to spare."""
        return int((self.size + self.unpacked_size) * 1.1)


def _host_util(name: str) -> ModuleType:
    """A stdlib-only module_utils file of the collection, loaded by its path: the controller
    applies the very rules the hosts apply."""
    return host_code("module_utils", name)


def reserved_dir() -> str:
    """The directory a release keeps for deployer's own files (`.deployer`)."""
    return str(_host_util("layout").META_DIR)


def check_members(members: Sequence[tarfile.TarInfo], where: Path) -> None:
    """Raise BadRequest (exit 2) naming the first member a host would refuse to unpack."""
    rules = _host_util("tarcheck")
    try:
        rules.check_members(members, reserved_dir())
    except rules.UnsafeArchive as exc:
        raise BadRequest(f"{where}: refusing the tarball: {exc}") from None


def config_files(target: Target) -> tuple[Path, ...]:
    """Files the config names that hold credentials or settings, never code: deploy.yml,
    the vault and its password file, the SSH keys and known_hosts files (the jump hosts'
    too)."""
    base = target.project_dir
    secrets = target.secrets
    named = [target.config_path, *target.known_hosts]
    named += [h.private_key for h in target.hosts if h.private_key is not None]
    for hop in target.jump:
        named += [*hop.known_hosts, *([hop.private_key] if hop.private_key else [])]
    named += [
        base / Path(p).expanduser()
        for p in (secrets.vault_file, secrets.vault_password_file)
        if p is not None
    ]
    return tuple(named)


def _matches(rel: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) for p in patterns)


def _excluded(rel: str, patterns: Iterable[str]) -> bool:
    """`rel` or any of its path components matches one of the patterns."""
    parts = rel.split("/")
    return any(
        fnmatch.fnmatch(rel, p) or any(fnmatch.fnmatch(x, p) for x in parts) for p in patterns
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run_build(command: str, cwd: Path) -> None:
    """The artifact's optional local build step; its failure stops the deploy early."""
    proc = subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True)  # noqa: S602
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise DeployerError(
            f"artifact build command failed with exit {proc.returncode}: {command}",
            details=tail,
        )


class _Selection:
    """Which entries of the artifact directory are packed."""

    def __init__(
        self, exclude: Sequence[str], include: Sequence[str], never: Sequence[Path]
    ) -> None:
        self.exclude, self.include = tuple(exclude), tuple(include)
        self.reserved = reserved_dir()
        self.named_paths = {os.path.abspath(p) for p in never}
        self.named_files: set[tuple[int, int]] = set()
        for path in never:
            try:
                info = path.stat()
            except OSError:
                continue
            self.named_files.add((info.st_dev, info.st_ino))

    def protected(self, rel: str, path: Path, info: os.stat_result) -> bool:
        """A credential by name, or a file the config names (under any name: hard links)."""
        return (
            _excluded(rel, NEVER_PACKED)
            or os.path.abspath(path) in self.named_paths
            or (info.st_dev, info.st_ino) in self.named_files
        )

    def packed(self, rel: str, path: Path, info: os.stat_result) -> bool:
        if self.reserved in rel.split("/") or _excluded(rel, self.exclude):
            return False
        if _matches(rel, self.include):
            return True
        if stat.S_ISDIR(info.st_mode) and any(p.startswith(rel + "/") for p in self.include):
            return True  # something below is included by name
        return not self.protected(rel, path, info)

    def lifted(self, rel: str) -> bool:
        """Named by `artifact.include`: packed whatever its content."""
        return _matches(rel, self.include)


def _holds_secret(head: bytes) -> bool:
    """A private key (PEM or OpenSSH) or an ansible-vault file, by its first line."""
    first = head.split(b"\n", 1)[0].strip()
    if first.startswith(_SECRET_HEADS):
        return True
    return first.startswith(b"-----BEGIN ") and first.endswith(b"PRIVATE KEY-----")


def _walk_error(exc: OSError) -> None:
    raise exc


def _entries(source: Path, selection: _Selection) -> list[tuple[str, Path, os.stat_result]]:
    entries: list[tuple[str, Path, os.stat_result]] = []
    for root, dirs, files in os.walk(source, onerror=_walk_error):
        rel_root = os.path.relpath(root, source)
        kept = []
        for name in sorted(dirs) + sorted(files):
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            path = Path(root) / name
            info = path.lstat()
            if not selection.packed(rel, path, info):
                continue
            if name in dirs and stat.S_ISDIR(info.st_mode):
                kept.append(name)
            entries.append((rel, path, info))
        dirs[:] = sorted(kept)
    return sorted(entries, key=lambda e: e[0])


def pack_directory(
    source: Path,
    dest_dir: Path,
    exclude: Sequence[str],
    *,
    include: Sequence[str] = (),
    never: Sequence[Path] = (),
) -> Artifact:
    """Pack `source` into a reproducible tar.gz under dest_dir, named by its checksum.

    Left out: `.deployer/`, what `exclude` matches, and unless `include` matches it,
    NEVER_PACKED names, the files in `never` (by path or inode) and private keys or vault
    files. Modes are the files' own minus group/other write and the special bits; hard-linked
    files are packed as regular files; a symlink that leaves `source` is refused (exit 2).
    """
    return pack_parts([Part("", source, _Selection(exclude, include, never))], dest_dir)


@dataclass(frozen=True)
class Part:
    """One directory of a release tarball: packed under `prefix/` ("" for the top)."""

    prefix: str
    source: Path
    selection: _Selection


def pack_parts(parts: Sequence[Part], dest_dir: Path) -> Artifact:
    """Pack each part's directory under its prefix into one reproducible tar.gz (the same
    rules as `pack_directory`, each part's symlinks kept inside its own directory)."""
    for part in parts:
        if not part.source.is_dir():
            raise BadRequest(f"artifact path {part.source} is not a directory")
    listed = []
    for part in parts:
        try:
            listed.append((part, _entries(part.source, part.selection)))
        except OSError as exc:
            raise BadRequest(
                f"artifact path {part.source}: cannot read {exc.filename}: {exc.strerror}"
            ) from None
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest_dir / f".pack-{os.getpid()}.part"
    unpacked = 0
    members: list[tarfile.TarInfo] = []
    try:
        with (
            tmp.open("wb") as out_file,
            gzip.GzipFile(filename="", mode="wb", fileobj=out_file, compresslevel=6, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for part, entries in listed:
                if part.prefix:
                    top = _member(part.prefix, tarfile.DIRTYPE, 0o755)
                    tar.addfile(top)
                    members.append(top)
                for rel, path, info in entries:
                    name = f"{part.prefix}/{rel}" if part.prefix else rel
                    try:
                        member = _add(tar, part.source, name, path, info, part.selection, rel)
                    except OSError as exc:
                        raise BadRequest(
                            f"artifact path {part.source}: cannot pack {rel}: {exc.strerror or exc}"
                        ) from None
                    if member is not None:
                        members.append(member)
                        unpacked += member.size
        check_members(members, parts[0].source if len(parts) == 1 else dest_dir)
        sha = _sha256(tmp)
        out = dest_dir / f"{sha[:12]}.tar.gz"
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return Artifact(path=out, sha256=sha, size=out.stat().st_size, unpacked_size=unpacked)


def _member(rel: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(rel)
    info.type, info.mode = kind, stat.S_IMODE(mode) & 0o755
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = _EPOCH
    return info


def _add(
    tar: tarfile.TarFile,
    source: Path,
    name: str,
    path: Path,
    info: os.stat_result,
    selection: _Selection,
    rel: str,
) -> tarfile.TarInfo | None:
    """Add one entry (`rel` in `source`) as member `name` with normalised metadata; returns
    its member (None when left out)."""
    if stat.S_ISDIR(info.st_mode):
        member = _member(name, tarfile.DIRTYPE, info.st_mode)
        tar.addfile(member)
        return member
    if stat.S_ISLNK(info.st_mode):
        member = _member(name, tarfile.SYMTYPE, 0o777)
        member.linkname = os.readlink(path)
        real, root = os.path.realpath(path), os.path.realpath(source)
        if os.path.isabs(member.linkname) or not (real == root or real.startswith(root + os.sep)):
            raise BadRequest(
                f"artifact path {source}: the symlink {rel} -> {member.linkname} points "
                "outside the artifact directory; copy what it points to into it instead"
            )
        tar.addfile(member)
        return member
    if not stat.S_ISREG(info.st_mode):
        return None  # sockets, fifos and devices are not release content
    with path.open("rb") as handle:
        head = handle.read(64)
        if _holds_secret(head) and not selection.lifted(rel):
            return None
        handle.seek(0)
        member = _member(name, tarfile.REGTYPE, info.st_mode)
        member.size = os.fstat(handle.fileno()).st_size
        tar.addfile(member, handle)  # a hard-linked file is packed whole, like any other
    return member


def use_tarball(path: Path) -> Artifact:
    """A prebuilt .tar.gz: checked against the host's member rules, checksummed, measured."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = tar.getmembers()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BadRequest(f"{path}: not a readable .tar.gz ({exc})") from None
    check_members(members, path)
    unpacked = sum(m.size for m in members if m.isfile())
    return Artifact(
        path=path, sha256=_sha256(path), size=path.stat().st_size, unpacked_size=unpacked
    )


def prepare(
    source: Path,
    dest_dir: Path,
    exclude: Sequence[str],
    build: str | None = None,
    *,
    include: Sequence[str] = (),
    never: Sequence[Path] = (),
) -> Artifact:
    """The release artifact for `source` (a directory or a prebuilt tarball)."""
    if source.is_file():
        return use_tarball(source)
    if not source.exists():
        raise BadRequest(f"artifact path {source} does not exist")
    if build:
        run_build(build, source)
    return pack_directory(source, dest_dir, exclude, include=include, never=never)


def service_overrides(target: Target, given: Path | None) -> dict[str, Path]:
    """`--artifact SERVICE=DIR` for an app of several services: that service's files come
    from DIR this once (not built)."""
    if given is None:
        return {}
    name, sep, path = str(given).partition("=")
    names = [s.name for s in target.services]
    if not sep or name not in names or not path:
        raise BadRequest(
            f"--artifact {given}: an app of several services takes SERVICE=DIR, with "
            f"SERVICE one of {', '.join(names)}"
        )
    return {name: Path(path)}


def for_services(
    target: Target,
    dest_dir: Path,
    *,
    build: bool = True,
    overrides: Mapping[str, Path] | None = None,
) -> Artifact:
    """One tarball for every service of the release: each service's artifact directory
    (built first, when it has a build command) under `<service>/`; a service of
    `overrides` is packed from the directory given there instead, unbuilt."""
    parts = []
    never = config_files(target)
    overrides = overrides or {}
    for service in target.services:
        settings = service.artifact
        override = overrides.get(service.name)
        source = override if override is not None else target.project_dir / settings.path
        if not source.is_dir():
            what = (
                "is a file: a service's artifact is a directory"
                if source.exists()
                else "does not exist"
            )
            where = f"services.{service.name}.artifact.path" if override is None else "--artifact"
            raise BadRequest(f"{where}: {source} {what}")
        if settings.build and build and override is None:
            run_build(settings.build, source)
        selection = _Selection(settings.exclude, settings.include, never)
        parts.append(Part(service.directory, source, selection))
    return pack_parts(parts, dest_dir)


def for_target(target: Target, source: Path, dest_dir: Path, build: str | None = None) -> Artifact:
    """`prepare` with the target's artifact settings and the files its config names."""
    settings = target.artifact
    return prepare(
        source,
        dest_dir,
        settings.exclude,
        build,
        include=settings.include,
        never=config_files(target),
    )
