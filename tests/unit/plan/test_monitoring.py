"""Monitoring artefacts: golden prometheus.yml and dashboard.json, and their structure.

Each tests/golden/monitoring/<case>/ holds a deploy.yml with one environment and the expected
`scrape_config_yaml` (prometheus.yml) and `dashboard_json` (dashboard.json) of it.

After an intended change, regenerate them and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/plan/test_monitoring.py
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.config.loader import load_project
from deployer.config.models import App
from deployer.config.resolve import Target, resolve
from deployer.errors import ConfigError
from deployer.plan.monitoring import (
    RELEASE_INFO_METRIC,
    dashboard,
    dashboard_json,
    dashboard_uid,
    error_ratio_query,
    latency_query,
    monitoring_problems,
    prometheus_url,
    release_info_query,
    request_rate_query,
    request_volume_query,
    scrape_config,
    scrape_config_yaml,
    watch_checks,
)

GOLDEN = Path(__file__).parents[2] / "golden" / "monitoring"
CASES = sorted(p.parent for p in GOLDEN.glob("*/deploy.yml"))
OUTPUTS = {"prometheus.yml": scrape_config_yaml, "dashboard.json": dashboard_json}


def _target(case: Path) -> Target:
    loaded = load_project(case / "deploy.yml")
    (env,) = loaded.project.environments
    return resolve(loaded, env)


def _write(tmp_path: Path, text: str) -> Target:
    (tmp_path / "deploy.yml").write_text(text)
    return _target(tmp_path)


HELLO = GOLDEN / "hello"
MULTI = GOLDEN / "multi_component_ipv6"


@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(case: Path, output: str) -> None:
    text = OUTPUTS[output](_target(case))
    expected = case / output
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected.write_text(text, encoding="utf-8")
    assert text == expected.read_text(encoding="utf-8")


def test_golden_cases_exist() -> None:
    assert {"hello", "multi_component_ipv6"} <= {c.name for c in CASES}


# -- PromQL ---------------------------------------------------------------------------------


def _balanced(expr: str) -> bool:
    """Brackets match outside double-quoted strings, and every string is closed."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    quoted = escaped = False
    for ch in expr:
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack and not quoted


@pytest.mark.parametrize("bad", ["(a", "a)", "{[}]", 'x{a="}"', "[(])"])
def test_balance_checker_rejects_unbalanced(bad: str) -> None:
    assert not _balanced(bad)


def test_queries_filter_on_job_and_environment_and_use_the_configured_names() -> None:
    target = _target(MULTI)
    selector = '{job="shop.api", environment="prod-eu.1"}'
    assert request_rate_query(target, "5m") == (
        f"sum by (status) (rate(shop_http_requests_total{selector}[5m]))"
    )
    assert error_ratio_query(target, "$window") == (
        '100 * (sum(rate(shop_http_requests_total{job="shop.api", environment="prod-eu.1", '
        f'status=~"5.."}}[$window])) or vector(0)) '
        f"/ sum(rate(shop_http_requests_total{selector}[$window]))"
    )
    assert latency_query(target, "1m", 0.5) == (
        "1000 * histogram_quantile(0.5, sum by (le) "
        f"(rate(shop_http_request_duration_seconds_bucket{selector}[1m])))"
    )
    assert request_volume_query(target, "$window") == (
        f"sum(increase(shop_http_requests_total{selector}[$window]))"
    )
    assert release_info_query(target) == (
        f'{RELEASE_INFO_METRIC}{{job="node", app="shop.api", environment="prod-eu.1"}}'
    )


@pytest.mark.parametrize("window", ["5m) or vector(1", "", "$", "5 m", "1x"])
def test_a_window_that_is_not_a_range_is_refused(window: str) -> None:
    with pytest.raises(ValueError, match="not a PromQL range"):
        request_rate_query(_target(HELLO), window)


def test_quantile_outside_0_1_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        latency_query(_target(HELLO), "5m", 95)


# -- watch checks ---------------------------------------------------------------------------


