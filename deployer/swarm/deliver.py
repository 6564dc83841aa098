"""Images to nodes without a registry: `docker save` streamed over SSH into `docker load`.

Why no registry: there is none to reach here, and running one means another service to
secure (TLS, credentials) and keep up, for what is a one-way copy. Streaming over the SSH
connections deployer already trusts (strict host key checking) needs nothing new on the
nodes. Each node gets one transfer holding every image it lacks, in parallel across nodes.

Idempotent: before sending, each node is asked for the image ID behind each tag; a node
that already holds the exact ID is skipped, so a re-run or a rollback moves no bytes, and a
tag that points at another build on a node is replaced.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from deployer.swarm.remote import SSH_UNREACHABLE, Nodes

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


def _stream(nodes: Nodes, node: str, refs: Sequence[str]) -> str:
    """`docker save refs | ssh node docker load`; returns an error message or ''."""
    load = nodes.argv(nodes.hosts[node], nodes.docker_cmd("load", "--quiet"))
    with subprocess.Popen(
        ["docker", "save", *refs], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as save:
        try:
            loaded = subprocess.run(
                load, stdin=save.stdout, capture_output=True, timeout=LOAD_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            save.kill()
            return f"docker load did not finish within {LOAD_TIMEOUT:.0f} s"
        finally:
            if save.stdout is not None:
                save.stdout.close()
        save_err = save.stderr.read().decode(errors="replace").strip() if save.stderr else ""
        save.wait()
    if save.returncode != 0:
        return f"docker save failed: {save_err}"
    if loaded.returncode != 0:
        return f"docker load failed: {loaded.stderr.decode(errors='replace').strip()[-500:]}"
    return ""


def deliver_one(nodes: Nodes, node: str, images: Mapping[str, str]) -> NodeDelivery:
    """Make `node` hold every `ref -> image ID` of `images`."""
    started = time.monotonic()
    found = held(nodes, node, list(images))
    if found is None:
        return NodeDelivery(node, (), (), time.monotonic() - started, "unreachable", True)
    missing = tuple(ref for ref, image_id in images.items() if found.get(ref) != image_id)
    skipped = tuple(ref for ref in images if ref not in missing)
    error = _stream(nodes, node, missing) if missing else ""
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
        return tuple(pool.map(lambda n: deliver_one(nodes, n, images), names))


def lacking(nodes: Nodes, refs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Nodes that miss any of `refs` (or cannot be asked), with what they miss."""
    out: dict[str, tuple[str, ...]] = {}
    for node in nodes.hosts:
        found = held(nodes, node, refs)
        missing = tuple(refs) if found is None else tuple(r for r in refs if not found.get(r))
        if missing:
            out[node] = missing
    return out
