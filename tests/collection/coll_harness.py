"""Helpers for the deployer.core collection tests: run the real playbooks with plain
ansible-playbook over SSH (host key checking on) and read every task result back from a
JSON-lines callback; look at the lab hosts with docker exec.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
COLLECTIONS = REPO / "collections"
EXAMPLE = REPO / "examples" / "hello"
CALLBACKS = Path(__file__).parent / "callback_plugins"
VENV_BIN = REPO / ".venv" / "bin"


def tool(name: str) -> str:
    candidate = VENV_BIN / name
    return str(candidate) if candidate.exists() else name


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]]

    def results(self, action: str, host: str | None = None) -> list[dict[str, Any]]:
        """Results of tasks running `action` (short or FQCN), optionally for one host."""
        return [
            e
            for e in self.events
            if (e["action"] == action or e["action"].endswith("." + action))
            and (host is None or e["host"] == host)
        ]

    def deployer(self, action: str, host: str) -> dict[str, Any]:
        """The `deployer` dict of the last `action` result of `host`."""
        found = [e for e in self.results(action, host) if "deployer" in e["result"]]
        assert found, f"no {action} result with `deployer` for {host}: {self.stdout[-3000:]}"
        return found[-1]["result"]["deployer"]

    def reply(self, host: str) -> dict[str, Any]:
        """Every `deployer` dict of `host`'s results merged in order, as the orchestrator
        folds them (deployer/runner.py): what it knows of the host after the run."""
        merged: dict[str, Any] = {}
        for e in self.events:
            if e["host"] == host and isinstance(e["result"].get("deployer"), dict):
                merged.update(e["result"]["deployer"])
        return merged

    def stage(self, host: str) -> str | None:
        """The step `host` reported as failed (`deployer.stage`), or None."""
        return self.reply(host).get("stage")

    def changed(self) -> list[str]:
        return [
            f"{e['host']}: {e['task']}"
            for e in self.events
            if e["status"] == "ok" and e["result"].get("changed")
        ]


@dataclass
class Deployment:
    """One app (unique name and port) deployed to the lab with the collection's playbooks."""

    lab: Any
    workdir: Path
    app: str
    port: int
    extra_hosts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def hosts(self) -> list[str]:
        return [h.name for h in self.lab.hosts]

    @property
    def deploy_to(self) -> str:
        return f"/srv/{self.app}"

    @property
    def lock_path(self) -> str:
        return f"/var/lib/deployer/locks/{self.app}-test.lock"

    def inventory(self) -> Path:
        ssh_args = " ".join(
            [
                "-o StrictHostKeyChecking=yes",
                f"-o UserKnownHostsFile={self.lab.known_hosts}",
                "-o GlobalKnownHostsFile=/dev/null",
                "-o IdentitiesOnly=yes",
                "-o ConnectTimeout=5",
            ]
        )
        hosts = {
            h.name: {"ansible_host": h.address, "ansible_port": h.port, "ansible_user": h.user}
            for h in self.lab.hosts
        }
        hosts.update(self.extra_hosts)
        data = {
            "all": {
                "children": {
                    "env_test": {
                        "vars": {
                            "ansible_connection": "ssh",
                            "ansible_ssh_common_args": ssh_args,
                            "ansible_ssh_private_key_file": str(self.lab.private_key),
                            "ansible_python_interpreter": "/usr/bin/python3",
                            "deployer_app": self.app,
                            "deployer_environment": "test",
                            "deployer_primary": self.hosts[0],
                            "deployer_features": {},
                        },
                        "hosts": hosts,
                    }
                }
            }
        }
        path = self.workdir / "inventory.yml"
        path.write_text(yaml.safe_dump(data))
        return path

    def env(self, events: Path) -> dict[str, str]:
        return {
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_SSH_ARGS": "-C -o ControlMaster=auto -o ControlPersist=60s",
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_FORKS": "20",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
            "ANSIBLE_CALLBACKS_ENABLED": "jsonl_events",
            "ANSIBLE_NOCOLOR": "1",
            "DEPLOYER_TEST_EVENTS": str(events),
        }

    def play(
        self, playbook: str | Path, extravars: dict[str, Any], *args: str, timeout: float = 300
    ) -> Run:
        """ansible-playbook playbooks/<playbook>.yml (or the playbook file given as a Path)
        with extravars from a JSON file."""
        path = playbook if isinstance(playbook, Path) else PLAYBOOKS / f"{playbook}.yml"
        tag = secrets.token_hex(3)
        varsfile = self.workdir / f"{path.stem}-{tag}.json"
        varsfile.write_text(json.dumps(extravars))
        events = self.workdir / f"{path.stem}-{tag}.events.jsonl"
        proc = subprocess.run(
            [
                tool("ansible-playbook"),
                "-i",
                str(self.inventory()),
                str(path),
                "-e",
                f"@{varsfile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(events),
            cwd=self.workdir,
        )
        lines = events.read_text().splitlines() if events.exists() else []
        records = [json.loads(x) for x in lines]
        results = [r for r in records if r["status"] != "start"]
        return Run(proc.returncode, proc.stdout, proc.stderr, results)

    # --- extravars ----------------------------------------------------------------------
    def health(self, retries: int = 10, interval: float = 0.5) -> dict[str, Any]:
        return {
            "http": {
                "port": self.port,
                "path": "/healthz",
                "status": 200,
                "body": "ok",
                "timeout": 2,
            },
            "tcp": None,
            "command": None,
            "retries": retries,
            "interval": interval,
        }

    def lock(self, token: str = "test-token", **holder: Any) -> dict[str, Any]:
        return {
            "path": self.lock_path,
            "token": token,
            "holder": {
                "user": "pytest",
                "control_host": "ctl",
                "pid": os.getpid(),
                "started_at": "2024-01-01T00:00:00Z",
                "deployment": "d-1",
                **holder,
            },
            "ttl": 600,
        }

    def prepare_vars(self, version: str, artifact: Path, **overrides: Any) -> dict[str, Any]:
        data = artifact.read_bytes()
        out = {
            "deployer_hosts": self.hosts,
            "deployer_version": version,
            "deployer_artifact": str(artifact),
            "deployer_artifact_sha256": hashlib.sha256(data).hexdigest(),
            "deployer_required_bytes": 4 * len(data) + 1_000_000,
            "deployer_deploy_to": self.deploy_to,
            "deployer_service_user": self.app,
            "deployer_service": {
                "command": "/usr/bin/python3 app.py",
                "port": self.port,
                "listen": "socket",
                "env": {"GREETING": "hello"},
            },
            "deployer_shared": {"dirs": ["data"], "files": ["config/local.ini"]},
            "deployer_keep_releases": 5,
            "deployer_lock": self.lock(),
        }
        out.update(overrides)
        return out

    def prepare(self, version: str, artifact: Path, *args: str, **overrides: Any) -> Run:
        return self.play("prepare", self.prepare_vars(version, artifact, **overrides), *args)

    def switch(self, version: str, hosts: list[str] | None = None, **health: Any) -> Run:
        return self.play(
            "switch",
            {
                "deployer_hosts": hosts or self.hosts,
                "deployer_version": version,
                "deployer_deploy_to": self.deploy_to,
                "deployer_health": self.health(**health),
            },
        )

    def tarball(
        self,
        version: str,
        source: str = "app",
        extra: dict[str, bytes] | None = None,
        members: list[tuple[tarfile.TarInfo, bytes | None]] | None = None,
    ) -> Path:
        """A release tarball of examples/hello/<source>, unique per version."""
        path = self.workdir / f"{self.app}-{version}-{source}.tar.gz"
        files = {
            "app.py": (EXAMPLE / source / "app.py").read_bytes(),
            "VERSION": f"{version}\n".encode(),
            **(extra or {}),
        }
        with tarfile.open(path, "w:gz") as tar:
            for name, content in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
            for info, content in members or []:
                tar.addfile(info, io.BytesIO(content) if content is not None else None)
        return path

    # --- looking at the hosts -----------------------------------------------------------
    def container(self, host: str) -> str:
        return next(h.container for h in self.lab.hosts if h.name == host)

    def sh(self, host: str, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "exec", self.container(host), "sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def get(self, host: str, path: str = "/") -> str:
        proc = self.sh(host, f"curl -s -m 5 http://127.0.0.1:{self.port}{path}")
        return proc.stdout

    def ls(self, host: str, path: str) -> list[str]:
        proc = self.sh(host, f"ls -A {path}")
        return sorted(proc.stdout.split()) if proc.returncode == 0 else []

    def uploads(self, host: str) -> list[str]:
        """Tarballs left behind: <deploy_to>/.uploads, a streamed upload's file next to the
        releases, and the login user's Ansible tmp."""
        streamed = [n for n in self.ls(host, self.deploy_to) if n.startswith(".deployer-upload-")]
        return (
            self.ls(host, f"{self.deploy_to}/.uploads")
            + streamed
            + self.ls(host, "/home/deploy/.ansible/tmp")
        )

    def meta(self, host: str, version: str) -> dict[str, Any]:
        proc = self.sh(host, f"cat {self.deploy_to}/releases/{version}/.deployer/meta.json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def current(self, host: str) -> str:
        return self.sh(host, f"readlink {self.deploy_to}/current").stdout.strip()

    def cleanup(self) -> None:
        for host in self.hosts:
            self.sh(
                host,
                f"systemctl disable --now {self.app}.socket {self.app}.service; "
                f"rm -rf {self.deploy_to} /etc/systemd/system/{self.app}.* "
                f"{self.lock_path}; systemctl daemon-reload; "
                f"userdel {self.app}",
            )
