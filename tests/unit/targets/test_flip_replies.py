"""Blue-green on the SSH target: a proxy that did not flip to the new slots fails every host
of the batch (so the budget check rolls the fleet back, which flips back); a flip that went
through changes no reply."""

from __future__ import annotations

from deployer.targets.base import HostReply
from deployer.targets.ssh.runner import HostOutcome
from deployer.targets.ssh.target import PHASES, _flipped


def _switched() -> dict[str, HostReply]:
    return {
        "web1": HostReply("web1", switched=True, current="v2"),
        "web2": HostReply("web2", ok=False, stage="health", message="unhealthy", switched=False),
    }


def test_the_flip_is_a_phase_of_its_own() -> None:
    assert PHASES["flip"] == "Flip the edge proxy"


def test_a_proxy_that_did_not_flip_fails_every_switched_host() -> None:
    flip = {
        "edge1": HostOutcome("edge1", failed=True, message="nginx refused the configuration"),
        "edge2": HostOutcome("edge2", ok=1),
    }
    out = _flipped(_switched(), flip)
    assert not out["web1"].good
    assert out["web1"].switched  # it is live in its new slot: the rollback takes it back
    assert out["web1"].stage == "proxy"
    assert "edge1: nginx refused the configuration" in out["web1"].message
    assert "edge2" not in out["web1"].message
    assert out["web2"] == _switched()["web2"]  # already failed: its own reason kept


def test_an_unreachable_proxy_counts_as_not_flipped() -> None:
    out = _flipped(_switched(), {"edge1": HostOutcome("edge1", unreachable=True)})
    assert "edge1: unreachable" in out["web1"].message


def test_a_flip_that_went_through_changes_nothing() -> None:
    assert _flipped(_switched(), {"edge1": HostOutcome("edge1", ok=1)}) == _switched()
    assert _flipped(_switched(), {}) == _switched()
