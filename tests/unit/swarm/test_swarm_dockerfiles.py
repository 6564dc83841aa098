"""Generated Dockerfiles (golden files), stack detection and the build context.

Each tests/golden/swarm/dockerfiles/<case>/ holds input.yml (the DockerfileInput fields)
and the expected generated files (Dockerfile, and nginx.conf for frontends). Regenerate
after an intended change and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/swarm/test_swarm_dockerfiles.py
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from deployer.config.swarm import BaseImages
from deployer.errors import BadRequest
from deployer.targets.swarm import dockerfiles
from deployer.targets.swarm.build import context_tar, default_version

GOLDEN = Path(__file__).parents[2] / "golden" / "swarm" / "dockerfiles"
CASES = sorted(p.parent for p in GOLDEN.glob("*/input.yml"))


def _input(case: Path) -> dockerfiles.DockerfileInput:
    data = yaml.safe_load((case / "input.yml").read_text())
    data["bases"] = BaseImages.model_validate(data.get("bases", {}))
    return dockerfiles.DockerfileInput(**data)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_dockerfiles(case: Path) -> None:
    files = dockerfiles.render(_input(case))
    # the same for every Python image, run for real below
    assert files.pop(ENTRYPOINT, "") == ("" if _input(case).stack != "python" else _entrypoint())
    if os.environ.get("UPDATE_GOLDEN") == "1":
        for name, text in files.items():
            (case / name).write_text(text)
    expected = {p.name for p in case.iterdir() if p.name != "input.yml"}
    assert set(files) == expected
    for name, text in files.items():
        assert text == (case / name).read_text(), name


ENTRYPOINT = "deployer-entrypoint.sh"


def _entrypoint() -> str:
    return (dockerfiles.TEMPLATES / "entrypoint.sh").read_text()


def test_the_entrypoint_exports_each_mounted_secret_verbatim(tmp_path: Path) -> None:
    values = {
        "API_TOKEN": "t0k $(touch pwned) `id` ${HOME} 'q' \"dq\" \\n end ",
        "EMPTY": "",
        "TRAILING": "line\n\n",
    }
    for name, value in values.items():
        (tmp_path / name).write_text(value)
    (tmp_path / "not-a-name").write_text("skipped")
    (tmp_path / "9LIVES").write_text("skipped")
    script = tmp_path.parent / "entrypoint.sh"
    script.write_text(_entrypoint())
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    run = subprocess.run(
        ["sh", str(script), sys.executable, "-c", dump],
        env={"DEPLOYER_SECRETS_DIR": str(tmp_path), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    seen = json.loads(run.stdout)
    assert {k: seen[k] for k in values} == values
    assert "not-a-name" not in seen
    assert "9LIVES" not in seen
    assert not (tmp_path / "pwned").exists()


def test_python_images_start_through_the_entrypoint() -> None:
    python = next(c for c in CASES if _input(c).stack == "python")
    dockerfile = dockerfiles.render(_input(python))["Dockerfile"]
    assert f"COPY {ENTRYPOINT} /usr/local/lib/deployer/entrypoint.sh" in dockerfile
    assert 'ENTRYPOINT ["/bin/sh", "/usr/local/lib/deployer/entrypoint.sh"]' in dockerfile


def test_golden_cases_cover_every_template() -> None:
    stacks = {_input(c).stack for c in CASES}
    assert stacks == {"python", "node", "static"}


def test_frontends_answer_healthz_and_python_runs_the_command() -> None:
    static = dockerfiles.render(_input(GOLDEN / "static"))
    assert "location = /healthz" in static["nginx.conf"]
    python = dockerfiles.render(_input(GOLDEN / "python_stdlib"))["Dockerfile"]
    assert 'CMD ["python3", "app.py"]' in python
    assert "FROM deployer-base-python:bookworm" in python
    assert "USER app" in python


@pytest.mark.parametrize(
    ("files", "stack"),
    [
        (["Dockerfile", "package.json"], "dockerfile"),
        (["package.json", "requirements.txt"], "node"),
        (["requirements.txt"], "python"),
        (["pyproject.toml", "index.html"], "python"),
        (["index.html"], "static"),
    ],
)
def test_detect_stack(tmp_path: Path, files: list[str], stack: str) -> None:
    for name in files:
        (tmp_path / name).write_text("")
    assert dockerfiles.detect_stack(tmp_path) == stack


def test_detect_stack_refuses_a_folder_it_cannot_build(tmp_path: Path) -> None:
    (tmp_path / "main.go").write_text("package main\n")
    with pytest.raises(BadRequest, match="cannot tell how to build"):
        dockerfiles.detect_stack(tmp_path)


def test_comment_only_requirements_need_no_venv(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("# nothing\n\n")
    assert dockerfiles.inspect_folder(tmp_path)["requirements"] is False
    (tmp_path / "requirements.txt").write_text("# web\nflask==3.0\n")
    assert dockerfiles.inspect_folder(tmp_path)["requirements"] is True


def test_context_is_reproducible_and_respects_excludes(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print('hi')\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / ".env").write_text("SECRET=1\n")
    first = context_tar(tmp_path, "app/", {"Dockerfile": "FROM x\n"}, ("__pycache__", ".env"))
    os.utime(tmp_path / "app.py", (1, 1))
    second = context_tar(tmp_path, "app/", {"Dockerfile": "FROM x\n"}, ("__pycache__", ".env"))
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first)) as archive:
        assert archive.getnames() == ["Dockerfile", "app/app.py"]
    assert default_version({"web": first}, "b=1") == default_version({"web": second}, "b=1")
    assert default_version({"web": first}, "b=1") != default_version({"web": first}, "b=2")
