"""The swarm lab's run profile and node image recipe (no docker needed)."""

from __future__ import annotations

from deployer.lab.profiles import PROFILES, SERVER, SWARM
from deployer.lab.swarm import swarm_image_tag


def test_swarm_profile_runs_dockerd_without_privileged() -> None:
    options = SWARM.run_kwargs()
    assert options["cap_add"] == ["ALL"]
    assert options["cap_drop"] == ["SYS_RESOURCE"]  # withheld here: --privileged fails
    assert set(options["security_opt"]) == {"seccomp=unconfined", "apparmor=unconfined"}
    assert options["volumes"]["/sys/fs/cgroup"]["mode"] == "rw"
    assert [m["Target"] for m in options["mounts"]] == ["/var/lib/docker"]
    assert "privileged" not in options
    assert PROFILES["swarm"] is SWARM


def test_server_profile_is_unchanged() -> None:
    assert "mounts" not in SERVER.run_kwargs()


def test_swarm_image_follows_the_lab_image() -> None:
    assert swarm_image_tag("deployer-lab:aaa") != swarm_image_tag("deployer-lab:bbb")
    assert swarm_image_tag("deployer-lab:aaa").startswith("deployer-lab-swarm:")
