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
from pathlib import Path

from deployer.config.bluegreen import SLOTTED, slot_units
from deployer.config.resolve import JumpHop, ResolvedHost, Target


def ssh_path(path: Path) -> str:
    """A file as an ssh option's argument: in double quotes, so a space stays part of it,
    with its `%` doubled, since ssh expands %-tokens in IdentityFile and UserKnownHostsFile
    (a path with a double quote, a backslash or `${` is refused when the config resolves)."""
    return '"' + str(path).replace("%", "%%") + '"'


def known_hosts_files(known_hosts: Sequence[Path]) -> str:
    """UserKnownHostsFile's argument: every file, each one word to ssh."""
    return " ".join(ssh_path(p) for p in known_hosts)


def _checked(known_hosts: Sequence[Path], timeout: int) -> list[str]:
    """What every ssh deployer starts says: host keys checked against these files only,
    nothing asked interactively."""
    files = known_hosts_files(known_hosts)
    return [
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={files}",
        "-o",
        f"GlobalKnownHostsFile={files}",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={timeout}",
        "-o",
        "LogLevel=ERROR",
    ]


def _login(port: int, user: str, key: Path | None) -> list[str]:
    out = ["-p", str(port), "-l", user]
    if key is not None:
        out += ["-o", "IdentitiesOnly=yes", "-o", f"IdentityFile={ssh_path(key)}"]
    return out


def proxy_command(target: Target, hops: Sequence[JumpHop] | None = None) -> str | None:
    """The ProxyCommand that reaches a host through `hops` (default: the target's
    `ssh.jump`), or None without any: `ssh -W %h:%p` to the last hop, itself reached through
    the ones before it. Each hop keeps its own user, key and known_hosts, and its host key
    is checked. The ProxyCommand of an inner hop is text inside the outer one, so its `%`
    are doubled there: the outer ssh expands its own tokens, the inner ssh then expands the
    inner ones (its own hop's %h and %p)."""
    chain = list(target.jump if hops is None else hops)
    if not chain:
        return None
    *before, last = chain
    own = [
        *_checked(last.known_hosts, target.connect_timeout),
        *_login(last.port, last.user, last.private_key),
    ]
    # the line is expanded once by the ssh that runs it before this hop's ssh expands its
    # own options: their `%` (a path's, already doubled) are doubled once more
    argv = ["ssh", "-F", "none", *(word.replace("%", "%%") for word in own)]
    inner = proxy_command(target, before)
    if inner is not None:
        argv += ["-o", "ProxyCommand=" + inner.replace("%", "%%")]
    argv += ["-W", "%h:%p", "--", last.address]
    return shlex.join(argv)


def hop_command(target: Target, index: int, command: str) -> list[str]:
    """`ssh ... hop command` to `ssh.jump[index]`, through the hops before it: what tells
    which hop of a chain cannot be reached."""
    hop = target.jump[index]
    inner = proxy_command(target, target.jump[:index])
    return [
        "ssh",
        "-F",
        "none",
        *_checked(hop.known_hosts, target.connect_timeout),
        *([] if inner is None else ["-o", f"ProxyCommand={inner}"]),
        *_login(hop.port, hop.user, hop.private_key),
        "--",
        hop.address,
        command,
    ]


def host_hops(target: Target, host: str | None = None) -> tuple[JumpHop, ...]:
    """The hops on the way to `host`: `ssh.jump`, or, for a host at a site (`ssh.nodes`),
    the node's own bastions and then the node itself (plain SSH commands such as `logs`
    reach a site's hosts through its node, every hop's key checked)."""
    for site in target.sites:
        if host in site.hosts:
            node = site.node
            gate = JumpHop(node.address, node.port, node.user, node.private_key, node.known_hosts)
            return (*node.jump, gate)
    return target.jump


def jump_options(target: Target, host: str | None = None) -> list[str]:
    """`-o ProxyCommand=...` when the host (default: every host) sits behind bastions or an
    execution node, else nothing."""
    command = proxy_command(target, host_hops(target, host))
    return [] if command is None else ["-o", f"ProxyCommand={command}"]


def ssh_command(
    target: Target, host: ResolvedHost, command: str, options: Sequence[str] = ()
) -> list[str]:
    """`ssh ... host command` with the inventory's user, port, key and known_hosts files,
    through the environment's jump hosts: host keys are always checked (every hop's too),
    nothing is asked interactively. `command` is a line for the remote login shell, each
    word already quoted; `options`: more `-o` settings."""
    out = [
        "ssh",
        "-F",
        "none",
        *_checked(target.known_hosts, target.connect_timeout),
        *jump_options(target, host.name),
        *options,
        *_login(host.port, host.user, host.private_key),
    ]
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
    if target.strategy.kind in SLOTTED and not target.services:
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
