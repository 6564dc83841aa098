"""Lab hosts as `deployer lab up` records them, read for environments whose hosts are `lab`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deployer.errors import ConfigError
from deployer.lab.hosts import load_lab, placeholder_lab


def test_a_lab_that_is_not_up_has_no_hosts(no_lab: Path) -> None:
    assert load_lab() is None
    assert placeholder_lab().name == "lab"


def test_the_hosts_file_becomes_lab_info(no_lab: Path) -> None:
    (no_lab / "ha").mkdir()
    (no_lab / "ha" / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "known_hosts": str(no_lab / "ha" / "known_hosts"),
                "hosts": [
                    {
                        "name": "lab1",
                        "address": "127.0.0.1",
                        "port": 2201,
                        "user": "deploy",
                        "private_key": str(no_lab / "ha" / "id_ed25519"),
                    }
                ],
            }
        )
    )
    lab = load_lab("ha")
    assert lab is not None
    assert [(h.name, h.port) for h in lab.hosts] == [("lab1", 2201)]
    assert lab.private_key == no_lab / "ha" / "id_ed25519"


def test_a_broken_hosts_file_is_a_config_error(no_lab: Path) -> None:
    (no_lab / "lab").mkdir()
    (no_lab / "lab" / "hosts.yml").write_text("hosts: [{name: lab1}]\n")
    with pytest.raises(ConfigError) as caught:
        load_lab()
    assert "not a lab hosts file" in caught.value.problems[0]
