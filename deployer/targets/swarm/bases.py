"""Base images for generated Dockerfiles, made from Debian packages because nothing can be
pulled: a minimal Debian root filesystem from mmdebstrap (`deployer-base-slim`), then one
`docker build` per runtime that apt-installs its packages on top.

Each image carries the digest of its recipe in a label; a changed recipe rebuilds it, an
unchanged one is reused. Only the default names are built here: a custom base named in the
swarm settings must already exist on the controller.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import docker
from docker.errors import DockerException, ImageNotFound

from deployer.config.swarm import DEFAULT_NGINX_BASE, DEFAULT_NODE_BASE, DEFAULT_PYTHON_BASE
from deployer.errors import DeployerError
from deployer.lab.files import file_lock
from deployer.lab.model import lab_dir

SLIM = "deployer-base-slim:bookworm"
RECIPE_LABEL = "io.deployer.base.recipe"
_SLIM_ARGS = (
    "mmdebstrap",
    "--variant=minbase",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin',
    "bookworm",
)
_APT = (
    "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
    "--no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*"
)
RECIPES: dict[str, str] = {
    DEFAULT_PYTHON_BASE: f"FROM {SLIM}\n" + _APT.format(packages="python3 python3-venv") + "\n",
    DEFAULT_NODE_BASE: f"FROM {SLIM}\n" + _APT.format(packages="nodejs npm") + "\n",
    DEFAULT_NGINX_BASE: f"FROM {SLIM}\n"
    + _APT.format(packages="nginx")
    + " && rm -f /etc/nginx/sites-enabled/default"
    " && ln -sf /dev/stdout /var/log/nginx/access.log"
    " && ln -sf /dev/stderr /var/log/nginx/error.log\n",
}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def recipe_digest(name: str) -> str:
    if name == SLIM:
        return _digest(*_SLIM_ARGS)
    return _digest(recipe_digest(SLIM), RECIPES[name])


def _current(client: docker.DockerClient, name: str) -> str | None:
    try:
        return str((client.images.get(name).labels or {}).get(RECIPE_LABEL, ""))
    except ImageNotFound:
        return None


def _build_slim(client: docker.DockerClient, say: Callable[[str], None]) -> None:
    say(f"building {SLIM} with mmdebstrap (about 30 s)")
    with tempfile.TemporaryDirectory(prefix="deployer-base-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        try:
            run = subprocess.run(
                [*_SLIM_ARGS, str(tarball)], capture_output=True, text=True, check=False
            )
        except FileNotFoundError as exc:
            raise DeployerError("mmdebstrap not found: run `sudo scripts/setup-host`") from exc
        if run.returncode != 0:
            tail = "\n".join(run.stderr.strip().splitlines()[-10:])
            raise DeployerError(f"mmdebstrap failed (exit {run.returncode}):\n{tail}")
        repository, tag = SLIM.split(":")
        client.api.import_image(
            src=str(tarball),
            repository=repository,
            tag=tag,
            changes=['CMD ["bash"]', f"LABEL {RECIPE_LABEL}={recipe_digest(SLIM)}"],
        )


def _build_from_recipe(client: docker.DockerClient, name: str, say: Callable[[str], None]) -> None:
    say(f"building {name} from Debian packages")
    dockerfile = RECIPES[name].encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        archive.addfile(info, io.BytesIO(dockerfile))
    buffer.seek(0)
    client.images.build(
        fileobj=buffer,
        custom_context=True,
        tag=name,
        pull=False,
        rm=True,
        forcerm=True,
        labels={RECIPE_LABEL: recipe_digest(name)},
    )


def ensure_bases(
    client: docker.DockerClient, names: Iterable[str], say: Callable[[str], None] | None = None
) -> None:
    """Build the default base images among `names` that are missing or stale."""
    progress = say or (lambda _message: None)
    wanted = [n for n in dict.fromkeys(names) if n in RECIPES]
    try:
        stale = [n for n in wanted if _current(client, n) != recipe_digest(n)]
        if stale:  # serialised across processes: two builds must not race on one tag
            with file_lock(lab_dir().parent / ".bases.lock"):
                stale = [n for n in wanted if _current(client, n) != recipe_digest(n)]
                if stale and _current(client, SLIM) != recipe_digest(SLIM):
                    _build_slim(client, progress)
                for name in stale:
                    _build_from_recipe(client, name, progress)
    except DockerException as exc:
        raise DeployerError(f"building base images failed: {exc}") from exc
    missing = [n for n in dict.fromkeys(names) if n not in RECIPES and _current(client, n) is None]
    if missing:
        raise DeployerError(
            f"base image(s) not found on this machine: {', '.join(missing)}; nothing can be "
            "pulled here: build them locally, or use the defaults"
        )
