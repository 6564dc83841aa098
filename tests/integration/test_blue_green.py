"""Blue-green on real lab hosts, under a steady load through the edge proxy (nginx from
Debian on every host) of an app that binds its own port: v1, then v2 started in the other
slot and the proxies flipped to it, then `deployer rollback` within the keep-warm time (a
flip back to the slot still running v1: nothing restarts), then a broken v3 that never
comes up in its slot, so nothing flips. No request fails, v3 never answers one, and each
host says which slot is live and which one it stops later. And a release that passes its
checks, is flipped to and then fails in the watch window: the fleet is flipped back to the
slot still running the previous release, again without a failed request."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from test_edge_proxy import Load

if TYPE_CHECKING:
    from conftest import Project

pytestmark = pytest.mark.integration


def _slots(project: Project, host: object) -> dict[str, str]:
    """Where each slot link and `live` point on `host`, and each slot unit's state."""
    root = f"/srv/{project.app}/slots"
    out: dict[str, str] = {}
    for name in ("live", "blue", "green"):
        proc = project.ssh(host, f"readlink {root}/{name}")
        out[name] = proc.stdout.strip().rsplit("/", 1)[-1] if proc.returncode == 0 else ""
    for slot in ("blue", "green"):
        unit = f"{project.app}:{slot}.service"
        out[f"{slot}.state"] = project.ssh(host, f"systemctl is-active {unit}").stdout.strip()
        timer = f"{project.app}:retire-{slot}.timer"
        out[f"{slot}.timer"] = project.ssh(host, f"systemctl is-active {timer}").stdout.strip()
    return out


def _remove_slots(project: Project) -> None:
    app = project.app
    for host in project.lab.hosts:
        project.ssh(
            host,
            f"sudo systemctl stop '{app}:*'; sudo systemctl disable '{app}:blue.service' "
            f"'{app}:green.service'; sudo rm -f '/etc/systemd/system/{app}:'*; "
            "sudo systemctl daemon-reload; sudo systemctl reset-failed",
        )


