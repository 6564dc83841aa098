#!/usr/bin/python
# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The environment lock: a directory whose mkdir is the atomic acquire."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deployer_lock
short_description: Acquire, release, inspect or break a deployment lock held in a directory on a host
version_added: "0.1.0"
description:
  - The lock is the directory O(path); C(mkdir) is the atomic acquire and
    C(holder.json) inside it records who holds it (token, holder, when, ttl).
  - C(acquire) succeeds when the directory did not exist, or when it is held with the
    same O(token) (idempotent, C(changed=false)); otherwise it fails and reports the holder,
    the age and whether the lock is stale (older than its ttl). Stale locks are reported,
    never taken over silently; use C(break).
  - C(release) removes the lock only when O(token) matches; releasing a free lock is a no-op.
  - C(break) removes the lock whoever holds it and returns the holder it had. With O(token),
    it removes the lock only when it is still held with that token (the one a C(status)
    reported), so a lock taken since that status was read is left alone (and the task fails,
    reporting the new holder).
  - C(status) reports without changing anything, the holder's token included (a lock whose
    C(holder.json) is missing reports a token made of its directory's inode and mtime).
  - Tokens and holders are not secret; never put secrets in them.
options:
  path:
    description: The lock directory, for example C(/var/lib/deployer/locks/hello-production.lock).
    type: path
    required: true
  action:
    description: What to do.
    type: str
    choices: [acquire, release, status, break]
    default: status
  token:
    description:
      - Random token identifying this deployment; required for acquire and release.
      - For break, the token of the lock to break, as status reported it (empty breaks any lock).
    type: str
    default: ""
  holder:
    description: Who holds the lock (user, control_host, pid, started_at, deployment); stored as given.
    type: dict
    default: {}
  ttl:
    description: Seconds after which a held lock is reported stale.
    type: int
    default: 3600
author:
  - deployer contributors
notes:
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Take the production lock
  deployer.core.deployer_lock:
    path: /var/lib/deployer/locks/hello-production.lock
    action: acquire
    token: 5f0c8a2e
    holder: {user: alice, control_host: ci-7, pid: 4242, started_at: "2024-11-28T20:30:00Z", deployment: d-17}
    ttl: 3600
"""

RETURN = r"""
deployer:
  description: The lock as it is after the action.
  returned: always
  type: dict
  contains:
    path:
      description: The lock directory.
      type: str
    action:
      description: The action performed.
      type: str
    held:
      description: Somebody holds the lock (after the action).
      type: bool
    mine:
      description: It is held with the given token.
      type: bool
    token:
      description: The token the lock is held with (before the action), or null when free.
      type: str
    acquired:
      description: This run created the lock (acquire only).
      type: bool
    released:
      description: This run removed the lock (release and break).
      type: bool
    holder:
      description: The holder dict recorded in holder.json (for break, the one removed), or null.
      type: dict
    acquired_at:
      description: When the lock was taken (host clock, ISO 8601 UTC), or null.
      type: str
    age_seconds:
      description: Seconds since the lock was taken, or null.
      type: float
    ttl:
      description: The ttl recorded with the lock, or null.
      type: int
    stale:
      description: held and age_seconds > ttl.
      type: bool
