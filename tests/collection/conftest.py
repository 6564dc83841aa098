"""Fixtures for the deployer.core collection tests: a 2-host lab named `coll` (override
with DEPLOYER_COLL_LAB) and a fresh app deployed to it per test."""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from coll_harness import Deployment

# a session with a lab of its own (DEPLOYER_TEST_LAB) gets this one of its own too
LAB_NAME = os.environ.get(
    "DEPLOYER_COLL_LAB",
    f"{os.environ['DEPLOYER_TEST_LAB']}-coll" if "DEPLOYER_TEST_LAB" in os.environ else "coll",
)
LAB_HOSTS = 2


@pytest.fixture(scope="session")
def lab() -> Iterator[Any]:
    """The `coll` lab with 2 hosts; left running for the next session (up is idempotent)."""
    from deployer.lab import up

    try:  # create the lab network before up() starts hosts in parallel threads
        from deployer.lab import containers, engine

        containers.ensure_network(engine.client(), LAB_NAME)
    except Exception:  # best effort: up() reports real problems
        pass
    state = up(LAB_HOSTS, name=LAB_NAME)
    yield state
    if os.environ.get("DEPLOYER_COLL_LAB_DOWN") == "1":
        from deployer.lab import down

        down(LAB_NAME)


@pytest.fixture
def deployment(lab: Any, tmp_path: Path) -> Iterator[Deployment]:
    """A fresh app on the lab: unique name, port and deploy_to; removed afterwards."""
    dep = Deployment(
        lab=lab, workdir=tmp_path, app="c" + secrets.token_hex(3), port=random.randint(20000, 45000)
    )
    yield dep
    if os.environ.get("DEPLOYER_COLL_KEEP") != "1":
        dep.cleanup()
