"""Failure analysis on real lab hosts: a release that crashes on start, one killed for
memory (MemoryMax), one whose port another process holds and one whose health check times
out are each classified correctly in deploy's output, in the ledger (`history --id`) and in
the Slack and PagerDuty notifications, which a local endpoint receives."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Project

pytestmark = pytest.mark.integration

APP = Path(__file__).parent / "apps" / "failing"


@contextlib.contextmanager
def receiver(received: list[tuple[str, dict[str, Any]]]) -> Iterator[str]:
    """A local HTTP endpoint recording (path, JSON body) of every POST."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append((self.path, json.loads(body)))
            self.send_response(200 if self.path == "/slack" else 202)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


CASES = [
    # (FAIL_MODE, the cause, words of the summary, a journal line)
    ("crash", "crashed", "crashed on start: exited with code 1", "SETTING_THAT_IS_MISSING"),
    ("oom", "oom", "out of memory", None),
    # the holder, as root on the host sees it (in the lab's containers root cannot see other
    # users' processes: their user and unit, then)
    ("port", "port_in_use", "address already in use (held by ", "Address already in use"),
    ("hang", "timeout", "health check timed out", None),
]


def test_each_failure_is_classified_in_output_ledger_and_notifications(project: Project) -> None:
    shutil.rmtree(project.root / "app")
    shutil.copytree(APP, project.root / "app")
    received: list[tuple[str, dict[str, Any]]] = []
    with receiver(received) as url:
        project.edit(
            {
                "service": {
                    "listen": "port",
                    "command": "/usr/bin/python3 app.py",
                    "resources": {"memory": "64Mi"},
                    "env": {"FAIL_MODE": ""},
                },
                "health": {"http": {"timeout": 1}, "retries": 4, "interval": 0.5},
                "rollback": {"automatic": False},
                "environments": {
                    "lab": {
                        "notifications": [
                            {"type": "slack", "webhook_url": {"from_env": "T_SLACK"}},
                            {
                                "type": "pagerduty",
                                "routing_key": {"from_env": "T_PD_KEY"},
                                "url": f"{url}/pd",
                            },
                        ]
                    }
                },
            }
        )
        env = {"T_SLACK": f"{url}/slack", "T_PD_KEY": "R0UTING-KEY-1234"}
        good = project.cli("deploy", "lab", "--version", "v1", env=env)
        assert good.returncode == 0, good.stdout[-3000:] + good.stderr[-3000:]
        first = project.lab.hosts[0]
        for number, (mode, cause, words, line) in enumerate(CASES, start=2):
            project.edit({"service": {"env": {"FAIL_MODE": mode}}})
            blocker = None
            if mode == "port":  # another process on the first host takes the app's port
                project.ssh(first, f"sudo systemctl stop {project.app}.service")
                blocker = project.ssh(
                    first,
                    "nohup python3 -c 'import socket,time; s=socket.socket(); "
                    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "  # TIME_WAITs
                    f's.bind(("0.0.0.0", {project.port})); s.listen(); time.sleep(90)\' '
                    ">/dev/null 2>&1 & echo $!",
                ).stdout.strip()
            received.clear()
            version = f"v{number}"
            try:
                failed = project.cli("deploy", "lab", "--version", version, env=env)
            finally:
                if blocker:
                    project.ssh(first, f"kill {blocker}")
            text = failed.stdout
            assert failed.returncode == 1, text[-3000:] + failed.stderr[-3000:]
            shown = [ln for ln in text.splitlines() if ln.startswith(f"why {first.name} failed")]
            assert shown, text[-3000:]
            assert words in shown[0], (mode, shown)
            if line:
                assert line in text, text[-3000:]

            history = project.cli("history", "lab", "--json")
            deployment = json.loads(history.stdout)[0]
            assert deployment["version"] == version
            stored = project.cli("history", "lab", "--id", str(deployment["id"]), "--json")
            hosts = {h["host"]: h for h in json.loads(stored.stdout)["hosts"]}
            analysis = hosts[first.name]["analysis"]
            assert analysis is not None, hosts
            assert analysis["cause"] == cause, (mode, analysis)
            assert words in analysis["summary"]

            slack = [body for path, body in received if path == "/slack"]
            alerts = [body for path, body in received if path == "/pd"]
            assert slack, received
            assert alerts, received
            why = next(
                b["text"]["text"]
                for a in slack[-1]["attachments"]
                for b in a["blocks"]
                if b.get("text", {}).get("text", "").startswith("*Why*")
            )
            assert words in why, why
            details = alerts[-1]["payload"]["custom_details"]["analysis"][first.name]
            assert details["cause"] == cause
            assert words in details["summary"]

        # a good release brings every host back
        project.edit({"service": {"env": {"FAIL_MODE": ""}}})
        back = project.cli("deploy", "lab", "--version", "v9", env=env)
        assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
