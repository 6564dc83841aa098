#!/usr/bin/python
# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Run one deploy hook (a migration, a cache warm-up, a notification) in a release."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deployer_hook
short_description: Run one deploy hook in a release, as the service user, in one step
version_added: "0.1.0"
description:
  - Runs O(command) (an argv list, never a shell) in C(<deploy_to>/releases/<version>/<directory>)
    as O(user), its primary group and its supplementary groups, with C(HOME) its home
    directory. Root runs it only when O(user) is C(root).
  - The release is reached from O(deploy_to) one directory at a time without following any
    link; O(deploy_to), C(releases/), the release, O(directory) and C(.deployer/) must be
    root's and writable by no one else (as deployer_release makes them), so the service
    user cannot plant a path root reads or the hook runs in.
  - The environment is clean - C(PATH=/usr/local/bin:/usr/bin:/bin), C(HOME), C(USER),
    C(LANG=C.UTF-8) - then the variables of O(env_files) in order, then O(env); a later
    assignment wins. stdin is C(/dev/null); stdout and stderr are one stream.
  - The hook runs in a session (process group) of its own. When it exits, what it left
    running in that group is killed; on O(timeout) the whole group is killed. (A process
    that starts a session of its own escapes this; hooks should not leave processes.)
  - Every secret value of the env files of at least 4 characters (in C(env), the variables
    its C(# deployer secret variables:) comment names; in C(env.<name>), every value), and
    the password of any URL among them (C(scheme://user:PASSWORD@host), also percent-decoded), is replaced by
    C(********) in the output before it leaves the host, as is the password of any URL the
    output itself shows. Of longer output only the last O(output_limit) bytes are kept,
    after a line saying how many were cut; a secret cut in half at that boundary is
    masked too.
  - Fails when the hook exits non-zero, is killed by a signal or times out, with the last
    (masked) output line in the message. Always C(changed) when it ran, failed or not.
options:
  name:
    description: Which hook this is (reported, and in the messages); C(exec) for an operator's command (C(deployer exec)).
    type: str
    required: true
    choices: [before_switch, after_switch, after_rollback, after_failure, exec]
  deploy_to:
    description: Root of the release tree (root's, as deployer_release made it).
    type: path
    required: true
  version:
    description: The release to run in, C(<deploy_to>/releases/<version>); it must exist. One of O(version) and O(current).
    type: str
  current:
    description:
      - Run in the release C(<deploy_to>/current) points at (C(releases/<version>), read
        without following anything else), instead of O(version). Its version is reported.
    type: bool
    default: false
  directory:
    description:
      - The service's directory inside the release (one plain name, as C(releases/<version>/<service>/));
        empty for the release itself. No C(/), C(..) or C(.deployer).
    type: str
    default: ""
  user:
    description: User to run the hook as (the service user); it must exist.
    type: str
    required: true
  command:
    description:
      - The argv of the hook. The first element is looked up in the hook's C(PATH) unless
        it holds a C(/) (C(./bin/migrate) is relative to the hook's directory).
    type: list
    elements: str
    required: true
  env:
    description: Plain variables (not secret) set last, on top of the env files.
    type: dict
    default: {}
  env_files:
    description:
      - Environment files of the release to read, names under C(.deployer/) - C(env)
        (what deployer_release writes from C(env)) and C(env.<name>) (its C(env_files)) - in
        order. A missing file is skipped. They are read as systemd reads an
        EnvironmentFile, so the hook sees what the service sees.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds the hook may run; then its whole process group is killed and the task fails.
    type: int
    default: 300
  output_limit:
    description: Bytes of output kept (the tail when it is longer).
    type: int
    default: 65536
author:
  - deployer contributors
notes:
  - Supports check mode (the release, directory, user and env files are checked; the hook does not run).
  - Has an action plugin (the lean runner, one round trip); needs only the Python 3 stdlib on the host.
"""

EXAMPLES = r"""
- name: Migrate the database before switching to v2
  deployer.core.deployer_hook:
    name: before_switch
    deploy_to: /srv/shop
    version: v2
    directory: api
    user: shop
    command: [python3, -m, alembic, upgrade, head]
    env_files: [env, env.database]
    env: {ALEMBIC_CONFIG: alembic.ini}
    timeout: 600
  become: true
"""

RETURN = r"""
deployer:
  description: What the hook did.
  returned: always
  type: dict
  contains:
    stage:
      description:
        - C(hook), the step of the deployment that failed, for the orchestrator. Only on
          failure, as every deployer module reports it (the orchestrator reads a C(stage)
          as where the host failed).
      type: str
      returned: on failure
    hook:
      description: The hook's run.
      type: dict
      contains:
        name:
          description: O(name).
          type: str
        version:
          description: The release it ran in (with O(current), the one C(current) points at).
          type: str
        rc:
          description:
            - Its exit status; negative when a signal killed it (C(-9) after a timeout);
              null when it did not run (check mode, or refused before it started).
          type: int
        seconds:
          description: How long it ran.
          type: float
        timed_out:
          description: It ran past O(timeout) and its process group was killed.
          type: bool
        output:
          description: Its stdout and stderr, masked, the tail when longer than O(output_limit).
          type: str
        truncated:
          description: Output was cut (the first line of RV(deployer.hook.output) says how much).
          type: bool
"""

import os
import pwd
import re
import select
import signal
import stat
import subprocess
import sys
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.deployer.core.plugins.module_utils import envfile
from ansible_collections.deployer.core.plugins.module_utils.explain import (
    LINE_CHARS,
    MASK,
    MIN_SECRET,
    SECRET_NAMES_COMMENT,
)
from ansible_collections.deployer.core.plugins.module_utils.layout import META_DIR, check_version

STAGE = "hook"
HOOKS = ("before_switch", "after_switch", "after_rollback", "after_failure", "exec")
"""The deploy hooks, and `exec` (an operator's command: `deployer exec`)."""
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
ENV_FILE = re.compile(r"^env(\.[a-z][a-z0-9_]{0,31})?\Z")
DIRECTORY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}\Z")
# scheme://user:PASSWORD@host - in the env files' values, and in the output itself
URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:)([^\s/?#@]+)@")
ENV_FILE_BYTES = 1 << 20
_PROBE = 64  # bytes: see _secret_at_start
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC


class HookError(Exception):
    """The hook failed or could not run; the message is masked and safe to show."""

    def __init__(self, message, hook):
        Exception.__init__(self, message)
        self.hook = hook


class Refused(Exception):
    """The hook cannot run (bad parameters, an unsafe path); the message names no secret."""


# --- the release, reached without following links ---------------------------------------


class Missing(Refused):
    """A path that does not exist."""


def _open_dir(parent, name, shown, follow=False):
    """A directory fd of `name` in the directory fd `parent` (None: `name` is absolute),
    never through a link (unless `follow`), refused unless root's and writable by root
    alone."""
    flags = _DIR_FLAGS & ~os.O_NOFOLLOW if follow else _DIR_FLAGS
    try:
        fd = os.open(name, flags, dir_fd=parent)
    except FileNotFoundError:
        raise Missing("%s does not exist" % shown)
    except OSError as exc:
        try:
            mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
        except OSError:
            mode = None
        if mode is not None and stat.S_ISLNK(mode):
            raise Refused("%s is a symlink; deployer does not follow links there" % shown)
        if mode is not None and not stat.S_ISDIR(mode):
            raise Refused("%s is not a directory" % shown)
        raise Refused("cannot open %s: %s" % (shown, exc.strerror or exc))
    st = os.fstat(fd)
    if st.st_uid != 0 or st.st_mode & 0o022:
        os.close(fd)
        raise Refused("%s is not root's alone (owner uid %d, mode %04o); deployer runs hooks "
                      "only in a release tree that only root can change"
                      % (shown, st.st_uid, stat.S_IMODE(st.st_mode)))
    return fd


def check_params(p):
    """Refused for parameters no hook may run with."""
    if p["name"] not in HOOKS:
        raise Refused("unknown hook %r: use one of %s" % (p["name"], ", ".join(HOOKS)))
    if p.get("current"):
        if p.get("version"):
            raise Refused("give version or current, not both")
    else:
        problem = check_version(p.get("version") or "")
        if problem:
            raise Refused(problem)
    directory = p.get("directory") or ""
    if directory and (not DIRECTORY.match(directory) or directory == META_DIR):
        raise Refused("invalid directory %r: use the service's directory name inside the "
                      "release (no '/', '..' or %s), or empty for the release itself"
                      % (directory, META_DIR))
    command = p.get("command") or []
    if not command or not command[0]:
        raise Refused("command must be a non-empty list (the argv, never a shell line)")
    if any("\x00" in str(arg) for arg in command):
        raise Refused("command contains a NUL byte")
    for name in p.get("env_files") or []:
        if not ENV_FILE.match(name or ""):
            raise Refused("invalid env file %r: use env or env.<name> (names under %s/)"
                          % (name, META_DIR))
    for key in p.get("env") or {}:
        if not envfile.NAME.match(key):
            raise Refused("invalid environment variable name %r: use letters, digits and _"
                          % (key,))
    if p["timeout"] <= 0:
        raise Refused("timeout must be a positive number of seconds")
    if p["output_limit"] < 0:
        raise Refused("output_limit must be 0 or more bytes")


def current_version(top, root):
    """The version `current` points at, read in deploy_to (root's, checked by the caller):
    `releases/<version>`, relative or under deploy_to, or Refused."""
    try:
        target = os.readlink("current", dir_fd=top)
    except OSError:
        raise Missing("%s/current does not exist: no release runs here" % root)
    parts = os.path.normpath(os.path.join(root, target)).split(os.sep)
    version = parts[-1]
    if os.sep.join(parts[:-1]) != os.path.join(root, "releases") or check_version(version):
        raise Refused("%s/current does not point into releases/" % root)
    return version


def open_release(deploy_to, version, directory):
    """(fd of the hook's directory, fd of the release's .deployer/ or None when it has none,
    the version). `version` None: the release `current` points at. deploy_to itself is the
    configured path (a link there is the operator's); below it nothing is followed."""
    root = os.path.abspath(deploy_to)
    top = _open_dir(None, root, root, follow=True)
    try:
        version = version or current_version(top, root)
        releases = _open_dir(top, "releases", "releases/")
    finally:
        os.close(top)
    label = "releases/" + version
    try:
        release = _open_dir(releases, version, label)
    finally:
        os.close(releases)
    meta = None
    try:
        try:
            meta = _open_dir(release, META_DIR, "%s/%s" % (label, META_DIR))
        except Missing:
            pass
        if directory:
            workdir = _open_dir(release, directory, "%s/%s" % (label, directory))
        else:
            workdir = os.dup(release)
    except BaseException:
        if meta is not None:
            os.close(meta)
        raise
    finally:
        os.close(release)
    return workdir, meta, version


def read_env_file(meta, name):
    """[(KEY, value)] of .deployer/<name>, or None when it is missing."""
    if meta is None:
        return None
    shown = "%s/%s" % (META_DIR, name)
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=meta)
    except FileNotFoundError:
        return None
    except OSError as exc:
        try:
            link = stat.S_ISLNK(os.stat(name, dir_fd=meta, follow_symlinks=False).st_mode)
        except OSError:
            link = False
        if link:
            raise Refused("%s is a symlink; deployer does not follow links there" % shown)
        raise Refused("cannot read %s: %s" % (shown, exc.strerror or exc))
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
            raise Refused("%s is not a regular file that only root can change" % shown)
        data = handle.read(ENV_FILE_BYTES + 1)
    if len(data) > ENV_FILE_BYTES:
        raise Refused("%s is larger than %d bytes" % (shown, ENV_FILE_BYTES))
    return envfile.parse(data), secret_names(data)


def secret_names(data):
    """The secret variables deployer_release listed in the file's comment."""
    names = set()
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith(SECRET_NAMES_COMMENT):
            names.update(line[len(SECRET_NAMES_COMMENT):].split())
    return names


def secrets_of(values):
    """What to mask, as bytes, longest first: each value of at least MIN_SECRET characters
    and the password of every URL among them (as written and percent-decoded)."""
    from urllib.parse import unquote  # here: only hooks with env files need it

    found = set()
    for value in values:
        if len(value) >= MIN_SECRET:
            found.add(value)
        for match in URL_PASSWORD.finditer(value):
            for password in (match.group(2), unquote(match.group(2))):
                if len(password) >= MIN_SECRET:
                    found.add(password)
    return sorted((s.encode("utf-8", "surrogateescape") for s in found), key=len, reverse=True)


# --- output: the masked tail --------------------------------------------------------------


class Tail(object):
    """The last `keep` bytes of a stream, and how many came in all."""

    def __init__(self, keep):
        self.keep = keep
        self.data = bytearray()
        self.total = 0

    def add(self, chunk):
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > self.keep:
            del self.data[:len(self.data) - self.keep]


def mask_tail(raw, total, limit, secrets):
    """(text, truncated): the last `limit` bytes of the output whose last len(raw) of
    `total` bytes are `raw`, each secret replaced by MASK - one cut in half where the
    output was cut included - and a first line saying how many bytes were cut."""
    raw = bytes(raw)
    spans = []
    for secret in secrets:
        at = raw.find(secret)
        while at >= 0:
            spans.append((at, at + len(secret)))
            at = raw.find(secret, at + 1)
    if total > len(raw):  # cut before raw: raw may start with the end of a secret
        for secret in secrets:
            end = _secret_at_start(raw, secret)
            if end:
                spans.append((0, end))
    merged = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    cut = max(0, len(raw) - limit)
    for start, end in merged:
        if start < cut < end:
            cut = start  # keep the secret's mask whole rather than half of the secret
    while 0 < cut < len(raw) and raw[cut] & 0xC0 == 0x80:
        cut += 1  # not inside a UTF-8 character
    pieces, at = [], cut
    for start, end in merged:
        if end <= cut:
            continue
        pieces.append(raw[at:start])
        pieces.append(MASK.encode())
        at = end
    pieces.append(raw[at:])
    text = b"".join(pieces).decode("utf-8", "replace")
    text = URL_PASSWORD.sub(lambda m: m.group(1) + MASK + "@", text)
    dropped = total - len(raw) + cut
    if dropped > 0:
        text = "[deployer: the first %d bytes of the hook's output were cut]\n%s" % (dropped, text)
    return text, dropped > 0


def _secret_at_start(raw, secret):
    """How many bytes at the start of `raw` are the rest of `secret` cut before them
    (0: none). Long secrets (certificates) are found with one search, not a loop per size."""
    probe = raw[:_PROBE]
    if len(probe) == _PROBE:  # a rest of at least _PROBE bytes: where `probe` sits in the secret
        at = secret.find(probe, 1)
        while at >= 0:
            rest = secret[at:]
            if raw.startswith(rest) or rest.startswith(raw):
                return min(len(rest), len(raw))
            at = secret.find(probe, at + 1)
    for size in range(min(len(secret) - 1, _PROBE - 1, len(raw)), 0, -1):
        if secret.endswith(raw[:size]):
            return size
    return 0


def last_line(text):
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()[:LINE_CHARS]
    return ""


# --- running ------------------------------------------------------------------------------


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _as_user(entry, groups):
    """Popen arguments that drop to the user (uid, primary group, supplementary groups)."""
    if sys.version_info >= (3, 9):
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups}

    def drop():  # pragma: no cover - Python < 3.9 on the host
        os.setgroups(groups)
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return {"preexec_fn": drop}


def spawn(argv, env, entry, timeout, keep):
    """Run argv in the current directory: (rc, seconds, timed_out, Tail)."""
    groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    tail = Tail(keep)
    started = time.monotonic()
    deadline = started + timeout
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, close_fds=True,
                            start_new_session=True, **_as_user(entry, groups))
    pgid = proc.pid  # the session's (and process group's) leader
    out = proc.stdout.fileno()
    timed_out = eof = False
    drain_until = None  # set when the hook exited: what its group wrote is read a moment more
    try:
        while True:
            now = time.monotonic()
            if drain_until is None and proc.poll() is not None:
                _kill_group(pgid)  # what it left running (and holding the pipe)
                drain_until = now + 1
            end = deadline if drain_until is None else drain_until
            if now >= end:
                break
            if select.select([out], [], [], min(end - now, 0.25))[0]:
                chunk = os.read(out, 1 << 16)
                if not chunk:
                    eof = True
                    break
                tail.add(chunk)
        if drain_until is None:  # EOF or the deadline, the hook not seen to exit
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
            _kill_group(pgid)
            proc.wait()
            end = time.monotonic() + 1
            while not eof and time.monotonic() < end \
                    and select.select([out], [], [], 0.1)[0]:
                chunk = os.read(out, 1 << 16)
                eof = not chunk
                tail.add(chunk)
    finally:
        if proc.poll() is None:
            _kill_group(pgid)
            proc.wait()
        proc.stdout.close()
    return proc.returncode, round(time.monotonic() - started, 3), timed_out, tail


def not_run(name):
    """The `hook` dict of a hook that did not run."""
    return dict(name=name, rc=None, seconds=0.0, timed_out=False, output="", truncated=False)


def run(p, check=False):
    """Run the hook of the module's parameters `p`: its `hook` dict, or HookError (failed,
    timed out) or Refused (did not run)."""
    hook = not_run(p["name"])
    check_params(p)
    try:
        entry = pwd.getpwnam(p["user"])
    except KeyError:
        raise Refused("user %s does not exist" % p["user"])
    workdir, meta, version = open_release(
        p["deploy_to"], None if p.get("current") else p["version"], p.get("directory") or "")
    hook["version"] = version
    try:
        env = {"PATH": BASE_PATH, "HOME": entry.pw_dir, "USER": entry.pw_name,
               "LANG": "C.UTF-8"}
        values = []
        for name in p.get("env_files") or []:
            pairs, secret = read_env_file(meta, name) or ([], set())
            for key, value in pairs:
                env[key] = value
                # the app's own env file holds plain settings too: its secrets are the
                # variables it names as such; an accessory's (env.database) is all secret
                if name != "env" or key in secret:
                    values.append(value)
        for key, value in (p.get("env") or {}).items():
            env[key] = envfile.value(value)
        if any("\x00" in value for value in env.values()):
            raise Refused("an environment variable contains a NUL byte")
        if check:
            return hook
        secrets = secrets_of(values)
        limit = p["output_limit"]
        keep = limit + (len(secrets[0]) if secrets else 0)
        try:
            here = os.open(".", os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        except OSError:  # a working directory that is gone: come back to /
            here = os.open("/", os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        try:
            os.fchdir(workdir)  # the directory opened above, never a path looked up again
            try:
                rc, seconds, timed_out, tail = spawn(
                    [str(a) for a in p["command"]], env, entry, p["timeout"], keep)
            except OSError as exc:
                raise HookError("hook %s could not start %s: %s"
                                % (p["name"], p["command"][0], exc.strerror or exc), hook)
        finally:
            os.fchdir(here)
            os.close(here)
    finally:
        os.close(workdir)
        if meta is not None:
            os.close(meta)
    output, truncated = mask_tail(tail.data, tail.total, limit, secrets)
    hook.update(rc=rc, seconds=seconds, timed_out=timed_out, output=output, truncated=truncated)
    line = last_line(output)
    if timed_out:
        message = "hook %s timed out after %s s" % (p["name"], p["timeout"])
    elif rc != 0:
        message = "hook %s failed (exit %d)" % (p["name"], rc)
    else:
        return hook
    raise HookError(message + (": " + line if line else ""), hook)


# The module's arguments; also read by the lean runner to validate on the controller.
MODULE_SPEC = dict(
    argument_spec=dict(
        name=dict(type="str", required=True, choices=list(HOOKS)),
        deploy_to=dict(type="path", required=True),
        version=dict(type="str"),
        current=dict(type="bool", default=False),
        directory=dict(type="str", default=""),
        user=dict(type="str", required=True),
        command=dict(type="list", elements="str", required=True),
        env=dict(type="dict", default={}),
        env_files=dict(type="list", elements="str", default=[]),
        timeout=dict(type="int", default=300),
        output_limit=dict(type="int", default=65536),
    ),
    required_one_of=[("version", "current")],
    supports_check_mode=True,
)


def main():
    module = AnsibleModule(**MODULE_SPEC)
    name = module.params["name"]
    try:
        hook = run(module.params, check=module.check_mode)
    except HookError as exc:
        # it ran (unless it could not start): a failed hook may have changed things too
        module.fail_json(msg=str(exc), changed=exc.hook["rc"] is not None,
                         deployer={"stage": STAGE, "hook": exc.hook})
    except Refused as exc:
        module.fail_json(msg="hook %s cannot run: %s" % (name, exc),
                         deployer={"stage": STAGE, "hook": not_run(name)})
    except Exception as exc:
        module.fail_json(msg="hook %s failed: %s: %s" % (name, type(exc).__name__, exc),
                         deployer={"stage": STAGE, "hook": not_run(name)})
    module.exit_json(changed=True, deployer={"hook": hook})


if __name__ == "__main__":
    main()
