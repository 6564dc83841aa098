"""The swarm lab: lab hosts that run their own dockerd and form one swarm.

`deployer.lab.up(n, swarm=True)` runs hosts from `deployer-lab-swarm:<hash>`, the lab image
plus Debian's docker.io (installing it at every start would take a minute per host), with
the SWARM run profile, then calls `form_swarm`: host 1 is the manager, the others join as
workers. Swarm membership is driven through `docker exec`, the lab's own admin channel;
deployments go over SSH like on real nodes.

Every step checks before it acts, so `up` on a formed swarm changes nothing, and a host that
was recreated (fresh dockerd) or still belongs to an old swarm is (re)joined.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
from collections.abc import Callable

import docker
from docker.errors import BuildError, DockerException, ImageNotFound
from docker.models.containers import Container

from deployer.lab.files import file_lock
from deployer.lab.image import ensure_image
from deployer.lab.model import LabError, LabState, lab_dir

SWARM_REPOSITORY = "deployer-lab-swarm"
RECIPE_LABEL = "io.deployer.lab.recipe"
DOCKERD_TIMEOUT = 60.0
NODES_TIMEOUT = 60.0
_RECIPE = """\
FROM {lab_image}
# Debian's engine; the deploy user drives it over SSH without sudo (docker group).
# Prometheus and node exporter, installed but disabled (policy-rc.d keeps them from
# starting here): deployer sets them up where an environment turns monitoring on.
RUN apt-get update \\
 && printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io \\
      prometheus prometheus-node-exporter \\
 && rm -f /usr/sbin/policy-rc.d \\
 && systemctl disable prometheus.service prometheus-node-exporter.service \\
 && rm -rf /var/lib/apt/lists/* \\
 && usermod -aG docker deploy \\
 && systemctl enable docker.service
"""


def _recipe(lab_image: str) -> str:
    return _RECIPE.format(lab_image=lab_image)


def swarm_image_tag(lab_image: str) -> str:
    return f"{SWARM_REPOSITORY}:{hashlib.sha256(_recipe(lab_image).encode()).hexdigest()[:12]}"


def ensure_swarm_image(progress: Callable[[str], None] | None = None) -> str:
    """Build the swarm node image once per lab image; return its tag."""
    say = progress or (lambda _message: None)
    lab_image = ensure_image(say)
    tag = swarm_image_tag(lab_image)
    client = docker.from_env()
    with file_lock(lab_dir().parent / ".image.lock"):
        try:
            client.images.get(tag)
            return tag
        except ImageNotFound:
            pass
        say(f"building {tag} (lab image + docker.io, about 15 s)")
        dockerfile = _recipe(lab_image).encode()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile)
            archive.addfile(info, io.BytesIO(dockerfile))
        buffer.seek(0)
        try:
            client.images.build(
                fileobj=buffer,
                custom_context=True,
                tag=tag,
                pull=False,
                rm=True,
                forcerm=True,
                labels={RECIPE_LABEL: tag},
            )
        except (BuildError, DockerException) as exc:
            raise LabError(f"building {tag} failed: {exc}") from exc
    return tag


def _exec(container: Container, *argv: str) -> tuple[int, str]:
    result = container.exec_run(list(argv))
    return int(result.exit_code), bytes(result.output).decode(errors="replace").strip()


def _wait_dockerd(container: Container, deadline: float) -> None:
    while True:
        code, out = _exec(container, "docker", "info", "--format", "{{.ServerVersion}}")
        if code == 0:
            return
        if time.monotonic() > deadline:
            raise LabError(f"{container.name}: dockerd did not answer: {out}")
        time.sleep(0.5)


def _swarm_info(container: Container) -> tuple[str, str, str]:
    """(LocalNodeState, ClusterID, NodeID) as the host's dockerd sees them; only managers
    know the cluster ID, so a worker is checked by its node ID in the manager's list."""
    code, out = _exec(
        container,
        "docker",
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}}|{{if .Swarm.Cluster}}{{.Swarm.Cluster.ID}}{{end}}|"
        "{{.Swarm.NodeID}}",
    )
    if code != 0:
        raise LabError(f"{container.name}: docker info failed: {out}")
    state, cluster, node_id = ([*out.split("|"), "", "", ""])[:3]
    return state, cluster, node_id


def _check(container: Container, *argv: str) -> str:
    code, out = _exec(container, *argv)
    if code != 0:
        raise LabError(f"{container.name}: {' '.join(argv[:3])} failed: {out}")
    return out


def form_swarm(state: LabState, progress: Callable[[str], None] | None = None) -> None:
    """Make host 1 the manager and every other host a worker of its swarm."""
    say = progress or (lambda _message: None)
    if not state.hosts:
        return
    client = docker.from_env()
    nodes = [client.containers.get(h.container) for h in state.hosts]
    deadline = time.monotonic() + DOCKERD_TIMEOUT
    for node in nodes:
        _wait_dockerd(node, deadline)
    manager, manager_ip = nodes[0], state.hosts[0].ip
    local, cluster, _ = _swarm_info(manager)
    if local != "active" or not cluster:
        say(f"initialising the swarm on {state.hosts[0].name}")
        if local != "inactive":
            _exec(manager, "docker", "swarm", "leave", "--force")
        _check(manager, "docker", "swarm", "init", "--advertise-addr", manager_ip)
    token = _check(manager, "docker", "swarm", "join-token", "-q", "worker")
    members = set(_check(manager, "docker", "node", "ls", "-q").split())
    for host, node in zip(state.hosts[1:], nodes[1:], strict=True):
        local, _, node_id = _swarm_info(node)
        if local == "active" and node_id in members:
            continue
        say(f"joining {host.name} to the swarm")
        if local != "inactive":
            _exec(node, "docker", "swarm", "leave", "--force")
        _check(
            node, "docker", "swarm", "join", "--advertise-addr", host.ip,
            "--token", token, f"{manager_ip}:2377",
        )  # fmt: skip
    _settle(manager, {h.name for h in state.hosts})


def _settle(manager: Container, names: set[str]) -> None:
    """Wait until every host is a Ready node; drop nodes left from removed containers."""
    deadline = time.monotonic() + NODES_TIMEOUT
    while True:
        out = _check(
            manager, "docker", "node", "ls", "--format", "{{.ID}} {{.Hostname}} {{.Status}}"
        )
        ready, stale = set(), []
        for line in out.splitlines():
            node_id, hostname, status = ([*line.split(), "", "", ""])[:3]
            if status == "Ready" and hostname in names:
                ready.add(hostname)
            elif status == "Down":
                stale.append(node_id)
        for node_id in stale:
            _exec(manager, "docker", "node", "rm", "--force", node_id)
        if ready == names:
            return
        if time.monotonic() > deadline:
            raise LabError(f"swarm nodes not ready: {sorted(names - ready)}")
        time.sleep(0.5)