def test_blue_green_deploy_and_rollback_fail_no_request_through_the_proxy(
    project: Project,
) -> None:
    domain = f"{project.app}.lab.test"
    project.edit(
        {
            "service": {"listen": "port"},
            "health": {"retries": 10, "interval": 0.5},
            "rollback": {"watch": 3},
            "environments": {"lab": {"hosts": {"web": "lab"}, "domain": domain}},
        }
    )
    config = yaml.safe_load((project.root / "deploy.yml").read_text())
    config["strategy"] = {"kind": "blue_green", "keep_warm": 60}  # no batches: one flip
    (project.root / "deploy.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    hosts = project.lab.hosts
    port = project.port
    try:
        plan = project.json("plan", "lab", "--version", "v1")
        actions = [s["action"] for s in plan["steps"]]
        assert "flip" in actions, plan

        first = project.cli("deploy", "lab", "--version", "v1", "--json")
        assert first.returncode == 0, first.stderr[-3000:]
        for host in hosts:  # a first deploy starts in green: blue is the service's own port
            slots = _slots(project, host)
            assert (slots["live"], slots["green"], slots["green.state"]) == (
                "green",
                "v1",
                "active",
            )
            upstreams = project.ssh(
                host, f"cat /etc/nginx/deployer/{project.app}-lab/upstreams.conf"
            ).stdout
            assert f":{port + 1} " in upstreams, upstreams
            assert f":{port} " not in upstreams, upstreams

        proxies = [h.ip for h in hosts[:2]]
        with Load(proxies, domain) as load:
            time.sleep(2)
            good = project.cli("deploy", "lab", "--version", "v2", "--json")
            assert good.returncode == 0, good.stderr[-3000:]
            for host in hosts:  # v2 live in blue; green keeps v1 running, its stop scheduled
                slots = _slots(project, host)
                assert (slots["live"], slots["blue"]) == ("blue", "v2"), slots
                assert (slots["green"], slots["green.state"], slots["green.timer"]) == (
                    "v1",
                    "active",
                    "active",
                ), slots
            time.sleep(1)
            started = time.monotonic()
            back = project.cli("rollback", "lab", "--json")
            rollback_seconds = time.monotonic() - started
            assert back.returncode == 0, (back.stdout[-3000:], back.stderr[-3000:])
            time.sleep(1)
            broken = project.cli(
                "deploy", "lab", "--version", "v3", "--artifact", "broken", "--json"
            )
            time.sleep(2)
        assert broken.returncode == 1, broken.stderr[-3000:]
        assert json.loads(broken.stdout)["status"] in ("FAILED", "ROLLED_BACK"), broken.stdout
        assert load.sent > 200
        assert sum(load.failures.values()) == 0, (load.failures, load.sent)
        assert {"v1", "v2"} <= set(load.versions), load.versions
        assert "v3" not in load.versions  # the broken release never took a request
        assert set(project.current().values()) == {"v1"}
        for host in hosts:  # live in green on v1 again; v3's slot was stopped when it failed
            slots = _slots(project, host)
            assert (slots["live"], slots["green"], slots["green.state"]) == (
                "green",
                "v1",
                "active",
            )
            assert (slots["blue.state"], slots["blue.timer"]) == ("inactive", "inactive"), slots
        status = project.json("status", "lab")
        assert {(h["current"], h["slot"]) for h in status["hosts"]} == {("v1", "green")}, status
        print(
            f"blue-green: {load.sent} requests through the proxy, "
            f"{sum(load.failures.values())} failed; rollback (a flip back) {rollback_seconds:.2f} s"
        )
    finally:
        _remove_slots(project)


def _late_failing(project: Project) -> Path:
    """examples/hello whose /healthz turns to 500 six seconds after it started: it passes the
    switch's checks and fails in the watch window, after the flip."""
    source = (project.root / "app" / "app.py").read_text()
    marker = "BROKEN = False"
    assert marker in source
    late = project.root / "late"
    late.mkdir()
    (late / "app.py").write_text(
        source.replace(
            marker,
            "_STARTED = time.monotonic()\n\n\nclass _Late:\n"
            "    def __bool__(self) -> bool:\n"
            "        return time.monotonic() - _STARTED > 6\n\n\n"
            "BROKEN = _Late()",
            1,
        )
    )
    return late


def test_a_release_that_fails_in_the_watch_window_is_flipped_back(project: Project) -> None:
    domain = f"{project.app}.lab.test"
    project.edit(
        {
            "service": {"listen": "port"},
            "health": {"retries": 10, "interval": 0.5},
            "rollback": {"watch": 12, "health_checks": {"period": 1, "threshold": 2}},
            "environments": {"lab": {"hosts": {"web": "lab"}, "domain": domain}},
        }
    )
    config = yaml.safe_load((project.root / "deploy.yml").read_text())
    config["strategy"] = {"kind": "blue_green", "keep_warm": 60}
    (project.root / "deploy.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    late = _late_failing(project)
    hosts = project.lab.hosts
    try:
        first = project.cli("deploy", "lab", "--version", "v1", "--json")
        assert first.returncode == 0, first.stderr[-3000:]
        with Load([h.ip for h in hosts[:2]], domain) as load:
            time.sleep(2)
            bad = project.cli("deploy", "lab", "--version", "v2", "--artifact", str(late), "--json")
            time.sleep(2)
        assert bad.returncode == 1, bad.stderr[-3000:]
        result = json.loads(bad.stdout)
        assert (result["status"], result["stage"]) == ("ROLLED_BACK", "watch"), result
        assert sum(load.failures.values()) == 0, (load.failures, load.sent)
        assert {"v1", "v2"} <= set(load.versions), load.versions  # v2 served before the watch
        assert set(project.current().values()) == {"v1"}
        for host in hosts:  # back on v1 in green, which kept running; v2's blue stops later
            slots = _slots(project, host)
            assert (slots["live"], slots["green"], slots["green.state"]) == (
                "green",
                "v1",
                "active",
            )
            assert (slots["blue"], slots["blue.timer"]) == ("v2", "active"), slots
            upstreams = project.ssh(
                host, f"cat /etc/nginx/deployer/{project.app}-lab/upstreams.conf"
            ).stdout
            assert f":{project.port + 1} " in upstreams, upstreams
        print(f"blue-green watch-window rollback: {load.sent} requests, 0 failed")
    finally:
        _remove_slots(project)
