"""Images to nodes without a registry: `docker save` streamed over SSH into `docker load`.

Why no registry: there is none to reach here, and running one means another service to
secure (TLS, credentials) and keep up, for what is a one-way copy. Streaming over the SSH
connections deployer already trusts (strict host key checking) needs nothing new on the
nodes. Each node gets one transfer holding every image it lacks, in parallel across nodes.

Only new layers travel: the node is asked which layer chains it already has and those
layer files are left out of the archive (`skippable`), so after the first release a new
version costs a few KB per node rather than the whole image.

Idempotent: before sending, each node is asked for the image ID behind each tag; a node
that already holds the exact ID is skipped, so a re-run or a rollback moves no bytes, and a
tag that points at another build on a node is replaced.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from deployer.errors import DeployerError
from deployer.targets.swarm.remote import SSH_UNREACHABLE, Nodes

LOAD_TIMEOUT = 600.0


@dataclass(frozen=True)
class NodeDelivery:
    node: str
    sent: tuple[str, ...]  # image refs streamed to the node
    skipped: tuple[str, ...]  # already there with the same ID
    seconds: float
    error: str = ""
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        return not self.error


def held(nodes: Nodes, node: str, refs: Sequence[str]) -> dict[str, str] | None:
    """The image ID each ref names on `node` ('' when absent); None when unreachable."""
    script = "; ".join(
        f"{nodes.docker_cmd('image', 'inspect', '--format', '{{.Id}}', ref)} 2>/dev/null || echo -"
        for ref in refs
    )
    reply = nodes.run(node, script, timeout=60)
    if reply.code == SSH_UNREACHABLE:
        return None
    ids = reply.out.split()
    if len(ids) != len(refs):
        return {ref: "" for ref in refs}
    return {ref: ("" if found == "-" else found) for ref, found in zip(refs, ids, strict=True)}


def present_chains(nodes: Nodes, node: str) -> set[tuple[str, ...]]:
    """Every layer chain (diff IDs from the bottom) some image on `node` already has."""
    script = (
        f'ids=$({nodes.docker_cmd("image", "ls", "-aq")}); [ -z "$ids" ] || '
        f"{nodes.docker_cmd('image', 'inspect', '--format', '{{json .RootFS.Layers}}')} $ids"
    )
    reply = nodes.run(node, script, timeout=60)
    chains: set[tuple[str, ...]] = set()
    for line in reply.out.splitlines() if reply.ok else ():
        with contextlib.suppress(ValueError):
            layers = tuple(json.loads(line) or ())
            chains.update(layers[: i + 1] for i in range(len(layers)))
    return chains


def skippable(archive: tarfile.TarFile, present: set[tuple[str, ...]]) -> set[str]:
    """layer.tar members of a `docker save` archive whose whole chain the node has.

    `docker load` looks each layer chain up before it opens the layer file and skips files
    of chains it has, so leaving them out moves only new layers (the app's, typically a few
    KB) instead of the whole image. If a load ever refuses a thin archive, the full one is
    sent (see `_send`)."""
    manifest = json.load(_member(archive, "manifest.json"))
    needed: set[str] = set()
    skip: set[str] = set()
    for entry in manifest:
        diff_ids = json.load(_member(archive, entry["Config"]))["rootfs"]["diff_ids"]
        for i, path in enumerate(entry["Layers"]):
            (skip if tuple(diff_ids[: i + 1]) in present else needed).add(path)
    return skip - needed


def _member(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    handle = archive.extractfile(name)
    if handle is None:
        raise ValueError(f"{name} missing from the docker save archive")
    return handle


def _send(nodes: Nodes, node: str, saved: Path, present: set[tuple[str, ...]]) -> str:
    """Stream `saved` (thin when possible) into `docker load` on `node`; '' or an error."""
    load = nodes.argv(nodes.hosts[node], nodes.docker_cmd("load", "--quiet"))
    error = ""
    for thin in (True, False) if present else (False,):
        with subprocess.Popen(
            load, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        ) as proc:
            assert proc.stdin is not None
            assert proc.stderr is not None
            try:
                with tarfile.open(saved) as archive:
                    skip = skippable(archive, present) if thin else set()
                    with tarfile.open(fileobj=proc.stdin, mode="w|") as out:
                        for member in archive:
                            if member.name not in skip:
                                data = archive.extractfile(member) if member.isfile() else None
                                out.addfile(member, data)
            except (OSError, ValueError, KeyError, tarfile.TarError) as exc:
                error = f"sending images failed: {exc}"
            with contextlib.suppress(OSError):
                proc.stdin.close()
            err = proc.stderr.read()
            try:
                proc.wait(timeout=LOAD_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                return f"docker load did not finish within {LOAD_TIMEOUT:.0f} s"
        if proc.returncode == 0 and not error:
            return ""
        error = error or f"docker load failed: {err.decode(errors='replace').strip()[-500:]}"
    return error


def save(refs: Sequence[str], directory: Path) -> Path:
    """`docker save refs` into a file once per delivery, read by every node's transfer."""
    path = directory / "images.tar"
    with path.open("wb") as handle:
        run = subprocess.run(["docker", "save", *refs], stdout=handle, stderr=subprocess.PIPE)
    if run.returncode != 0:
        raise DeployerError(f"docker save failed: {run.stderr.decode(errors='replace').strip()}")
    return path


