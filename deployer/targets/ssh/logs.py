"""`deployer logs ENV`: the app's journal on every host chosen, over plain SSH (one
connection per host, in parallel), merged by time; `-f` follows until interrupted.

What a host sends is text, never trusted: each line is parsed as journalctl's JSON, its
message freed of control characters (no terminal escape reaches the operator), capped and
masked with every secret value deployer knows.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from deployer.config.resolve import ResolvedHost
from deployer.errors import BadRequest
from deployer.plan.remote import journal_argv, journal_units, ssh_argv
from deployer.targets.base import LogLine, LogsResult
from deployer.targets.ssh.context import SshSession

MAX_CHARS = 4000
"""Characters kept of one line."""
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SINCE = re.compile(r"([0-9]{1,6})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MERGE_WINDOW = 0.3
"""Seconds `-f` holds lines to print those of several hosts in the order they were written."""


def parse_since(value: str, now: float | None = None) -> float:
    """`--since`: `10m`, `2h`, `1d` ago, or an ISO 8601 time (UTC unless it says) -> unix
    seconds. Anything else is bad input."""
    now = time.time() if now is None else now
    match = _SINCE.fullmatch(value.strip())
    if match:
        return now - int(match.group(1)) * _UNITS[match.group(2)]
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadRequest(
            f"--since: {value!r} is neither a duration (30s, 10m, 2h, 1d) nor an ISO 8601 "
            "time (2026-12-04T05:00:00)"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def check_grep(value: str | None) -> str | None:
    """`--grep`: journalctl matches it as a PCRE2 pattern; refused here when Python's `re`
    cannot read it either (most typos), before any host is reached."""
    if value is None:
        return None
    if not value or "\n" in value or len(value) > 500:
        raise BadRequest("--grep: one line of at most 500 characters")
    try:
        re.compile(value)
    except re.error as exc:
        raise BadRequest(f"--grep: {value!r} is not a regular expression: {exc}") from None
    return value


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
    micros = int(stamp)
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
    text = redact(_CONTROL.sub("", message.replace("\t", "    "))[:MAX_CHARS])
    return LogLine(
        host=host,
        time=datetime.fromtimestamp(micros / 1e6, UTC),
        unit=_CONTROL.sub("", unit)[:200] if isinstance(unit, str) else "",
        message=text,
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


def _why(host: str, rc: int, stderr: str) -> str:
    text = _CONTROL.sub(" ", stderr).strip()[-300:]
    if rc == 255:
        return f"unreachable over SSH: {text or 'ssh exited 255'}"
    return f"journalctl exited {rc}: {text}" if text else f"journalctl exited {rc}"


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
    chosen = _chosen(session, hosts, service)
    argv = journal_argv(
        journal_units(target, service),
        since=parse_since(since) if since else None,
        lines=lines,
        grep=check_grep(grep),
    )

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
        why = _why(host.name, proc.returncode, proc.stderr) if failed else ""
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
    chosen = _chosen(session, hosts, service)
    argv = journal_argv(
        journal_units(target, service),
        since=parse_since(since) if since else None,
        lines=lines,
        grep=check_grep(grep),
        follow=True,
    )
    found: queue.Queue[tuple[str, LogLine | None]] = queue.Queue()
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

    def pump(host: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = parse_line(host, raw, session.redact)
            if line is not None:
                found.put((host, line))
        found.put((host, None))

    for host, proc in procs.items():
        threading.Thread(target=pump, args=(host, proc), daemon=True).start()
    open_streams = set(procs)
    held: list[LogLine] = []
    try:
        while open_streams and not session.interrupted.is_set():
            for host, line in _drain(found, MERGE_WINDOW):
                if line is None:
                    open_streams.discard(host)
                else:
                    held.append(line)
            held.sort(key=lambda entry: entry.time)
            for line in held:
                on_line(line)
            held.clear()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
    errors = {}
    for host, proc in procs.items():
        rc = proc.returncode
        if rc not in (0, 1, -15) and not session.interrupted.is_set():
            errors[host] = _why(host, rc, proc.stderr.read() if proc.stderr else "")
    return LogsResult(target.environment, (), errors)


def _drain(
    found: queue.Queue[tuple[str, LogLine | None]], window: float
) -> Iterator[tuple[str, LogLine | None]]:
    """What arrived within `window` seconds (waiting that long for the first)."""
    deadline = time.monotonic() + window
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            yield found.get(timeout=left)
        except queue.Empty:
            return
