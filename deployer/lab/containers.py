"""Lab hosts as docker containers: find, create, start, describe, read host keys.

Everything docker-specific about one host lives here; lifecycle.py only orchestrates.
"""

from __future__ import annotations

import contextlib
import io
import re
import tarfile
import time
from typing import Any

import docker
from docker.errors import NotFound
from docker.models.containers import Container

from .model import (
    ADDRESS,
    LABEL,
    USER,
    LabError,
    LabHost,
    container_name,
    host_name,
    network_name,
)
from .profiles import RunProfile

INDEX_LABEL = f"{LABEL}.index"
HOST_LABEL = f"{LABEL}.host"
IMAGE_LABEL = f"{LABEL}.image"
PROFILE_LABEL = f"{LABEL}.profile"

HOST_KEY_UNIT = "lab-ssh-host-keys.service"
HOST_KEY_FILES = tuple(f"/etc/ssh/ssh_host_{kind}_key.pub" for kind in ("ed25519", "ecdsa", "rsa"))
_KEY_LINE = re.compile(r"(ssh-[a-z0-9]+|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/]+=* ?.*")


def find(client: docker.DockerClient, lab: str) -> list[Container]:
    """All containers of a lab, running or not."""
    found: list[Container] = client.containers.list(all=True, filters={"label": f"{LABEL}={lab}"})
    return found


def index_of(container: Container) -> int | None:
    raw = (container.labels or {}).get(INDEX_LABEL, "")
    return int(raw) if raw.isdigit() else None


def ensure_network(client: docker.DockerClient, lab: str) -> str:
    """A bridge network per lab: hosts reach each other by name (lab1, lab2...)."""
    name = network_name(lab)
    if not any(net.name == name for net in client.networks.list(names=[name])):
        client.networks.create(name, driver="bridge", labels={LABEL: lab})
    return name


def remove_networks(client: docker.DockerClient, lab: str) -> None:
    for net in client.networks.list(filters={"label": f"{LABEL}={lab}"}):
        with contextlib.suppress(NotFound):
            net.remove()


def describe(container: Container, lab: str) -> LabHost:
    """A LabHost from docker's current view of the container (port 0 / ip '' when down)."""
    attrs: dict[str, Any] = container.attrs
    settings = attrs.get("NetworkSettings") or {}
    bindings = (settings.get("Ports") or {}).get("22/tcp") or []
    port = next((int(b["HostPort"]) for b in bindings if b.get("HostIp") == ADDRESS), 0)
    networks = settings.get("Networks") or {}
    own: dict[str, Any] = networks.get(network_name(lab)) or next(iter(networks.values()), {})
    index = index_of(container)
    labels = container.labels or {}
    return LabHost(
        name=labels.get(HOST_LABEL) or (host_name(index) if index else container.name),
        container=container.name,
        address=ADDRESS,
        port=port,
        user=USER,
        state=str(attrs.get("State", {}).get("Status", container.status)),
        ip=str(own.get("IPAddress") or ""),
    )


def matches(container: Container, image: str, profile: RunProfile) -> bool:
    """Whether a container was made from this image and profile (else it is recreated)."""
    labels = container.labels or {}
    return labels.get(IMAGE_LABEL) == image and labels.get(PROFILE_LABEL) == profile.name


def create(
    client: docker.DockerClient,
    lab: str,
    index: int,
    image: str,
    profile: RunProfile,
    network: str,
) -> Container:
    """Create (not start) host `index`: SSH published on a random 127.0.0.1 port."""
    name = host_name(index)
    container: Container = client.containers.create(
        image,
        name=container_name(lab, index),
        hostname=name,
        detach=True,
        labels={
            LABEL: lab,
            INDEX_LABEL: str(index),
            HOST_LABEL: name,
            IMAGE_LABEL: image,
            PROFILE_LABEL: profile.name,
        },
        ports={"22/tcp": (ADDRESS, None)},
        network=network,
        networking_config={network: client.api.create_endpoint_config(aliases=[name])},
        **profile.run_kwargs(),
    )
    return container


def install_authorized_key(container: Container, public_key: str) -> None:
    """Write ~deploy/.ssh/authorized_keys (deploy-owned, 0600, as StrictModes wants).

    Copied in rather than baked into the image or bind-mounted: a bind mount would
    carry the controller's file owner, which sshd rejects unless it happens to be 1000.
    Works on created and running containers, so `up` re-asserts it every time.
    """
    data = (public_key.strip() + "\n").encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("authorized_keys")
        info.size, info.mode, info.uid, info.gid = len(data), 0o600, 1000, 1000
        info.uname = info.gname = USER
        info.mtime = int(time.time())
        archive.addfile(info, io.BytesIO(data))
    if not container.put_archive(f"/home/{USER}/.ssh", buffer.getvalue()):
        raise LabError(f"could not write authorized_keys into {container.name}")


def host_keys(container: Container, deadline: float) -> list[str]:
    """The host's own public keys, read once its first-boot keygen unit has finished.

    Read through docker, never over the network: trusting what ssh-keyscan returns
    would be trust-on-first-use.
    """
    script = f"systemctl is-active --quiet {HOST_KEY_UNIT} && cat {' '.join(HOST_KEY_FILES)}"
    while True:
        result = container.exec_run(["sh", "-c", script])
        output = bytes(result.output).decode(errors="replace")
        keys = [line for line in output.splitlines() if line.strip()]
        # Under load docker can hand back an exec's output empty or cut short although the
        # command succeeded: only a full set of well-formed keys counts, else read again.
        if (
            result.exit_code == 0
            and len(keys) == len(HOST_KEY_FILES)
            and all(_KEY_LINE.match(k) for k in keys)
        ):
            return keys
        if time.monotonic() > deadline:
            raise LabError(
                f"{container.name}: no SSH host keys ({HOST_KEY_UNIT} not done): {output.strip()}"
            )
        time.sleep(0.2)


def wait_booted(container: Container, deadline: float) -> str:
    """Wait until systemd finished booting; returns 'running' or 'degraded'."""
    seconds = max(1, int(deadline - time.monotonic()))
    result = container.exec_run(
        ["timeout", str(seconds), "systemctl", "is-system-running", "--wait"]
    )
    state = bytes(result.output).decode(errors="replace").strip()
    if state not in ("running", "degraded"):
        raise LabError(f"{container.name}: systemd did not finish booting (state {state!r})")
    return state