def test_watch_checks_carry_the_configured_thresholds_and_windows() -> None:
    target = _target(MULTI)
    checks = {c["name"]: c for c in watch_checks(target)}
    assert list(checks) == ["error_rate", "p95_latency"]
    assert checks["error_rate"]["threshold"] == 2.5
    assert checks["error_rate"]["window"] == 120
    assert checks["error_rate"]["unit"] == "%"
    # the environment overrides threshold_ms only; the window comes from the project
    assert checks["p95_latency"]["threshold"] == 900
    assert checks["p95_latency"]["window"] == 60
    assert checks["p95_latency"]["unit"] == "ms"
    for check in checks.values():
        assert check["min_volume"] == 50
        assert check["volume_query"] == request_volume_query(target, "$window")
    assert checks["error_rate"]["query"] == error_ratio_query(target, "$window")
    assert checks["p95_latency"]["query"] == latency_query(target, "$window", 0.95)


def test_watch_checks_defaults_and_plain_json() -> None:
    checks = watch_checks(_target(HELLO))
    assert [(c["threshold"], c["window"], c["min_volume"]) for c in checks] == [
        (5.0, 300, 20),
        (2000, 300, 20),
    ]
    assert json.loads(json.dumps(checks)) == checks
    for check in checks:
        assert set(check) == {
            "name",
            "query",
            "threshold",
            "unit",
            "window",
            "volume_query",
            "min_volume",
        }
        for expr in (check["query"], check["volume_query"]):
            assert "[$window]" in expr
            assert _balanced(expr)


# -- release info ---------------------------------------------------------------------------


# -- prometheus.yml -------------------------------------------------------------------------


def _jobs(target: Target) -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in scrape_config(target)["scrape_configs"]}


def test_scrape_targets_use_private_addresses_and_bracket_ipv6() -> None:
    target = _target(MULTI)
    jobs = _jobs(target)
    assert list(jobs) == ["shop.api", "node", "prometheus"]
    app = {c["labels"]["host"]: c["targets"] for c in jobs["shop.api"]["static_configs"]}
    assert app == {
        "fe1": ["10.1.0.1:8080"],
        "fe2": ["[fd00::12]:8080"],
        "be1": ["10.1.0.20:8080"],
        "wk1": ["[2001:db8::30]:8080"],  # no private_address: falls back to address
    }
    node = [c["targets"] for c in jobs["node"]["static_configs"]]
    assert node == [
        ["10.1.0.1:9200"],
        ["[fd00::12]:9200"],
        ["10.1.0.20:9200"],
        ["[2001:db8::30]:9200"],
    ]
    addresses = {h.address for h in target.hosts if h.private_address != h.address}
    for job in jobs.values():
        for config in job["static_configs"]:
            for address in config["targets"]:
                assert address.rsplit(":", 1)[0].strip("[]") not in addresses
    assert jobs["prometheus"]["static_configs"] == [
        {"targets": ["localhost:9091"], "labels": {"host": "be1", "environment": "prod-eu.1"}}
    ]


def test_scrape_labels_and_settings() -> None:
    target = _target(MULTI)
    config = scrape_config(target)
    assert config["global"] == {"scrape_interval": "15s", "evaluation_interval": "15s"}
    jobs = _jobs(target)
    assert jobs["shop.api"]["metrics_path"] == "/internal/metrics"
    assert jobs["node"]["honor_labels"] is True
    labels = {c["labels"]["host"]: c["labels"] for c in jobs["node"]["static_configs"]}
    assert labels["fe1"] == {
        "host": "fe1",
        "environment": "prod-eu.1",
        "component": "frontend,backend",
    }
    assert labels["wk1"]["component"] == "worker"


def test_scrape_config_yaml_is_the_config_with_a_header() -> None:
    target = _target(HELLO)
    text = scrape_config_yaml(target)
    assert text.startswith("# Generated by deployer for app hello, environment lab.\n")
    assert yaml.safe_load(text) == scrape_config(target)
    assert scrape_config_yaml(_target(HELLO)) == text


_NO_PORT = """\
app: {name: hello}
service: {command: /bin/true}
health: {command: {run: /bin/true}}
environments:
  prod:
    hosts: {web: [{address: 10.0.0.1}]}
    features: {monitoring: %s}
"""


