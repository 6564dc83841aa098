"""Blue-green, controller side: what the playbooks are handed. Each slot's upstreams file
is rendered here (the hosts' reports only pick one), the slot left is stopped keep_warm
seconds after the flip at the earliest, and nothing is drained."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from deployer.config.loader import load_project
from deployer.config.resolve import Target, resolve
from deployer.plan import edge, extravars

BASE: dict[str, Any] = {
    "app": {"name": "shop"},
    "service": {"command": "/usr/bin/python3 app.py", "port": 8000},
    "health": {"http": {"path": "/healthz", "timeout": 2}, "retries": 10, "interval": 0.5},
    "strategy": {"kind": "blue_green", "keep_warm": 120},
    "rollback": {"watch": 60},
    "environments": {
        "production": {
            "hosts": {
                "web": [
                    {"address": "10.0.0.1", "name": "web1"},
                    {"address": "10.0.0.2", "name": "web2"},
                ],
                "edge": [{"address": "10.0.0.3", "name": "edge1"}],
            },
            "domain": "shop.example.com",
            "proxy": {"component": "edge"},
        }
    },
}


def _target(tmp_path: Path, data: dict[str, Any] = BASE) -> Target:
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump(data))
    return resolve(load_project(tmp_path / "deploy.yml"), "production")


def test_each_slot_has_its_upstreams_rendered_here(tmp_path: Path) -> None:
    bg = edge.bluegreen_vars(_target(tmp_path))["deployer_bluegreen"]
    proxy = bg["proxy"]
    assert proxy["hosts"] == ["edge1"]
    assert proxy["path"] == "/etc/nginx/deployer/shop-production/upstreams.conf"
    blue, green = proxy["upstreams"]["blue"], proxy["upstreams"]["green"]
    for address in ("10.0.0.1", "10.0.0.2"):
        assert f"server {address}:8000 " in blue
        assert f"server {address}:8001 " in green
    assert ":8001 " not in blue
    assert ":8000 " not in green
    assert " down" not in blue + green


def test_the_slot_left_outlives_the_flip_by_keep_warm(tmp_path: Path) -> None:
    bg = edge.bluegreen_vars(_target(tmp_path))["deployer_bluegreen"]
    assert bg["ports"] == {"blue": 8000, "green": 8001}
    # keep_warm, plus every attempt of the checks (10 x (0.5 s + 2 s timeout)), plus the margin
    assert bg["slots"] == {"blue": 8000, "green": 8001, "retire_after": 120 + 25 + 30}


def test_nothing_is_drained_and_every_playbook_gets_the_slots(tmp_path: Path) -> None:
    target = _target(tmp_path)
    hosts = ["web1", "web2"]
    assert edge.drain_vars(target, hosts) == {}
    handed = [
        extravars.prepare_vars(
            target, hosts, version="v1", artifact="a", sha256="0" * 64, required_bytes=0, lock={}
        ),
        extravars.switch_vars(target, hosts, "v1"),
        extravars.rollback_vars(target, dict.fromkeys(hosts, "v1"), "v2", "why"),
        extravars.watch_vars(target, hosts, since=0),
        extravars.facts_vars(target, hosts, health=True),
    ]
    for given in handed:
        assert given["deployer_bluegreen"] == edge.bluegreen_vars(target)["deployer_bluegreen"]
        assert "deployer_proxy_drain" not in given


def test_other_strategies_get_no_slots(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["strategy"] = {"kind": "rolling"}
    target = _target(tmp_path, data)
    assert edge.bluegreen_vars(target) == {}
    assert "deployer_bluegreen" not in extravars.switch_vars(target, ["web1"], "v1")
    assert edge.drain_vars(target, ["web1"])["deployer_proxy_drain"]["hosts"] == ["edge1"]


def test_logs_read_both_slots(tmp_path: Path) -> None:
    from deployer.plan.remote import journal_units

    units = journal_units(_target(tmp_path))
    assert {"shop:blue.service", "shop:green.service"} <= set(units)
    data = copy.deepcopy(BASE)
    data["strategy"] = {"kind": "rolling"}
    assert not any(":" in u for u in journal_units(_target(tmp_path, data)))
