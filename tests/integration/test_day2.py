"""Day-2 commands on real lab hosts: `logs` (journald over SSH, merged by time, filtered,
followed) and `exec` (a command in the current release as the service user, with its
environment, secrets masked)."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING

import pytest
from shop_lab import Shop

if TYPE_CHECKING:
    from conftest import Project

pytestmark = pytest.mark.integration


def test_logs_and_exec(project: Project) -> None:
    canary = "canary" + secrets.token_hex(8)
    project.edit({"secrets": {"env": {"API_TOKEN": {"from_env": "T_API_TOKEN"}}}})
    env = {"T_API_TOKEN": canary}
    first = project.cli("deploy", "lab", "--version", "v1", env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    names = [h.name for h in project.lab.hosts]

    # logs: every host's lines, merged by time, each with its host
    shown = project.cli("logs", "lab", "-n", "200", "--json", env=env)
    assert shown.returncode == 0, shown.stdout[-2000:] + shown.stderr[-2000:]
    lines = json.loads(shown.stdout)["lines"]
    assert {line["host"] for line in lines} == set(names)
    assert [line["time"] for line in lines] == sorted(line["time"] for line in lines)
    assert any("serving on" in line["message"] for line in lines)
    text = project.cli("logs", "lab", "--host", names[1], "--grep", "healthz", env=env)
    assert text.returncode == 0, text.stderr[-2000:]
    assert text.stdout.splitlines()
    assert all(line.startswith(f"{names[1]} ") for line in text.stdout.splitlines())
    assert all("healthz" in line for line in text.stdout.splitlines())
    old = project.cli("logs", "lab", "--since", "2001-01-01T00:00:00", "-n", "3", env=env)
    assert old.returncode == 0
    assert len(old.stdout.splitlines()) == 3
    for bad, words in (
        (["--since", "yesterday-ish"], "--since"),
        (["--host", "nope"], "--host: 'nope'"),
        (["--grep", "("], "--grep"),
    ):
        refused = project.cli("logs", "lab", *bad, env=env)
        assert refused.returncode == 2, refused.stdout
        assert words in refused.stdout + refused.stderr

    # logs -f: a new line arrives while it follows; Ctrl-C ends it cleanly
    follow = project.popen("logs", "lab", "-f", "-n", "1", "--host", names[0], "--json", env=env)
    time.sleep(2)
    project.ssh(project.lab.hosts[0], f"curl -s http://127.0.0.1:{project.port}/followed")
    time.sleep(2)
    follow.send_signal(signal.SIGINT)
    out, _ = follow.communicate(timeout=20)
    assert follow.returncode == 0
    followed = [json.loads(line) for line in out.splitlines()]
    assert any("/followed" in line["message"] for line in followed), out[-2000:]

    # exec: in the current release, as the service user, with its environment, masked
    ran = project.cli(
        "exec", "lab", "--", "sh", "-c", 'echo "$GREETING $API_TOKEN $(id -un) $(pwd)"', env=env
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert canary not in ran.stdout + ran.stderr
    for name in names:
        assert f"{name}: ok" in ran.stdout
    assert ran.stdout.count(
        f"| hello ******** {project.app} /srv/{project.app}/releases/v1"
    ) == len(names)
    data = json.loads(
        project.cli("exec", "lab", "--primary", "--json", "--", "false", env=env).stdout
    )
    assert [(r["host"], r["exit_code"], r["ok"]) for r in data["results"]] == [(names[0], 1, False)]
    failed = project.cli("exec", "lab", "--host", names[2], "--", "false", env=env)
    assert failed.returncode == 1
    assert "failed on 1 of 1" in failed.stdout
    for bad, words in ((["--host", "nope", "--", "true"], "--host: 'nope'"), ([], "command")):
        refused = project.cli("exec", "lab", *bad, env=env)
        assert refused.returncode == 2, refused.stdout
        assert words in refused.stdout + refused.stderr


def test_maintenance_mode_and_exec_as_one_service_of_several(shop: Shop) -> None:
    first = shop.cli("deploy", "lab", "--version", "v1")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert shop.get("/")[0] == 200

    on = shop.cli("maintenance", "on", "lab", "--retry-after", "120", "--message", "Back at 10")
    assert on.returncode == 0, on.stdout[-2000:] + on.stderr[-2000:]
    for path in ("/", "/api/items"):
        status, headers, body = shop.get(path)
        assert status == 503, (path, status)
        assert headers.get("Retry-After") == "120"
        assert "Back at 10" in body
    assert shop.get("/.deployer/proxy-health")[0] == 200  # the proxy's own check

    # a deploy goes on behind the page (its health checks are on the hosts), and keeps it
    second = shop.cli("deploy", "lab", "--version", "v2")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert shop.get("/")[0] == 503

    off = shop.cli("maintenance", "off", "lab")
    assert off.returncode == 0, off.stdout[-2000:]
    assert shop.get("/")[0] == 200
    assert shop.get("/api/items")[0] == 200

    ran = shop.cli(
        "exec", "lab", "--service", "api", "--", "sh", "-c", 'echo "${DATABASE_URL%%:*}"'
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "| postgresql" in ran.stdout
    refused = shop.cli("exec", "lab", "--", "true")
    assert refused.returncode == 2
    assert "--service: required" in refused.stdout + refused.stderr


def test_a_host_unreachable_for_a_moment_is_retried_and_the_deploy_goes_through(
    project: Project,
) -> None:
    project.edit({"strategy": {"retries": 3, "retry_delay": 2}})
    host = project.lab.hosts[-1]
    subprocess.run(["docker", "exec", host.container, "systemctl", "stop", "ssh"], check=True)
    back = threading.Timer(
        3, subprocess.run, (["docker", "exec", host.container, "systemctl", "start", "ssh"],)
    )
    back.start()
    try:
        deployed = project.cli("deploy", "lab", "--version", "v1")
    finally:
        back.join()
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    assert f"note: unreachable in preflight: {host.name}; tried again after 2s" in deployed.stdout
    history = json.loads(project.cli("history", "lab", "--json").stdout)
    assert [(d["version"], d["status"]) for d in history] == [("v1", "SUCCEEDED")]
