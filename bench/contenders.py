"""The ways of shipping the same tarball to the same hosts that the benchmark compares:
deployer itself (the whole fleet at once, and rolling in two batches), a plain
one-task-per-step playbook, and the floor (one ssh per host)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from deployer.lab import LabState, ssh_argv

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "examples" / "hello" / "app"
DEPLOYER_PORT, PLAIN_PORT, FLOOR_PORT, PORT_MODE_PORT = 18000, 18001, 18002, 18003
PROXIED_PORT = 18004
ROLLING_PORT = 18004
FULL_STACK_PORT = 18010  # examples/shop's API, its instances on 18010, 18011, ...
BLUE_GREEN_PORT = 18020  # its green slot on 18021
PROXIED_ROLLBACK_PORT = 18022
CANARY_PORT = 18024  # its green slot on 18025
CANARY_BLUE_GREEN_PORT = 18026  # the same app blue-green, for the difference
ALL_AT_ONCE: dict[str, str] = {"kind": "all_at_once"}
TWO_BATCHES: dict[str, str] = {"kind": "rolling", "batch_size": "50%"}


@dataclass
class Bench:
    """A project directory wired to the first `n` hosts of a lab."""

    root: Path
    lab: LabState
    n: int
    tarball: Path = Path()
    inventory: Path = Path()
    listen: str = "socket"  # the example app takes the systemd socket, or binds its port
    app: str = "bench"
    port: int = DEPLOYER_PORT
    environment: str = "bench"
    strategy: dict[str, str] = field(default_factory=lambda: dict(ALL_AT_ONCE))
    domain: str | None = None  # set: the edge proxy (nginx on every host) in front
    environment_extra: dict[str, object] = field(default_factory=dict)
    """Merged into the environment's section (monitoring, for a canary)."""
    top_extra: dict[str, object] = field(default_factory=dict)
    """Merged into the top level (rollback, monitoring)."""

    @property
    def hosts(self) -> list:  # type: ignore[type-arg]
        return list(self.lab.hosts[: self.n])

    def write_config(self) -> None:
        hosts = [
            {
                "name": h.name,
                "address": h.address,
                "port": h.port,
                "user": h.user,
                "private_address": h.ip,
            }
            for h in self.hosts
        ]
        config = {
            "app": {"name": self.app},
            "artifact": {"path": str(APP)},
            "service": {
                "command": "/usr/bin/python3 app.py",
                "port": self.port,
                "listen": self.listen,
            },
            "health": {"http": {"path": "/healthz", "timeout": 2}, "retries": 50, "interval": 0.2},
            "strategy": dict(self.strategy),
            "keep_releases": 3,
            "environments": {
                self.environment: {
                    "hosts": {"web": hosts},
                    **({"domain": self.domain} if self.domain else {}),
                    **self.environment_extra,
                    "ssh": {
                        "private_key": str(self.lab.private_key),
                        "known_hosts": str(self.lab.known_hosts),
                    },
                }
            },
        }
        config.update(self.top_extra)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "deploy.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    def deployer(
        self, *args: str, check: bool = True
    ) -> tuple[float, subprocess.CompletedProcess[str]]:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "deployer", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=600,
        )
        seconds = time.monotonic() - started
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"deployer {' '.join(args)} failed: {proc.stderr[-2000:]}{proc.stdout[-2000:]}"
            )
        return seconds, proc

    def deploy(self, version: str) -> float:
        """Wall time of one `deployer deploy` of `version` to this bench's environment."""
        return self.deployer("deploy", self.environment, "--version", version)[0]

    def prepare(self) -> None:
        """Config, tarball and inventory, made once outside every timed window."""
        from deployer.artifact import pack_directory

        self.write_config()
        self.tarball = pack_directory(APP, self.root / ".bench", ("__pycache__", "*.pyc")).path
        _, proc = self.deployer("inventory", self.environment, "--json")
        self.inventory = self.root / ".bench" / "inventory.json"
        self.inventory.write_text(proc.stdout)


def plain(bench: Bench, version: str) -> float:
    """ansible-playbook with one task per step; same SSH settings as deployer."""
    env = {
        **os.environ,
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=120s",
        "ANSIBLE_FORKS": str(max(5, bench.n)),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    started = time.monotonic()
    proc = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(bench.inventory),
            str(REPO / "bench/plain/deploy.yml"),
            "-e",
            json.dumps({"plain_version": version, "plain_artifact": str(bench.tarball)}),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"plain playbook failed: {proc.stdout[-3000:]}")
    return seconds


FLOOR_SCRIPT = """set -e
d=/srv/floor/releases/{v}
mkdir -p "$d"
tar xzf - -C "$d"
ln -sfn "$d" /srv/floor/current.new && mv -Tf /srv/floor/current.new /srv/floor/current
systemctl restart floor
for i in $(seq 100); do curl -sf -o /dev/null 127.0.0.1:{port}/healthz && exit 0; sleep 0.05; done
exit 1
"""

FLOOR_UNIT = f"""[Service]
WorkingDirectory=/srv/floor/current
Environment=PORT={FLOOR_PORT}
ExecStart=/usr/bin/python3 app.py
"""


def floor_setup(bench: Bench) -> None:
    """The unit the floor restarts (set-up, not timed)."""

    def one(host) -> None:  # type: ignore[no-untyped-def]
        cmd = (
            f"sudo mkdir -p /srv/floor/releases && printf %s {shlex.quote(FLOOR_UNIT)} | "
            "sudo tee /etc/systemd/system/floor.service >/dev/null && sudo systemctl daemon-reload"
        )
        subprocess.run(ssh_argv(bench.lab, host, cmd), check=True, capture_output=True, timeout=60)

    with ThreadPoolExecutor(max_workers=max(1, bench.n)) as pool:
        list(pool.map(one, bench.hosts))


def floor(bench: Bench, version: str) -> float:
    """One parallel ssh per host streaming the tarball and doing every step in one go."""
    data = bench.tarball.read_bytes()
    script = FLOOR_SCRIPT.format(v=shlex.quote(version), port=FLOOR_PORT)

    def one(host) -> int:  # type: ignore[no-untyped-def]
        argv = ssh_argv(bench.lab, host, "sudo sh -c " + shlex.quote(script))
        return subprocess.run(argv, input=data, capture_output=True, timeout=120).returncode

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, bench.n)) as pool:
        codes = list(pool.map(one, bench.hosts))
    seconds = time.monotonic() - started
    if any(codes):
        raise RuntimeError(f"floor failed on some hosts: {codes}")
    return seconds
