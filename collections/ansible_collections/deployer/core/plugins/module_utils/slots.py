# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Blue-green slots on a host (``strategy.kind: blue_green``).

A service deployed blue-green runs in two slots, ``blue`` and ``green``, each with a unit of
its own (``<app>:blue.service``, ``<app>:green.service``, kept with every release like its
other units; no app name holds a colon) that runs the release ``<deploy_to>/slots/<slot>``
links to, on the slot's own port. ``<deploy_to>/slots/live`` links to the slot the edge
proxy sends requests to; it is switched together with ``current``, so ``current`` is the
live slot's release. The slot left by a switch is stopped by a transient systemd timer
(``<app>:retire-<slot>.timer``) after the keep-warm time, unless a switch takes it up again
before.
"""

from __future__ import annotations

import os

from ansible_collections.deployer.core.plugins.module_utils.layout import (
    check_version,
    remove_path,
)

SLOTS = ("blue", "green")
SLOTS_DIR = "slots"
LIVE = "live"


def other(slot):
    """The other slot. A host with no live slot yet counts as on ``blue`` (whatever runs on
    the service's own port, the blue slot's), so its first slot is ``green``."""
    return "blue" if slot == "green" else "green"


def unit(app, slot):
    return "%s:%s.service" % (app, slot)


def retire_unit(app, slot):
    """The transient unit that stops `slot` after the keep-warm time (``.timer`` and
    ``.service`` of that name)."""
    return "%s:retire-%s" % (app, slot)


def slot_units(app):
    return [unit(app, s) for s in SLOTS]


def slot_health(health, ports, slot):
    """The checks of `slot` ({blue: port, green: port} in `ports`): an HTTP or TCP check on
    the service's port (the blue slot's), or on no port, is run against the slot's own."""
    spec = dict(health or {})
    for kind in ("http", "tcp"):
        check = spec.get(kind)
        if check and check.get("port") in (None, ports["blue"]):
            spec[kind] = dict(check, port=ports[slot])
    return spec


def _dir(tree):
    return os.path.join(tree.root, SLOTS_DIR)


def _read(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def live(tree):
    """The live slot, or None."""
    target = _read(os.path.join(_dir(tree), LIVE))
    return target if target in SLOTS else None


def version_of(tree, slot):
    """The version `slot` links to (``../releases/<version>``), or None."""
    target = _read(os.path.join(_dir(tree), slot))
    if not target:
        return None
    head, version = os.path.split(target)
    if head != os.path.join("..", "releases") or check_version(version):
        return None
    return version if os.path.isdir(tree.release(version)) else None


def _link(path, target):
    """Atomically point the link `path` at `target` (new link + rename)."""
    tmp = "%s.tmp-%d" % (path, os.getpid())
    remove_path(tmp)
    os.symlink(target, tmp)
    try:
        os.rename(tmp, path)
    except BaseException:
        remove_path(tmp)
        raise


def point(tree, slot, version):
    """Point `slot` at releases/<version>."""
    directory = _dir(tree)
    if not os.path.isdir(directory):
        os.mkdir(directory, 0o755)
    _link(os.path.join(directory, slot), os.path.join("..", "releases", version))


def set_live(tree, slot):
    _link(os.path.join(_dir(tree), LIVE), slot)


def remove(tree):
    """Remove the slots' links (the host runs nothing any more)."""
    remove_path(_dir(tree))
