"""Execution nodes against direct SSH: the same deploy of the same tarball to the same N lab
hosts, once straight from the control host and once through two execution nodes (half the
hosts behind each), runs alternated. Measured per deploy: wall time, and the control host's
CPU time (user + system of the `deployer` process and everything it waited for: Ansible on
the direct path, transmit/process and ssh on the nodes' path).

On this machine the nodes are lab containers too, so their Ansible competes with the control
host's for the same cores: the wall times are what this machine gives, not a remote site's;
the CPU time on the control host is the part the nodes take away.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from bench.contenders import APP, Bench
from deployer.lab import LabState

NODES_PORT = 18030
DIRECT_PORT = 18031


def _known_hosts(lab: LabState) -> str:
    """The lab's entries plus each host's key at its own address, port 22 (how a node sees
    the hosts of its site)."""
    lines = lab.known_hosts.read_text().splitlines()
    out = list(lines)
    for host in lab.hosts:
        mine = [line for line in lines if line.startswith(f"[127.0.0.1]:{host.port} ")]
        out += [host.ip + line[line.index(" ") :] for line in mine]
    return "\n".join(out) + "\n"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _deploy(root: Path, environment: str, version: str) -> tuple[float, float]:
    cpu, started = _children_cpu(), time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "deployer", "deploy", environment, "--version", version],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"deploy {environment} {version} failed: {proc.stderr[-3000:]}")
    return wall, _children_cpu() - cpu


def _nodes_config(root: Path, lab: LabState, n: int) -> None:
    west, east, *apps = lab.hosts[: n + 2]
    half = len(apps) // 2

    def group(hosts: list[Any]) -> list[dict[str, Any]]:
        return [{"name": h.name, "address": h.ip, "port": 22, "user": h.user} for h in hosts]

    def node(host: Any, component: str) -> dict[str, Any]:
        return {"address": "127.0.0.1", "port": host.port, "user": host.user, "groups": [component]}

    (root / "known_hosts").write_text(_known_hosts(lab))
    config = {
        "app": {"name": "benchnodes"},
        "artifact": {"path": str(APP)},
        "service": {"command": "/usr/bin/python3 app.py", "port": NODES_PORT, "listen": "socket"},
        "health": {"http": {"path": "/healthz", "timeout": 2}, "retries": 50, "interval": 0.2},
        "strategy": {"kind": "all_at_once"},
        "keep_releases": 3,
        "environments": {
            "nodes": {
                "hosts": {"west": group(apps[:half]), "east": group(apps[half:])},
                "ssh": {
                    "private_key": str(lab.private_key),
                    "known_hosts": "known_hosts",
                    "nodes": {"west": node(west, "west"), "east": node(east, "east")},
                },
            }
        },
    }
    (root / "deploy.yml").write_text(yaml.safe_dump(config, sort_keys=False))


def nodes_vs_direct(tmp: Path, lab: LabState, n: int, runs: int) -> dict[str, Any]:
    """`n` app hosts (the lab's hosts 3..n+2; hosts 1 and 2 are the nodes)."""
    apps = replace(lab, hosts=lab.hosts[2 : n + 2])
    direct = Bench(tmp / "direct", apps, n, app="benchdirect", port=DIRECT_PORT)
    direct.write_config()
    through = tmp / "nodes"
    through.mkdir(parents=True)
    _nodes_config(through, lab, n)
    # warm-up, not timed: the first deploy, and the nodes' install
    _deploy(direct.root, direct.environment, "warm")
    _deploy(through, "nodes", "warm")
    samples: dict[str, list[tuple[float, float]]] = {"direct": [], "nodes": []}
    for run in range(runs):
        version = f"r{run}-{int(time.time())}"
        samples["direct"].append(_deploy(direct.root, direct.environment, version))
        samples["nodes"].append(_deploy(through, "nodes", version))
    return {
        "hosts": n,
        "runs": runs,
        "samples": {k: [{"wall_s": w, "cpu_s": c} for w, c in v] for k, v in samples.items()},
        "median": {
            kind: {
                "wall_s": statistics.median(w for w, _ in values),
                "cpu_s": statistics.median(c for _, c in values),
            }
            for kind, values in samples.items()
        },
    }


def line(result: dict[str, Any]) -> str:
    m = result["median"]
    return (
        f"deploy at {result['hosts']} hosts (median of {result['runs']}): direct "
        f"{m['direct']['wall_s']:.2f}s wall, {m['direct']['cpu_s']:.2f}s control-host CPU; "
        f"through two execution nodes {m['nodes']['wall_s']:.2f}s wall, "
        f"{m['nodes']['cpu_s']:.2f}s control-host CPU"
    )
