"""`deployer build ENV`: one image per component, tagged with the release version.

The build context is a reproducible tar made here (sorted entries, fixed mtimes and owners,
the artifact's exclude patterns applied), so the same sources give the same bytes: the
default version is a hash of every component's context and base image IDs, stable across
re-runs, and a rebuild of an unchanged version is all cache hits.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import BuildError, DockerException, ImageNotFound

from deployer.config.names import check_version
from deployer.config.resolve import Target
from deployer.config.swarm import SwarmSettings, settings_of
from deployer.errors import BadRequest, DeployerError
from deployer.session import Session
from deployer.targets.swarm import dockerfiles
from deployer.targets.swarm.bases import ensure_bases
from deployer.targets.swarm.spec import ComponentSpec, Located, component_specs, image_tag

_EPOCH = 1_600_000_000
BUILD_LABEL = "io.deployer.build"


@dataclass(frozen=True)
class BuiltImage:
    component: str
    image: str  # repository:tag
    image_id: str  # sha256:..., what delivery compares on every node
    stack: str
    generated: bool  # whether deployer wrote the Dockerfile
    cached: bool  # the tag already pointed at this build; nothing was rebuilt


@dataclass(frozen=True)
class BuildResult:
    environment: str
    version: str
    images: tuple[BuiltImage, ...]
    seconds: float

    @property
    def digest(self) -> str:
        """What the ledger's artifact_sha256 column holds: component=image ID, sorted."""
        return ";".join(f"{i.component}={i.image_id}" for i in sorted(self.images, key=_key))


def _key(image: BuiltImage) -> str:
    return image.component


def locate(target: Target, settings: SwarmSettings, root: Path | None = None) -> dict[str, Located]:
    """Each component's build folder and stack (see the settings module for the defaults);
    `root` (`deploy --artifact DIR`) replaces the artifact path and every component path."""
    given = root is not None
    root = root if root is not None else target.project_dir / target.artifact.path
    found: dict[str, Located] = {}
    for name in target.components:
        own = settings.component(name)
        if own.path is not None and not given:
            folder = target.project_dir / own.path
        else:
            folder = root / name if (root / name).is_dir() else root
        if not folder.is_dir():
            raise BadRequest(f"component {name}: build folder {folder} does not exist")
        stack = dockerfiles.detect_stack(folder) if own.stack == "auto" else own.stack
        found[name] = Located(folder.resolve(), stack)
    return found


def specs_of(
    target: Target, settings: SwarmSettings, root: Path | None = None
) -> tuple[ComponentSpec, ...]:
    return component_specs(target, settings, locate(target, settings, root))


def _excluded(rel: str, patterns: Sequence[str]) -> bool:
    parts = rel.split("/")
    return any(
        fnmatch.fnmatch(rel, p) or any(fnmatch.fnmatch(x, p) for x in parts) for p in patterns
    )