"""

import errno
import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.deployer.core.plugins.module_utils.layout import now_iso, write_atomic


def read_holder(path):
    """(record, held): held is False when the directory does not exist."""
    if not os.path.isdir(path):
        return None, False
    try:
        with open(os.path.join(path, "holder.json")) as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        record = None
    if not isinstance(record, dict):
        # Taken but holder.json not written (yet, or a crash right after mkdir).
        try:
            since = os.stat(path).st_mtime
        except OSError:
            return None, False
        record = {"token": None, "holder": None, "acquired_epoch": since,
                  "acquired_at": None, "ttl": None}
    return record, True


def held_token(path, record):
    """The token of a held lock; for one without a holder record (a crash right after mkdir),
    an identity of its directory, which changes when the lock is re-created or completed."""
    if record.get("token"):
        return str(record["token"])
    try:
        st = os.stat(path)
    except OSError:
        return None
    return "dir:%d:%d" % (st.st_ino, st.st_mtime_ns)


def describe(path, action, record, held, token, ttl):
    info = dict(path=path, action=action, held=held, mine=False, acquired=False, released=False,
                holder=None, acquired_at=None, age_seconds=None, ttl=None, stale=False,
                token=None)
    if record is not None:
        epoch = record.get("acquired_epoch")
        age = round(max(0.0, time.time() - float(epoch)), 1) if epoch is not None else None
        limit = record.get("ttl") if record.get("ttl") is not None else ttl
        info.update(holder=record.get("holder"), acquired_at=record.get("acquired_at"),
                    age_seconds=age, ttl=limit,
                    mine=bool(token) and record.get("token") == token,
                    stale=bool(held and age is not None and limit is not None and age > limit),
                    token=held_token(path, record) if held else None)
    return info


def who(info):
    holder = info.get("holder") or {}
    parts = [str(holder.get(k)) for k in ("user", "control_host", "deployment") if holder.get(k)]
    text = "held by %s" % (" / ".join(parts) if parts else "an unknown holder")
    if info.get("age_seconds") is not None:
        text += " for %ds" % info["age_seconds"]
    if info.get("stale"):
        text += " (stale: older than its ttl of %ss; break it if that deployment is dead)" % info["ttl"]
    return text


# The module's arguments; also read by the lean runner to validate on the controller.
MODULE_SPEC = dict(
    argument_spec=dict(
        path=dict(type="path", required=True),
        action=dict(type="str", default="status",
                    choices=["acquire", "release", "status", "break"]),
        token=dict(type="str", default=""),
        holder=dict(type="dict", default={}),
        ttl=dict(type="int", default=3600),
    ),
    required_if=[("action", "acquire", ("token",)), ("action", "release", ("token",))],
    supports_check_mode=True,
)


def main():
    module = AnsibleModule(**MODULE_SPEC)
    p = module.params
    path, action, token, ttl = p["path"].rstrip("/"), p["action"], p["token"], p["ttl"]
    record, held = read_holder(path)
    info = describe(path, action, record, held, token, ttl)

    if action == "status":
        module.exit_json(changed=False, deployer=info)

    if action == "acquire":
        if held:
            if info["mine"]:
                module.exit_json(changed=False, deployer=info)
            module.fail_json(msg="lock %s is %s" % (path, who(info)), deployer=info)
        if module.check_mode:
            info.update(held=True, mine=True, acquired=True, holder=p["holder"])
            module.exit_json(changed=True, deployer=info)
        # exist_ok: a deploy racing this one for the same lock may create the parent first
        try:
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        except OSError as exc:  # its parent is not a directory: a clean failure, not a crash
            module.fail_json(msg="cannot create lock %s: %s" % (path, exc), deployer=info)
        try:
            os.mkdir(path, 0o700)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                module.fail_json(msg="cannot create lock %s: %s" % (path, exc), deployer=info)
            record, held = read_holder(path)   # lost a race: report the winner
            info = describe(path, action, record, held, token, ttl)
            if info["mine"]:
                module.exit_json(changed=False, deployer=info)
            module.fail_json(msg="lock %s is %s" % (path, who(info)), deployer=info)
        record = {"token": token, "holder": p["holder"], "acquired_at": now_iso(),
                  "acquired_epoch": time.time(), "ttl": ttl}
        try:
            write_atomic(os.path.join(path, "holder.json"),
                         (json.dumps(record, indent=2, sort_keys=True) + "\n").encode(), 0o644)
        except Exception as exc:
            shutil.rmtree(path, ignore_errors=True)
            module.fail_json(msg="cannot write %s/holder.json: %s" % (path, exc), deployer=info)
        info = describe(path, action, record, True, token, ttl)
        info["acquired"] = True
        module.exit_json(changed=True, deployer=info)

    # release / break
    if not held:
        module.exit_json(changed=False, deployer=info)
    if action == "release" and not info["mine"]:
        module.fail_json(msg="not releasing lock %s: it is %s and the token does not match"
                         % (path, who(info)), deployer=info)
    if action == "break" and token and info["token"] != token:
        module.fail_json(msg="not breaking lock %s: it was taken again since it was read; it is "
                         "%s now" % (path, who(info)), deployer=info)
    if not module.check_mode:
        shutil.rmtree(path)
    info.update(held=False, released=True)
    module.exit_json(changed=True, deployer=info)


if __name__ == "__main__":
    main()
