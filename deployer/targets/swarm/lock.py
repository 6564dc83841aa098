"""The environment lock of a Swarm environment, on its manager, over the target's own SSH.

Same place and format as the SSH target's lock module (an atomic mkdir of
/var/lib/deployer/locks/<app>/<env>.lock holding holder.json with the token, the holder,
when it was taken and its TTL), so the two read each other's locks; release and break act
only when the token matches, in one remote script, so a lock taken again in between is
never removed.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from datetime import UTC, datetime
from typing import Any

from deployer.errors import DeployerError, LockedError
from deployer.plan.extravars import lock_path
from deployer.session import Session
from deployer.targets.base import LockInfo, cap, lock_info
from deployer.targets.swarm.remote import Nodes

_TOKEN = re.compile(r"[0-9a-f]{16,64}")
_SCRIPT = r"""
set -u
p=%(path)s; t=%(token)s; action=%(action)s
S=""; [ "$(id -u)" = 0 ] || S="sudo -n"
case $action in
acquire)
  $S mkdir -p "${p%%/*}" || exit 3
  if $S mkdir -m 700 "$p" 2>/dev/null; then
    $S tee "$p/.holder.tmp" >/dev/null && $S mv "$p/.holder.tmp" "$p/holder.json" || {
      $S rm -rf "$p"; exit 3; }
    echo acquired
    exit 0
  fi ;;
release|break)
  if [ -d "$p" ] && $S grep -qF "\"token\": \"$t\"" "$p/holder.json" 2>/dev/null; then
    $S rm -rf "$p" && echo released && exit 0
  fi ;;
esac
if [ -d "$p" ]; then echo held; $S cat "$p/holder.json" 2>/dev/null; else echo free; fi
"""


def _record(raw: str) -> dict[str, Any]:
    try:
        record = json.loads(raw) if raw.strip() else {}
    except ValueError:
        record = {}
    return record if isinstance(record, dict) else {}


def _report(state: str, record: dict[str, Any], token: str) -> dict[str, Any]:
    held = state in {"held", "acquired"}
    holder = record.get("holder")
    epoch = record.get("acquired_epoch")
    age = max(0.0, time.time() - float(epoch)) if isinstance(epoch, int | float) else 0.0
    ttl = record.get("ttl")
    return {
        "held": held,
        "mine": bool(token) and record.get("token") == token,
        "holder": {  # the manager's file: shown to the operator, so every text capped
            str(k): cap(v, 200) if isinstance(v, str) else v
            for k, v in (holder.items() if isinstance(holder, dict) else ())
        },
        "token": str(record.get("token") or ""),
        "age_seconds": round(age, 1),
        "stale": held and isinstance(ttl, int | float) and age > ttl,
    }


def run(
    session: Session, nodes: Nodes, action: str, token: str = "", deployment: int | None = None
) -> LockInfo:
    """acquire | release | break | status; LockedError when held by someone else (acquire)
    or held with another token now (release, break)."""
    env = session.target
    if token and not _TOKEN.fullmatch(token):
        raise DeployerError(f"lock {action}: not a lock token this target wrote: {token!r}")
    script = _SCRIPT % {
        "path": shlex.quote(lock_path(env)),
        "token": shlex.quote(token),
        "action": shlex.quote(action),
    }
    record: dict[str, Any] = {}
    stdin = None
    if action == "acquire":
        record = {
            "token": token,
            "holder": session.identity.holder(deployment),
            "acquired_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "acquired_epoch": time.time(),
            "ttl": env.lock_ttl,
        }
        stdin = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
    out = nodes.manage_script(script, stdin=stdin, what=f"lock {action}")
    state, _, rest = out.partition("\n")
    state = state.strip()
    if state == "acquired":
        return lock_info(session, _report("acquired", record, token))
    if state == "released":
        return lock_info(session, {"held": False})
    info = lock_info(session, _report(state, _record(rest), token))
    if state == "held" and action in {"acquire", "release", "break"} and not info.mine:
        raise LockedError(f"{info.environment} is {info.describe()}")
    return info
