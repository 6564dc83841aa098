"""Extra variables: health ports, the lock path, and no secret value anywhere."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from deployer import secrets
from deployer.config.loader import load_project
from deployer.config.resolve import Target, resolve
from deployer.plan import extravars
from deployer.plan.monitoring import canary_checks

CONFIG = """\
app:
  name: {app}
service:
  command: /usr/bin/python3 app.py
  port: 8000
  env: {{LOG_LEVEL: info}}
health:
  http: {{path: /healthz}}
  tcp: {{port: 9000}}
  command: {{run: /bin/true}}
  retries: 4
  interval: 0.25
secrets:
  env:
    DB_PASSWORD: {{from_env: TEST_DB_PASSWORD}}
    API_TOKEN: {{from_env: TEST_API_TOKEN}}
environments:
  {env}:
    hosts:
      web: [{{address: 10.0.0.1, name: web1}}, {{address: 10.0.0.2, name: web2}}]
"""


def _target(tmp_path: Path, app: str = "myapp", env: str = "staging") -> Target:
    config = tmp_path / app / env / "deploy.yml"
    config.parent.mkdir(parents=True)
    config.write_text(CONFIG.format(app=app, env=env))
    return resolve(load_project(config), env)


def test_health_vars_take_the_port_from_the_service(tmp_path: Path) -> None:
    health = extravars.health_vars(_target(tmp_path))
    assert health["http"]["port"] == 8000
    assert health["http"]["path"] == "/healthz"
    assert health["tcp"]["port"] == 9000  # its own port wins
    assert health["command"]["run"] == "/bin/true"
    assert (health["retries"], health["interval"]) == (4, 0.25)


def _with(target: Target, **changes: Any) -> Target:
    return replace(target, **changes)


def test_command_checks_run_as_the_service_user_unless_the_config_names_one(
    tmp_path: Path,
) -> None:
    target = _target(tmp_path)
    assert extravars.health_vars(target)["command"]["user"] == "myapp"
    service = target.service.model_copy(update={"user": "svc"})
    assert extravars.health_vars(_with(target, service=service))["command"]["user"] == "svc"
    assert target.health.command is not None
    as_root = target.health.command.model_copy(update={"user": "root"})
    health = target.health.model_copy(update={"command": as_root})
    assert extravars.health_vars(_with(target, health=health))["command"]["user"] == "root"


def test_health_vars_without_checks_are_none(tmp_path: Path) -> None:
    target = _target(tmp_path)
    only_tcp = target.health.model_copy(update={"http": None, "command": None})
    health = extravars.health_vars(_with(target, health=only_tcp))
    assert (health["http"], health["command"]) == (None, None)
    assert health["tcp"] == {"port": 9000, "timeout": 2.0}


def test_lock_path(tmp_path: Path) -> None:
    assert extravars.lock_path(_target(tmp_path)) == "/var/lib/deployer/locks/myapp/staging.lock"
    assert extravars.lock_vars(_target(tmp_path, env="prod"), "tok", {"pid": 1}, 60) == {
        "path": "/var/lib/deployer/locks/myapp/prod.lock",
        "token": "tok",
        "holder": {"pid": 1},
        "ttl": 60,
    }


def test_lock_paths_of_different_app_environment_pairs_differ(tmp_path: Path) -> None:
    one = extravars.lock_path(_target(tmp_path, app="shop-api", env="prod"))
    other = extravars.lock_path(_target(tmp_path, app="shop", env="api-prod"))
    assert one != other


def _canary(tmp_path: Path) -> Target:
    """The CONFIG's environment as a canary behind the edge proxy, monitored."""
    config = tmp_path / "canary" / "deploy.yml"
    config.parent.mkdir(parents=True)
    text = CONFIG.format(app="myapp", env="staging").replace("  tcp: {port: 9000}\n", "")
    text += "    domain: myapp.example.com\n    features: {monitoring: true}\n"
    text += "strategy: {kind: canary, analysis: 20}\nrollback: {watch: 30}\n"
    config.write_text(text)
    return resolve(load_project(config), "staging")


