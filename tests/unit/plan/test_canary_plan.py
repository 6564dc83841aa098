"""Canary, controller side: the edge proxy's weighted upstreams at each step (rendered here,
the hosts' reports only pick the live slot) and the analysis's PromQL and verdict.

tests/golden/canary/ holds the upstreams file of the `canary_vars` case; after an intended
change: `UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/plan/test_canary_plan.py`."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.config.loader import load_project
from deployer.config.resolve import Target, resolve
from deployer.plan import edge, monitoring

GOLDEN = Path(__file__).parents[2] / "golden" / "canary"

BASE: dict[str, Any] = {
    "app": {"name": "shop"},
    "service": {"command": "/usr/bin/python3 app.py", "port": 8000},
    "health": {"http": {"path": "/healthz"}},
    "strategy": {"kind": "canary", "steps": [10, 50, 100], "analysis": 20},
    "rollback": {
        "watch": 60,
        "error_rate": {"threshold": 5},
        "response_time": {"threshold_ms": 500},
    },
    "environments": {
        "production": {
            "hosts": {
                "web": [
                    {"address": "10.0.0.1", "name": "web1"},
                    {"address": "10.0.0.2", "name": "web2"},
                    {"address": "10.0.0.3", "name": "web3"},
                ],
                "edge": [{"address": "10.0.0.9", "name": "edge1"}],
            },
            "domain": "shop.example.com",
            "proxy": {"component": "edge"},
            "features": {"monitoring": True},
        }
    },
}


def _target(tmp_path: Path, data: dict[str, Any] = BASE) -> Target:
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump(data))
    return resolve(load_project(tmp_path / "deploy.yml"), "production")


SERVER = re.compile(r"server (\S+):(\d+)(?: weight=(\d+))? max_fails=2 fail_timeout=5s;  # (\w+)")


def _servers(text: str) -> list[tuple[str, int, int, str]]:
    return [
        (address, int(port), int(weight or 1), host)
        for address, port, weight, host in SERVER.findall(text)
    ]


@pytest.mark.parametrize("live", ["blue", "green"])
@pytest.mark.parametrize("share", [1, 10, 33, 50, 90, 99])
def test_the_new_slots_take_exactly_the_share(tmp_path: Path, live: str, share: int) -> None:
    text = edge.weighted_upstreams(_target(tmp_path), live, share)
    live_port, new_port = (8000, 8001) if live == "blue" else (8001, 8000)
    servers = _servers(text)
    assert len(servers) == 8  # both slots of every host (the edge host runs the app too)
    new = sum(w for _, port, w, _ in servers if port == new_port)
    total = sum(w for *_, w, _ in [(a, p, w, h) for a, p, w, h in servers])
    assert new * 100 == share * total
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.9"):
        assert (address, live_port, 100 - share) in {(a, p, w) for a, p, w, _ in servers}
        assert (address, new_port, share) in {(a, p, w) for a, p, w, _ in servers}
    assert " down" not in text


def test_a_slot_of_no_weight_is_left_out(tmp_path: Path) -> None:
    target = _target(tmp_path)
    assert {p for _, p, _, _ in _servers(edge.weighted_upstreams(target, "blue", 100))} == {8001}
    assert {p for _, p, _, _ in _servers(edge.weighted_upstreams(target, "blue", 0))} == {8000}


@pytest.mark.parametrize(("live", "share"), [("purple", 10), ("blue", 101), ("blue", -1)])
def test_bad_slot_or_share_is_refused(tmp_path: Path, live: str, share: int) -> None:
    with pytest.raises(ValueError):
        edge.weighted_upstreams(_target(tmp_path), live, share)


def test_canary_vars_render_every_step_short_of_100_for_either_live_slot(tmp_path: Path) -> None:
    canary = edge.canary_vars(_target(tmp_path))["deployer_canary"]["proxy"]
    assert canary["hosts"] == ["edge1"]
    assert canary["path"] == "/etc/nginx/deployer/shop-production/upstreams.conf"
    assert set(canary["upstreams"]) == {"blue", "green"}
    assert set(canary["upstreams"]["blue"]) == {"10", "50"}  # 100 is blue-green's flip
    golden = GOLDEN / "upstreams_blue_live_10.conf"
    text = canary["upstreams"]["blue"]["10"]
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


def test_no_canary_vars_for_another_strategy(tmp_path: Path) -> None:
    data = {**BASE, "strategy": {"kind": "blue_green"}}
    data["environments"] = {
        "production": {**BASE["environments"]["production"], "features": {"monitoring": False}}
    }
    assert edge.canary_vars(_target(tmp_path, data)) == {}


def test_the_analysis_compares_the_two_slots_by_their_label(tmp_path: Path) -> None:
    checks = monitoring.canary_checks(_target(tmp_path), "green", "blue")
    error, latency = checks
    assert error["name"] == "error_rate"
    assert error["threshold"] == 5.0
    assert latency["name"] == "p95_latency"
    assert latency["threshold"] == 500.0
    for check in checks:
        assert 'slot="green"' in check["canary_query"]
        assert 'slot="blue"' not in check["canary_query"]
        assert 'slot="blue"' in check["stable_query"]
        assert "[$window]" in check["canary_query"]
        assert "[$window]" in check["stable_query"]
        assert 'slot="green"' in check["volume_query"]
    assert 'code=~"5.."' in error["canary_query"]
    assert "histogram_quantile(0.95" in latency["canary_query"]


def test_the_module_judges_the_new_slot_against_the_stable_one_and_reports_both(
    tmp_path: Path,
) -> None:
    target = _target(tmp_path)
    checks = monitoring.canary_checks(target, "green", "blue")
    module = monitoring.analysis_checks(target, checks)
    names = [c["name"] for c in module]
    assert names == [
        "error_rate",
        "p95_latency",
        "error_rate:canary",
        "error_rate:stable",
        "p95_latency:canary",
        "p95_latency:stable",
        "requests:canary",
    ]
    judged = module[0]
    assert (
        judged["query"]
        == f"({checks[0]['canary_query']}) > ({checks[0]['stable_query']} or vector(0))"
    )
    assert judged["threshold"] == 5.0
    assert judged["window"] == 20
    assert all(c["threshold"] == monitoring.FIGURE_THRESHOLD for c in module[2:])
    last = {"error_rate:canary": 30.0, "error_rate:stable": 0.0, "requests:canary": 50.0}
    figures = monitoring.analysis_figures(last)
    assert figures["error_rate"] == {"canary": 30.0, "stable": 0.0, "volume": 50.0}
    assert monitoring.judge_canary(checks, figures)[0] is True


def _values(canary: float | None, stable: float | None, volume: float | None = 100.0) -> Any:
    figures = {"canary": canary, "stable": stable, "volume": volume}
    return {"error_rate": figures, "p95_latency": {**figures, "canary": 10.0, "stable": 10.0}}


@pytest.mark.parametrize(
    ("canary", "stable", "volume", "breached"),
    [
        (30.0, 0.0, 100.0, True),  # the 30 % canary of the lab test
        (4.0, 0.0, 100.0, False),  # worse than stable, under the threshold
        (30.0, 40.0, 100.0, False),  # both versions failing: not the canary's
        (30.0, None, 100.0, True),  # no stable figure: the threshold alone
        (0.0, 0.0, 3.0, True),  # too few requests to judge: never promoted on nothing
        (None, 0.0, 100.0, True),
        (0.0, 0.0, None, True),
    ],
)
def test_the_verdict(
    tmp_path: Path, canary: float | None, stable: float | None, volume: float | None, breached: bool
) -> None:
    checks = monitoring.canary_checks(_target(tmp_path), "green", "blue")
    got, why = monitoring.judge_canary(checks, _values(canary, stable, volume))
    assert got is breached
    assert bool(why) is breached


def test_a_latency_breach(tmp_path: Path) -> None:
    checks = monitoring.canary_checks(_target(tmp_path), "green", "blue")
    values = _values(0.0, 0.0)
    values["p95_latency"] = {"canary": 900.0, "stable": 120.0, "volume": 100.0}
    breached, (why,) = monitoring.judge_canary(checks, values)
    assert breached
    assert why == (
        "p95_latency: 900 ms for the new version, above 500 ms (the stable version: 120 ms)"
    )
