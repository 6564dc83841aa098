# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Why a service failed after a switch: what systemd and the journal say, in one sentence.

Read on the host right after a failed start or health check. The cause is one of:

- ``port_in_use``: the app could not bind its port (the process holding it is named);
- ``no_command``: systemd could not execute the command (missing, not executable);
- ``oom``: the kernel killed it for memory;
- ``signal``: it was killed by a signal (or dumped core);
- ``crashed``: it exited with a non-zero code within CRASH_SECONDS of its start (a crash on
  start: a traceback, a missing setting);
- ``exit``: it exited with a non-zero code later on;
- ``unhealthy``: it runs, but its health checks did not pass (``timeout`` when they timed
  out).

Stdlib only: this runs on the target host. Journal lines are the app's own output: the
controller masks secrets in them and treats them as text, never as code.
"""

from __future__ import annotations

import pwd
import re
import subprocess

from ansible_collections.deployer.core.plugins.module_utils.systemd import timestamp

CRASH_SECONDS = 10.0
JOURNAL_LINES = 12
JOURNAL_SCAN = 300
LINE_CHARS = 200
MASK = "********"
MIN_SECRET = 4  # as the controller's redaction: shorter values would mask ordinary words
SECRET_NAMES_COMMENT = "# deployer secret variables: "
_ENV_LINE = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*)="(.*)"$')

_IN_USE = re.compile(r"address already in use|errno 98\b|eaddrinuse", re.IGNORECASE)
_NO_COMMAND = re.compile(
    r"failed to (locate|execute|spawn)|no such file or directory|permission denied", re.IGNORECASE
)
_HOLDER = re.compile(r'\("([^"]+)",pid=(\d+)')
_UID = re.compile(r"\buid:(\d+)\b")
_CGROUP = re.compile(r"\bcgroup:\S*/([A-Za-z0-9@:._-]+\.(?:service|scope))\b")


def _run(argv, timeout=5):
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout.decode("utf-8", "replace")


def journal(unit, since, secrets=(), limit=None):
    """The unit's journal lines since `since` (unix seconds), at most the last `limit`
    (JOURNAL_SCAN), secrets masked, each capped. A crash loop repeats its traceback between
    systemd's own lines: the cause is looked for in all of them, the last JOURNAL_LINES
    are shown."""
    limit = limit or JOURNAL_SCAN
    # The app's own output (its processes' lines), not systemd's lines about the unit:
    # what systemd says is in the unit's properties already.
    argv = ["journalctl", "--no-pager", "-o", "cat", "-q", "_SYSTEMD_UNIT=" + unit,
            "--since", "@%d" % int(since), "-n", str(limit)]
    out = _run(argv)
    lines = masked([line.rstrip() for line in out.splitlines() if line.strip()], secrets)
    return [line[:LINE_CHARS] for line in lines[-limit:]]


_RESULT_LINE = re.compile(r": Failed with result '([a-z-]+)'\.?$")
_SIGKILL_LINE = re.compile(r": Main process exited, code=killed, status=9/KILL$")


def system_results(unit, since):
    """The results systemd itself (PID 1, never the app) logged for the unit's runs since
    `since` (unix seconds), oldest first, and `sigkill` for a main process killed with
    SIGKILL. A unit that restarts begins each run with its Result reset: what an earlier run
    of the same failure died of is read back here."""
    argv = ["journalctl", "--no-pager", "-o", "cat", "-q", "_PID=1", "UNIT=" + unit,
            "--since", "@%d" % int(since), "-n", "200"]
    out = []
    for line in _run(argv).splitlines():
        match = _RESULT_LINE.search(line.rstrip())
        if match:
            out.append(match.group(1))
        elif _SIGKILL_LINE.search(line.rstrip()):
            out.append("sigkill")
    return out


def secret_values(*env_files):
    """The values of the secret variables the env files (written by deployer_release) name."""
    text = ""
    for env_file in env_files:
        try:
            with open(env_file, "rb") as handle:
                text += handle.read(1 << 20).decode("utf-8", "replace") + "\n"
        except OSError:
            continue
    names, values = set(), {}
    for line in text.splitlines():
        if line.startswith(SECRET_NAMES_COMMENT):
            names.update(line[len(SECRET_NAMES_COMMENT):].split())
        match = _ENV_LINE.match(line)
        if match:
            values[match.group(1)] = re.sub(r"\\(.)", r"\1", match.group(2))
    found = [values[n] for n in names if len(values.get(n, "")) >= MIN_SECRET]
    return sorted(found, key=len, reverse=True)


def masked(lines, secrets):
    """`lines` with every secret value replaced by a mask."""
    out = []
    for line in lines:
        for value in secrets:
            line = line.replace(value, MASK)
        out.append(line)
    return out


def port_holders(port):
    """'python3 (pid 123)' for every process listening on TCP `port`; where the processes
    cannot be seen (root without ptrace rights, as in some containers), the owner of each
    listening socket instead: 'a process of user deploy (uid 1000)'."""
    out = _run(["ss", "-H", "-ltnpe", "sport = :%d" % int(port)])
    seen = []
    for name, pid in _HOLDER.findall(out):
        entry = "%s (pid %s)" % (name, pid)
        if entry not in seen:
            seen.append(entry)
    if not seen:
        for line in out.splitlines():
            uid, unit = _UID.search(line), _CGROUP.search(line)
            if uid is None:
                continue
            entry = "a process of %s%s" % (_user(int(uid.group(1))),
                                           " in %s" % unit.group(1) if unit else "")
            if entry not in seen:
                seen.append(entry)
    return seen


def _user(uid):
    try:
        return "user %s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except KeyError:
        return "uid %d" % uid


def _own_system_lines(lines):
    """Lines systemd wrote about the unit (not the app's), for telling a missing command."""
    return [
        line
        for line in lines
        if line.startswith(("Failed to", "Started", "Stopped")) or "status=203" in line
    ]


def explain(props, lines, health_message="", port=None, holders=None, earlier=()):
    """(cause, sentence) from the service's systemd properties after the failure, its
    journal lines and the last health message. `holders`: processes on the port (looked up
    only when the cause is a port in use, by the caller or here)."""
    result = props.get("Result") or ""
    status = props.get("ExecMainStatus") or "0"
    restarts = props.get("NRestarts") or "0"
    active = props.get("ActiveState") == "active"
    text = "\n".join(lines)
    again = "" if restarts in ("", "0") else ", restarted %s time%s" % (
        restarts, "" if restarts == "1" else "s")
    if _IN_USE.search(text):
        if holders is None and port:
            holders = port_holders(port)
        held = (" (held by %s)" % ", ".join(holders)) if holders else ""
        where = ("port %s" % port) if port else "its port"
        return "port_in_use", "the app could not bind %s: address already in use%s" % (where, held)
    if (
        status == "203"
        or result == "exec"
        or (not active and _NO_COMMAND.search("\n".join(_own_system_lines(lines))))
    ):
        return (
            "no_command",
            "systemd could not execute the command (exit status 203: "
            "missing, not executable or not permitted)",
        )
    if result == "oom-kill" or "oom-kill" in earlier:  # earlier: this failure's past runs
        return "oom", "killed by the kernel for memory (out of memory)%s" % again
    limit = props.get("MemoryMax") or ""
    if ((result == "signal" and status == "9") or "sigkill" in earlier) and limit.isdigit():
        # Under cgroup v1 (and in some containers) systemd cannot tell an OOM kill from
        # another SIGKILL; with a memory limit set, the kernel's OOM killer is the usual one.
        return "oom", "killed with SIGKILL while limited to MemoryMax=%s: most likely out of memory%s" % (
            _size(int(limit)), again)
    if result in ("signal", "core-dump"):
        return "signal", "killed by signal %s%s%s" % (
            status,
            " (core dumped)" if result == "core-dump" else "",
            again,
        )
    if result == "exit-code" or (not active and status not in ("", "0")):
        began = timestamp(props.get("ExecMainStartTimestamp"))
        ended = timestamp(props.get("ExecMainExitTimestamp"))
        ran = ended - began if began is not None and ended is not None else None
        if ran is not None and 0 <= ran < CRASH_SECONDS:
            return "crashed", "crashed on start: exited with code %s %.1fs after it started%s" % (
                status, ran, again)
        return "exit", "exited with code %s%s" % (status, again)
    if "timed out" in (health_message or ""):
        return "timeout", "it runs, but its health check timed out"
    return "unhealthy", "it runs, but its health checks did not pass"


def _size(value):
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if value >= size and value % size == 0:
            return "%d%s" % (value // size, unit)
    return str(value)


def describe_failure(props, lines, health_message="", port=None, earlier=()):
    """The explanation as a reply: {cause, summary, journal (the last JOURNAL_LINES)}."""
    cause, summary = explain(props, lines, health_message, port, earlier=earlier)
    return {"cause": cause, "summary": summary, "journal": list(lines[-JOURNAL_LINES:])}
