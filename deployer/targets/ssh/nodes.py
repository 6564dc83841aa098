"""Execution nodes: checked and, where needed, installed before any run touches a host, then
each run's part for a site streamed to its node, the parts run side by side and merged.

On a node deployer owns `~/.deployer-node/` (`NODE_DIR`):
- `venv-<key>/`: a venv with ansible-core and ansible-runner pinned to the control host's
  installed versions (`<key>` hashes them), installed from wheels the control host sends (the
  node needs python3 only, no index);
- `collections/<hash>/`: the `deployer.core` collection, the control host's copy, by content
  hash;
- `runs/<ident>/`: one run's private data directory (inventory, extra vars, the vault file,
  the keys and known_hosts it needs), there only while the run lasts;
- `cp/`: the node's SSH control sockets.
One SSH command tells whether both installs are there (`CHECK`); each is sent only when
missing or different. Every command is argv quoted word by word; the scripts are this
module's constants, their arguments hex digests and paths deployer made.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import re
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from deployer.config.resolve import Target
from deployer.config.sites import ExecutionNode
from deployer.errors import DeployerError, UnreachableError
from deployer.paths import collections_dir
from deployer.plan.sites import NODE_DIR, cleanup_argv, node_ssh, worker_argv
from deployer.targets.base import cap
from deployer.targets.ssh.runner import (
    HostOutcome,
    NodeStreamError,
    RunResult,
    Stream,
    explain_unreachable,
)

PINNED = ("ansible-core", "ansible-runner")

CHECK = """\
import json, os, sys
home = os.path.join(os.path.expanduser("~"), sys.argv[1])
venv, coll = sys.argv[2], sys.argv[3]
print(json.dumps({
    "home": home,
    "python": "%d.%d" % sys.version_info[:2],
    "venv": os.path.isfile(os.path.join(home, venv, "READY")),
    "collection": os.path.isfile(os.path.join(home, "collections", coll, "READY")),
}))
"""

INSTALL = """\
import os, shutil, subprocess, sys, tarfile, tempfile, venv
home = os.path.join(os.path.expanduser("~"), sys.argv[1])
kind, name = sys.argv[2], sys.argv[3]
for sub in ("collections", "runs", "cp"):
    os.makedirs(os.path.join(home, sub), mode=0o700, exist_ok=True)
final = os.path.join(home, name) if kind == "venv" else os.path.join(home, "collections", name)
shutil.rmtree(final, ignore_errors=True)  # a half-done install (no READY) starts over
work = tempfile.mkdtemp(dir=home, prefix=".install-")
try:
    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as archive:
        for member in archive:  # plain files at relative paths only (3.11.2 has no filter=)
            parts = member.name.split("/")
            if not member.isfile() or member.name.startswith("/") or ".." in parts:
                sys.exit("refused archive member " + repr(member.name))
            member.mode = 0o644
            archive.extract(member, os.path.join(work, "in"))
    if kind == "venv":
        venv.create(final, with_pip=False, symlinks=True)
        wheels = os.path.join(work, "in")
        pip = [f for f in os.listdir(wheels) if f.startswith("pip-")][0]
        subprocess.run(
            [os.path.join(final, "bin", "python"), os.path.join(wheels, pip, "pip"),
             "install", "--quiet", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
             "--find-links", wheels, *sys.argv[4:]],
            check=True, stdout=sys.stderr,
        )
    else:
        os.rename(os.path.join(work, "in"), final)
    open(os.path.join(final, "READY"), "w").close()
finally:
    shutil.rmtree(work, ignore_errors=True)
"""


@cache
def pinned_versions() -> tuple[tuple[str, str], ...]:
    """The control host's installed versions of what a node runs."""
    return tuple((name, importlib.metadata.version(name)) for name in PINNED)