def test_no_service_port_is_refused_by_the_config_and_by_the_plan(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        _write(tmp_path, _NO_PORT % "true")
    assert any(
        d.startswith("environments.prod.features.monitoring: needs service.port")
        for d in refused.value.details
    )
    ported = _write(tmp_path, (_NO_PORT % "true").replace("/bin/true}", "/bin/true, port: 80}", 1))
    target = replace(ported, service=ported.service.model_copy(update={"port": None}))
    assert monitoring_problems(target) == [
        "service.port: required when features.monitoring is on (Prometheus scrapes /metrics on it)"
    ]
    with pytest.raises(ValueError, match=r"service\.port: required"):
        scrape_config(target)
    assert dashboard(target)["panels"]  # the dashboard does not need the port


def test_monitoring_off_is_an_error(tmp_path: Path) -> None:
    target = _write(tmp_path, _NO_PORT % "false")
    with pytest.raises(ValueError, match=r"features\.monitoring is off"):
        scrape_config(target)
    with pytest.raises(ValueError, match=r"features\.monitoring is off"):
        watch_checks(target)
    with pytest.raises(ValueError, match=r"features\.monitoring is off"):
        dashboard(target)


def test_an_app_named_like_a_builtin_job_is_refused(tmp_path: Path) -> None:
    text = (HELLO / "deploy.yml").read_text().replace("name: hello", "name: node")
    with pytest.raises(ConfigError) as refused:
        _write(tmp_path, text)
    assert any("'node' is taken by a built-in Prometheus job" in d for d in refused.value.details)
    target = replace(_target(HELLO), app=App(name="node"))
    (problem,) = monitoring_problems(target)
    assert problem.startswith("app.name: 'node' is also the name of a built-in scrape job")
    with pytest.raises(ValueError, match="built-in scrape job"):
        scrape_config(target)


# -- dashboard ------------------------------------------------------------------------------


def _panels(target: Target) -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in dashboard(target)["panels"]}


def _exprs(panel: dict[str, Any]) -> list[str]:
    return [t["expr"] for t in panel["targets"]]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_panels_are_well_formed(case: Path) -> None:
    panels = dashboard(_target(case))["panels"]
    assert len(panels) == 6
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids)
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        pos = panel["gridPos"]
        assert min(pos["x"], pos["y"]) >= 0
        assert min(pos["w"], pos["h"]) > 0
        assert pos["x"] + pos["w"] <= 24
        assert panel["targets"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids)
        for query in panel["targets"]:
            assert query["datasource"] == panel["datasource"]
            assert _balanced(query["expr"]), query["expr"]
            assert query["legendFormat"]
    for a, b in itertools.combinations(panels, 2):
        p, q = a["gridPos"], b["gridPos"]
        apart = (
            p["x"] + p["w"] <= q["x"]
            or q["x"] + q["w"] <= p["x"]
            or p["y"] + p["h"] <= q["y"]
            or q["y"] + q["h"] <= p["y"]
        )
        assert apart, (a["title"], b["title"])


@pytest.mark.parametrize(
    ("case", "requests", "duration"),
    [
        (HELLO, "hello_requests_total", "hello_request_duration_seconds_bucket"),
        (MULTI, "shop_http_requests_total", "shop_http_request_duration_seconds_bucket"),
    ],
    ids=["hello", "multi"],
)
def test_every_expr_uses_the_configured_metric_names(
    case: Path, requests: str, duration: str
) -> None:
    panels = _panels(_target(case))
    expected = {
        "Requests per second by status": requests,
        "Error rate (5xx)": requests,
        "Response time": duration,
        "Version per host": RELEASE_INFO_METRIC,
        "CPU busy": "node_cpu_seconds_total",
        "Memory available": "node_memory_MemAvailable_bytes",
    }
    assert set(panels) == set(expected)
    for title, metric in expected.items():
        for expr in _exprs(panels[title]):
            assert f"{metric}{{" in expr, (title, expr)
            assert "$__rate_interval" in expr or "[" not in expr
    text = dashboard_json(_target(case))
    assert "http_requests_total" not in text.replace(requests, "")
    assert "http_request_duration_seconds" not in text.replace(duration, "")


