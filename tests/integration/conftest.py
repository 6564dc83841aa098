"""Shared fixtures for integration tests: one real lab for the whole session.

The lab is named `pytest` and has 4 hosts. `up` is idempotent, so a lab left running
(DEPLOYER_KEEP_LAB=1) is reused in seconds by the next session. Two sessions running at
once would tear down each other's lab: give one another name with DEPLOYER_TEST_LAB.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from deployer.lab import LabState, down, up

LAB_NAME = os.environ.get("DEPLOYER_TEST_LAB", "pytest")
LAB_HOSTS = 4


@pytest.fixture(scope="session")
def lab() -> Iterator[LabState]:
    """The `pytest` lab, up with 4 hosts; torn down at session end unless DEPLOYER_KEEP_LAB=1."""
    state = up(LAB_HOSTS, name=LAB_NAME)
    yield state
    if os.environ.get("DEPLOYER_KEEP_LAB") != "1":
        down(LAB_NAME)
