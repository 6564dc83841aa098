"""Shared fixtures for integration tests: one real lab for the whole session.

The lab is named `pytest` and has 4 hosts. `up` is idempotent, so a lab left running
(DEPLOYER_KEEP_LAB=1) is reused in seconds by the next session. Two sessions running at
once would tear down each other's lab: give one another name with DEPLOYER_TEST_LAB.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deployer.lab import LabState, down, up

# pytest puts this directory on sys.path when it collects it; the faults suite loads this file
# by path before that, and needs lab_project as much
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab_project import EXAMPLE, Project, remove_app

LAB_NAME = os.environ.get("DEPLOYER_TEST_LAB", "pytest")
LAB_HOSTS = 4


@pytest.fixture(scope="session")
def lab() -> Iterator[LabState]:
    """The `pytest` lab, up with 4 hosts; torn down at session end unless DEPLOYER_KEEP_LAB=1."""
    state = up(LAB_HOSTS, name=LAB_NAME)
    yield state
    if os.environ.get("DEPLOYER_KEEP_LAB") != "1":
        down(LAB_NAME)


# --- projects deployed to the lab ---------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, lab: LabState) -> Iterator[Project]:
    """examples/hello under a unique app name and port; its services are removed after."""
    app = "t" + secrets.token_hex(4)
    port = random.randint(20000, 45000)
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".deployer"))
    proj = Project(root=root, app=app, port=port, lab=lab)
    proj.edit({"app": {"name": app}, "service": {"port": port}})
    yield proj
    remove_app(proj)


@pytest.fixture
def shop(tmp_path: Path, lab: LabState) -> Iterator[Any]:
    """examples/shop on the lab under an app name of its own (see shop_lab.py; imported
    here, not at the top: tests/faults loads this file from outside this directory)."""
    from shop_lab import shop_project

    yield from shop_project(tmp_path, lab)