def _add(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, _EPOCH
    archive.addfile(info, io.BytesIO(data))


def context_tar(folder: Path, prefix: str, extra: dict[str, str], exclude: Sequence[str]) -> bytes:
    """The build context: `folder` under `prefix` plus generated files at the top."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(extra):
            _add(archive, name, extra[name].encode())
        for dirpath, dirnames, filenames in os.walk(folder):
            here = Path(dirpath)
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not _excluded((here / d).relative_to(folder).as_posix(), exclude)
            )
            for filename in sorted(filenames):
                path = here / filename
                rel = path.relative_to(folder).as_posix()
                if _excluded(rel, exclude) or path.is_symlink() or not path.is_file():
                    continue
                executable = os.access(path, os.X_OK)
                _add(archive, prefix + rel, path.read_bytes(), 0o755 if executable else 0o644)
    return buffer.getvalue()


def _context(target: Target, settings: SwarmSettings, spec: ComponentSpec) -> bytes:
    if spec.stack == "dockerfile":
        return context_tar(spec.context, "", {}, target.artifact.exclude)
    facts = dockerfiles.inspect_folder(spec.context)
    generated = dockerfiles.render(
        dockerfiles.DockerfileInput(
            app=target.app.name,
            component=spec.name,
            stack=spec.stack,
            bases=settings.bases,
            command=spec.command,
            port=spec.port,
            output=settings.component(spec.name).output,
            **facts,
        )
    )
    return context_tar(spec.context, "app/", generated, target.artifact.exclude)


def _image_id(client: docker.DockerClient, name: str) -> str | None:
    try:
        return str(client.images.get(name).id)
    except ImageNotFound:
        return None


def base_ids(client: docker.DockerClient, bases: Sequence[str]) -> str:
    return ";".join(f"{base}={_image_id(client, base)}" for base in sorted(set(bases)))


def default_version(contexts: dict[str, bytes], bases: str) -> str:
    digest = hashlib.sha256(bases.encode())
    for name in sorted(contexts):
        digest.update(name.encode() + b"\0" + hashlib.sha256(contexts[name]).digest())
    return digest.hexdigest()[:12]


def _build_one(
    client: docker.DockerClient, spec: ComponentSpec, context: bytes, version: str, bases: str
) -> BuiltImage:
    """Build one image; a tag that already holds this exact build is reused, a tag that
    holds another build is refused: a version names one content, or rollback lies."""
    tag = spec.image(version)
    fingerprint = hashlib.sha256(context + bases.encode()).hexdigest()
    generated = spec.stack != "dockerfile"
    try:
        existing = client.images.get(tag)
    except ImageNotFound:
        existing = None
    if existing is not None:
        if (existing.labels or {}).get(BUILD_LABEL) == fingerprint:
            return BuiltImage(spec.name, tag, str(existing.id), spec.stack, generated, True)
        raise BadRequest(
            f"image {tag} already exists with other content: versions are immutable, "
            "build a new version (or omit --version for the content hash)"
        )
    try:
        image, _log = client.images.build(
            fileobj=io.BytesIO(context),
            custom_context=True,
            tag=tag,
            pull=False,
            rm=True,
            forcerm=True,
            labels={BUILD_LABEL: fingerprint},
        )
    except BuildError as exc:
        log = "".join(str(chunk.get("stream", "")) for chunk in exc.build_log)
        tail = "\n".join(log.strip().splitlines()[-12:])
        raise DeployerError(f"building {tag} failed: {exc.msg}", details=tail.splitlines()) from exc
    return BuiltImage(spec.name, tag, str(image.id), spec.stack, generated, False)


def build_images(
    target: Target,
    version: str | None = None,
    progress: Callable[[str], None] | None = None,
    settings: SwarmSettings | None = None,
    root: Path | None = None,
) -> BuildResult:
    """Build every component's image; `version` defaults to the content hash; `root`: the
    folder to build from instead of the configured artifact path (`--artifact DIR`)."""
    started = time.monotonic()
    settings = settings or settings_of(target)
    say = progress or (lambda _message: None)
    if version is not None:
        try:
            check_version(version)
        except ValueError as exc:
            raise BadRequest(f"--version: {exc}") from None
        image_tag(version)
    if root is not None and not root.is_dir():
        raise BadRequest(
            f"--artifact {root}: a Swarm release is built from a directory (the build "
            "context of its components); a tarball cannot be given here"
        )
    specs = specs_of(target, settings, root)
    try:
        client = docker.from_env()
        bases = [b for s in specs for b in dockerfiles.bases_needed(s.stack, settings.bases)]
        ensure_bases(client, bases, say)
        contexts = {s.name: _context(target, settings, s) for s in specs}
        used = base_ids(client, bases)
        version = version or default_version(contexts, used)
        images = []
        for spec in specs:
            say(f"building {spec.image(version)}")
            images.append(_build_one(client, spec, contexts[spec.name], version, used))
    except DockerException as exc:
        raise DeployerError(f"docker build failed: {exc}") from exc
    return BuildResult(target.environment, version, tuple(images), time.monotonic() - started)


def build(session: Session, version: str | None = None) -> BuildResult:
    """`deployer build ENV [--version V]`."""
    return build_images(session.target, version, _say(session))


def _say(session: Session) -> Callable[[str], None]:
    sink = session.progress
    if sink is None:
        return lambda _message: None
    return lambda message: sink.task("build", message, "running")
