"""Release artifacts: a directory packed into a reproducible tarball, or a prebuilt one.

The same content always gives the same bytes (sorted entries, fixed mtimes and owners, gzip
without a timestamp), so the default version, derived from the sha256, is stable across
machines and re-runs.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from deployer.errors import BadRequest, DeployerError

_EPOCH = 1_600_000_000  # fixed mtime for reproducible archives


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


def _excluded(rel: str, patterns: tuple[str, ...]) -> bool:
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


def pack_directory(source: Path, dest_dir: Path, exclude: tuple[str, ...]) -> Artifact:
    """Pack `source` into a reproducible tar.gz under dest_dir, named by its checksum."""
    if not source.is_dir():
        raise BadRequest(f"artifact path {source} is not a directory")
    entries: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(source):
        dirs.sort()
        rel_root = os.path.relpath(root, source)
        for name in sorted(dirs) + sorted(files):
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            if _excluded(rel, exclude):
                if name in dirs:
                    dirs.remove(name)
                continue
            entries.append((rel, Path(root) / name))
    entries.sort()
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest_dir / f".pack-{os.getpid()}.part"
    unpacked = 0
    try:
        with (
            tmp.open("wb") as out_file,
            gzip.GzipFile(filename="", mode="wb", fileobj=out_file, compresslevel=6, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for rel, path in entries:
                unpacked += _add(tar, rel, path)
        sha = _sha256(tmp)
        out = dest_dir / f"{sha[:12]}.tar.gz"
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return Artifact(path=out, sha256=sha, size=out.stat().st_size, unpacked_size=unpacked)


def _add(tar: tarfile.TarFile, rel: str, path: Path) -> int:
    """Add one entry with normalised metadata; returns the bytes it unpacks to."""
    info = tar.gettarinfo(str(path), arcname=rel)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = _EPOCH
    if info.isfile():
        info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
        with path.open("rb") as handle:
            tar.addfile(info, handle)
        return info.size
    if info.isdir():
        info.mode = 0o755
        tar.addfile(info)
    elif info.issym():
        tar.addfile(info)
    # sockets, fifos and devices are not release content
    return 0


def use_tarball(path: Path) -> Artifact:
    """A prebuilt .tar.gz: checksum it and measure what it unpacks to."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            unpacked = sum(m.size for m in tar.getmembers() if m.isfile())
    except (OSError, tarfile.TarError) as exc:
        raise BadRequest(f"{path}: not a readable .tar.gz ({exc})") from None
    return Artifact(
        path=path, sha256=_sha256(path), size=path.stat().st_size, unpacked_size=unpacked
    )


def prepare(
    source: Path, dest_dir: Path, exclude: tuple[str, ...], build: str | None = None
) -> Artifact:
    """The release artifact for `source` (a directory or a prebuilt tarball)."""
    if source.is_file():
        return use_tarball(source)
    if not source.exists():
        raise BadRequest(f"artifact path {source} does not exist")
    if build:
        run_build(build, source)
    return pack_directory(source, dest_dir, exclude)
