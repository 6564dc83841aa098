"""How lab containers are run: every docker run option that makes a container a "server".

All run options live here so that another kind of host (e.g. a swarm node that runs
its own dockerd: `cap_add=("ALL",)`, `cap_drop=("SYS_RESOURCE",)`, apparmor unconfined,
cgroup rw) is one more RunProfile, not edits scattered through the lifecycle code.
`--privileged` is not an option on this machine: it withholds CAP_SYS_RESOURCE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from docker.types import Mount


@dataclass(frozen=True)
class RunProfile:
    """Docker run options for a systemd-as-PID-1 host."""

    name: str
    cap_add: tuple[str, ...]
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ("seccomp=unconfined",)
    cgroup_mode: Literal["ro", "rw"] = "ro"
    tmpfs: tuple[str, ...] = ("/run", "/run/lock")
    volumes: tuple[str, ...] = ()
    """Paths given an anonymous volume (removed with the container by `lab down`)."""

    def run_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for docker SDK `containers.create` (besides name/ports/net)."""
        extra: dict[str, Any] = {}
        if self.volumes:
            extra["mounts"] = [
                Mount(target=path, source=None, type="volume") for path in self.volumes
            ]
        return {
            **extra,
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

SWARM = RunProfile(
    name="swarm",
    # A host that runs its own dockerd (a Swarm node): every capability but the one this
    # machine withholds, no seccomp/apparmor confinement, a writable cgroup tree.
    cap_add=("ALL",),
    cap_drop=("SYS_RESOURCE",),
    security_opt=("seccomp=unconfined", "apparmor=unconfined"),
    cgroup_mode="rw",
    # The inner dockerd's storage sits on a volume, not on the container's own overlay
    # root: overlay2 works there (overlay on overlay does not, and vfs copies every layer).
    volumes=("/var/lib/docker",),
)

PROFILES: dict[str, RunProfile] = {SERVER.name: SERVER, SWARM.name: SWARM}
