# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Health checks run on the target host itself: HTTP, TCP and a command, each bounded.

A health spec is {http: {port, path, status, body, timeout, host} | None,
tcp: {port, timeout, host} | None, command: {run, timeout, user} | None, retries, interval}.
A command runs as `user` (deployer passes the service user) with a minimal environment,
from that user's home (or /); without `user`, as the module's own user.
One *attempt* runs every configured check; it passes when all of them pass.
Stdlib only: this runs on the target host.
"""

from __future__ import annotations

import http.client
import os
import pwd
import signal
import socket
import subprocess
import time

DEFAULT_HOST = "127.0.0.1"


def _http(spec):
    host = spec.get("host") or DEFAULT_HOST
    port = int(spec["port"])
    path = spec.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    want = int(spec.get("status") or 200)
    body = spec.get("body")
    timeout = float(spec.get("timeout") or 2)
    url = "http://%s:%d%s" % (host, port, path)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "deployer-health/1", "Connection": "close"})
        resp = conn.getresponse()
        data = resp.read(65536).decode("utf-8", "replace")
    except socket.timeout:
        return False, "HTTP GET %s timed out after %gs" % (url, timeout)
    except (OSError, http.client.HTTPException) as exc:
        return False, "HTTP GET %s failed: %s" % (url, exc or type(exc).__name__)
    finally:
        conn.close()
    if resp.status != want:
        return False, "HTTP GET %s returned %d, expected %d" % (url, resp.status, want)
    if body and body not in data:
        return False, "HTTP GET %s returned %d but the body does not contain %r (got %r)" % (
            url, resp.status, body, data[:80])
    return True, "HTTP GET %s returned %d" % (url, resp.status)


def _tcp(spec):
    host = spec.get("host") or DEFAULT_HOST
    port = int(spec["port"])
    timeout = float(spec.get("timeout") or 2)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.timeout:
        return False, "TCP connect %s:%d timed out after %gs" % (host, port, timeout)
    except OSError as exc:
        return False, "TCP connect %s:%d failed: %s" % (host, port, exc.strerror or exc)
    sock.close()
    return True, "TCP connect %s:%d succeeded" % (host, port)


PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def as_user(name):
    """Popen arguments that run a command as the user `name`: its uid, primary group and
    supplementary groups, a minimal environment and its home (or /) as working directory.
    Raises KeyError when the host has no such user."""
    entry = pwd.getpwnam(name)
    home = entry.pw_dir if os.path.isdir(entry.pw_dir) else "/"
    env = {"PATH": PATH, "HOME": entry.pw_dir, "USER": name, "LOGNAME": name,
           "SHELL": "/bin/sh", "LANG": "C.UTF-8"}
    out = dict(env=env, cwd=home)
    if entry.pw_uid != os.geteuid() or entry.pw_gid != os.getegid():
        out.update(user=entry.pw_uid, group=entry.pw_gid,
                   extra_groups=os.getgrouplist(name, entry.pw_gid))
    return out


def _command(spec):
    run = spec["run"]
    timeout = float(spec.get("timeout") or 10)
    argv = ["/bin/sh", "-c", run] if isinstance(run, str) else [str(a) for a in run]
    shown = run if isinstance(run, str) else " ".join(argv)
    extra = {}
    if spec.get("user"):
        try:
            extra = as_user(spec["user"])
        except KeyError:
            return False, "command %r could not start: no user %s on this host" % (
                shown, spec["user"])
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, **extra)
    except OSError as exc:
        return False, "command %r could not start: %s" % (shown, exc)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.communicate()
        return False, "command %r timed out after %gs" % (shown, timeout)
    lines = out.decode("utf-8", "replace").strip().splitlines()
    last = lines[-1][:200] if lines else ""
    if proc.returncode != 0:
        return False, "command %r exited %d%s" % (shown, proc.returncode,
                                                   (": " + last) if last else "")
    return True, "command %r exited 0" % (shown,)


CHECKS = (("http", _http), ("tcp", _tcp), ("command", _command))


def configured(health):
    health = health or {}
    return [(name, fn, health[name]) for name, fn in CHECKS if health.get(name)]


def attempt(health, extra=None):
    """Run every configured check once: (ok, message). `extra()` -> (ok, msg) is one more."""
    failures, passes = [], []
    for _name, check, spec in configured(health):
        ok, message = check(spec)
        (passes if ok else failures).append(message)
    if extra is not None:
        ok, message = extra(bool(failures))
        if not ok:
            failures.append(message)
        elif message:
            passes.append(message)
    if failures:
        return False, "; ".join(failures)
    return True, "; ".join(passes) or "no health checks configured"


def attempt_each(specs):
    """One attempt of each set of checks (one per instance): (ok, message), ok only when
    every one passed."""
    results = [attempt(spec) for spec in specs]
    failed = [message for ok, message in results if not ok]
    if failed:
        return False, "; ".join(failed)
    return True, "; ".join(message for _ok, message in results)


def with_retries(health, extra=None, sleep=time.sleep):
    """Up to `retries` attempts `interval` s apart: (healthy, attempts, message)."""
    health = health or {}
    retries = max(1, int(health.get("retries") or 1))
    interval = max(0.0, float(health.get("interval") if health.get("interval") is not None else 1))
    message = ""
    for number in range(1, retries + 1):
        ok, message = attempt(health, extra)
        if ok:
            return True, number, message
        if number < retries:
            sleep(interval)
    return False, retries, "%s (%d attempt%s)" % (message, retries, "" if retries == 1 else "s")


def watch(health, duration, period, threshold, grace=0, sleep=time.sleep, clock=time.monotonic,
          sample=None):
    """Sample every `period` s for `duration` s; unhealthy after `threshold` failures in a row.

    A sample that fails in the first `grace` seconds is counted in `failures` but does not
    count towards `threshold` (the app is still warming up). `health` may be a list of
    check sets (one per instance): a sample passes when every set passes. `sample(counted)`
    -> (ok, message), when given, takes each sample instead (`counted`: outside the grace
    period).

    Returns {healthy, checks, failures, max_consecutive_failures, message}.
    """
    grace = max(0.0, float(grace or 0))
    period = max(0.1, float(period or 1))
    duration = max(0.0, float(duration or 0))
    planned = int(duration // period) + 1
    threshold = max(1, min(int(threshold or 1), planned))
    start = clock()
    checks = failures = graced = run = worst = 0
    last_failure = ""
    while True:
        counted = clock() - start >= grace
        if sample is not None:
            ok, message = sample(counted)
        else:
            ok, message = attempt_each(health) if isinstance(health, list) else attempt(health)
        checks += 1
        if ok:
            run = 0
        else:
            failures += 1
            last_failure = message
            run += 1 if counted else 0
            graced += 0 if counted else 1
            worst = max(worst, run)
            if run >= threshold:
                return {"healthy": False, "checks": checks, "failures": failures,
                        "max_consecutive_failures": worst,
                        "message": "%s (%d consecutive failed check%s)" % (
                            message, run, "" if run == 1 else "s")}
        next_at = start + checks * period
        if checks >= planned or next_at - start > duration + 1e-6:
            break
        sleep(max(0.0, next_at - clock()))
    if failures:
        summary = "healthy: %d checks, %d failed (%sat most %d in a row; last: %s)" % (
            checks, failures, "%d in the grace period, not counted; " % graced if graced else "",
            worst, last_failure)
    else:
        summary = "healthy: %d check%s passed" % (checks, "" if checks == 1 else "s")
    return {"healthy": True, "checks": checks, "failures": failures,
            "max_consecutive_failures": worst, "message": summary}


def watch_services(services, duration, period, threshold, grace=0, sleep=time.sleep,
                   clock=time.monotonic):
    """watch() over several services, `services` [(name, checks: a spec or a list of specs,
    one per instance)]: a sample passes when every service's checks pass. Besides watch()'s
    result, `services` {name: {healthy, message}}: a service is unhealthy when its own
    checks failed `threshold` counted samples in a row."""
    planned = int(max(0.0, float(duration or 0)) // max(0.1, float(period or 1))) + 1
    limit = max(1, min(int(threshold or 1), planned))
    state = dict((name, dict(checks=0, failures=0, run=0, worst=0, last=""))
                 for name, _checks in services)

    def sample(counted):
        failed = []
        for name, checks in services:
            ok, message = attempt_each(checks) if isinstance(checks, list) else attempt(checks)
            mine = state[name]
            mine["checks"] += 1
            if ok:
                mine["run"] = 0
                continue
            mine["failures"] += 1
            mine["last"] = message
            mine["run"] += 1 if counted else 0
            mine["worst"] = max(mine["worst"], mine["run"])
            failed.append("%s: %s" % (name, message))
        return (not failed), "; ".join(failed)

    result = watch(None, duration, period, threshold, grace=grace, sleep=sleep, clock=clock,
                   sample=sample)
    result["services"] = {}
    for name, _checks in services:
        mine = state[name]
        if mine["worst"] >= limit:
            message = "%s (%d consecutive failed check%s)" % (
                mine["last"], mine["worst"], "" if mine["worst"] == 1 else "s")
        elif mine["failures"]:
            message = "healthy: %d checks, %d failed (last: %s)" % (
                mine["checks"], mine["failures"], mine["last"])
        else:
            message = "healthy: %d check%s passed" % (
                mine["checks"], "" if mine["checks"] == 1 else "s")
        result["services"][name] = {"healthy": mine["worst"] < limit, "message": message}
    return result
