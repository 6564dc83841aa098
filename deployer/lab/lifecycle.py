"""`lab up`, `lab status`, `lab down`: scale a lab to N hosts and prove each one is usable.

`up` is idempotent: running hosts are left alone (same container, same port), stopped
ones are started, missing ones created, extras removed. Hosts made from an older image
(the image assets changed) or another run profile are recreated. `up` returns only once
a real key login over SSH, with strict host key checking, works on every host.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TypeVar

import docker
from docker.errors import DockerException, NotFound
from docker.models.containers import Container

from . import containers, engine
from .files import ensure_key, file_lock, render_hosts_yml, render_known_hosts, write_atomic
from .image import ensure_image, image_tag
from .model import (
    LabError,
    LabHost,
    LabState,
    Progress,
    check_name,
    container_name,
    empty_state,
)
from .profiles import SERVER, SWARM, RunProfile

MAX_HOSTS = 60  # the benchmark scales to 50 hosts
READY_TIMEOUT = 90.0
"""Seconds a host may take from start to a working SSH login (boot takes ~1 s)."""

_T = TypeVar("_T")
_R = TypeVar("_R")


def _parallel(func: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """Run `func` over items in threads; raise one LabError naming every failure."""
    work = list(items)
    if not work:
        return []
    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        futures = [pool.submit(func, item) for item in work]
    errors = [str(f.exception()) for f in futures if f.exception() is not None]
    if errors:
        raise LabError("; ".join(errors))
    return [f.result() for f in futures]


def ssh_argv(state: LabState, host: LabHost, *command: str) -> list[str]:
    """An ssh command line that trusts only the lab's known_hosts and key, never prompts."""
    return [
        "ssh",
        "-F",
        "none",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={state.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "ConnectTimeout=5",
        "-o",
        "LogLevel=ERROR",
        "-i",
        str(state.private_key),
        "-p",
        str(host.port),
        f"{host.user}@{host.address}",
        *command,
    ]


def _wait_for_login(state: LabState, host: LabHost, deadline: float) -> None:
    while True:
        try:
            run = subprocess.run(
                ssh_argv(state, host, "true"), capture_output=True, text=True, timeout=30
            )
            if run.returncode == 0:
                return
            why = run.stderr.strip() or f"exit {run.returncode}"
        except subprocess.TimeoutExpired:
            why = "no answer within 30 s"
        if time.monotonic() > deadline:
            raise LabError(
                f"{host.name}: ssh {host.user}@{host.address}:{host.port} failed after "
                f"{READY_TIMEOUT:.0f} s: {why}"
            )
        time.sleep(0.25)


def _start(container: Container) -> None:
    container.reload()
    if container.status == "paused":
        container.unpause()
    elif container.status in ("created", "exited"):
        container.start()
    elif container.status != "running":  # dead/restarting ones were recreated before this
        raise LabError(f"{container.name} is {container.status}, cannot start it")


def _bring_up(
    client: docker.DockerClient,
    lab: str,
    index: int,
    existing: Container | None,
    image: str,
    profile: RunProfile,
    network: str,
    public_key: str,
) -> tuple[Container, list[str]]:
    """Make host `index` run from `image`; return it with its own public host keys."""
    try:
        return _bring_up_once(client, lab, index, existing, image, profile, network, public_key)
    except DockerException as exc:
        raise LabError(f"{container_name(lab, index)}: {exc}") from exc


def _bring_up_once(
    client: docker.DockerClient,
    lab: str,
    index: int,
    existing: Container | None,
    image: str,
    profile: RunProfile,
    network: str,
    public_key: str,
) -> tuple[Container, list[str]]:
    deadline = time.monotonic() + READY_TIMEOUT
    container = existing
    if container is not None and (
        not containers.matches(container, image, profile)
        or container.status in ("restarting", "dead", "removing")
    ):
        container.remove(force=True)
        container = None
    if container is None:
        container = containers.create(client, lab, index, image, profile, network)
    containers.install_authorized_key(container, public_key)
    _start(container)
    keys = containers.host_keys(container, deadline)
    container.reload()
    return container, keys


def status(name: str = "lab") -> LabState:
    """The lab as docker sees it now; `hosts` is empty when nothing runs."""
    check_name(name)
    client = engine.client()
    found = sorted(containers.find(client, name), key=lambda c: containers.index_of(c) or 0)
    hosts = tuple(containers.describe(c, name) for c in found)
    images = {(c.labels or {}).get(containers.IMAGE_LABEL, "") for c in found} - {""}
    image = images.pop() if len(images) == 1 else image_tag()
    return replace(empty_state(name, image), hosts=hosts)


def up(
    hosts: int,
    name: str = "lab",
    progress: Progress | None = None,
    *,
    profile: RunProfile = SERVER,
    swarm: bool = False,
) -> LabState:
    """Scale lab `name` to exactly `hosts` hosts, ready for SSH; return its state.

    With `swarm`, the hosts run dockerd (SWARM profile, swarm node image) and form one
    swarm: host 1 manages, the others are workers (see deployer.lab.swarm).
    """
    check_name(name)
    if not 0 <= hosts <= MAX_HOSTS:
        raise LabError(f"--hosts must be between 0 and {MAX_HOSTS}, not {hosts}")
    say = progress or (lambda _message: None)
    if swarm:
        from deployer.lab.swarm import ensure_swarm_image, form_swarm

        profile, image = SWARM, ensure_swarm_image(say)
    else:
        image = ensure_image(say)
    state = empty_state(name, image)
    with file_lock(state.directory / ".lock"):
        public_key = ensure_key(state.private_key)
        client = engine.client(pool_size=2 * hosts + 2)
        try:
            ready = _scale(client, state, hosts, profile, public_key, say)
            if swarm:
                form_swarm(ready, say)
            return ready
        except DockerException as exc:
            raise LabError(f"docker error while bringing up lab {name!r}: {exc}") from exc


def _scale(
    client: docker.DockerClient,
    state: LabState,
    hosts: int,
    profile: RunProfile,
    public_key: str,
    say: Progress,
) -> LabState:
    existing: dict[int, Container] = {}
    extras: list[Container] = []
    for container in containers.find(client, state.name):
        index = containers.index_of(container)
        if index is None or not 1 <= index <= hosts or index in existing:
            extras.append(container)
        else:
            existing[index] = container
    if extras:
        say(f"removing {len(extras)} host(s) beyond {hosts}")
        _parallel(lambda c: c.remove(force=True), extras)
    if not hosts:
        containers.remove_networks(client, state.name)
        network = ""
    else:
        network = containers.ensure_network(client, state.name)
    say(f"starting {hosts} host(s) from {state.image}")
    started = _parallel(
        lambda i: _bring_up(
            client, state.name, i, existing.get(i), state.image, profile, network, public_key
        ),
        range(1, hosts + 1),
    )
    lab_hosts = tuple(containers.describe(c, state.name) for c, _ in started)
    ready = replace(state, hosts=lab_hosts)
    write_atomic(
        ready.known_hosts,
        render_known_hosts(
            (h.address, h.port, keys) for h, (_, keys) in zip(lab_hosts, started, strict=True)
        ),
    )
    write_atomic(ready.hosts_file, render_hosts_yml(ready))
    say("waiting for systemd and an SSH key login on every host")
    deadline = time.monotonic() + READY_TIMEOUT
    _parallel(lambda c: containers.wait_booted(c, deadline), [c for c, _ in started])
    _parallel(lambda h: _wait_for_login(ready, h, deadline), lab_hosts)
    return ready


def down(name: str = "lab", progress: Progress | None = None) -> LabState:
    """Remove the lab's containers and network; return the state as it was before.

    The key pair stays (a later `up` reuses it); known_hosts and hosts.yml go, since
    they would describe hosts that no longer exist.
    """
    say = progress or (lambda _message: None)
    before = status(name)
    with file_lock(before.directory / ".lock"):
        client = engine.client(pool_size=2 * len(before.hosts) + 2)
        say(f"removing {len(before.hosts)} host(s) of lab {name!r}")

        def remove(host: LabHost) -> None:
            with contextlib.suppress(NotFound):
                client.containers.get(host.container).remove(force=True, v=True)

        try:
            _parallel(remove, before.hosts)
            containers.remove_networks(client, name)
        except DockerException as exc:
            raise LabError(f"docker error while removing lab {name!r}: {exc}") from exc
        before.known_hosts.unlink(missing_ok=True)
        before.hosts_file.unlink(missing_ok=True)
    return before
