"""Blue-green, host side: the slot links, the live slot, the checks of a slot on its own
port, and the filter that picks the one live slot of a fleet from the hosts' reports. The
switch into a slot and the flip run against systemd and nginx in
tests/integration/test_blue_green.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))

from ansible.errors import AnsibleFilterError
from ansible_collections.deployer.core.plugins.filter.bluegreen import live_slot
from ansible_collections.deployer.core.plugins.module_utils import slots
from ansible_collections.deployer.core.plugins.module_utils.layout import Tree

PORTS = {"blue": 8000, "green": 8001}


def _tree(tmp_path: Path, *versions: str) -> Tree:
    for version in versions:
        (tmp_path / "releases" / version).mkdir(parents=True)
    return Tree(str(tmp_path))


def test_a_host_without_slots_counts_as_blue_and_starts_in_green(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    assert slots.live(tree) is None
    assert slots.other(None) == "green"
    assert (slots.other("green"), slots.other("blue")) == ("blue", "green")


def test_slots_link_to_releases_and_live_to_a_slot(tmp_path: Path) -> None:
    tree = _tree(tmp_path, "v1", "v2")
    slots.point(tree, "green", "v1")
    slots.point(tree, "blue", "v2")
    slots.set_live(tree, "blue")
    assert os.readlink(tmp_path / "slots" / "green") == "../releases/v1"
    assert (slots.live(tree), slots.version_of(tree, "blue"), slots.version_of(tree, "green")) == (
        "blue",
        "v2",
        "v1",
    )
    slots.point(tree, "blue", "v1")  # repointed in place, atomically
    assert slots.version_of(tree, "blue") == "v1"
    assert sorted(os.listdir(tmp_path / "slots")) == ["blue", "green", "live"]  # no leftovers
    slots.remove(tree)
    assert slots.live(tree) is None
    assert not (tmp_path / "slots").exists()


@pytest.mark.parametrize(
    "target", ["../releases/v9", "../../etc", "/srv/app/releases/v1", "../releases/..", "x"]
)
def test_a_slot_link_elsewhere_names_no_version(tmp_path: Path, target: str) -> None:
    tree = _tree(tmp_path, "v1")
    (tmp_path / "slots").mkdir()
    os.symlink(target, tmp_path / "slots" / "blue")
    assert slots.version_of(tree, "blue") is None


def test_live_is_only_ever_blue_or_green(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    (tmp_path / "slots").mkdir()
    os.symlink("../../etc", tmp_path / "slots" / "live")
    assert slots.live(tree) is None


def test_units_carry_the_app_and_a_colon() -> None:
    assert slots.slot_units("shop") == ["shop:blue.service", "shop:green.service"]
    assert slots.retire_unit("shop", "green") == "shop:retire-green"


def test_a_slot_is_checked_on_its_own_port() -> None:
    health = {"http": {"port": 8000, "path": "/h"}, "tcp": None, "command": {"run": "true"}}
    green = slots.slot_health(health, PORTS, "green")
    assert green["http"] == {"port": 8001, "path": "/h"}
    assert green["command"] == {"run": "true"}
    assert slots.slot_health(health, PORTS, "blue")["http"]["port"] == 8000
    assert health["http"]["port"] == 8000  # the caller's spec is left alone
    other = {"tcp": {"port": 9999}}  # a fixed other port (refused by the config) stays
    assert slots.slot_health(other, PORTS, "green") == other


def _hostvars(**slot_of: Any) -> dict[str, Any]:
    return {h: {"switch_result": {"deployer": {"slot": s}}} for h, s in slot_of.items()}


def test_the_fleet_live_slot_is_the_one_the_hosts_share() -> None:
    hostvars = _hostvars(web1="green", web2="green", web3=None)
    hostvars["web4"] = {}  # no result in this run: left out
    assert live_slot(["web1", "web2", "web3", "web4"], hostvars, "switch_result") == "green"
    assert live_slot(["web3"], hostvars, "switch_result") == "blue"  # never ran blue-green


def test_hosts_that_disagree_are_refused_by_name() -> None:
    hostvars = _hostvars(web1="green", web2="blue")
    with pytest.raises(AnsibleFilterError, match=r"green on web1; blue on web2"):
        live_slot(["web1", "web2"], hostvars, "switch_result")


def test_an_unknown_slot_is_refused_without_repeating_it() -> None:
    hostvars = _hostvars(web1="{{ lookup('pipe', 'id') }}")
    with pytest.raises(AnsibleFilterError) as error:
        live_slot(["web1"], hostvars, "switch_result")
    assert "lookup" not in str(error.value)
    assert "web1" in str(error.value)