def _all_vars(
    target: Target, canary: Target | None = None
) -> dict[str, Callable[[], dict[str, Any]]]:
    hosts = list(target.host_names)
    canary = canary or target
    return {
        "canary_switch_vars": lambda: extravars.canary_switch_vars(canary, 10),
        "canary_shift_vars": lambda: extravars.canary_shift_vars(canary, "blue", 50),
        "canary_abort_vars": lambda: extravars.canary_abort_vars(canary, "green", hosts),
        "canary_analysis_vars": lambda: extravars.canary_analysis_vars(
            canary, canary_checks(canary, "green", "blue"), since=0.0
        ),
        "health_vars": lambda: extravars.health_vars(target),
        "lock_vars": lambda: extravars.lock_vars(target, "token", {"user": "me"}, 60),
        "lock_release_vars": lambda: extravars.lock_release_vars(target, "token"),
        "base_vars": lambda: extravars.base_vars(target, hosts),
        "prepare_vars": lambda: extravars.prepare_vars(
            target,
            hosts,
            version="1.0",
            artifact="/tmp/a.tgz",
            sha256="0" * 64,
            required_bytes=1,
            lock={"path": extravars.lock_path(target)},
        ),
        "switch_vars": lambda: extravars.switch_vars(target, hosts, "1.0"),
        "first_batch_vars": lambda: extravars.first_batch_vars(target, hosts[:1]),
        "rollback_vars": lambda: extravars.rollback_vars(
            target, dict.fromkeys(hosts, "0.9"), "1.0", "health check failed"
        ),
        "facts_vars": lambda: extravars.facts_vars(target, hosts, health=True),
        "watch_vars": lambda: extravars.watch_vars(target, hosts, since=0.0),
        "release_info_vars": lambda: extravars.release_info_vars(target),
        "monitoring_vars": lambda: extravars.monitoring_vars(target),
        "services_vars": lambda: extravars.services_vars(target, hosts),
    }


def _monitored(target: Target) -> Target:
    from deployer.config.models import Monitoring

    return _with(target, monitoring=Monitoring(scrape_interval=2))


def test_no_secret_value_in_any_extravars(tmp_path: Path) -> None:
    target = _monitored(_target(tmp_path))
    environ = {"TEST_DB_PASSWORD": "s3cr3t-db-Pa55", "TEST_API_TOKEN": "tok-9f8e7d6c5b4a"}
    values = secrets.resolve(target.secrets, target.project_dir, environ)
    assert sorted(values.values()) == sorted(environ.values())
    calls = _all_vars(target, _canary(tmp_path))
    in_module = {
        n
        for n, f in inspect.getmembers(extravars, inspect.isfunction)
        if n.endswith("_vars") and f.__module__ == extravars.__name__
    }
    assert set(calls) == in_module  # a new *_vars function must be added here
    for name, call in calls.items():
        dumped = json.dumps(call())
        for value in values.values():
            assert value not in dumped, name


def test_prepare_vars_carry_the_service_and_release(tmp_path: Path) -> None:
    target = _target(tmp_path)
    out = _all_vars(target)["prepare_vars"]()
    assert out["deployer_hosts"] == ["web1", "web2"]
    assert out["deployer_deploy_to"] == "/srv/myapp"
    assert out["deployer_service"] == {
        "env": {"LOG_LEVEL": "info", "DEPLOYER_DEBUG": "0", "DEPLOYER_LOGGING": "1"}
    }
    # the command and the port reach the hosts inside the units rendered for each host
    assert set(out["deployer_units"]) == {"web1", "web2"}
    units = out["deployer_units"]["web1"]
    assert "ExecStart=/usr/bin/python3 app.py\n" in units["myapp.service"]
    assert "Environment=PORT=8000\n" in units["myapp.service"]
    assert set(units) == {"myapp.service"}  # the app binds its own port: no socket unit
    assert out["deployer_service_user"] == "myapp"
    assert out["deployer_keep_releases"] == 5


def test_first_batch_vars_name_the_batch_and_what_the_switch_needs(tmp_path: Path) -> None:
    target = _monitored(_target(tmp_path))
    out = extravars.first_batch_vars(target, ["web1"])
    switch = extravars.switch_vars(target, ["web1"], "1.0")
    assert out["deployer_batch"] == ["web1"]
    assert out["deployer_health"] == switch["deployer_health"]
    assert out["deployer_release_info"] == switch["deployer_release_info"]
    assert "deployer_hosts" not in out  # the prepare run's hosts stay the whole fleet


