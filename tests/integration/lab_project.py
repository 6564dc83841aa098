"""What the integration tests deploy to the lab: a copy of examples/hello under a name of its
own (`Project`), and the clean-up of what deploying it left on the hosts. A module of its own,
not conftest: tests import it by a name no other test directory's module has."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deployer.lab import LabState, ssh_argv

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello"


@dataclass
class Project:
    """A copy of examples/hello with its own app name and port, deployed to the test lab."""

    root: Path
    app: str
    port: int
    lab: LabState

    def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run the real `deployer` CLI in a child process."""
        return subprocess.run(
            [sys.executable, "-m", "deployer", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "DEPLOYER_LAB_NAME": self.lab.name, **(env or {})},
        )

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "deployer", *args],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "DEPLOYER_LAB_NAME": self.lab.name, **(env or {})},
        )

    def json(self, *args: str, expect: int = 0) -> Any:
        proc = self.cli(*args, "--json")
        assert proc.returncode == expect, (proc.returncode, proc.stdout, proc.stderr)
        return json.loads(proc.stdout)

    def ssh(self, host: Any, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ssh_argv(self.lab, host, command), capture_output=True, text=True, timeout=60
        )

    def current(self) -> dict[str, str]:
        """What `current` points at on every host, read over plain SSH."""
        out = {}
        for host in self.lab.hosts:
            proc = self.ssh(host, f"readlink /srv/{self.app}/current")
            out[host.name] = Path(proc.stdout.strip()).name if proc.returncode == 0 else ""
        return out

    def edit(self, change: dict[str, Any]) -> None:
        """Deep-merge `change` into deploy.yml."""
        path = self.root / "deploy.yml"
        data = yaml.safe_load(path.read_text())

        def merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
            for key, value in extra.items():
                if isinstance(value, dict) and isinstance(base.get(key), dict):
                    merge(base[key], value)
                else:
                    base[key] = value

        merge(data, change)
        path.write_text(yaml.safe_dump(data, sort_keys=False))


def remove_app(proj: Project) -> None:
    """What deploying `proj` left on the lab's hosts: its units, releases, lock, files."""
    app = proj.app
    for host in proj.lab.hosts:
        proj.ssh(
            host,
            f"sudo systemctl stop '{app}@*' {app}.target; "
            f"sudo systemctl disable --now {app}.socket {app}.service {app}.target; "
            f"sudo rm -rf /srv/{app} /etc/systemd/system/{app}.* "
            f"/etc/systemd/system/{app}@* /etc/systemd/system/*.wants/{app}@* "
            f"/var/lib/deployer/locks/{app} /var/lib/prometheus/node-exporter/deployer-{app}-* "
            f"/etc/nginx/conf.d/deployer-{app}-*.conf /etc/nginx/deployer/{app}-*; "
            "if systemctl -q is-active nginx; then sudo systemctl reload nginx; fi",
        )
