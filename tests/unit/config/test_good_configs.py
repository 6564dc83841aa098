"""Good configs validate; environments override only the keys they set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from pydantic import BaseModel

from deployer.config.loader import load_project
from deployer.config.models import Environment, Health, Project, Section, Service, Strategy
from deployer.config.resolve import Target, resolve

GOOD = Path(__file__).parents[2] / "fixtures" / "configs" / "good"
CONFIGS = sorted(GOOD.glob("*.yml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_good_config_validates(path: Path, cli: Callable[..., Result]) -> None:
    result = cli("-c", path, "validate")
    assert result.exit_code == 0, result.output
    loaded = load_project(path)
    for env in loaded.project.environments:
        assert resolve(loaded, env).environment == env


def _unset_fields(model: BaseModel, where: str) -> list[str]:
    missing = [f"{where}.{n}" for n in type(model).model_fields if n not in model.model_fields_set]
    for name in model.model_fields_set:
        value = getattr(model, name)
        if isinstance(value, Section) and not isinstance(value, Environment):
            missing += _unset_fields(value, f"{where}.{name}")
    return missing


NOT_BUILT: set[str] = set()
"""Keys the schema knows but deployer refuses for target ssh until it acts on them."""
OTHER_STRATEGY = {
    "production.strategy.keep_warm",
    "production.strategy.steps",
    "production.strategy.analysis",
    "production.strategy.auto_promote",
    "production.strategy.decision_timeout",
}
"""Keys of strategies other than full.yml's (blue_green's, canary's), refused with its own."""
ELSEWHERE = {"production.ssh.nodes"}
"""Keys full.yml cannot set with the rest: execution nodes are refused together with its
jump hosts, monitoring, accessories and hooks (tests/fixtures/configs/good/execution_nodes.yml
sets every key of `ssh.nodes`)."""
ONE_OF = {
    "production.tls.certificate.from_env",
    "production.tls.key.from_env",
    "production.tls.acme",
}
"""The other source of a reference that names the vault, and the other certificate source
(a full ACME example: tests/golden/edge/acme)."""


def test_full_config_sets_every_key() -> None:
    project = load_project(GOOD / "full.yml").project
    # an app is the one `service` or `services` (tests/golden/services), never both
    # the hooks' `service` is for an app of several; `uses` is set where the database is
    assert set(_unset_fields(project, "(top)")) == {
        "(top).service.uses",
        "(top).services",
        "(top).hooks.before_switch.service",
        "(top).hooks.after_switch.service",
        "(top).hooks.after_rollback.service",
        "(top).hooks.after_failure.service",
        # a SQLite file (`path`) or PostgreSQL (`url`, `password`): test_ledger_config.py
        "(top).ledger.url",
        "(top).ledger.password",
        # blue_green only (refused with full.yml's rolling): tests/unit/config/test_bluegreen.py
        "(top).strategy.keep_warm",
        # canary only (refused with full.yml's rolling): tests/unit/config/test_canary.py
        "(top).strategy.steps",
        "(top).strategy.analysis",
        "(top).strategy.auto_promote",
        "(top).strategy.decision_timeout",
    }
    unset = _unset_fields(project.environments["production"], "production")
    assert set(unset) == NOT_BUILT | ONE_OF | OTHER_STRATEGY | ELSEWHERE


def _target(env: str) -> Target:
    return resolve(load_project(GOOD / "override.yml"), env)


def _changed(section: type[BaseModel], base: BaseModel, other: BaseModel) -> set[str]:
    return {n for n in section.model_fields if getattr(base, n) != getattr(other, n)}


def test_environment_without_overrides_takes_the_project_sections() -> None:
    project = load_project(GOOD / "override.yml").project
    target = _target("production")
    features = {"DEPLOYER_DEBUG": "0", "DEPLOYER_LOGGING": "1"}
    assert target.service == project.service.model_copy(
        update={"env": {**project.service.env, **features}}
    )
    assert target.health == project.health
    assert target.strategy == project.strategy
    assert target.keep_releases == project.keep_releases == 4


def test_partial_service_override() -> None:
    prod, staging = _target("production").service, _target("staging").service
    assert _changed(Service, prod, staging) == {"port", "env", "resources"}
    assert staging.port == 9000
    assert staging.command == prod.command == "/usr/bin/python3 app.py"
    assert staging.deploy_to == "/srv/myapp"
    assert staging.resources.memory == "1Gi"
    assert staging.resources.cpu == prod.resources.cpu == 1


def test_service_env_maps_merge_key_by_key() -> None:
    features = {"DEPLOYER_DEBUG": "0", "DEPLOYER_LOGGING": "1"}
    assert _target("production").service.env == {"LOG_LEVEL": "info", "REGION": "eu", **features}
    assert _target("staging").service.env == {
        "LOG_LEVEL": "debug",
        "REGION": "eu",
        "FEATURE_X": "on",
        **features,
    }


def test_partial_health_override() -> None:
    prod, staging = _target("production").health, _target("staging").health
    assert _changed(Health, prod, staging) == {"http", "retries"}
    assert staging.retries == 3
    assert staging.interval == prod.interval == 0.5
    assert staging.http is not None
    assert prod.http is not None
    assert staging.http.path == "/ready"
    assert staging.http.status == prod.http.status == 204


def test_partial_strategy_override() -> None:
    prod, staging = _target("production").strategy, _target("staging").strategy
    assert _changed(Strategy, prod, staging) == {"batch_size"}
    assert staging.batch_size == "50%"
    assert staging.failure_budget == prod.failure_budget == 1


def test_full_config_environment_overrides_everything() -> None:
    loaded = load_project(GOOD / "full.yml")
    target = resolve(loaded, "production")
    env = loaded.project.environments["production"]
    assert env.service is not None
    assert target.service.env == {
        "LOG_LEVEL": "info",
        "REGION": "us",
        "DEPLOYER_DEBUG": "0",
        "DEPLOYER_LOGGING": "1",
    }
    assert target.service.command == env.service.command
    assert target.keep_releases == 3
    assert target.primary == "web2"
    assert target.deploy_to == "/opt/shop-prod"
    assert target.service_user == "shopprod"
    assert target.ledger.path == loaded.directory / "state" / "ledger.sqlite3"
    assert target.known_hosts == (loaded.directory / "keys" / "known_hosts",)
    assert [h.name for h in target.hosts] == ["web1", "web2", "mon1"]  # db1: accessories only
    assert [h.name for h in target.accessory_hosts] == ["db1"]
    assert {h.name: h.private_key for h in target.every_host} == dict.fromkeys(
        ["web1", "web2", "db1", "mon1"], loaded.directory / "keys" / "deploy_ed25519"
    )
    assert {h.name: h.private_address for h in target.every_host} == {
        "web1": "203.0.113.10",
        "web2": "203.0.113.11",
        "db1": "203.0.113.20",
        "mon1": "10.0.0.30",
    }
    assert target.monitoring is not None
    assert target.monitoring_server == "mon1"
    assert target.monitoring.scrape_interval == 2
    assert target.monitoring.metrics.duration == "http_seconds"


def test_defaults_come_from_the_models() -> None:
    target = resolve(load_project(GOOD / "minimal.yml"), "staging")
    assert target.deploy_to == "/srv/myapp"
    assert target.service_user == "myapp"
    assert target.primary == "10.0.0.1"
    assert target.keep_releases == Project.model_fields["keep_releases"].default
    assert target.strategy == Strategy()
    assert target.hosts[0].user == "deploy"
    assert target.hosts[0].port == 22
    assert target.hosts[0].private_key is None