def test_app_panels_filter_on_the_app_and_node_panels_on_node() -> None:
    panels = _panels(_target(HELLO))
    app_filter = 'job="hello", environment="lab"'
    for title in ("Requests per second by status", "Error rate (5xx)", "Response time"):
        assert all(app_filter in e for e in _exprs(panels[title])), title
    for title in ("Version per host", "CPU busy", "Memory available"):
        assert all('job="node"' in e for e in _exprs(panels[title])), title
        assert all('environment="lab"' in e for e in _exprs(panels[title])), title


def test_error_rate_panel_turns_red_at_the_configured_threshold() -> None:
    for case, threshold in ((HELLO, 5.0), (MULTI, 2.5)):
        target = _target(case)
        panel = _panels(target)["Error rate (5xx)"]
        assert _exprs(panel) == [error_ratio_query(target, "$__rate_interval")]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[-1] == {"color": "red", "value": threshold}
        assert steps[0]["value"] is None
        assert panel["fieldConfig"]["defaults"]["unit"] == "percent"


def test_latency_panel_shows_p50_and_p95_in_ms() -> None:
    target = _target(HELLO)
    panel = _panels(target)["Response time"]
    assert [(t["expr"], t["legendFormat"]) for t in panel["targets"]] == [
        (latency_query(target, "$__rate_interval", 0.5), "p50"),
        (latency_query(target, "$__rate_interval", 0.95), "p95"),
    ]
    assert panel["fieldConfig"]["defaults"]["unit"] == "ms"


def test_version_panel_is_a_host_and_version_table() -> None:
    target = _target(HELLO)
    panel = _panels(target)["Version per host"]
    assert panel["type"] == "table"
    (query,) = panel["targets"]
    assert query["expr"] == f"max by (host, version) ({release_info_query(target)})"
    assert query["format"] == "table"
    assert query["instant"] is True
    (organize,) = panel["transformations"]
    assert organize["options"]["indexByName"] == {"host": 0, "version": 1}


def test_dashboard_header_and_datasource_variable() -> None:
    board = dashboard(_target(MULTI))
    assert board["title"] == "shop.api · prod-eu.1"
    assert board["tags"] == ["deployer", "shop.api", "prod-eu.1"]
    assert board["schemaVersion"] == 39
    assert "__inputs" not in board
    (variable,) = board["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    assert board["uid"] == dashboard_uid("shop.api", "prod-eu.1")


@pytest.mark.parametrize(
    ("app", "environment"),
    [("hello", "lab"), ("shop.api", "prod-eu.1"), ("a" * 63, "b" * 63), ("a.b", "c")],
)
def test_dashboard_uid_is_short_safe_and_stable(app: str, environment: str) -> None:
    uid = dashboard_uid(app, environment)
    assert len(uid) <= 40
    assert all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in uid)
    assert dashboard_uid(app, environment) == uid


def test_dashboard_uids_differ_where_slugs_collide() -> None:
    assert dashboard_uid("a.b", "c") != dashboard_uid("a-b", "c")
    assert dashboard_uid("a-b", "c") != dashboard_uid("a", "b-c")


def test_dashboard_json_is_sorted_and_round_trips() -> None:
    target = _target(HELLO)
    text = dashboard_json(target)
    assert json.loads(text) == dashboard(target)
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_prometheus_url_is_the_servers_private_address() -> None:
    assert prometheus_url(_target(HELLO)) == "http://172.28.0.11:9090"  # the primary
    multi = _target(MULTI)
    assert prometheus_url(multi) == "http://10.1.0.20:9091"  # monitoring.server: be1
    fe2 = next(h for h in multi.hosts if h.name == "fe2")
    moved = replace(multi, monitoring=multi.monitoring.model_copy(update={"server": "fe2"}))  # type: ignore[union-attr]
    assert fe2.private_address == "fd00::12"
    assert prometheus_url(moved) == "http://[fd00::12]:9091"
