# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The release tree on a host: paths, meta.json, listing, `current`, atomic writes.

<deploy_to>/releases/<version>/.deployer/meta.json holds
{"version", "sha256", "staged_at", "switched_at", "state", "reason"}; state is one of
"staged" (unpacked, never healthy), "good" (was switched to and passed its health
checks) or "bad" (marked by a rollback). <deploy_to>/.deployer-tree marks a tree deployer
made (or adopted) for one app. Stdlib only: this runs on the target host.

Root works in directories the service user may own (shared/, and releases staged by
older versions): there every path is walked one component at a time from a directory fd,
never following a link (open_dirs), so a link planted at any level is refused, not followed.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import stat

STAGED, GOOD, BAD = "staged", "good", "bad"
META_DIR = ".deployer"
PARTIAL = ".partial-"
TREE_MARKER = ".deployer-tree"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC


class UnsafePath(Exception):
    """A path root works in holds a link (or a non-directory) where a directory belongs."""


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

    def env_paths(self, version):
        """The release's env file and the accessories' (env.<name>) next to it."""
        meta = os.path.join(self.releases, version, META_DIR)
        try:
            extra = sorted(n for n in os.listdir(meta) if n.startswith("env."))
        except OSError:
            extra = []
        return [self.env_path(version)] + [os.path.join(meta, n) for n in extra]

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
        """meta.json of a release, or None; never through a link (nor from a fifo)."""
        try:
            fd, _ = open_dirs(self.releases, version + "/" + META_DIR)
            try:
                handle = os.open("meta.json", _FILE_FLAGS, dir_fd=fd)
            finally:
                os.close(fd)
            with os.fdopen(handle, "rb") as stream:
                if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                    return None
                meta = json.loads(stream.read(1 << 20).decode("utf-8"))
        except (OSError, ValueError, UnsafePath):
            return None
        return meta if isinstance(meta, dict) else None

    def write_meta(self, version, meta, base=None):
        """Write meta.json atomically (into `base` instead of releases/<version> if given),
        never through a link planted in the release."""
        if base:
            fd, _ = open_dirs(base, META_DIR, label=os.path.basename(base))
        else:
            fd, _ = open_dirs(self.releases, version + "/" + META_DIR, label="releases")
        try:
            write_atomic("meta.json", (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode(),
                         0o644, 0, 0, dir_fd=fd)
        finally:
            os.close(fd)

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


def write_atomic(path, data, mode, uid=None, gid=None, dir_fd=None):
    """Write bytes to `path` via a temp file in the same directory and one rename.
    With `dir_fd`, `path` is a name in that directory."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, ".%s.tmp-%s" % (name, _suffix()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC, mode,
                 dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if uid is not None:
                os.fchown(handle.fileno(), uid, -1 if gid is None else gid)
            os.fsync(handle.fileno())
        os.rename(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
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


def open_dirs(top, rel, create=None, label=None):
    """(fd, created): a directory fd of top/rel, each component of `rel` opened from the one
    before with O_NOFOLLOW, so that a link planted at any level is never followed.

    `top` is trusted (root's own). Missing components raise FileNotFoundError, or are made
    with `create` = (mode, uid, gid); `created` says whether any was. A link or a
    non-directory raises UnsafePath naming it as `label`/rel (`label` defaults to `top`).
    The caller closes the fd.
    """
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    created = False
    done = []
    try:
        for part in [p for p in rel.split("/") if p not in ("", ".")]:
            done.append(part)
            made = False
            if create is not None:
                try:
                    os.mkdir(part, create[0], dir_fd=fd)
                    made = True
                except FileExistsError:
                    pass
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                raise
            except OSError as exc:
                raise _unsafe(fd, part, "/".join([label or top] + done), exc)
            os.close(fd)
            fd = child
            if made:
                os.fchmod(fd, create[0])
                os.fchown(fd, create[1], create[2])
                created = True
        return fd, created
    except BaseException:
        os.close(fd)
        raise


def _unsafe(dir_fd, name, shown, exc):
    """UnsafePath for the entry `name` that would not open as a directory (or `exc`)."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError:
        return exc
    if stat.S_ISLNK(mode):
        return UnsafePath("%s is a symlink; deployer does not follow links there" % shown)
    if not stat.S_ISDIR(mode):
        return UnsafePath("%s is not a directory" % shown)
    return exc


def reclaim(parent, name, owner, gid):
    """Give parent/name and everything in it that uid `owner` owns to root (group `gid`;
    META_DIR root's alone), clearing group/other write and set-id bits. Links are re-owned,
    never followed; fifos, sockets and devices of `owner` are removed. For trees an older
    deployer staged, owned by the service user. Returns whether anything changed."""
    fd, _ = open_dirs(parent, name)
    try:
        return _reclaim_dir(fd, owner, gid, top=True)
    finally:
        os.close(fd)


def _reclaim_fd(fd, owner, gid):
    st = os.fstat(fd)
    if st.st_uid != owner:
        return False
    os.fchown(fd, 0, gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode) & 0o755)
    return True


def _reclaim_dir(fd, owner, gid, top=False):
    changed = _reclaim_fd(fd, owner, gid)
    for name in os.listdir(fd):
        group = 0 if top and name == META_DIR else gid
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
            try:
                child = os.open(name, _DIR_FLAGS if stat.S_ISDIR(st.st_mode) else _FILE_FLAGS,
                                dir_fd=fd)
            except OSError:
                continue  # swapped for something else meanwhile: not followed
            try:
                if (os.fstat(child).st_dev, os.fstat(child).st_ino) != (st.st_dev, st.st_ino):
                    continue
                if stat.S_ISDIR(st.st_mode):
                    changed = _reclaim_dir(child, owner, group) or changed
                else:
                    changed = _reclaim_fd(child, owner, group) or changed
            finally:
                os.close(child)
        elif st.st_uid != owner:
            continue
        elif stat.S_ISLNK(st.st_mode):
            os.chown(name, 0, group, dir_fd=fd, follow_symlinks=False)
            changed = True
        else:
            os.unlink(name, dir_fd=fd)
            changed = True
    return changed


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