def _needs(nodes: Nodes, node: str, images: Mapping[str, str]) -> tuple[str, ...] | None:
    found = held(nodes, node, list(images))
    if found is None:
        return None
    return tuple(ref for ref, image_id in images.items() if found.get(ref) != image_id)


def deliver_one(
    nodes: Nodes, node: str, images: Mapping[str, str], missing: tuple[str, ...], saved: Path
) -> NodeDelivery:
    """Send `saved` to `node`, which lacks `missing`, and check the IDs afterwards."""
    started = time.monotonic()
    skipped = tuple(ref for ref in images if ref not in missing)
    error = _send(nodes, node, saved, present_chains(nodes, node)) if missing else ""
    if not error and missing:
        after = held(nodes, node, list(missing)) or {}
        wrong = [ref for ref in missing if after.get(ref) != images[ref]]
        if wrong:
            error = f"after docker load, {', '.join(wrong)} still differ"
    return NodeDelivery(node, missing, skipped, time.monotonic() - started, error)


def deliver(nodes: Nodes, images: Mapping[str, str]) -> tuple[NodeDelivery, ...]:
    """Every node of the environment gets `images` (ref -> ID), in parallel."""
    names = list(nodes.hosts)
    with ThreadPoolExecutor(max_workers=max(1, min(len(names), 8))) as pool:
        needs = dict(zip(names, pool.map(lambda n: _needs(nodes, n, images), names), strict=True))
        results = {
            n: NodeDelivery(n, (), (), 0.0, "unreachable", True)
            for n, need in needs.items()
            if need is None
        }
        results.update(
            {n: NodeDelivery(n, (), tuple(images), 0.0) for n, need in needs.items() if need == ()}
        )
        todo = [n for n in names if n not in results]
        if todo:
            with tempfile.TemporaryDirectory(prefix="deployer-images-") as tmp:
                saved = save(list(images), Path(tmp))
                sent = pool.map(
                    lambda n: deliver_one(nodes, n, images, needs[n] or (), saved), todo
                )
                results.update({r.node: r for r in sent})
    return tuple(results[n] for n in names)


def lacking(nodes: Nodes, refs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Nodes that miss any of `refs` (or cannot be asked), with what they miss."""
    out: dict[str, tuple[str, ...]] = {}
    for node in nodes.hosts:
        found = held(nodes, node, refs)
        missing = tuple(refs) if found is None else tuple(r for r in refs if not found.get(r))
        if missing:
            out[node] = missing
    return out
