"""Commands on swarm nodes over SSH, with the same host key rules as the Ansible runs.

Host keys are always checked (StrictHostKeyChecking=yes) against the environment's own
known_hosts files only; there is no prompt and no trust on first use. One master connection
per node is kept for a minute, so polling a rollout does not pay for a handshake each second.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass

from deployer.config.resolve import ResolvedHost, Target
from deployer.errors import DeployerError, UnreachableError
from deployer.paths import ssh_control_dir
from deployer.plan.remote import ssh_command

SSH_UNREACHABLE = 255


@dataclass(frozen=True)
class Reply:
    node: str
    code: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.code == 0


class Nodes:
    """The environment's hosts as swarm nodes; the primary host is the manager."""

    def __init__(self, target: Target, docker: str = "docker") -> None:
        self.target = target
        self.docker = docker
        self.hosts = {h.name: h for h in target.hosts}
        self.manager = target.primary
        self._control = ssh_control_dir(target.project_dir, "sw")

    def argv(self, host: ResolvedHost, command: str) -> list[str]:
        """One master connection per node, kept for a minute (polling a rollout pays for
        one handshake)."""
        sharing = [
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={self._control}/%C",
            "-o", "ControlPersist=60s",
            "-o", "ServerAliveInterval=5",
        ]  # fmt: skip
        return ssh_command(self.target, host, command, sharing)

    def docker_cmd(self, *args: str) -> str:
        """A docker command line for the remote shell, every argument quoted."""
        return " ".join([self.docker, *(shlex.quote(a) for a in args)])

    def run(
        self, node: str, command: str, *, stdin: bytes | None = None, timeout: float = 120
    ) -> Reply:
        host = self.hosts[node]
        try:
            proc = subprocess.run(
                self.argv(host, command), input=stdin, capture_output=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return Reply(node, SSH_UNREACHABLE, "", f"no answer within {timeout:.0f} s")
        return Reply(
            node,
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace").strip(),
        )

    def manage(self, *args: str, stdin: bytes | None = None, timeout: float = 120) -> str:
        """Run a docker command on the manager; raise when it fails."""
        what = f"docker {' '.join(args[:2])}"
        return self.manage_script(self.docker_cmd(*args), stdin=stdin, timeout=timeout, what=what)

    def manage_script(
        self, script: str, *, stdin: bytes | None = None, timeout: float = 120, what: str = ""
    ) -> str:
        """Run a shell script on the manager; raise when it fails."""
        reply = self.run(self.manager, script, stdin=stdin, timeout=timeout)
        if reply.code == SSH_UNREACHABLE:
            raise UnreachableError(f"swarm manager {self.manager} unreachable: {reply.err}")
        if not reply.ok:
            raise DeployerError(
                f"{what or 'a command'} on {self.manager} failed: {reply.err[-500:]}"
            )
        return reply.out
