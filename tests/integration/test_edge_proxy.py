"""The edge proxy on real lab hosts: nginx from Debian in front of an app that binds its own
port (`listen: port`, so each restart closes the port). Under a steady load through the
proxies, v1 -> v2 and a broken v3 rolled back automatically fail no request: each batch is
drained from every proxy before it restarts and put back after its health check."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Project

pytestmark = pytest.mark.integration

MAX_SECONDS = 240.0
RATE = 60  # requests per second, spread over the proxies


@dataclass
class Load:
    """GETs at a steady rate through every proxy; counts every answer that is not a 200."""

    proxies: list[str]
    domain: str
    stop: threading.Event = field(default_factory=threading.Event)
    sent: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    threads: list[threading.Thread] = field(default_factory=list)

    def _one(self, address: str) -> None:
        conn = http.client.HTTPConnection(address, 80, timeout=5)
        try:
            conn.request("GET", "/", headers={"Host": self.domain})
            response = conn.getresponse()
            body = response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            self.failures[type(exc).__name__] += 1
            return
        finally:
            conn.close()
        if response.status != 200:
            self.failures[f"http {response.status}"] += 1
        else:
            self.versions[body.strip().rsplit(" ", 1)[-1]] += 1

    def _run(self) -> None:
        started = time.monotonic()
        while not self.stop.is_set() and time.monotonic() - started < MAX_SECONDS:
            worker = threading.Thread(target=self._one, args=(self.proxies[self.sent % 2],))
            worker.start()
            self.threads.append(worker)
            self.sent += 1
            time.sleep(max(0.0, started + self.sent / RATE - time.monotonic()))

    def __enter__(self) -> Load:
        runner = threading.Thread(target=self._run, daemon=True)
        runner.start()
        self.threads.append(runner)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


def test_requests_through_the_proxy_never_fail_during_a_deploy_or_a_rollback(
    project: Project,
) -> None:
    domain = f"{project.app}.lab.test"
    project.edit(
        {
            "service": {"listen": "port"},
            "strategy": {"kind": "rolling", "batch_size": 1, "failure_budget": 0},
            "environments": {"lab": {"hosts": {"web": "lab"}, "domain": domain}},
        }
    )
    first = project.cli("deploy", "lab", "--version", "v1", "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    hosts = project.lab.hosts
    proxies = [h.ip for h in hosts[:2]]  # container addresses, reachable from here
    for host in hosts:  # nginx checked the files and serves the site on every host
        assert project.ssh(host, "systemctl is-active nginx").stdout.strip() == "active"
    with Load(proxies, domain) as load:
        time.sleep(2)
        good = project.cli("deploy", "lab", "--version", "v2", "--json")
        assert good.returncode == 0, good.stderr[-3000:]
        broken = project.cli("deploy", "lab", "--version", "v3", "--artifact", "broken", "--json")
        time.sleep(2)
    assert broken.returncode == 1, broken.stderr[-3000:]
    assert json.loads(broken.stdout)["status"] == "ROLLED_BACK"
    assert load.sent > 200
    assert sum(load.failures.values()) == 0, (load.failures, load.sent)
    assert {"v1", "v2"} <= set(load.versions), load.versions
    assert "v3" not in load.versions  # the broken release never took a request
    assert set(project.current().values()) == {"v2"}
    # every proxy has every host back in its upstreams, and logs JSON (features.logging)
    upstreams = f"/etc/nginx/deployer/{project.app}-lab/upstreams.conf"
    log = f"/var/log/nginx/deployer-{project.app}-lab.access.log"
    for host in hosts:
        text = project.ssh(host, f"cat {upstreams}").stdout
        assert " down" not in text, (host.name, text)
        line = project.ssh(host, f"sudo tail -n 1 {log}").stdout.strip()
        if line:
            assert json.loads(line)["host"] == domain
