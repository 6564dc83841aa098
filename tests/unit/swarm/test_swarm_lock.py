"""The Swarm target's lock: its remote script run by a real shell (here, not over SSH), on a
lock directory in tmp_path, with the SSH target's on-host format."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from deployer.config.loader import load_project
from deployer.config.resolve import resolve
from deployer.errors import LockedError
from deployer.session import Identity, Session
from deployer.targets.swarm import lock as swarm_lock

CASE = sorted((Path(__file__).parents[2] / "golden" / "swarm" / "compose").glob("*/deploy.yml"))[0]


def session(tmp_path: Path, *_: object) -> Session:
    loaded = load_project(CASE)
    (env,) = loaded.project.environments
    return Session(resolve(loaded, env))


class LocalNodes:
    """Nodes whose manager is this machine's shell."""

    def manage_script(self, script: str, *, stdin: bytes | None = None, what: str = "") -> str:
        done = subprocess.run(["sh", "-c", script], input=stdin, capture_output=True, check=True)
        return done.stdout.decode()


A, B = "a" * 32, "b" * 32


@pytest.fixture
def where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "locks" / "app" / "staging.lock"
    monkeypatch.setattr(swarm_lock, "lock_path", lambda env: str(path))
    return path


def test_acquire_writes_the_holder_record_and_a_second_taker_is_refused(
    tmp_path: Path, where: Path
) -> None:
    s = session(tmp_path)
    nodes = LocalNodes()
    mine = swarm_lock.run(s, nodes, "acquire", A, 7)
    assert (mine.held, mine.mine) == (True, True)
    record = json.loads((where / "holder.json").read_text())
    assert (record["token"], record["holder"]["deployment"]) == (A, 7)
    assert record["ttl"] == s.target.lock_ttl
    other = Session(s.target, identity=Identity("bob", "elsewhere", 1))
    with pytest.raises(LockedError, match="locked by"):
        swarm_lock.run(other, nodes, "acquire", B)
    status = swarm_lock.run(other, nodes, "status")
    assert (status.held, status.token, status.mine) == (True, A, False)


def test_release_and_break_act_only_with_the_token_that_holds_it(
    tmp_path: Path, where: Path
) -> None:
    s = session(tmp_path)
    nodes = LocalNodes()
    swarm_lock.run(s, nodes, "acquire", A)
    with pytest.raises(LockedError):
        swarm_lock.run(s, nodes, "release", B)
    with pytest.raises(LockedError):
        swarm_lock.run(s, nodes, "break", B)
    assert where.is_dir()
    released = swarm_lock.run(s, nodes, "release", A)
    assert not released.held
    assert not where.exists()
    assert not swarm_lock.run(s, nodes, "status").held
    assert not swarm_lock.run(s, nodes, "release", A).held


def test_a_token_this_target_did_not_write_never_reaches_the_shell(
    tmp_path: Path, where: Path
) -> None:
    s = session(tmp_path)
    with pytest.raises(Exception, match="not a lock token"):
        swarm_lock.run(s, LocalNodes(), "break", "$(touch x)")
