# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The systemd units belong to a release: staging keeps them in the release's
``.deployer/units/``, the switch installs them under /etc/systemd/system.

So staging a new version never changes what runs (a restart of the live version, by
systemd or by hand, keeps its own command, port and limits), and a rollback brings back the
units the old version was deployed with, socket or no socket. A unit of the app that the
release does not have (an ``<app>.socket`` after a move to an app that binds its own port)
is removed when the release is installed.
"""

from __future__ import annotations

import os
import re
import stat

from ansible_collections.deployer.core.plugins.module_utils.layout import (
    META_DIR,
    UnsafePath,
    open_dirs,
    read_bytes,
    remove_path,
    write_atomic,
)

UNITS_DIR = "/etc/systemd/system"
UNITS_SUBDIR = "units"
UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.@-]+\.(service|socket|timer|target|path|slice)$")
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0) \
    | getattr(os, "O_NONBLOCK", 0)


class UnitError(Exception):
    """A unit that cannot be staged or installed; the message is safe to show."""


def encode(units):
    """{name: str} -> {name: bytes}, names checked, one trailing newline."""
    out = {}
    for name in sorted(units or {}):
        if not UNIT_NAME.match(name):
            raise UnitError("invalid systemd unit file name %r" % name)
        content = units[name]
        if not isinstance(content, str):
            raise UnitError("unit %s: content must be a string" % name)
        out[name] = (content.rstrip("\n") + "\n").encode("utf-8")
    return out


def _read_at(fd, name):
    try:
        handle = os.open(name, _READ_FLAGS, dir_fd=fd)
    except OSError:
        return None
    with os.fdopen(handle, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return None
        return stream.read(1 << 20)


def stage(base, units, check=False):
    """Write `units` ({name: bytes}) into <base>/.deployer/units/ (root 0644) and remove
    any other file there. Returns the names written or removed."""
    changed = []
    if check:
        fd = None
        try:
            fd, _ = open_dirs(base, META_DIR + "/" + UNITS_SUBDIR)
        except (OSError, UnsafePath):
            return sorted(units)
        try:
            present = set(os.listdir(fd))
            changed = [n for n in sorted(units) if _read_at(fd, n) != units[n]]
            return changed + sorted(present - set(units))
        finally:
            os.close(fd)
    fd, _ = open_dirs(base, META_DIR + "/" + UNITS_SUBDIR, create=(0o755, 0, 0),
                      label=os.path.basename(base))
    try:
        for name in sorted(set(os.listdir(fd)) - set(units)):
            os.unlink(name, dir_fd=fd)
            changed.append(name)
        for name, data in sorted(units.items()):
            if _read_at(fd, name) == data:
                continue
            write_atomic(name, data, 0o644, 0, 0, dir_fd=fd)
            changed.append(name)
    finally:
        os.close(fd)
    return sorted(changed)


def of_release(release):
    """{name: bytes} staged with a release, or None for a release staged before units
    belonged to releases (its units are whatever /etc holds)."""
    try:
        fd, _ = open_dirs(release, META_DIR + "/" + UNITS_SUBDIR)
    except (OSError, UnsafePath):
        return None
    try:
        units = {}
        for name in sorted(os.listdir(fd)):
            if UNIT_NAME.match(name):
                data = _read_at(fd, name)
                if data is not None:
                    units[name] = data
        return units
    finally:
        os.close(fd)


def app_units(app):
    """The unit files deployer manages for `app`: one service (and socket), or the
    templates of its instances and the target that groups them."""
    return [app + ".service", app + ".socket", app + "@.service", app + "@.socket",
            app + ".target"]


def base_of(name):
    """The unit base of a unit name: ``A:S`` of ``A:S@8001.service``, ``A:S@.socket`` or
    ``A:S.target``; ``A`` of ``A.service``."""
    return name.rsplit(".", 1)[0].split("@", 1)[0]


def of_base(base, units):
    """The units of `units` ({name: bytes}) that belong to the unit base `base` (the
    shapes of app_units(base)); empty for a service with no units (files only)."""
    return dict((n, units[n]) for n in app_units(base) if n in (units or {}))


def instance_names(names, base):
    """The instance units (``<base>@<port>.service`` / ``.socket``) among `names`."""
    pattern = re.compile(r"^%s@[0-9]+\.(service|socket)$" % re.escape(base))
    return sorted(n for n in set(names) if pattern.match(n))


class Instance(object):
    """One running copy of the app: its service unit, its socket unit (socket activation)
    or None, and its port when it is one of several instances (None: the one service)."""

    def __init__(self, service, socket, port):
        self.service, self.socket, self.port = service, socket, port

    @property
    def units(self):
        return [u for u in (self.socket, self.service) if u]


_WANTS = re.compile(r"^Wants=(.*)$", re.M)


def instances(app, units, socket_mode=None):
    """The instances a release's units describe: with the templates ``<app>@.service``
    (and ``<app>@.socket``) and ``<app>.target``, one per port the target wants;
    otherwise the one ``<app>.service``. `socket_mode` decides for a release without
    units (None: from the units)."""
    units = units or {}
    if app + "@.service" in units and app + ".target" in units:
        has_socket = app + "@.socket" in units
        names = " ".join(_WANTS.findall(units[app + ".target"].decode("utf-8", "replace")))
        pattern = re.compile(r"^%s@([0-9]{1,5})\.(?:service|socket)$" % re.escape(app))
        ports = sorted({int(m.group(1)) for n in names.split() for m in [pattern.match(n)] if m})
        return [Instance("%s@%d.service" % (app, p), "%s@%d.socket" % (app, p) if has_socket
                         else None, p) for p in ports if 0 < p < 65536]
    if socket_mode is None:
        socket_mode = app + ".socket" in units
    return [Instance(app + ".service", app + ".socket" if socket_mode else None, None)]


def differences(app, units):
    """(to_write, to_remove): installed units that differ from `units`, and the app's
    installed units that `units` does not have."""
    write = [n for n, data in sorted(units.items())
             if read_bytes(os.path.join(UNITS_DIR, n)) != data]
    remove = [n for n in app_units(app)
              if n not in units and os.path.lexists(os.path.join(UNITS_DIR, n))]
    return write, remove


def install(units, write, remove):
    """Write and remove unit files as `differences` said (the caller stops removed units
    first and runs daemon-reload after)."""
    for name in write:
        write_atomic(os.path.join(UNITS_DIR, name), units[name], 0o644, 0, 0)
    for name in remove:
        remove_path(os.path.join(UNITS_DIR, name))


def instance_health(health, instance, wanted):
    """The checks for one instance: an HTTP or TCP check on the first instance's port (the
    service's port) is run against each instance's own port."""
    if instance.port is None or not wanted:
        return health
    base = wanted[0].port
    spec = dict(health)
    for kind in ("http", "tcp"):
        check = spec.get(kind)
        if check and check.get("port") == base:
            spec[kind] = dict(check, port=instance.port)
    return spec
