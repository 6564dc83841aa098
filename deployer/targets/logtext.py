"""What `deployer logs` shares across targets: the operator's filters checked before any
host is reached, a line of a host's log made safe to show, and following several streams at
once in time order.

What a host sends is text, never trusted: control characters (terminal escapes) are
removed, each line capped and masked with every secret value deployer knows.
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

from deployer.errors import BadRequest
from deployer.targets.base import LogLine

MAX_CHARS = 4000
"""Characters kept of one line."""
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SINCE = re.compile(r"([0-9]{1,6})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MERGE_WINDOW = 0.3
"""Seconds a follow holds lines to print those of several hosts in the order written."""


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
    """`--grep`: a pattern, refused here when Python's `re` cannot read it (most typos),
    before any host is reached."""
    if value is None:
        return None
    if not value or "\n" in value or len(value) > 500:
        raise BadRequest("--grep: one line of at most 500 characters")
    try:
        re.compile(value)
    except re.error as exc:
        raise BadRequest(f"--grep: {value!r} is not a regular expression: {exc}") from None
    return value


def clean(text: str, redact: Callable[[str], str], limit: int = MAX_CHARS) -> str:
    """A host's text as deployer shows it: no control character, capped, masked."""
    return redact(CONTROL.sub("", text.replace("\t", "    "))[:limit])


def why_failed(rc: int, stderr: str, what: str) -> str:
    text = CONTROL.sub(" ", stderr).strip()[-300:]
    if rc == 255:
        return f"unreachable over SSH: {text or 'ssh exited 255'}"
    return f"{what} exited {rc}: {text}" if text else f"{what} exited {rc}"


def follow_streams(
    procs: Mapping[str, subprocess.Popen[str]],
    parse: Callable[[str, str], LogLine | None],
    on_line: Callable[[LogLine], None],
    interrupted: threading.Event,
) -> None:
    """Read every process's lines (`parse(stream, raw)`), printing them through `on_line`
    in time order within MERGE_WINDOW, until `interrupted` or every stream ended; then
    stop the processes."""
    found: queue.Queue[tuple[str, LogLine | None]] = queue.Queue()

    def pump(name: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = parse(name, raw)
            if line is not None:
                found.put((name, line))
        found.put((name, None))

    for name, proc in procs.items():
        threading.Thread(target=pump, args=(name, proc), daemon=True).start()
    open_streams = set(procs)
    try:
        while open_streams and not interrupted.is_set():
            held: list[LogLine] = []
            for name, line in _drain(found, MERGE_WINDOW):
                if line is None:
                    open_streams.discard(name)
                else:
                    held.append(line)
            for line in sorted(held, key=lambda entry: entry.time):
                on_line(line)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def stream_errors(
    procs: Mapping[str, subprocess.Popen[str]], interrupted: threading.Event, what: str
) -> dict[str, str]:
    """The streams that ended in failure (not by an interruption)."""
    errors = {}
    for name, proc in procs.items():
        rc = proc.returncode
        if rc not in (0, 1, -15) and not interrupted.is_set():
            errors[name] = why_failed(rc, proc.stderr.read() if proc.stderr else "", what)
    return errors


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
