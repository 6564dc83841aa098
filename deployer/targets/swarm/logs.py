"""`deployer logs ENV` on Docker Swarm: `docker service logs` of the stack's services on the
manager (over SSH, one command per service), each line's task and node read from docker's
prefix, merged by time; `-f` follows until interrupted."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from deployer.errors import BadRequest, UnreachableError
from deployer.targets.base import LogLine, LogsResult
from deployer.targets.logtext import (
    check_grep,
    clean,
    follow_streams,
    parse_since,
    stream_errors,
    why_failed,
)
from deployer.targets.swarm.remote import SSH_UNREACHABLE

_STAMP = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z")
_TASK = re.compile(r"([A-Za-z0-9_.-]+)@([A-Za-z0-9_.-]+)")


def parse_line(
    service: str, raw: str, redact: Callable[[str], str], grep: re.Pattern[str] | None = None
) -> LogLine | None:
    """`<task>@<node> | <timestamp> <message>` (docker service logs -t) -> LogLine; the
    host is the node. None when the line has not that shape or `grep` does not match."""
    prefix, bar, rest = raw.rstrip("\n").partition(" | ")
    if not bar:
        return None
    task = _TASK.search(prefix)
    stamp = _STAMP.match(rest) or _STAMP.match(prefix)
    if task is None or stamp is None:
        return None
    message = rest[stamp.end() :].lstrip(" ") if stamp.string is rest else rest
    if grep is not None and not grep.search(message):
        return None
    micros = (stamp.group(2) or "").ljust(6, "0")[:6]
    when = datetime.fromisoformat(f"{stamp.group(1)}.{micros}").replace(tzinfo=UTC)
    return LogLine(host=task.group(2), time=when, unit=service, message=clean(message, redact))


def _chosen(target: Any, service: str | None) -> list[Any]:
    specs = list(target.specs)
    if service is None:
        return specs
    found = [s for s in specs if s.name == service]
    if not found:
        names = ", ".join(s.name for s in specs)
        raise BadRequest(f"--service: {service!r} is not a component of the stack ({names})")
    return found


def _command(driver: Any, spec: Any, since: float | None, lines: int, follow: bool) -> str:
    args = ["service", "logs", "--timestamps", "--no-trunc", "--tail", str(lines)]
    if since is not None:
        args += ["--since", str(int(since))]
    if follow:
        args.append("--follow")
    command: str = driver.nodes.docker_cmd(*args, spec.service)
    return command


def _options(driver: Any, hosts: Sequence[str], grep: str | None) -> tuple[set[str], Any]:
    known = set(driver.session.target.host_names)
    unknown = [h for h in hosts if h not in known]
    if unknown:
        raise BadRequest(f"--host: {unknown[0]!r} is not a node of the swarm ({', '.join(known)})")
    pattern = check_grep(grep)
    return set(hosts), re.compile(pattern) if pattern else None


def read(
    driver: Any,
    *,
    service: str | None = None,
    hosts: Sequence[str] = (),
    since: str | None = None,
    lines: int = 100,
    grep: str | None = None,
) -> LogsResult:
    session = driver.session
    wanted, pattern = _options(driver, hosts, grep)
    start = parse_since(since) if since else None
    found: list[LogLine] = []
    errors: dict[str, str] = {}
    for spec in _chosen(driver, service):
        if session.progress:
            session.progress.task(spec.service, "docker service logs", "running")
        reply = driver.nodes.run(driver.nodes.manager, _command(driver, spec, start, lines, False))
        if reply.code == SSH_UNREACHABLE:
            raise UnreachableError(f"swarm manager {driver.nodes.manager} unreachable: {reply.err}")
        if not reply.ok:
            errors[spec.service] = why_failed(reply.code, reply.err, "docker service logs")
        for raw in reply.out.splitlines():
            line = parse_line(spec.name, raw, session.redact, pattern)
            if line is not None and (not wanted or line.host in wanted):
                found.append(line)
        if session.progress:
            state = "failed" if spec.service in errors else "ok"
            session.progress.task(spec.service, "docker service logs", state)
    found.sort(key=lambda line: line.time)
    return LogsResult(session.target.environment, tuple(found[-lines:]), errors)


def follow(
    driver: Any,
    on_line: Callable[[LogLine], None],
    *,
    service: str | None = None,
    hosts: Sequence[str] = (),
    since: str | None = None,
    lines: int = 10,
    grep: str | None = None,
) -> LogsResult:
    session = driver.session
    wanted, pattern = _options(driver, hosts, grep)
    start = parse_since(since) if since else None
    manager = driver.nodes.hosts[driver.nodes.manager]
    procs = {
        spec.name: subprocess.Popen(
            driver.nodes.argv(manager, _command(driver, spec, start, lines, True)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        for spec in _chosen(driver, service)
    }

    def parse(name: str, raw: str) -> LogLine | None:
        line = parse_line(name, raw, session.redact, pattern)
        return line if line is not None and (not wanted or line.host in wanted) else None

    follow_streams(procs, parse, on_line, session.interrupted)
    errors = stream_errors(procs, session.interrupted, "docker service logs")
    return LogsResult(session.target.environment, (), errors)
