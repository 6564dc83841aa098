"""How lab containers are run: every docker run option that makes a container a "server".

All run options live here so that another kind of host (e.g. a swarm node that runs
its own dockerd: `cap_add=("ALL",)`, `cap_drop=("SYS_RESOURCE",)`, apparmor unconfined,
cgroup rw) is one more RunProfile, not edits scattered through the lifecycle code.
`--privileged` is not an option on this machine: it withholds CAP_SYS_RESOURCE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class RunProfile:
    """Docker run options for a systemd-as-PID-1 host."""

    name: str
    cap_add: tuple[str, ...]
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ("seccomp=unconfined",)
    cgroup_mode: Literal["ro", "rw"] = "ro"
    tmpfs: tuple[str, ...] = ("/run", "/run/lock")

    def run_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for docker SDK `containers.create` (besides name/ports/net)."""
        return {
            "cap_add": list(self.cap_add),
            "cap_drop": list(self.cap_drop),
            "security_opt": list(self.security_opt),
            "volumes": {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": self.cgroup_mode}},
            "tmpfs": {path: "" for path in self.tmpfs},
            # systemd halts cleanly on SIGRTMIN+3; SIGTERM would only re-exec it.
            "stop_signal": "SIGRTMIN+3",
            "environment": {"container": "docker"},
        }


SERVER = RunProfile(
    name="server",
    # SYS_ADMIN lets systemd mount what it needs; NET_ADMIN lets tests inject network
    # faults with iptables inside a host.
    cap_add=("SYS_ADMIN", "NET_ADMIN"),
)

PROFILES: dict[str, RunProfile] = {SERVER.name: SERVER}
