"""`deployer logs ENV` on servers: the app's journal on every host chosen, over plain SSH
(one connection per host, in parallel), merged by time; `-f` follows until interrupted.
Each line is parsed as journalctl's JSON, then made safe to show (deployer.targets.logtext).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from deployer.config.resolve import ResolvedHost
from deployer.errors import BadRequest
from deployer.plan.remote import journal_argv, journal_units, ssh_argv
from deployer.targets.base import LogLine, LogsResult
from deployer.targets.logtext import (
    CONTROL,
    check_grep,
    clean,
    follow_streams,
    parse_since,
    stream_errors,
    why_failed,
)
from deployer.targets.ssh.context import SshSession


def parse_line(host: str, raw: str, redact: Callable[[str], str]) -> LogLine | None:
    """One journalctl JSON line -> LogLine, or None when it is not one."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    stamp = entry.get("__REALTIME_TIMESTAMP")
    if not isinstance(stamp, str) or not stamp.isdigit():
        return None
    message = entry.get("MESSAGE")
    if isinstance(message, list):  # journalctl sends bytes that are not UTF-8 as numbers
        message = bytes(b for b in message if isinstance(b, int) and 0 <= b < 256).decode(
            "utf-8", "replace"
        )
    if not isinstance(message, str):
        return None
    unit = entry.get("_SYSTEMD_UNIT")
    if unit == "init.scope":  # what systemd itself said about the unit
        unit = "systemd"
    return LogLine(
        host=host,
        time=datetime.fromtimestamp(int(stamp) / 1e6, UTC),
        unit=CONTROL.sub("", unit)[:200] if isinstance(unit, str) else "",
        message=clean(message, redact),
    )


def _chosen(session: SshSession, hosts: Sequence[str], service: str | None) -> list[ResolvedHost]:
    target = session.target
    if service is not None:
        names = [s.name for s in target.services if s.kind != "static"]
        if service not in names:
            known = ", ".join(names) or "none: the app is one service"
            raise BadRequest(f"--service: {service!r} is not a service with processes ({known})")
    known_hosts = {h.name: h for h in target.hosts}
    unknown = [h for h in hosts if h not in known_hosts]
    if unknown:
        raise BadRequest(
            f"--host: {unknown[0]!r} is not a host of environment {target.environment} "
            f"({', '.join(known_hosts)})"
        )
    chosen = [known_hosts[h] for h in hosts] if hosts else list(target.hosts)
    if service is not None:
        runs = next(s.hosts for s in target.services if s.name == service)
        chosen = [h for h in chosen if h.name in runs]
    return chosen


def _plan(
    session: SshSession,
    service: str | None,
    hosts: Sequence[str],
    since: str | None,
    lines: int,
    grep: str | None,
    *,
    follow: bool,
) -> tuple[list[ResolvedHost], list[str]]:
    """The hosts to read and the journalctl argv, every filter checked first."""
    chosen = _chosen(session, hosts, service)
    argv = journal_argv(
        journal_units(session.target, service),
        since=parse_since(since) if since else None,
        lines=lines,
        grep=check_grep(grep),
        follow=follow,
    )
    return chosen, argv


def read(
    session: SshSession,
    *,
    service: str | None = None,
    hosts: Sequence[str] = (),
    since: str | None = None,
    lines: int = 100,
    grep: str | None = None,
) -> LogsResult:
    """The last `lines` lines of the app's units on every host chosen, merged by time."""
    target = session.target
    chosen, argv = _plan(session, service, hosts, since, lines, grep, follow=False)

    def one(host: ResolvedHost) -> tuple[str, list[LogLine], str]:
        if session.progress:
            session.progress.task(host.name, "read the journal", "running")
        proc = subprocess.run(
            ssh_argv(target, host, argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=120,
        )
        found = [parse_line(host.name, raw, session.redact) for raw in proc.stdout.splitlines()]
        # journalctl exits 1 when --grep matched nothing
        failed = proc.returncode not in (0, 1) or (proc.returncode == 1 and proc.stderr.strip())
        if session.progress:
            session.progress.task(host.name, "read the journal", "failed" if failed else "ok")
        why = why_failed(proc.returncode, proc.stderr, "journalctl") if failed else ""
        return host.name, [f for f in found if f is not None], why

    with ThreadPoolExecutor(max_workers=max(1, min(len(chosen), 32))) as pool:
        results = list(pool.map(one, chosen))
    merged = sorted((line for _, found, _ in results for line in found), key=lambda line: line.time)
    errors = {host: why for host, _, why in results if why}
    return LogsResult(target.environment, tuple(merged[-lines:]), errors)


def follow(
    session: SshSession,
    on_line: Callable[[LogLine], None],
    *,
    service: str | None = None,
    hosts: Sequence[str] = (),
    since: str | None = None,
    lines: int = 10,
    grep: str | None = None,
) -> LogsResult:
    """Print (through `on_line`) the last `lines` lines of each host, then every new one as
    it is written, in time order within MERGE_WINDOW, until the session is interrupted or
    every host's stream ended. Returns the hosts whose stream failed."""
    target = session.target
    chosen, argv = _plan(session, service, hosts, since, lines, grep, follow=True)
    procs = {
        host.name: subprocess.Popen(
            ssh_argv(target, host, argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        for host in chosen
    }
    follow_streams(
        procs,
        lambda host, raw: parse_line(host, raw, session.redact),
        on_line,
        session.interrupted,
    )
    errors = stream_errors(procs, session.interrupted, "journalctl")
    return LogsResult(target.environment, (), errors)
