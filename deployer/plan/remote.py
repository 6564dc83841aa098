"""Commands deployer runs on a host over plain SSH (no Ansible run: `logs`), as pure
functions of the resolved target: the ssh argv, with the same host key checking as every
Ansible run, and the journalctl argv for an app's units.

What the operator gives (`--grep`, `--since`) and what the config names reach the remote
side as single words quoted for the login shell that sshd starts (`shlex.join`), never as
shell text.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from deployer.config.bluegreen import BLUE_GREEN, slot_units
from deployer.config.resolve import ResolvedHost, Target


def ssh_command(
    target: Target, host: ResolvedHost, command: str, options: Sequence[str] = ()
) -> list[str]:
    """`ssh ... host command` with the inventory's user, port, key and known_hosts files:
    host keys are always checked, nothing is asked interactively. `command` is a line for
    the remote login shell, each word already quoted; `options`: more `-o` settings."""
    files = " ".join(str(p) for p in target.known_hosts)
    out = [
        "ssh",
        "-F",
        "none",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={files}",
        "-o",
        f"GlobalKnownHostsFile={files}",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={target.connect_timeout}",
        "-o",
        "LogLevel=ERROR",
        *options,
        "-p",
        str(host.port),
        "-l",
        host.user,
    ]
    if host.private_key is not None:
        out += ["-o", "IdentitiesOnly=yes", "-i", str(host.private_key)]
    return [*out, "--", host.address, command]


def ssh_argv(target: Target, host: ResolvedHost, argv: Sequence[str]) -> list[str]:
    """`ssh_command` for an argv: each word quoted for the remote shell (`shlex.join`)."""
    return ssh_command(target, host, shlex.join(argv))


def journal_units(target: Target, service: str | None = None) -> list[str]:
    """The unit patterns of the app's processes (or of one of its services) on a host."""
    if target.services:
        bases = [
            s.unit for s in target.services if s.kind != "static" and service in (None, s.name)
        ]
    else:
        bases = [target.app.name]
    units = [pattern for base in bases for pattern in (f"{base}.service", f"{base}@*.service")]
    if target.strategy.kind == BLUE_GREEN and not target.services:
        units += slot_units(target.app.name)  # both slots: the live one and the one left
    return units


def journal_argv(
    units: Sequence[str],
    *,
    since: float | None = None,
    lines: int | None = None,
    grep: str | None = None,
    follow: bool = False,
) -> list[str]:
    """journalctl as root (sudo without a password prompt, as Ansible's become) for `units`,
    one JSON object per line. `since`: unix seconds."""
    argv = ["sudo", "-n", "journalctl", "--no-pager", "-q", "-o", "json"]
    argv += ["--output-fields=MESSAGE,_SYSTEMD_UNIT"]
    for unit in units:
        argv += ["-u", unit]
    if since is not None:
        argv += ["--since", f"@{int(since)}"]
    if lines is not None:
        argv += ["-n", str(lines)]
    if grep:
        argv += ["--grep", grep]
    if follow:
        argv.append("-f")
    return argv