@cache
def collection_hash() -> str:
    """The content hash of the control host's `deployer.core` collection."""
    root = collections_dir()
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def venv_name() -> str:
    spec = ",".join(f"{n}=={v}" for n, v in pinned_versions())
    return "venv-" + hashlib.sha256(spec.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class NodeHome:
    """A node ready for runs: where its install lives."""

    node: ExecutionNode
    home: PurePosixPath
    control_dir: Path | None = None

    @property
    def runner(self) -> PurePosixPath:
        return self.home / venv_name() / "bin" / "ansible-runner"

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.home / venv_name() / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "ANSIBLE_COLLECTIONS_PATH": str(self.home / "collections" / collection_hash()),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.home / "cp"),
        }

    def stream(self, target: Target, ident: str, files: Mapping[str, Path]) -> Stream:
        remote = self.home / "runs" / ident
        return Stream(
            label=self.node.label,
            remote=remote,
            worker=node_ssh(target, self.node, worker_argv(self.runner, remote), self.control_dir),
            cleanup=node_ssh(target, self.node, cleanup_argv(remote), self.control_dir),
            files=dict(files),
            env=self.env(),
        )


def _ssh(
    target: Target,
    node: ExecutionNode,
    argv: Sequence[str],
    data: bytes | None,
    timeout: int,
    control_dir: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            node_ssh(target, node, argv, control_dir),
            input=data if data is not None else b"",
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UnreachableError(
            f"{node.label}: no answer within {timeout} s; nothing was changed"
        ) from None


def _check(target: Target, node: ExecutionNode, control_dir: Path | None) -> dict[str, Any]:
    argv = ["python3", "-c", CHECK, NODE_DIR, venv_name(), collection_hash()]
    timeout = target.connect_timeout * (len(node.jump) + 1) + 20
    proc = _ssh(target, node, argv, None, timeout, control_dir)
    why = proc.stderr.decode(errors="replace").strip()
    if proc.returncode == 255:  # ssh's own failure: not reached, or its key did not match
        raise UnreachableError(
            f"{node.label} cannot be reached: {explain_unreachable(cap(why, 400))}; "
            "nothing was changed"
        )
    try:
        found = json.loads(proc.stdout)
    except ValueError:
        found = None
    if proc.returncode != 0 or not isinstance(found, dict):
        raise DeployerError(
            f"{node.label}: checking its install failed (exit {proc.returncode}): "
            f"{cap(why, 400) or 'no answer'}; it needs python3"
        )
    problem = _check_reply_problem(found)
    if problem:
        raise DeployerError(f"{node.label}: its install check answered {problem}; nothing was run")
    return found


_NODE_HOME = re.compile(r"/[A-Za-z0-9._/@+-]{0,255}")
"""A home directory as deployer puts it in the node's argv and environment: an absolute path
of plain characters (what a node answers is checked, never trusted)."""


def _check_reply_problem(found: Mapping[str, Any]) -> str:
    """What is wrong with a node's answer to the install check ("" when nothing)."""
    home = found.get("home")
    if not isinstance(home, str) or not _NODE_HOME.fullmatch(home) or "/../" in f"{home}/":
        return f"a home directory deployer does not use: {cap(repr(home), 80)}"
    if not all(isinstance(found.get(key), bool) for key in ("venv", "collection")):
        return "without its venv and collection states"
    return ""


def _wheels(state_dir: Path) -> Path:
    """Wheels of the pinned versions and their dependencies (and pip, which installs them on
    the node), fetched once by the control host's pip into its state directory."""
    dest = state_dir / "node-wheels" / venv_name()
    if (dest / "READY").exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    specs = [f"{n}=={v}" for n, v in pinned_versions()]
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
    proc = subprocess.run(
        [*pip, "--dest", str(dest), *specs, "pip"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise DeployerError(
            f"fetching the wheels of {', '.join(specs)} for the execution nodes failed: "
            f"{cap(proc.stderr.strip(), 400)}"
        )
    (dest / "READY").touch()
    return dest


def _tar(root: Path, skip: Callable[[Path], bool] = lambda p: False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not skip(path):
                archive.add(path, arcname=str(path.relative_to(root)), recursive=False)
    return buffer.getvalue()


def _install(target: Target, node: ExecutionNode, kind: str, name: str, data: bytes) -> None:
    extra = [f"{n}=={v}" for n, v in pinned_versions()] if kind == "venv" else []
    argv = ["python3", "-c", INSTALL, NODE_DIR, kind, name, *extra]
    proc = _ssh(target, node, argv, data, 600)
    if proc.returncode != 0:
        why = cap(proc.stderr.decode(errors="replace").strip(), 600)
        what = "ansible-core/ansible-runner" if kind == "venv" else "the deployer.core collection"
        raise DeployerError(
            f"{node.label}: installing {what} failed (exit {proc.returncode}): {why}"
        )


def ready(
    target: Target, node: ExecutionNode, state_dir: Path, control_dir: Path | None = None
) -> NodeHome:
    """The node checked (one SSH command) and, where missing or different, installed."""
    found = _check(target, node, control_dir)
    if not found["venv"]:
        _install(target, node, "venv", venv_name(), _tar(_wheels(state_dir)))
    if not found["collection"]:
        skip: Callable[[Path], bool] = lambda p: "__pycache__" in p.parts  # noqa: E731
        _install(target, node, "collection", collection_hash(), _tar(collections_dir(), skip))
    return NodeHome(node, PurePosixPath(str(found["home"])), control_dir)


def ready_all(
    target: Target, state_dir: Path, control_dir: Path | None = None
) -> dict[str, NodeHome]:
    """Every node of the environment ready, checked side by side; the first problem (in
    config order) is raised, before any run touches a host."""
    nodes = [site.node for site in target.sites]
    if not nodes:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(nodes))) as pool:
        futures = [pool.submit(ready, target, node, state_dir, control_dir) for node in nodes]
    homes: dict[str, NodeHome] = {}
    for node, future in zip(nodes, futures, strict=True):
        homes[node.site] = future.result()  # raises that node's error
    return homes


def merge(results: Sequence[RunResult]) -> RunResult:
    """One result from the parts of a run: every host's outcome, the worst status, the
    earliest start of each phase."""
    if len(results) == 1:
        return results[0]
    order = ("canceled", "timeout", "failed", "successful")
    status = min((r.status for r in results), key=lambda s: order.index(s) if s in order else -1)
    hosts: dict[str, HostOutcome] = {}
    phases: dict[str, dict[str, HostOutcome]] = {}
    started: dict[str, float] = {}
    for result in results:
        hosts.update(result.hosts)
        for name, outcomes in result.phases.items():
            phases.setdefault(name, {}).update(outcomes)
        for name, when in result.phase_started.items():
            started[name] = min(when, started.get(name, when))
    return replace(
        results[0],
        status=status,
        rc=next((r.rc for r in results if r.rc != 0), 0),
        hosts=hosts,
        seconds=max(r.seconds for r in results),
        phases=phases,
        phase_started=started,
    )


def broken_part(hosts: Sequence[str], why: str, playbook: str, artifact_dir: Path) -> RunResult:
    """A part whose node stream broke: each of its hosts unreachable, the node named."""
    outcomes = {h: HostOutcome(host=h, unreachable=True, message=why) for h in hosts}
    return RunResult(
        playbook=playbook,
        status="failed",
        rc=-1,
        hosts=outcomes,
        seconds=0.0,
        artifact_dir=artifact_dir,
        phases={"": outcomes},
    )


class LockedSink:
    """A progress sink several parts report to at once."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._sink, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call


def run_parts(
    calls: Sequence[Callable[[], RunResult]],
) -> list[RunResult | BaseException]:
    """Run the parts side by side; each one's result or the exception it raised."""
    if len(calls) == 1:
        try:
            return [calls[0]()]
        except NodeStreamError as exc:
            return [exc]
    out: list[RunResult | BaseException] = []
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        for future in futures:
            try:
                out.append(future.result())
            except NodeStreamError as exc:
                out.append(exc)
    return out