def test_watch_period_is_capped_by_the_watch(tmp_path: Path) -> None:
    target = _target(tmp_path)
    watch = target.rollback.model_copy(update={"watch": 30})
    assert extravars.watch_vars(_with(target, rollback=watch), [], since=0.0)["deployer_watch"] == {
        "duration": 30,
        "period": 30,
        "threshold": 3,
        "grace": 0,
    }


def test_monitoring_off_adds_nothing(tmp_path: Path) -> None:
    target = _target(tmp_path)
    assert target.monitoring is None
    assert extravars.monitoring_vars(target) == extravars.release_info_vars(target) == {}
    assert "deployer_promql" not in extravars.watch_vars(target, [], since=0.0)
    assert "deployer_release_info" not in extravars.switch_vars(target, [], "1.0")


def test_monitoring_on_sets_up_prometheus_on_the_server_and_records_releases(
    tmp_path: Path,
) -> None:
    target = _monitored(_target(tmp_path))
    setup = extravars.monitoring_vars(target)["deployer_monitoring"]
    assert setup["server"] == target.primary
    assert setup["prometheus_config"]["global"]["scrape_interval"] == "2s"
    path = setup["textfile_dir"] + "/deployer-myapp-staging.prom"
    info = {"path": path, "environment": "staging"}
    assert extravars.switch_vars(target, [], "1.0")["deployer_release_info"] == info
    rollback = extravars.rollback_vars(target, {}, None, "")
    assert rollback["deployer_release_info"] == info


def test_watch_evaluates_the_rollback_rules_in_prometheus(tmp_path: Path) -> None:
    target = _monitored(_target(tmp_path))
    rules = target.rollback.model_copy(update={"watch": 30})
    out = extravars.watch_vars(_with(target, rollback=rules), ["a"], since=1234.5)
    promql = out["deployer_promql"]
    assert promql["server"] == target.primary
    assert promql["url"] == "http://127.0.0.1:9090"
    assert (promql["duration"], promql["since"], promql["min_window"]) == (30, 1234.5, 5)
    assert [c["name"] for c in promql["checks"]] == ["error_rate", "p95_latency"]
    assert promql["checks"][0]["threshold"] == target.rollback.error_rate.threshold
    assert promql["checks"][1]["threshold"] == target.rollback.response_time.threshold_ms


def test_a_canary_s_runs_carry_only_the_controller_s_texts(tmp_path: Path) -> None:
    canary = _canary(tmp_path)
    first = extravars.canary_switch_vars(canary, 10)
    assert first["deployer_canary_share"] == 10
    assert set(first["deployer_canary"]["proxy"]["upstreams"]) == {"blue", "green"}
    shift = extravars.canary_shift_vars(canary, "green", 50)["deployer_canary_upstreams"]
    assert shift["hosts"] == ["web1", "web2"]  # the edge proxy runs on every host here
    assert "10.0.0.1:8001 weight=50 " in shift["text"]
    assert "10.0.0.1:8000 weight=50 " in shift["text"]
    abort = extravars.canary_abort_vars(canary, "green", ["web1", "web2"])
    assert "8000" not in abort["deployer_canary_upstreams"]["text"]  # 0 % to the blue slots
    assert abort["deployer_canary_stop"] == {
        "hosts": ["web1", "web2"],
        "unit": "myapp:blue.service",
    }


def test_a_canary_s_analysis_runs_on_the_monitoring_server_over_its_window(
    tmp_path: Path,
) -> None:
    canary = _canary(tmp_path)
    checks = canary_checks(canary, "green", "blue")
    out = extravars.canary_analysis_vars(canary, checks, since=123.0)["deployer_canary_analysis"]
    assert out["server"] == "web1"
    assert (out["duration"], out["since"], out["period"]) == (20, 123.0, 5)
    assert [c["name"] for c in out["checks"]][:2] == ["error_rate", "p95_latency"]
