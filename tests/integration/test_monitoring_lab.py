"""Monitoring on real lab hosts: Debian's Prometheus and node exporter set up by deployer,
the generated scrape configuration and dashboard queries answered by the real Prometheus, and
a release whose error rate climbs after a clean health check rolled back by the PromQL rule."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from deployer.config.loader import load_project
from deployer.config.resolve import resolve
from deployer.lab.hosts import load_lab
from deployer.plan.monitoring import RATE_INTERVAL, dashboard

if TYPE_CHECKING:
    from conftest import Project

pytestmark = pytest.mark.integration


class Traffic:
    """A steady trickle of GET / to every host's app, from the control host."""

    def __init__(self, targets: list[tuple[str, int]], per_second: float = 40.0) -> None:
        self.targets, self.pause = targets, 1.0 / per_second
        self.codes: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            ip, port = self.targets[i % len(self.targets)]
            i += 1
            try:
                with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=2) as response:
                    code = response.status
            except urllib.error.HTTPError as exc:
                code = exc.code
            except OSError:
                code = 0
            self.codes[code] = self.codes.get(code, 0) + 1
            time.sleep(self.pause)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def prometheus(project: Project, query: str) -> list[dict[str, Any]]:
    """An instant query against the lab's real Prometheus (on lab1, reached at its IP)."""
    server = project.lab.hosts[0]
    url = f"http://{server.ip}:9090/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for(what: str, check: Any, seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {value!r})")
        time.sleep(1)


def failing_variant(project: Project) -> Path:
    """The app with GET / answering 500 to every other request; /healthz stays fine."""
    root = project.root / "flaky"
    shutil.copytree(project.root / "app", root)
    source = root / "app.py"
    text = source.read_text()
    good = 'code, body, kind = 200, f"hello from {VERSION}\\n", "text/plain; charset=utf-8"'
    assert good in text
    flaky = (
        "code, body, kind = (500 if METRICS.count % 2 else 200), "
        'f"hello from {VERSION}\\n", "text/plain; charset=utf-8"'
    )
    source.write_text(text.replace(good, flaky))
    return root


@pytest.fixture
def monitored(project: Project) -> Project:
    project.edit(
        {
            "environments": {
                "lab": {
                    "features": {"monitoring": True},
                    "monitoring": {
                        "server": project.lab.hosts[0].name,
                        "scrape_interval": 1,
                        "min_requests": 10,
                        "metrics": {
                            "requests": "hello_requests_total",
                            "duration": "hello_request_duration_seconds",
                        },
                    },
                    "strategy": {"kind": "all_at_once"},
                    "rollback": {
                        "watch": 20,
                        "health_checks": {"threshold": 2, "period": 2},
                        "error_rate": {"threshold": 20, "window": 15},
                        "response_time": {"threshold_ms": 2000, "window": 15},
                    },
                }
            }
        }
    )
    return project


