"""Stack detection and generated Dockerfiles.

An app without a Dockerfile gets one from a Jinja template chosen by what its folder holds:
package.json -> a Node build stage served by nginx; requirements.txt or pyproject.toml ->
a Python image running the configured command; an index.html alone -> nginx serving the
folder. Base images are parameters because nothing can be pulled: they are local images
built from Debian packages (see `bases`).

The build context deployer sends is not the folder itself: the app's files go under `app/`
and the generated files (Dockerfile, nginx.conf) sit beside it, so they never end up in the
image and the app's folder is never written to.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from deployer.config.swarm import BaseImages
from deployer.errors import BadRequest

TEMPLATES = Path(__file__).parent / "templates"
STACKS = ("dockerfile", "node", "python", "static")


def detect_stack(folder: Path) -> str:
    """What kind of app `folder` holds; BadRequest when it cannot tell."""
    if (folder / "Dockerfile").is_file():
        return "dockerfile"
    if (folder / "package.json").is_file():
        return "node"
    if (folder / "requirements.txt").is_file() or (folder / "pyproject.toml").is_file():
        return "python"
    if (folder / "index.html").is_file():
        return "static"
    raise BadRequest(
        f"{folder}: cannot tell how to build it: add a Dockerfile, package.json, "
        "requirements.txt, pyproject.toml or index.html"
    )


@dataclass(frozen=True)
class DockerfileInput:
    """Everything a template needs; what `inspect_folder` learns plus the component's config."""

    app: str
    component: str
    stack: str
    bases: BaseImages
    command: str | None = None
    port: int | None = None
    output: str = "dist"
    requirements: bool = False  # requirements.txt names at least one package
    pyproject: bool = False
    lockfile: bool = False


def inspect_folder(folder: Path) -> dict[str, bool]:
    """The facts about `folder` that change the generated Dockerfile."""
    requirements = folder / "requirements.txt"
    wanted = requirements.is_file() and any(
        line.strip() and not line.strip().startswith("#")
        for line in requirements.read_text(encoding="utf-8").splitlines()
    )
    return {
        "requirements": wanted,
        "pyproject": (folder / "pyproject.toml").is_file(),
        "lockfile": (folder / "package-lock.json").is_file(),
    }


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - Dockerfiles and nginx config, not HTML
    )


def _command(given: str | None, port: int | None) -> list[str]:
    if given:
        return shlex.split(given)
    return ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", str(port or 8000)]  # noqa: S104


def render(spec: DockerfileInput) -> dict[str, str]:
    """The generated files of the build context: {'Dockerfile': ..., maybe 'nginx.conf': ...}."""
    if spec.stack not in ("python", "node", "static"):
        raise ValueError(f"no template for stack {spec.stack!r}")
    env = _environment()
    values = {
        "app": spec.app,
        "component": spec.component,
        "base": spec.bases.python,
        "node_base": spec.bases.node,
        "nginx_base": spec.bases.nginx,
        "port": spec.port,
        "output": spec.output.strip("/"),
        "requirements": spec.requirements,
        "pyproject": spec.pyproject,
        "lockfile": spec.lockfile,
        "command": _command(spec.command, spec.port) if spec.stack == "python" else [],
    }
    files = {"Dockerfile": env.get_template(f"{spec.stack}.Dockerfile.j2").render(values)}
    if spec.stack in ("node", "static"):
        files["nginx.conf"] = env.get_template("nginx.conf.j2").render(values)
    if spec.stack == "python":
        files["deployer-entrypoint.sh"] = (TEMPLATES / "entrypoint.sh").read_text()
    return files


def bases_needed(stack: str, bases: BaseImages) -> tuple[str, ...]:
    """The base images a generated Dockerfile builds FROM."""
    return {
        "python": (bases.python,),
        "node": (bases.node, bases.nginx),
        "static": (bases.nginx,),
    }.get(stack, ())
