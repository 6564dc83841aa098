"""Which hop of `ssh.jump` is broken, when hosts behind it cannot be reached.

Through a ProxyCommand, ssh reports a dead bastion as the host's own failure ("Connection
closed by UNKNOWN port 65535"), which names the wrong machine. When hosts are unreachable and
the environment has jump hosts, each hop is tried in order (one `ssh hop true` through the
hops before it) and the first that fails is named, with what ssh said about it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import replace

from deployer.config.resolve import Target
from deployer.plan.remote import hop_command
from deployer.targets.base import cap
from deployer.targets.ssh.runner import HostOutcome, RunResult, explain_unreachable


def broken_hop(target: Target) -> str | None:
    """Why the first unreachable hop is, or None when every hop answers."""
    for index, hop in enumerate(target.jump):
        argv = hop_command(target, index, "true")
        timeout = target.connect_timeout * (index + 1) + 10
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            why = f"no answer within {timeout} s"
        else:
            if proc.returncode == 0:
                continue
            why = cap(proc.stderr.strip() or f"ssh exited {proc.returncode}", 300)
        return (
            f"jump host {hop.address}:{hop.port} (ssh.jump[{index}]) cannot be reached: "
            f"{explain_unreachable(why)}"
        )
    return None


def name_broken_hop(result: RunResult, why: str) -> RunResult:
    """`result` with `why` (the broken hop) first in every unreachable host's message."""

    def named(outcomes: Mapping[str, HostOutcome]) -> dict[str, HostOutcome]:
        return {
            host: replace(o, message=f"{why}; {o.message}") if o.unreachable else o
            for host, o in outcomes.items()
        }

    phases = {name: named(outcomes) for name, outcomes in result.phases.items()}
    return replace(result, hosts=named(result.hosts), phases=phases)