def test_a_rising_error_rate_after_a_clean_health_check_rolls_the_fleet_back(
    monitored: Project,
) -> None:
    project = monitored
    hosts = project.lab.hosts
    targets = [(h.ip, project.port) for h in hosts]

    setup = project.json("monitoring", "setup", "lab")
    assert {h["status"] for h in setup["hosts"]} <= {"ok", "changed"}, setup
    assert setup["server"] == hosts[0].name

    first = project.json("deploy", "lab", "--version", "v1")
    assert first["status"] == "SUCCEEDED", first
    with Traffic(targets) as good:  # judged by the rules, and found fine
        second = project.json("deploy", "lab", "--version", "v1.1")
    assert second["status"] == "SUCCEEDED", second
    assert set(good.codes) == {200}, good.codes
    assert good.codes[200] > 100

    # The generated scrape configuration reaches every host's app and node exporter.
    app_up = wait_for(
        "every app target up",
        lambda: len(up := prometheus(project, f'up{{job="{project.app}"}} == 1')) == 4 and up,
    )
    assert {r["metric"]["host"] for r in app_up} == {h.name for h in hosts}
    # Labelled as deployer's configuration labels them: Debian's package starts Prometheus with
    # its own default job `node` on localhost:9100 before deployer's configuration replaces
    # it, and that series lingers for up to the 5-minute lookback after the restart.
    assert len(prometheus(project, 'up{job="node",environment="lab"} == 1')) == 4
    versions = wait_for(
        "the release info of every host",
        lambda: prometheus(project, f'deployer_release_info{{app="{project.app}"}}'),
    )
    assert {(r["metric"]["host"], r["metric"]["version"]) for r in versions} == {
        (h.name, "v1.1") for h in hosts
    }

    # Every query of the generated dashboard is valid PromQL that the real Prometheus answers.
    target = resolve(load_project(project.root / "deploy.yml"), "lab", load_lab(project.lab.name))
    exprs = [t["expr"] for p in dashboard(target)["panels"] for t in p["targets"]]
    assert len(exprs) >= 6
    for expr in exprs:
        prometheus(project, expr.replace(RATE_INTERVAL, "1m"))
    assert prometheus(project, exprs[0].replace(RATE_INTERVAL, "1m")), "no request rate"

    # v2 passes its health checks, then fails half of its users: the PromQL rule catches it.
    flaky = failing_variant(project)
    with Traffic(targets) as traffic:
        third = project.json("deploy", "lab", "--version", "v2", "--artifact", str(flaky), expect=1)
    assert traffic.codes.get(500, 0) > 0, traffic.codes
    assert third["status"] == "ROLLED_BACK", third
    assert third["stage"] == "watch"
    assert "error_rate" in third["reason"], third
    assert "Prometheus on" in third["reason"]
    assert set(project.current().values()) == {"v1.1"}
    marks = {r["version"]: r["marks"] for r in project.json("releases", "lab")["releases"]}
    assert "bad" in marks["v2"]
    status = project.json("status", "lab")
    assert {h["current"] for h in status["hosts"]} == {"v1.1"}
    assert status["problems"] == []

    def versions_now() -> set[str]:
        series = prometheus(project, f'deployer_release_info{{app="{project.app}"}}')
        return {r["metric"]["version"] for r in series}

    wait_for("the release info back on v1.1", lambda: versions_now() == {"v1.1"})

    # What the watch window measured is in the ledger and in the KPIs.
    measured = {d["version"]: d for d in project.json("history", "lab")}
    assert measured["v1.1"]["error_rate"] == 0.0
    assert measured["v1.1"]["p95_ms"] is not None
    assert measured["v2"]["error_rate"] > 20
    (env,) = project.json("stats", "lab")["environments"]
    assert env["error_rate"]["count"] >= 2  # v1.1 and v2 at least (v1 saw only probes)
    assert env["error_rate"]["last"] == measured["v2"]["error_rate"]


def test_the_accessories_exporters_are_scraped_and_the_dashboard_shows_them(
    project: Project,
) -> None:
    """With monitoring on, Debian's PostgreSQL and Redis exporters run on the data host and
    Prometheus scrapes them; the dashboard's connections and memory panels have data."""
    lab = project.lab
    project.edit(
        {
            "service": {"uses": ["database", "cache"]},
            "environments": {
                "lab": {
                    "hosts": {"web": "lab[0:2]", "data": "lab[2]"},
                    "database": {"type": "postgresql", "component": "data"},
                    "cache": {"type": "redis", "component": "data", "port": project.port + 100},
                    "features": {"monitoring": True},
                    "monitoring": {"server": lab.hosts[0].name, "scrape_interval": 1},
                    "strategy": {"kind": "all_at_once"},
                }
            },
        }
    )
    data = lab.hosts[2]
    try:
        first = project.json("deploy", "lab", "--version", "v1")
        assert first["status"] == "SUCCEEDED", first
        up = wait_for(
            "both exporters up",
            lambda: (
                len(
                    r := prometheus(project, '{__name__=~"pg_up|redis_up", environment="lab"} == 1')
                )
                == 2
                and r
            ),
        )
        assert {(r["metric"]["job"], r["metric"]["host"]) for r in up} == {
            ("postgres", data.name),
            ("redis", data.name),
        }
        target = resolve(load_project(project.root / "deploy.yml"), "lab", load_lab(lab.name))
        panels = {p["title"]: p for p in dashboard(target)["panels"]}
        memory = panels["Redis memory"]["targets"][0]["expr"]
        assert (
            float(wait_for("redis memory", lambda: prometheus(project, memory))[0]["value"][1]) > 0
        )
        connections = panels["Database connections"]["targets"][0]["expr"]
        prometheus(project, connections)  # valid PromQL the real Prometheus answers
        # the Redis password reaches the exporter from a root-only file, never its argv
        password = project.ssh(
            data, f"sudo cat /etc/deployer/accessories/{project.app}-lab/redis.password"
        ).stdout.strip()
        argv = project.ssh(data, "ps -eo args | grep [r]edis-exporter").stdout
        assert password
        assert password not in argv
    finally:
        name = f"{project.app}-lab"
        project.ssh(
            data,
            f"sudo systemctl disable --now redis-server@{name} prometheus-redis-exporter "
            f"prometheus-postgres-exporter; sudo rm -rf /etc/redis/redis-{name}.conf "
            f"/var/lib/redis/{name} /etc/deployer/accessories/{name} "
            "/etc/systemd/system/prometheus-redis-exporter.service.d; "
            f"sudo -u postgres psql -qc 'DROP DATABASE IF EXISTS {project.app} WITH (FORCE)' "
            f"-c 'DROP ROLE IF EXISTS {project.app}'; true",
        )
