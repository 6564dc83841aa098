"""examples/shop copied for one test under an app name of its own, and what its tests
do with it: the CLI in its directory, SSH to the lab hosts, GETs through the edge proxy."""

from __future__ import annotations

import http.client
import os
import random
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deployer.lab import LabState, ssh_argv

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"


class Shop:
    def __init__(self, root: Path, app: str, lab: LabState) -> None:
        self.root, self.app, self.lab = root, app, lab
        self.domain = f"{app}.lab.test"
        self.environ: dict[str, str] = {}
        """Variables the CLI gets besides ours (a vault's password)."""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "deployer", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "DEPLOYER_LAB_NAME": self.lab.name, **self.environ},
        )

    def ssh(self, host: Any, command: str) -> str:
        return subprocess.run(
            ssh_argv(self.lab, host, command), capture_output=True, text=True, timeout=60
        ).stdout

    def get(self, path: str) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection(self.lab.hosts[0].ip, 80, timeout=5)
        try:
            conn.request("GET", path, headers={"Host": self.domain})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read().decode()
        finally:
            conn.close()


def drop_accessories(lab: LabState, app: str) -> None:
    """The app's PostgreSQL database and role and its Redis instance, gone from the data
    host (the cluster and Debian's packages stay, as on a real server)."""
    name = f"{app}-lab"
    subprocess.run(
        ssh_argv(
            lab,
            lab.hosts[0],
            f"sudo systemctl disable --now redis-server@{name} 2>/dev/null; "
            f"sudo rm -rf /etc/redis/redis-{name}.conf /var/lib/redis/{name} "
            f"/etc/deployer/accessories/{name} /var/lib/deployer/backups/{name}; "
            f"sudo -u postgres psql -qc 'DROP DATABASE IF EXISTS {app} WITH (FORCE)' "
            f"-c 'DROP ROLE IF EXISTS {app}' 2>/dev/null; true",
        ),
        capture_output=True,
        timeout=60,
    )


def shop_project(tmp_path: Path, lab: LabState) -> Iterator[Shop]:
    """examples/shop under a random app name, its API and Redis on random ports; afterwards
    every trace of it on the lab hosts is removed."""
    app = "s" + secrets.token_hex(4)
    root = tmp_path / "shop"
    shutil.copytree(SHOP, root, ignore=shutil.ignore_patterns("dist", "__pycache__", ".deployer"))
    text = (root / "deploy.yml").read_text()
    port = random.randint(20000, 40000)
    text = text.replace("name: shop\n", f"name: {app}\n", 1).replace("port: 8100", f"port: {port}")
    text = text.replace("domain: shop.lab.test", f"domain: {app}.lab.test")
    # its own Redis port: each app's Redis is an instance of its own on the data host
    text = text.replace(
        'cache: {type: redis, version: "7", component: data}',
        f'cache: {{type: redis, version: "7", component: data, port: {port + 100}}}',
    )
    (root / "deploy.yml").write_text(text)
    yield Shop(root, app, lab)
    drop_accessories(lab, app)
    for host in lab.hosts:
        subprocess.run(
            ssh_argv(
                lab,
                host,
                f"sudo systemctl disable --now '{app}:*' 2>/dev/null; "
                f"sudo rm -rf /srv/{app} /etc/systemd/system/{app}:* "
                f"/etc/systemd/system/*.wants/{app}:* /var/lib/deployer/locks/{app} "
                f"/etc/nginx/conf.d/deployer-{app}-*.conf /etc/nginx/deployer/{app}-*; "
                "sudo systemctl daemon-reload; "
                "if systemctl -q is-active nginx; then sudo systemctl reload nginx; fi",
            ),
            capture_output=True,
            timeout=60,
        )
