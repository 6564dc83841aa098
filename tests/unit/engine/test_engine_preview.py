"""`deployer plan` on an in-memory target: the same plan the deploy walks, from the facts."""

from __future__ import annotations

from pathlib import Path

from fake import FakeTarget, Scenario, session

from deployer.config.models import Strategy
from deployer.engine.preview import plan


def test_plan_shows_batches_runs_and_where_each_host_goes_back(tmp_path: Path) -> None:
    s = session(tmp_path, Strategy(kind="rolling", batch_size=2))
    before = {"web1": "v1", "web2": "v2", "web3": None, "web4": "v1", "web5": "v1"}
    driver = FakeTarget(s, Scenario(before=before))
    result = plan(s, driver, version="v2", artifact_path=None)
    assert [(h.host, h.batch, h.action, h.rollback_to) for h in result.hosts] == [
        ("web1", 1, "deploy", "v1"),
        ("web2", 1, "unchanged", None),  # already on v2, with no previous good known
        ("web3", 2, "deploy", None),  # ran nothing: a rollback stops it
        ("web4", 2, "deploy", "v1"),
        ("web5", 3, "deploy", "v1"),
    ]
    assert (result.batches, result.runs) == (3, 3)  # fused: stage+batch 1, batch 2, batch 3
    assert [st["action"] for st in result.steps][:3] == ["lock", "stage", "switch"]
    assert not result.version_is_bad
    assert [c.method for c in driver.calls] == ["facts"]  # one read, nothing remote after


def test_plan_says_when_the_ledger_marked_the_version_bad(tmp_path: Path) -> None:
    s = session(tmp_path, Strategy(kind="all_at_once"))
    s.ledger.mark_bad(s.target.environment, "v3", deployment_id=None, reason="failed before")
    result = plan(s, FakeTarget(s, Scenario()), version="v3", artifact_path=None)
    assert result.version_is_bad


def test_plan_shows_the_edge_proxy_and_what_it_balances_over(tmp_path: Path) -> None:
    from dataclasses import replace

    from deployer.config.resolve import ProxyTarget
    from deployer.session import Session

    s = session(tmp_path, Strategy(kind="all_at_once"))
    assert plan(s, FakeTarget(s, Scenario()), version="v2", artifact_path=None).proxy is None
    env = s.target
    service = env.service.model_copy(update={"port": 8000})
    proxied = replace(env, service=service, proxy=ProxyTarget(("web1",), 80, "shop.example.com"))
    s = Session(proxied)
    result = plan(s, FakeTarget(s, Scenario()), version="v2", artifact_path=None)
    assert result.proxy is not None
    assert (result.proxy.hosts, result.proxy.server_name) == (("web1",), "shop.example.com")
    hosts = [h.name for h in env.hosts]
    assert [b.split("=")[0] for b in result.proxy.backends] == hosts
    assert all(b.endswith(":8000") for b in result.proxy.backends)


def test_plan_shows_where_several_instances_of_a_host_listen(tmp_path: Path) -> None:
    from dataclasses import replace

    from deployer.session import Session

    s = session(tmp_path, Strategy(kind="all_at_once"))
    service = s.target.service.model_copy(update={"port": 8000})
    s = Session(replace(s.target, service=service, instances={"web2": 3}))
    result = plan(s, FakeTarget(s, Scenario()), version="v2", artifact_path=None)
    ports = {h.host: h.ports for h in result.hosts}
    assert ports["web2"] == (8000, 8001, 8002)
    assert ports["web1"] == ()  # one instance: the plain service
