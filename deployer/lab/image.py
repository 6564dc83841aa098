"""The lab image: a Debian base from mmdebstrap, plus the lab layer from ./image.

No registry is reachable here (`docker pull` fails), so the base is built from Debian
packages and imported. Both images carry a label with the digest of the recipe that
made them; a changed package list or asset gives a new digest, so a stale image is
rebuilt instead of silently reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker
from docker.errors import BuildError, DockerException, ImageNotFound

from . import engine
from .files import file_lock
from .model import LabError, Progress, lab_dir

SUITE = "bookworm"
BASE_REPOSITORY, BASE_TAG = "deployer-lab-base", SUITE
BASE_IMAGE = f"{BASE_REPOSITORY}:{BASE_TAG}"
BASE_PACKAGES = (
    "python3",
    "openssh-server",
    "sudo",
    "systemd",
    "systemd-sysv",
    "iproute2",
    "iptables",
    "procps",
    "curl",
    "ca-certificates",
    "dbus",
)
LAB_REPOSITORY = "deployer-lab"
ASSETS = Path(__file__).parent / "image"
RECIPE_LABEL = "io.deployer.lab.recipe"


def _mmdebstrap_args(tarball: Path) -> list[str]:
    # No mirror argument: mmdebstrap uses the machine's own apt sources.
    return [
        "mmdebstrap",
        "--variant=apt",
        f"--include={','.join(BASE_PACKAGES)}",
        SUITE,
        str(tarball),
    ]


def base_digest() -> str:
    """Digest of how the base is made (the mmdebstrap command line)."""
    recipe = "\0".join(_mmdebstrap_args(Path("rootfs.tar")))
    return hashlib.sha256(recipe.encode()).hexdigest()


def lab_digest() -> str:
    """Digest of the base recipe and every file under ./image (path and content)."""
    digest = hashlib.sha256(base_digest().encode())
    for path in sorted(p for p in ASSETS.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        digest.update(b"\0" + path.relative_to(ASSETS).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def image_tag() -> str:
    """The tag `up` runs: changes whenever the image assets change."""
    return f"{LAB_REPOSITORY}:{lab_digest()[:12]}"


def _recipe_of(client: docker.DockerClient, tag: str) -> str | None:
    try:
        labels = client.images.get(tag).labels or {}
    except ImageNotFound:
        return None
    return str(labels.get(RECIPE_LABEL, ""))


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def build_base(client: docker.DockerClient, progress: Progress) -> None:
    """mmdebstrap a Debian root filesystem into a temp dir and `docker import` it."""
    if shutil.which("mmdebstrap") is None:
        raise LabError("mmdebstrap not found: run `sudo scripts/setup-host` to install it")
    progress(f"building {BASE_IMAGE} with mmdebstrap (about 30 s)")
    with tempfile.TemporaryDirectory(prefix="deployer-lab-base-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        run = subprocess.run(_mmdebstrap_args(tarball), capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise LabError(f"mmdebstrap failed (exit {run.returncode}):\n{_tail(run.stderr)}")
        progress(f"importing {BASE_IMAGE}")
        try:
            client.api.import_image(
                src=str(tarball),
                repository=BASE_REPOSITORY,
                tag=BASE_TAG,
                changes=['CMD ["/lib/systemd/systemd"]', f"LABEL {RECIPE_LABEL}={base_digest()}"],
            )
        except DockerException as exc:
            raise LabError(f"docker import of {BASE_IMAGE} failed: {exc}") from exc
    if _recipe_of(client, BASE_IMAGE) != base_digest():
        raise LabError(f"docker import did not produce {BASE_IMAGE}")


def build_lab(client: docker.DockerClient, tag: str, progress: Progress) -> None:
    """`docker build` the lab layer (user, sshd, sudo, key unit) on top of the base."""
    progress(f"building {tag}")
    try:
        client.images.build(
            path=str(ASSETS),
            tag=tag,
            rm=True,
            forcerm=True,
            pull=False,
            labels={RECIPE_LABEL: lab_digest()},
        )
    except BuildError as exc:
        log = "".join(str(chunk.get("stream", "")) for chunk in exc.build_log)
        raise LabError(f"building {tag} failed: {exc.msg}\n{_tail(log)}") from exc
    except DockerException as exc:
        raise LabError(f"building {tag} failed: {exc}") from exc


def ensure_image(progress: Progress | None = None) -> str:
    """Build whatever of base and lab image is missing or stale; return the lab image tag."""
    say = progress or (lambda _message: None)
    client = engine.client()
    tag = image_tag()
    # Serialised across processes: two test sessions must not build the same image twice.
    with file_lock(lab_dir().parent / ".image.lock"):
        if _recipe_of(client, tag) == lab_digest():
            return tag
        if _recipe_of(client, BASE_IMAGE) != base_digest():
            build_base(client, say)
        build_lab(client, tag, say)
        _prune_old_lab_images(client, keep=tag)
    return tag


def _prune_old_lab_images(client: docker.DockerClient, keep: str) -> None:
    """Drop lab images from older assets; docker refuses (and we skip) those still in use."""
    for old in client.images.list(name=LAB_REPOSITORY):
        for tag in old.tags:
            if tag != keep and tag.startswith(f"{LAB_REPOSITORY}:"):
                with contextlib.suppress(DockerException):
                    client.images.remove(tag, noprune=False)
