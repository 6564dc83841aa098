# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The release tree on a host: paths, meta.json, listing, `current`, atomic writes.

<deploy_to>/releases/<version>/.deployer/meta.json holds
{"version", "sha256", "staged_at", "switched_at", "state", "reason"}; state is one of
"staged" (unpacked, never healthy), "good" (was switched to and passed its health
checks) or "bad" (marked by a rollback). Stdlib only: this runs on the target host.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil

STAGED, GOOD, BAD = "staged", "good", "bad"
META_DIR = ".deployer"
PARTIAL = ".partial-"
def _suffix():
    """A random suffix for temporary names (os.urandom: the secrets module's source, without
    its import, which costs milliseconds of CPU on every host at every step)."""
    return os.urandom(4).hex()


VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def now_iso():
    """UTC time, fixed width, so that string order is time order."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_version(version):
    """Return an error message for a version string unfit for a directory name, else None."""
    if not VERSION_RE.match(version or "") or PARTIAL in version:
        return (
            "invalid version %r: use 1-128 letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit" % (version,)
        )
    return None


class Tree(object):
    """Paths of one application's release tree."""

    def __init__(self, deploy_to):
        self.root = os.path.abspath(deploy_to)
        self.releases = os.path.join(self.root, "releases")
        self.shared = os.path.join(self.root, "shared")
        self.uploads = os.path.join(self.root, ".uploads")
        self.current_link = os.path.join(self.root, "current")

    def release(self, version):
        return os.path.join(self.releases, version)

    def meta_path(self, version):
        return os.path.join(self.releases, version, META_DIR, "meta.json")

    def env_path(self, version):
        return os.path.join(self.releases, version, META_DIR, "env")

    def current(self):
        """Version `current` points at, or None (missing link, or not into releases/)."""
        try:
            target = os.readlink(self.current_link)
        except OSError:
            return None
        target = os.path.normpath(os.path.join(self.root, target))
        if os.path.dirname(target) != self.releases:
            return None
        version = os.path.basename(target)
        return version if os.path.isdir(target) else None

    def read_meta(self, version):
        try:
            with open(self.meta_path(version), "r") as handle:
                meta = json.load(handle)
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def write_meta(self, version, meta, base=None):
        """Write meta.json atomically (into `base` instead of releases/<version> if given)."""
        directory = os.path.join(base or self.release(version), META_DIR)
        write_atomic(os.path.join(directory, "meta.json"),
                     (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode(), 0o644)

    def versions(self):
        """Names of the release directories (partial unpacks excluded)."""
        try:
            names = os.listdir(self.releases)
        except OSError:
            return []
        return [n for n in names if PARTIAL not in n and not n.startswith(".")
                and os.path.isdir(os.path.join(self.releases, n))
                and not os.path.islink(os.path.join(self.releases, n))]

    def partials(self):
        try:
            names = os.listdir(self.releases)
        except OSError:
            return []
        return [os.path.join(self.releases, n) for n in names if PARTIAL in n]

    def releases_info(self):
        """[{version, state, sha256, staged_at, switched_at, reason}] oldest staged first."""
        out = []
        for version in self.versions():
            meta = self.read_meta(version)
            if meta is None:
                mtime = os.stat(self.release(version)).st_mtime
                staged = datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc)
                meta = {"state": "unknown", "sha256": None,
                        "staged_at": staged.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "switched_at": None, "reason": "no .deployer/meta.json"}
            out.append({
                "version": version,
                "state": meta.get("state") or "unknown",
                "sha256": meta.get("sha256"),
                "staged_at": meta.get("staged_at"),
                "switched_at": meta.get("switched_at"),
                "reason": meta.get("reason"),
            })
        out.sort(key=lambda r: (r["staged_at"] or "", r["version"]))
        return out


def previous_good(releases, current):
    """The most recently switched-to good release other than `current`, or None."""
    good = [r for r in releases if r["state"] == GOOD and r["version"] != current]
    if not good:
        return None
    good.sort(key=lambda r: (r["switched_at"] or "", r["staged_at"] or ""))
    return good[-1]["version"]


def write_atomic(path, data, mode, uid=None, gid=None):
    """Write bytes to `path` via a temp file in the same directory and one rename."""
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, ".%s.tmp-%s" % (os.path.basename(path), _suffix()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if uid is not None:
            os.chown(tmp, uid, -1 if gid is None else gid)
        os.rename(tmp, path)
    except BaseException:
        remove_path(tmp)
        raise


def read_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def point_current(tree, version):
    """Atomically point `current` at releases/<version> (relative link + rename)."""
    tmp = "%s.tmp-%s" % (tree.current_link, _suffix())
    os.symlink(os.path.join("releases", version), tmp)
    try:
        os.rename(tmp, tree.current_link)
    except BaseException:
        remove_path(tmp)
        raise


def remove_path(path):
    """Remove a file, link or directory tree; missing is fine."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def ensure_dir(path, mode, uid=0, gid=0):
    """Create `path` (and parents) if missing; enforce mode and owner. Return True if changed."""
    changed = False
    if not os.path.isdir(path):
        os.makedirs(path, mode, exist_ok=True)  # another process may create it meanwhile
        changed = True
    st = os.lstat(path)
    if st.st_mode & 0o7777 != mode:
        os.chmod(path, mode)
        changed = True
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(path, uid, gid)
        changed = True
    return changed


def free_bytes(path):
    """(free bytes for unprivileged users, the path measured): nearest existing parent."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    st = os.statvfs(probe)
    return st.f_bavail * st.f_frsize, probe


def human_bytes(n):
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024.0
    return "%d B" % n
