"""deployer_lock's break by token, run through the real lean loader on this machine: a
break names the lock it saw, so a lock taken again since then is left alone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_lean import lock_source, run_host

pytestmark = pytest.mark.hostile


def lock(path: Path, action: str, token: str = "", user: str = "") -> tuple[int, dict[str, Any]]:
    params = {
        "path": str(path),
        "action": action,
        "token": token,
        "holder": {"user": user} if user else {},
        "ttl": 3600,
    }
    return run_host("deployer_lock", lock_source(), params)


def holder_of(path: Path) -> str:
    return str(json.loads((path / "holder.json").read_text())["holder"]["user"])


def test_status_reports_the_token_the_lock_is_held_with(tmp_path: Path) -> None:
    path = tmp_path / "env.lock"
    assert lock(path, "status")[1]["deployer"]["token"] is None
    assert lock(path, "acquire", "token-a", "alice")[0] == 0
    assert lock(path, "status")[1]["deployer"]["token"] == "token-a"


def test_break_by_token_leaves_a_lock_taken_since_alone(tmp_path: Path) -> None:
    path = tmp_path / "env.lock"
    assert lock(path, "acquire", "token-a", "alice")[0] == 0
    seen = lock(path, "status")[1]["deployer"]["token"]
    # between the operator's status and break: alice finishes, bob's deployment starts
    assert lock(path, "release", "token-a")[0] == 0
    assert lock(path, "acquire", "token-b", "bob")[0] == 0

    rc, result = lock(path, "break", seen)
    assert rc == 1
    assert "taken again since it was read" in result["msg"]
    assert "held by bob" in result["msg"]
    assert result["deployer"]["held"] is True
    assert result["deployer"]["released"] is False
    assert holder_of(path) == "bob"


def test_break_by_token_breaks_the_lock_it_saw(tmp_path: Path) -> None:
    path = tmp_path / "env.lock"
    assert lock(path, "acquire", "token-a", "alice")[0] == 0
    rc, result = lock(path, "break", "token-a")
    assert rc == 0
    assert result["deployer"]["released"] is True
    assert result["deployer"]["holder"] == {"user": "alice"}
    assert not path.exists()


def test_a_lock_without_a_holder_record_is_broken_by_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "env.lock"
    path.mkdir()  # a taker that crashed between mkdir and writing holder.json
    seen = lock(path, "status")[1]["deployer"]["token"]
    assert seen.startswith("dir:")
    path.rmdir()
    assert lock(path, "acquire", "token-b", "bob")[0] == 0
    assert lock(path, "break", seen)[0] == 1
    assert holder_of(path) == "bob"

    os.unlink(path / "holder.json")
    seen = lock(path, "status")[1]["deployer"]["token"]
    assert lock(path, "break", seen)[0] == 0
    assert not path.exists()


def test_break_without_a_token_still_breaks_any_lock(tmp_path: Path) -> None:
    path = tmp_path / "env.lock"
    assert lock(path, "acquire", "token-b", "bob")[0] == 0
    rc, result = lock(path, "break")
    assert rc == 0
    assert result["deployer"]["holder"] == {"user": "bob"}
    assert not path.exists()
